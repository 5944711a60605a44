"""coco-caption corpus BLEU (ram_lightning.models.bleu): against nltk, by hand, and as a DDP-safe Metric.

nltk's ``corpus_bleu`` (no smoothing, weights ``(1/n,) * n``) uses the same clipped counts,
corpus sums and closest reference length (ties to the shorter) as coco, and agrees with it
except for three documented differences, each pinned below:

1. a hypothesis shorter than ``n`` adds 1 to nltk's order-``n`` denominator (``max(1, L-n+1)``),
   0 to coco's (``max(0, L-n+1)``);
2. no unigram match: nltk returns exactly 0; some higher order without a match: nltk uses
   ``sys.float_info.min`` for it (score < 1e-70, with a UserWarning); coco's ``tiny``/``small``
   constants give a small positive score;
3. a perfect corpus: nltk gives exactly 1.0, coco a hair below (``tiny < small`` makes the
   length ratio ``(c + 1e-15) / (r + 1e-9)`` < 1 even when ``c == r``).
"""
import doctest
import math
import random
import warnings

import pytest
import torch
from nltk.translate.bleu_score import corpus_bleu as nltk_corpus_bleu
from torchmetrics.utilities.data import dim_zero_sum

import ram_lightning.models.bleu as bleu_module
import ram_lightning.models.corpus_bleu as corpus_bleu_module
from ram_lightning.models.bleu import SMALL, TINY, bleu_from_statistics, bleu_statistics, corpus_bleu, ngram_counts
from ram_lightning.models.corpus_bleu import CorpusBLEU

MAX_N = 4
NLTK_WEIGHTS = [tuple([1.0 / n] * n) for n in range(1, MAX_N + 1)]


def random_corpus(rng: random.Random):
    """A few hypotheses over a tiny vocabulary (so 3- and 4-grams do match), lengths 1..15, 1..5 refs."""
    vocab = [f"w{i}" for i in range(rng.randint(2, 5))]
    size = rng.randint(1, 6)

    def sentence():
        return [rng.choice(vocab) for _ in range(rng.randint(1, 15))]

    hypotheses = [sentence() for _ in range(size)]
    references = [[sentence() for _ in range(rng.randint(1, 5))] for _ in range(size)]
    return hypotheses, references


def nltk_bleu(hypotheses, references):
    """nltk's corpus BLEU-1..4 (0-1 scale), its 'zero n-gram overlap' warnings silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        scores = nltk_corpus_bleu(references, hypotheses, weights=NLTK_WEIGHTS)
    return [float(s) for s in scores]


def corpus_stats(hypotheses, references):
    return sum(bleu_statistics(h, r, MAX_N) for h, r in zip(hypotheses, references)).tolist()


def nltk_model(hypotheses, stats, n):
    """nltk's BLEU-n predicted from coco's statistics and nltk's two deviations (1 and 2 above).

    Returns (value, exact): exact is False where nltk yields sys.float_info.min-based dust."""
    matches, totals = stats[:MAX_N], stats[MAX_N:2 * MAX_N]
    c, r = stats[2 * MAX_N], stats[2 * MAX_N + 1]
    if matches[0] == 0:
        return 0.0, True
    if any(m == 0 for m in matches[:n]):
        return 0.0, False
    short = [sum(1 for h in hypotheses if len(h) < k + 1) for k in range(n)]
    log_p = sum(math.log(matches[k] / (totals[k] + short[k])) for k in range(n))
    bp = 1.0 if c > r else math.exp(1 - r / c)
    return bp * math.exp(log_p / n), True


# ----------------------------------------------------------------------------------------------
# (1) nltk: agreement where the two must agree, and each documented difference

def test_agrees_with_nltk_on_random_corpora_where_both_are_defined_the_same():
    rng = random.Random(1234)
    compared = [0] * MAX_N
    for _ in range(300):
        hypotheses, references = random_corpus(rng)
        ours = corpus_bleu(hypotheses, references).tolist()
        theirs = nltk_bleu(hypotheses, references)
        stats = corpus_stats(hypotheses, references)
        for n in range(1, MAX_N + 1):
            no_short_hypothesis = all(len(h) >= n for h in hypotheses)  # difference 1 absent
            every_order_matches = all(m > 0 for m in stats[:n])  # difference 2 absent
            if no_short_hypothesis and every_order_matches:
                assert ours[n - 1] / 100 == pytest.approx(theirs[n - 1], rel=1e-6, abs=0), (n, hypotheses, references)
                compared[n - 1] += 1
    assert min(compared) >= 50, compared  # every order, BLEU-4 included, was really exercised


def test_nltk_equals_coco_statistics_plus_the_documented_differences_on_random_corpora():
    """Every random corpus, every n: nltk == (coco's counts, short hypotheses +1 in the
    denominator, 0 / <1e-70 when an order has no match). Also checks the deviations occur."""
    rng = random.Random(99)
    short_changed = zero_order = 0
    for _ in range(300):
        hypotheses, references = random_corpus(rng)
        theirs = nltk_bleu(hypotheses, references)
        ours = corpus_bleu(hypotheses, references).tolist()
        stats = corpus_stats(hypotheses, references)
        for n in range(1, MAX_N + 1):
            expected, exact = nltk_model(hypotheses, stats, n)
            if exact:
                assert theirs[n - 1] == pytest.approx(expected, rel=1e-9, abs=0)
                if expected > 0 and abs(ours[n - 1] / 100 - expected) > 1e-6 * expected:
                    assert any(len(h) < n for h in hypotheses)  # only difference 1 can cause it
                    short_changed += 1
            else:
                assert 0 < theirs[n - 1] < 1e-70
                assert ours[n - 1] > 1e-25  # coco's constants: small but positive, far above nltk's dust
                zero_order += 1
    assert short_changed > 20 and zero_order > 20, (short_changed, zero_order)


def test_difference_1_short_hypotheses_inflate_nltk_denominators():
    # Bigram totals: coco 2 (from 'a b c') + 0 (from 'a') + 0 (from []) = 2, all matched -> p2 = 1.
    # nltk adds max(1, .) = 1 for 'a' and 1 for the empty hypothesis: p2 = 2 / 4.
    # Unigrams: coco 3 + 1 + 0 = 4, nltk 3 + 1 + 1 = 5 (the empty hypothesis counts too).
    # Lengths: c = 4, r = 3 + 1 + 1 (closest to 0 among [1, 2] is 1) = 5, BP = exp(1 - 5/4).
    hypotheses = [["a", "b", "c"], ["a"], []]
    references = [[["a", "b", "c"]], [["a"]], [["x"], ["x", "y"]]]
    ours = corpus_bleu(hypotheses, references, max_n=2).tolist()
    theirs = nltk_bleu(hypotheses, references)
    bp = math.exp(1 - 5 / 4)
    assert ours[0] / 100 == pytest.approx(bp * 4 / 4, rel=1e-8)
    assert ours[1] / 100 == pytest.approx(bp * math.sqrt(4 / 4 * 2 / 2), rel=1e-8)
    assert theirs[0] == pytest.approx(bp * 4 / 5, rel=1e-12)
    assert theirs[1] == pytest.approx(bp * math.sqrt(4 / 5 * 2 / 4), rel=1e-12)


def test_difference_2a_no_unigram_match_nltk_zero_coco_tiny_positive():
    hypotheses, references = [["x", "y"]], [[["a", "b"]]]
    theirs = nltk_bleu(hypotheses, references)
    assert theirs == [0, 0, 0, 0]
    ours = corpus_bleu(hypotheses, references)
    # BLEU-1 = (0 + 1e-15) / (2 + 1e-9) * exp(1 - (2 + 1e-9) / (2 + 1e-15)), times 100.
    ratio = (2 + TINY) / (2 + SMALL)
    assert ours[0].item() == pytest.approx(100 * (TINY / (2 + SMALL)) * math.exp(1 - 1 / ratio), rel=1e-12)
    assert (ours > 0).all() and (ours < 1e-3).all()
    textbook = bleu_from_statistics(bleu_statistics(hypotheses[0], references[0]), coco_epsilons=False)
    assert textbook.tolist() == [0, 0, 0, 0]


def test_difference_2b_no_trigram_match_nltk_dust_with_warning_coco_small_positive():
    # hyp 'a b a', ref 'b a b': unigrams a x2 clipped to 1, b 1 -> 2/3; bigrams 'a b', 'b a' -> 2/2;
    # trigram 'a b a' -> 0/1. c = r = 3.
    hypotheses, references = [["a", "b", "a"]], [[["b", "a", "b"]]]
    with pytest.warns(UserWarning, match="0 counts of 3-gram"):
        theirs = nltk_corpus_bleu(references, hypotheses, weights=NLTK_WEIGHTS[2])
    assert 0 < theirs < 1e-70
    ours = corpus_bleu(hypotheses, references, max_n=3)
    assert ours[1].item() / 100 == pytest.approx(nltk_bleu(hypotheses, references)[1], rel=1e-8)  # BLEU-2 agrees
    ratio = (3 + TINY) / (3 + SMALL)
    expected = ((2 + TINY) / (3 + SMALL) * (2 + TINY) / (2 + SMALL) * TINY / (1 + SMALL)) ** (1 / 3)
    assert ours[2].item() == pytest.approx(100 * expected * math.exp(1 - 1 / ratio), rel=1e-12)
    assert 1e-4 < ours[2].item() < 1e-3  # ~100 * (2/3 * 1e-15) ** (1/3) = 8.7e-4


def test_difference_3_perfect_corpus_is_a_hair_below_100_in_coco_exactly_1_in_nltk():
    hypotheses = [["a", "dog", "runs", "on", "grass"], ["two", "men", "talk", "outside"]]  # all >= 4 long
    references = [[h] for h in hypotheses]
    assert nltk_bleu(hypotheses, references) == [1.0, 1.0, 1.0, 1.0]
    ours = corpus_bleu(hypotheses, references)
    assert (ours < 100).all() and (ours > 100 - 1e-6).all()
    stats = sum(bleu_statistics(h, r) for h, r in zip(hypotheses, references))
    textbook = bleu_from_statistics(stats, coco_epsilons=False)
    assert textbook.tolist() == [100.0, 100.0, 100.0, 100.0]


def test_closest_reference_length_ties_go_to_the_shorter_reference_like_nltk():
    hypothesis = ["a", "b", "c", "d"]  # length 4; references of length 5 and 3 are equally close
    long_ref, short_ref = ["a", "b", "c", "d", "e"], ["a", "b", "c"]
    for references in ([long_ref, short_ref], [short_ref, long_ref]):
        stats = bleu_statistics(hypothesis, references)
        assert stats[-1].item() == 3  # not 5: no brevity penalty
        ours = corpus_bleu([hypothesis], [references])
        assert ours[0].item() == pytest.approx(100.0, rel=1e-8)
        assert (ours / 100).tolist() == pytest.approx(nltk_bleu([hypothesis], [references]), rel=1e-8)


def test_empty_corpus_and_empty_hypotheses_score_zero():
    assert corpus_bleu([[]], [[["a", "b"]]]).tolist() == [0.0, 0.0, 0.0, 0.0]
    assert nltk_bleu([[]], [[["a", "b"]]]) == [0, 0, 0, 0]
    assert corpus_bleu([], []).tolist() == [0.0, 0.0, 0.0, 0.0]


# ----------------------------------------------------------------------------------------------
# (2) by hand

def test_hand_computed_example():
    # h1 = 'the the the cat' (c=4); refs 'the cat sat' (3), 'the the dog sat down' (5).
    #   closest ref length: |3-4| = |5-4| = 1, tie -> shorter -> r1 = 3.
    #   unigrams: the x3 clipped to 2 (max count in one ref, ref 2), cat 1 -> 3 matches of 4.
    #   bigrams: 'the the' x2 clipped to 1 (ref 2), 'the cat' 1 (ref 1) -> 2 of 3.
    #   trigrams: 'the the the', 'the the cat' -> 0 of 2.  4-grams: 0 of 1.
    # h2 = 'a dog' (c=2); refs 'a dog runs away' (4), 'a big dog runs fast' (5) -> r2 = 4.
    #   unigrams 2 of 2, bigrams 1 of 1, no trigrams or 4-grams (totals 0).
    # Corpus: matches [5, 3, 0, 0], totals [6, 4, 2, 1], c = 6, r = 7, BP = exp(1 - 7/6).
    #   BLEU-1 = 100 * 5/6 * BP = 70.5401...;  BLEU-2 = 100 * sqrt(5/6 * 3/4) * BP = 66.9203...
    #   BLEU-3/4: a zero-match order -> coco: e.g. BLEU-3 = 100 * (5/6 * 3/4 * 1e-15/2) ** (1/3) * BP
    #   (~ 5.7e-4); textbook (and nltk) -> 0.
    hypotheses = [["the", "the", "the", "cat"], ["a", "dog"]]
    references = [
        [["the", "cat", "sat"], ["the", "the", "dog", "sat", "down"]],
        [["a", "dog", "runs", "away"], ["a", "big", "dog", "runs", "fast"]],
    ]
    stats = bleu_statistics(hypotheses[0], references[0]) + bleu_statistics(hypotheses[1], references[1])
    assert stats.tolist() == [5, 3, 0, 0, 6, 4, 2, 1, 6, 7]
    assert stats.dtype == torch.long
    bp = math.exp(1 - 7 / 6)
    ours = corpus_bleu(hypotheses, references)
    assert ours.dtype == torch.float64 and ours.shape == (4,)
    assert ours[0].item() == pytest.approx(100 * 5 / 6 * bp, rel=1e-8)
    assert ours[0].item() == pytest.approx(70.5401, abs=1e-4)
    assert ours[1].item() == pytest.approx(100 * math.sqrt(5 / 6 * 3 / 4) * bp, rel=1e-8)
    assert ours[1].item() == pytest.approx(66.9203, abs=1e-4)
    assert ours[2].item() == pytest.approx(100 * (5 / 6 * 3 / 4 * 1e-15 / 2) ** (1 / 3) * bp, rel=1e-6)
    assert ours[3].item() == pytest.approx(100 * (5 / 6 * 3 / 4 * 1e-15 / 2 * 1e-15 / 1) ** (1 / 4) * bp, rel=1e-6)
    assert bleu_from_statistics(stats, coco_epsilons=False).tolist() == pytest.approx(
        [100 * 5 / 6 * bp, 100 * math.sqrt(5 / 6 * 3 / 4) * bp, 0.0, 0.0], rel=1e-12)
    assert (ours[:2] / 100).tolist() == pytest.approx(nltk_bleu(hypotheses, references)[:2], rel=1e-8)


def test_ngram_counts():
    counts = ngram_counts(["a", "b", "a", "b"], 3)
    assert counts == {("a",): 2, ("b",): 2, ("a", "b"): 2, ("b", "a"): 1, ("a", "b", "a"): 1, ("b", "a", "b"): 1}
    assert ngram_counts([], 4) == {}


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="2 hypotheses but 1 reference lists"):
        corpus_bleu([["a"], ["b"]], [[["a"]]])
    with pytest.raises(ValueError, match="hypothesis 1: references must be a non-empty list"):
        corpus_bleu([["a"], ["b"]], [[["a"]], []])
    with pytest.raises(ValueError, match="non-empty"):
        bleu_statistics(["a"], [])
    with pytest.raises(TypeError, match="tokenise"):
        bleu_statistics("a dog", [["a", "dog"]])
    with pytest.raises(TypeError, match="references\\[0\\]"):
        bleu_statistics(["a"], ["a dog"])
    with pytest.raises(ValueError, match="max_n"):
        bleu_statistics(["a"], [["a"]], max_n=0)
    with pytest.raises(ValueError, match="shape"):
        bleu_from_statistics(torch.zeros(8), max_n=4)
    with pytest.raises(ValueError, match="reference lists"):
        CorpusBLEU().update([["a"]], [])


def test_docstring_examples():
    result = doctest.testmod(bleu_module, optionflags=doctest.ELLIPSIS)
    metric = doctest.testmod(corpus_bleu_module, optionflags=doctest.ELLIPSIS)
    assert result.attempted + metric.attempted >= 8 and result.failed == metric.failed == 0


# ----------------------------------------------------------------------------------------------
# (3) the Metric

def _corpus(seed, size=40):
    rng = random.Random(seed)
    hypotheses, references = [], []
    while len(hypotheses) < size:
        h, r = random_corpus(rng)
        hypotheses += h
        references += r
    return hypotheses[:size], references[:size]


def _as_list(scores):
    return [scores[f"bleu{n}"].item() for n in range(1, MAX_N + 1)]


def test_metric_batches_equal_one_update_and_the_function():
    hypotheses, references = _corpus(0)
    whole = CorpusBLEU()
    whole.update(hypotheses, references)
    batched = CorpusBLEU()
    for start in range(0, len(hypotheses), 7):
        batched.update(hypotheses[start:start + 7], references[start:start + 7])
    result = batched.compute()
    assert list(result) == ["bleu1", "bleu2", "bleu3", "bleu4"]
    assert all(v.shape == () and v.dtype == torch.float64 for v in result.values())
    assert _as_list(result) == _as_list(whole.compute()) == corpus_bleu(hypotheses, references).tolist()
    assert 0 < result["bleu4"].item() < result["bleu1"].item() <= 100


def test_metric_states_are_summed_tensors():
    metric = CorpusBLEU()
    assert set(metric._defaults) == {"matches", "totals", "hyp_length", "ref_length"}
    for name in metric._defaults:
        assert isinstance(getattr(metric, name), torch.Tensor)
        assert getattr(metric, name).dtype == torch.long  # exact counts; untouched by .half()/.double()
        assert metric._reductions[name] is dim_zero_sum  # dist_reduce_fx="sum"
    assert not metric.full_state_update


def _two_ranks(hypotheses, references, **kwargs):
    half = len(hypotheses) // 2
    rank0, rank1 = CorpusBLEU(**kwargs), CorpusBLEU()
    rank0.update(hypotheses[:half], references[:half])
    rank1.update(hypotheses[half:], references[half:])
    return rank0, rank1


def test_summing_two_ranks_states_equals_one_metric_on_everything():
    hypotheses, references = _corpus(1)
    single = CorpusBLEU()
    single.update(hypotheses, references)
    expected = _as_list(single.compute())

    rank0, rank1 = _two_ranks(hypotheses, references)
    merged = CorpusBLEU()
    for name in merged._defaults:  # what dist_reduce_fx="sum" does with the gathered states
        setattr(merged, name, getattr(rank0, name) + getattr(rank1, name))
    merged._update_count = 1
    assert _as_list(merged.compute()) == expected

    rank0, rank1 = _two_ranks(hypotheses, references)
    rank0.merge_state(rank1)  # torchmetrics' own reduction of two states
    assert _as_list(rank0.compute()) == expected


def test_ddp_sync_through_torchmetrics_with_a_fake_all_gather():
    hypotheses, references = _corpus(2)
    single = CorpusBLEU()
    single.update(hypotheses, references)
    peer = {}

    def all_gather(tensor, group=None):  # rank 0's view: [own state, rank 1's state]
        return [tensor, peer[id(tensor)]]

    rank0, rank1 = _two_ranks(hypotheses, references, dist_sync_fn=all_gather,
                              distributed_available_fn=lambda: True)
    peer.update({id(getattr(rank0, name)): getattr(rank1, name) for name in rank0._defaults})
    local = rank0.statistics().clone()
    assert _as_list(rank0.compute()) == _as_list(single.compute())
    assert torch.equal(rank0.statistics(), local)  # unsynced afterwards: keeps accumulating locally


def test_metric_reset():
    hypotheses, references = _corpus(3)
    other_h, other_r = _corpus(4, size=10)
    metric = CorpusBLEU()
    metric.update(hypotheses, references)
    metric.compute()
    metric.reset()
    assert metric.statistics().tolist() == [0] * (2 * MAX_N + 2)
    metric.update(other_h, other_r)
    fresh = CorpusBLEU()
    fresh.update(other_h, other_r)
    assert _as_list(metric.compute()) == _as_list(fresh.compute()) == corpus_bleu(other_h, other_r).tolist()


def test_metric_max_n_and_textbook_option():
    hypotheses, references = [["a", "b", "a"]], [[["b", "a", "b"]]]
    metric = CorpusBLEU(max_n=3, coco_epsilons=False)
    metric.update(hypotheses, references)
    result = metric.compute()
    assert list(result) == ["bleu1", "bleu2", "bleu3"]
    assert result["bleu3"].item() == 0.0
    assert result["bleu2"].item() == pytest.approx(100 * math.sqrt(2 / 3), rel=1e-12)
