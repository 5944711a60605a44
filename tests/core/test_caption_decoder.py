"""Hard-attention caption decoder: the densities of the locations used, padding, beam search."""
import torch

from ram_lightning.core.caption_decoder import HardAttentionDecoder
from ram_lightning.core.caption_inference import CaptionInferenceNetwork

V, D, L = 11, 6, 9
PAD, BOS, EOS = 0, 1, 2


def make():
    torch.manual_seed(0)
    return HardAttentionDecoder(V, D, embedding_size=5, hidden_size=7, attention_size=4)


def test_log_prior_and_likelihood_score_the_locations_used():
    decoder = make()
    features = torch.randn(2, L, D)
    captions = torch.tensor([[BOS, 5, 6, 7, EOS], [BOS, 8, EOS, PAD, PAD]])
    rollout = decoder.teacher_forced(features, captions, PAD, num_samples=3)
    # recompute along the recorded locations, one example / sample at a time
    for b in range(2):
        for k in range(3):
            state = decoder.initial_state(features[b:b + 1])
            projected = decoder.attention.project(features[b:b + 1])
            log_prior = log_likelihood = 0.0
            steps = int((captions[b] != PAD).sum()) - 1
            for t in range(steps):
                location = rollout.locations[b, k, t].view(1)
                log_prior += decoder.attention(state[0], projected).log_softmax(-1)[0, location].item()
                logits, state = decoder.step(captions[b, t].view(1), location, features[b:b + 1], state)
                log_likelihood += logits.log_softmax(-1)[0, captions[b, t + 1]].item()
            assert abs(rollout.log_prior[b, k].item() - log_prior) < 1e-4
            assert abs(rollout.log_likelihood[b, k].item() - log_likelihood) < 1e-4


def test_padding_changes_nothing():
    decoder = make()
    features = torch.randn(1, L, D)
    short = torch.tensor([[BOS, 4, 5, EOS]])
    padded = torch.tensor([[BOS, 4, 5, EOS, PAD, PAD]])
    torch.manual_seed(3)
    a = decoder.teacher_forced(features, short, PAD, 2)
    torch.manual_seed(3)
    b = decoder.teacher_forced(features, padded, PAD, 2)
    torch.testing.assert_close(a.log_likelihood, b.log_likelihood)
    torch.testing.assert_close(a.log_prior, b.log_prior)
    torch.testing.assert_close(a.entropy, b.entropy)


def sequence_score(decoder, features, words):
    """log p(words, <eos>) under argmax attention, the objective beam search maximises."""
    state = decoder.initial_state(features)
    projected = decoder.attention.project(features)
    previous, score = torch.tensor([BOS]), 0.0
    for word in list(words) + [EOS]:
        location = decoder.attention(state[0], projected).argmax(-1)
        logits, state = decoder.step(previous, location, features, state)
        score += logits.log_softmax(-1)[0, word].item()
        previous = torch.tensor([word])
    return score


def test_beam_search_finds_sequences_at_least_as_probable_as_greedy():
    decoder = make()
    features = torch.randn(4, L, D)
    greedy, greedy_locations = decoder.beam_search(features, BOS, EOS, max_length=6, beam_size=1)
    beam, _ = decoder.beam_search(features, BOS, EOS, max_length=6, beam_size=4)
    for b in range(4):
        assert len(greedy_locations[b]) == len(greedy[b])
        if len(greedy[b]) < 6 and len(beam[b]) < 6:  # both finished with <eos>
            assert sequence_score(decoder, features[b:b + 1], beam[b]) >= sequence_score(decoder, features[b:b + 1], greedy[b]) - 1e-5


def test_greedy_is_the_argmax_at_every_word():
    decoder = make()
    features = torch.randn(1, L, D)
    words, locations = decoder.beam_search(features, BOS, EOS, max_length=5, beam_size=1)
    state = decoder.initial_state(features)
    projected = decoder.attention.project(features)
    previous = torch.tensor([BOS])
    for word, location in zip(words[0], locations[0]):
        expected_location = decoder.attention(state[0], projected).argmax(-1)
        assert expected_location.item() == location
        logits, state = decoder.step(previous, expected_location, features, state)
        assert logits.argmax(-1).item() == word
        previous = torch.tensor([word])


def test_q_reads_the_caption_and_trains_only_itself():
    decoder = make()
    q = CaptionInferenceNetwork(V, D, 7, embedding_size=5, encoder_size=4, attention_size=4)
    features = torch.randn(2, L, D, requires_grad=True)
    captions = torch.tensor([[BOS, 5, 6, EOS], [BOS, 7, EOS, PAD]])
    lengths = torch.tensor([4, 3])
    rollout = decoder.teacher_forced(features, captions, PAD, 2, q.proposal(features, captions, lengths, 2))
    assert rollout.log_proposal.shape == (2, 2)
    rollout.log_proposal.sum().backward()
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in decoder.parameters())
    assert features.grad is None or features.grad.abs().sum() == 0
    assert q.embed.weight.grad.abs().sum() > 0
    other = torch.tensor([[BOS, 9, 9, EOS], [BOS, 10, EOS, PAD]])
    state = torch.randn(4, 7)
    assert not torch.allclose(q.proposal(features, captions, lengths, 2)(state, 0), q.proposal(features, other, lengths, 2)(state, 0))
