"""Corpus BLEU-1..4 exactly as the COCO caption evaluation computes it.

This reproduces ``pycocoevalcap/bleu/bleu_scorer.py`` (``BleuScorer.compute_score`` with
``option="closest"``, which is what ``pycocoevalcap.bleu.Bleu`` uses), the number reported for
Show-Attend-Tell style captioning on Flickr8k / COCO:

* For each hypothesis, n-gram counts (n = 1..max_n) are clipped by the largest count of that
  n-gram in any single reference of that hypothesis ("modified precision").
* Clipped matches and hypothesis n-gram totals (``max(0, len - n + 1)`` per hypothesis) are
  summed over the whole corpus; so are the hypothesis lengths ``c`` and the *closest* reference
  lengths ``r``. The closest reference length of one hypothesis is the reference length ``l``
  minimising the pair ``(|l - hyp_len|, l)``, so a tie goes to the shorter reference.
* Corpus BLEU-n is the geometric mean of the precisions 1..n times the brevity penalty
  ``BP = exp(1 - r / c)`` if ``c < r`` else ``1``. It is reported here on a 0-100 scale.

The arithmetic is reproduced *exactly*, including coco's two constants ``TINY = 1e-15`` (added to
every numerator) and ``SMALL = 1e-9`` (added to every denominator):

* precision_k = ``(matches_k + TINY) / (totals_k + SMALL)``;
* BLEU-n = ``(prod_{k<=n} precision_k) ** (1/n)``;
* ``ratio = (c + TINY) / (r + SMALL)``, and if ``ratio < 1`` BLEU-n is multiplied by
  ``exp(1 - 1 / ratio)``.

Consequences (all pinned by ``tests/models/test_bleu.py``): an order with zero matches gives a small
positive BLEU rather than 0 (that order contributes a factor ``(1e-15 / totals_k) ** (1/n)``); a
perfect corpus scores a hair below 100 (by about ``2e-7 / c``) because ``TINY < SMALL`` makes
``ratio`` slightly below 1 even when ``c == r``; an empty corpus (``c == 0``) scores exactly 0.
Pass ``coco_epsilons=False`` to :func:`bleu_from_statistics` for the textbook formula without the
constants (0/0 precisions and ``c == 0`` then give 0). The Metric that sums the statistics over
batches and DDP processes is :class:`ram_lightning.models.corpus_bleu.CorpusBLEU`.

Known differences from ``nltk.translate.bleu_score.corpus_bleu`` (no smoothing, weights
``(1/n,) * n``), which otherwise agrees to float rounding:

1. nltk counts ``max(1, len - n + 1)`` n-grams per hypothesis in the denominator, so every
   hypothesis shorter than ``n`` adds 1 to the order-``n`` total (coco adds 0), lowering nltk's
   BLEU-n whenever such hypotheses are present.
2. nltk returns exactly 0 when there is no unigram match; when a higher order has no match it
   substitutes ``sys.float_info.min`` for that precision (with a warning), giving a score below
   about 1e-70. Coco (and this module) give the small positive value described above.
3. nltk's brevity penalty is exactly 1 when ``c == r`` and its precisions are exact fractions, so
   a perfect corpus scores exactly 1.0 there (a hair below 100 here); elsewhere the coco constants
   move the score by a relative ~1e-9 / count, far below 1e-6.
"""
from __future__ import annotations

import math
from collections import Counter
from typing import Any, Dict, Hashable, List, Sequence, Tuple

import torch
from torch import Tensor

__all__ = [
    "TINY",
    "SMALL",
    "ngram_counts",
    "bleu_statistics",
    "bleu_from_statistics",
    "corpus_bleu",
    "corpus_statistics",
]

TINY = 1e-15
"""coco's ``tiny``: added to each precision numerator and to the hypothesis length."""
SMALL = 1e-9
"""coco's ``small``: added to each precision denominator and to the reference length."""


def check_max_n(max_n: int) -> None:
    if isinstance(max_n, bool) or not isinstance(max_n, int) or max_n < 1:
        raise ValueError(f"max_n must be a positive int, got {max_n!r}")


def _check_tokens(tokens: Any, what: str) -> None:
    if isinstance(tokens, (str, bytes)):
        raise TypeError(
            f"{what} must be a sequence of tokens (e.g. ['a', 'dog']), got the string {tokens!r}; "
            "tokenise it first (e.g. str.split())"
        )


def ngram_counts(tokens: Sequence[Hashable], max_n: int) -> Counter:
    """Count every n-gram of order 1..``max_n`` in one token sequence.

    Args:
        tokens: one tokenised sentence (a list of strings; any hashable tokens work).
        max_n: the largest n-gram order, >= 1.

    Returns:
        ``collections.Counter`` mapping each n-gram (a tuple of ``n`` tokens) to its count. A
        sentence of length ``L`` has ``max(0, L - n + 1)`` n-grams of order ``n``.

    Raises:
        TypeError: ``tokens`` is a plain string rather than a token list.
        ValueError: ``max_n`` is not a positive int.

    Example:
        >>> sorted(ngram_counts(["a", "b", "a"], 2).items())
        [(('a',), 2), (('a', 'b'), 1), (('b',), 1), (('b', 'a'), 1)]
    """
    check_max_n(max_n)
    _check_tokens(tokens, "tokens")
    tokens = tuple(tokens)
    counts: Counter = Counter()
    for n in range(1, max_n + 1):
        for i in range(len(tokens) - n + 1):
            counts[tokens[i:i + n]] += 1
    return counts


def _closest_reference_length(ref_lengths: Sequence[int], hyp_length: int) -> int:
    """coco's ``min((abs(l - hyp_len), l) for l in reflen)[1]``: ties go to the shorter one."""
    return min((abs(length - hyp_length), length) for length in ref_lengths)[1]


def bleu_statistics(hypothesis: Sequence[str], references: Sequence[Sequence[str]], max_n: int = 4) -> Tensor:
    """Sufficient statistics of BLEU for one hypothesis; they add up over a corpus.

    Args:
        hypothesis: the tokenised candidate caption (``<bos>``/``<eos>``/``<pad>`` removed). May
            be empty.
        references: its tokenised reference captions, at least one.
        max_n: the largest n-gram order (4 for BLEU-1..4).

    Returns:
        int64 tensor ``[2 * max_n + 2]``: ``[matches_1..matches_max_n, totals_1..totals_max_n,
        hyp_length, closest_ref_length]`` where ``matches_n`` is the number of hypothesis
        n-grams after clipping each one's count by its largest count in any single reference,
        ``totals_n = max(0, hyp_length - n + 1)``, and ``closest_ref_length`` is the reference
        length ``l`` minimising ``(|l - hyp_length|, l)`` (ties go to the shorter reference).

    Raises:
        ValueError: ``references`` is empty, or ``max_n`` is not a positive int.
        TypeError: the hypothesis or a reference is a plain string, not a token list.

    Example:
        >>> bleu_statistics(["the", "the", "cat"], [["the", "cat"], ["a", "cat", "sat", "down"]], max_n=2)
        tensor([2, 1, 3, 2, 3, 2])
    """
    check_max_n(max_n)
    _check_tokens(hypothesis, "hypothesis")
    if isinstance(references, (str, bytes)) or len(references) == 0:
        raise ValueError(
            "references must be a non-empty list of token lists for each hypothesis, "
            f"got {references!r}"
        )
    hyp_counts = ngram_counts(hypothesis, max_n)
    max_ref_counts: Dict[Tuple, int] = {}
    ref_lengths: List[int] = []
    for index, reference in enumerate(references):
        _check_tokens(reference, f"references[{index}]")
        ref_lengths.append(len(reference))
        for ngram, count in ngram_counts(reference, max_n).items():
            if ngram in hyp_counts and count > max_ref_counts.get(ngram, 0):
                max_ref_counts[ngram] = count
    hyp_length = len(hypothesis)
    stats = [0] * (2 * max_n + 2)
    for ngram, count in hyp_counts.items():
        stats[len(ngram) - 1] += min(count, max_ref_counts.get(ngram, 0))
    for n in range(1, max_n + 1):
        stats[max_n + n - 1] = max(0, hyp_length - n + 1)
    stats[2 * max_n] = hyp_length
    stats[2 * max_n + 1] = _closest_reference_length(ref_lengths, hyp_length)
    return torch.tensor(stats, dtype=torch.long)


def corpus_statistics(hypotheses: Sequence[Sequence[str]], references_list: Sequence[Sequence[Sequence[str]]],
                       max_n: int) -> Tensor:
    """Sum of :func:`bleu_statistics` over a corpus (int64 ``[2 * max_n + 2]``)."""
    check_max_n(max_n)
    if isinstance(hypotheses, (str, bytes)) or isinstance(references_list, (str, bytes)):
        raise TypeError("hypotheses and references_list must be lists (of token lists), not strings")
    if len(hypotheses) != len(references_list):
        raise ValueError(
            f"got {len(hypotheses)} hypotheses but {len(references_list)} reference lists; "
            "each hypothesis needs its own list of references"
        )
    total = torch.zeros(2 * max_n + 2, dtype=torch.long)
    for index, (hypothesis, references) in enumerate(zip(hypotheses, references_list)):
        try:
            total += bleu_statistics(hypothesis, references, max_n)
        except (TypeError, ValueError) as err:
            raise type(err)(f"hypothesis {index}: {err}") from err
    return total


def bleu_from_statistics(stats: Tensor, max_n: int = 4, *, coco_epsilons: bool = True) -> Tensor:
    """Corpus BLEU-1..``max_n`` (0-100) from summed :func:`bleu_statistics`.

    With ``coco_epsilons=True`` (the default) this is coco-caption's arithmetic, operation for
    operation in float64: ``p_k = (matches_k + 1e-15) / (totals_k + 1e-9)``,
    ``BLEU-n = (p_1 * ... * p_n) ** (1/n)``, multiplied by ``exp(1 - 1/ratio)`` when
    ``ratio = (c + 1e-15) / (r + 1e-9) < 1``; then times 100. So an order with no match gives a
    small positive score (not 0), ``c == r`` still applies a brevity factor of ``1 - ~1e-9/c``,
    and ``c == 0`` gives 0. With ``coco_epsilons=False`` it is the textbook formula
    ``BP * exp(mean_k log(matches_k / totals_k))``, ``BP = exp(1 - r/c)`` if ``c < r`` else 1,
    with 0 whenever some ``matches_k`` is 0 or ``c`` is 0.

    Args:
        stats: ``[2 * max_n + 2]`` statistics summed over the corpus (any numeric dtype/device).
        max_n: the largest n-gram order the statistics were collected with.
        coco_epsilons: reproduce coco's ``tiny``/``small`` constants (default) or not.

    Returns:
        float64 tensor ``[max_n]`` on ``stats``' device (float32 on MPS, which lacks float64):
        BLEU-1..``max_n`` on a 0-100 scale.

    Raises:
        ValueError: ``stats`` does not have shape ``[2 * max_n + 2]``.

    Example:
        >>> stats = bleu_statistics("a cat sat on the mat".split(), ["the cat sat on the mat".split()])
        >>> stats
        tensor([5, 4, 3, 2, 6, 5, 4, 3, 6, 6])
        >>> bleu_from_statistics(stats)  # sqrt(5/6 * 4/5), (1/2)^(1/3), (1/3)^(1/4)
        tensor([83.3333, 81.6497, 79.3701, 75.9836], dtype=torch.float64)
    """
    check_max_n(max_n)
    if stats.shape != (2 * max_n + 2,):
        raise ValueError(f"stats must have shape [{2 * max_n + 2}] for max_n={max_n}, got {tuple(stats.shape)}")
    values = [float(v) for v in stats.detach().cpu().tolist()]
    matches, totals = values[:max_n], values[max_n:2 * max_n]
    hyp_length, ref_length = values[2 * max_n], values[2 * max_n + 1]
    scores: List[float] = []
    if coco_epsilons:
        # Same operation order as BleuScorer.compute_score, so results match it to the last bit.
        ratio = (hyp_length + TINY) / (ref_length + SMALL)
        for nn in range(1, max_n + 1):
            bleu = 1.0
            for k in range(nn):
                bleu *= (matches[k] + TINY) / (totals[k] + SMALL)
            bleu = bleu ** (1.0 / nn)
            if ratio < 1:
                bleu *= math.exp(1 - 1 / ratio)
            scores.append(100.0 * bleu)
    else:
        if hyp_length == 0:
            brevity = 0.0
        elif hyp_length < ref_length:
            brevity = math.exp(1 - ref_length / hyp_length)
        else:
            brevity = 1.0
        log_sum = 0.0
        for nn in range(1, max_n + 1):
            k = nn - 1
            if matches[k] == 0 or totals[k] == 0 or log_sum == -math.inf:
                log_sum = -math.inf
                scores.append(0.0)
                continue
            log_sum += math.log(matches[k] / totals[k])
            scores.append(100.0 * brevity * math.exp(log_sum / nn))
    dtype = torch.float32 if stats.device.type == "mps" else torch.float64
    return torch.tensor(scores, dtype=dtype, device=stats.device)


def corpus_bleu(hypotheses: Sequence[Sequence[str]], references_list: Sequence[Sequence[Sequence[str]]],
                max_n: int = 4) -> Tensor:
    """coco-caption corpus BLEU-1..``max_n`` (0-100) of tokenised captions.

    Args:
        hypotheses: one token list per image (may be empty lists).
        references_list: for each hypothesis, a non-empty list of reference token lists.
        max_n: the largest n-gram order.

    Returns:
        float64 tensor ``[max_n]``: BLEU-1..``max_n`` on a 0-100 scale, as
        ``bleu_from_statistics(sum of bleu_statistics)``.

    Raises:
        ValueError: the two lists differ in length, or some hypothesis has no references.
        TypeError: a sentence is given as a plain string instead of a token list.

    Example:
        >>> hyps = [["a", "dog", "runs"]]
        >>> corpus_bleu(hyps, [[["a", "dog", "runs", "fast"], ["the", "big", "dog", "runs", "fast"]]], max_n=2)
        tensor([71.6531, 71.6531], dtype=torch.float64)

        All n-grams match, but ``c = 3 < r = 4``: ``BP = exp(1 - 4/3) = 0.716531``. With
        references of lengths 4 and 2 the closest-length tie goes to 2, so there is no penalty:

        >>> corpus_bleu(hyps, [[["a", "dog", "runs", "fast"], ["a", "dog"]]], max_n=2)
        tensor([100.0000, 100.0000], dtype=torch.float64)
    """
    return bleu_from_statistics(corpus_statistics(hypotheses, references_list, max_n), max_n)
