"""Show-Attend-Tell style caption decoder with hard attention over a feature grid.

At word t the decoder state h_{t-1} chooses one grid location a_t ~ p(a_t | h_{t-1}, I)
(a categorical over the L locations), reads its feature z_t = f_{a_t}, updates an LSTM on
[embed(w_{t-1}), z_t] and predicts w_t from (h_t, z_t, embed(w_{t-1})). Training draws K
attention sequences per caption with teacher forcing (rows b*K + k, one Python loop over the
words); a proposal q(a_t | y, a_<t, I) may choose the locations instead of p.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple

import torch
from torch import Tensor, nn

from .precision import Float32Linear, float32

# A caption proposal maps (decoder state h [R, H], word index t) to location logits [R, L].
CaptionProposal = Callable[[Tensor, int], Tensor]


class GridAttention(nn.Module):
    """Location logits over a grid: v^T tanh(W_h h + W_f f_l) [R, L] (Show-Attend-Tell's scorer), in fp32."""

    def __init__(self, state_size: int, feature_size: int, attention_size: int) -> None:
        super().__init__()
        self.state = nn.Linear(state_size, attention_size)
        self.feature = nn.Linear(feature_size, attention_size, bias=False)
        self.score = Float32Linear(attention_size, 1)  # fp32 logits under bf16 autocast

    def project(self, features: Tensor) -> Tensor:
        """features [R, L, D] -> W_f f [R, L, A], computed once per caption."""
        return self.feature(features)

    def forward(self, state: Tensor, projected: Tensor) -> Tensor:
        """state [R, H], projected [R, L, A] -> logits [R, L]."""
        return self.score(torch.tanh(projected + self.state(state)[:, None])).squeeze(-1)


@dataclass
class CaptionRollout:
    """K attention sequences per caption, teacher forced.

    Attributes:
        log_likelihood: [B, K] log p(y | a^k, I), summed over the (unpadded) words.
        log_prior: [B, K] log p(a^k | I), summed over the (unpadded) steps.
        log_proposal: [B, K] log q(a^k | y, I), or None when sampled from p.
        entropy: [B, K] entropy of p's location choices, summed over the steps.
        locations: [B, K, T] the grid index attended for each target word.
        summary: [B, D] mean image feature (an input for baselines b(I)).
    """

    log_likelihood: Tensor
    log_prior: Tensor
    log_proposal: Optional[Tensor]
    entropy: Tensor
    locations: Tensor
    summary: Tensor


class HardAttentionDecoder(nn.Module):
    """LSTM caption decoder with one hard attention choice per word.

    Args:
        vocab_size: V.
        feature_size: D of the grid features.
        embedding_size, hidden_size, attention_size: layer sizes.
        dropout: on the word-prediction input.
    """

    def __init__(self, vocab_size: int, feature_size: int, embedding_size: int = 128, hidden_size: int = 256,
                 attention_size: int = 128, dropout: float = 0.0) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embedding_size)
        self.init_state = nn.Linear(feature_size, 2 * hidden_size)
        self.attention = GridAttention(hidden_size, feature_size, attention_size)
        self.cell = nn.LSTMCell(embedding_size + feature_size, hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(hidden_size + feature_size + embedding_size, vocab_size)
        self.hidden_size = hidden_size

    def initial_state(self, features: Tensor) -> Tuple[Tensor, Tensor]:
        """features [R, L, D] -> (h, c), each [R, H], from the mean feature."""
        h, c = torch.tanh(self.init_state(features.mean(1))).chunk(2, dim=-1)
        return h.contiguous(), c.contiguous()

    def step(self, word: Tensor, location: Tensor, features: Tensor, state: Tuple[Tensor, Tensor]):
        """One word: previous word ids [R], locations [R] -> (word logits [R, V] in fp32, new state).

        The vocabulary layer multiplies in bf16 under autocast; its logits are upcast before any softmax.
        """
        glimpse = features[torch.arange(features.shape[0], device=features.device), location]  # [R, D]
        embedded = self.embed(word)
        h, c = self.cell(torch.cat([embedded, glimpse], -1), state)
        logits = float32(self.output(self.dropout(torch.cat([h, glimpse, embedded], -1))))
        return logits, (h, c)

    def teacher_forced(self, features: Tensor, captions: Tensor, pad_id: int, num_samples: int = 1,
                       proposal: Optional[CaptionProposal] = None,
                       generator: Optional[torch.Generator] = None) -> CaptionRollout:
        """K attention sequences per caption.

        Args:
            features: [B, L, D] grid features.
            captions: [B, T] ``<bos> w_1 .. w_n <eos>`` padded with ``pad_id``.
            num_samples: K.
            proposal: if given, chooses the locations (rows b*K + k) instead of p.
            generator: the random stream the locations are drawn from (None: torch's global one).
        """
        batch, steps = captions.shape[0], captions.shape[1] - 1
        rows = batch * num_samples
        feats = features.repeat_interleave(num_samples, 0)  # [R, L, D]
        words = captions.repeat_interleave(num_samples, 0)  # [R, T]
        dtype = torch.promote_types(features.dtype, torch.float32)  # the sums below stay fp32 under bf16 autocast
        mask = (words[:, 1:] != pad_id).to(dtype)  # [R, T-1] target words present
        projected = self.attention.project(feats)
        state = self.initial_state(feats)
        log_likelihood = features.new_zeros(rows, dtype=dtype)
        log_prior = features.new_zeros(rows, dtype=dtype)
        log_proposal = features.new_zeros(rows, dtype=dtype) if proposal is not None else None
        entropy = features.new_zeros(rows, dtype=dtype)
        locations = []
        for t in range(steps):
            prior_log_probs = self.attention(state[0], projected).log_softmax(-1)  # [R, L]
            if proposal is not None:
                q_log_probs = proposal(state[0], t).log_softmax(-1)
                location = torch.multinomial(q_log_probs.detach().exp(), 1, generator=generator).squeeze(-1)
                log_proposal = log_proposal + mask[:, t] * q_log_probs.gather(-1, location[:, None]).squeeze(-1)
            else:
                location = torch.multinomial(prior_log_probs.detach().exp(), 1, generator=generator).squeeze(-1)
            log_prior = log_prior + mask[:, t] * prior_log_probs.gather(-1, location[:, None]).squeeze(-1)
            entropy = entropy - mask[:, t] * (prior_log_probs.exp() * prior_log_probs).sum(-1)
            logits, state = self.step(words[:, t], location, feats, state)
            word_log_prob = logits.log_softmax(-1).gather(-1, words[:, t + 1, None]).squeeze(-1)
            log_likelihood = log_likelihood + mask[:, t] * word_log_prob
            locations.append(location)
        def view(x):
            return None if x is None else x.view(batch, num_samples)
        return CaptionRollout(
            view(log_likelihood), view(log_prior), view(log_proposal), view(entropy),
            torch.stack(locations, 1).view(batch, num_samples, steps), features.mean(1),
        )

    @torch.no_grad()
    def beam_search(self, features: Tensor, bos_id: int, eos_id: int, max_length: int,
                    beam_size: int = 1) -> Tuple[List[List[int]], List[List[int]]]:
        """Decode with the most probable location at every word (beam_size 1: greedy).

        Args:
            features: [B, L, D].
            max_length: most words generated (``<eos>`` included).

        Returns:
            (words, locations): per image, the word ids without ``<bos>``/``<eos>``, and the
            grid index attended for each of those words.
        """
        batch, width = features.shape[0], beam_size
        feats = features.repeat_interleave(width, 0)  # [B*W, L, D]
        projected = self.attention.project(feats)
        state = self.initial_state(feats)
        scores = features.new_full((batch, width), float("-inf"))
        scores[:, 0] = 0.0  # one live beam to start
        tokens = torch.full((batch * width, 1), bos_id, dtype=torch.long, device=features.device)
        attended = tokens.new_zeros((batch * width, 0))
        finished = torch.zeros(batch * width, dtype=torch.bool, device=features.device)
        for _ in range(max_length):
            location = self.attention(state[0], projected).argmax(-1)  # [B*W]
            logits, state = self.step(tokens[:, -1], location, feats, state)
            log_probs = logits.log_softmax(-1)
            log_probs[finished] = float("-inf")
            log_probs[finished, eos_id] = 0.0  # a finished beam only repeats <eos>, at no cost
            vocab = log_probs.shape[-1]
            top, index = (scores.view(-1, 1) + log_probs).view(batch, width * vocab).topk(width, dim=1)
            source = (torch.arange(batch, device=features.device)[:, None] * width + index // vocab).view(-1)
            word = (index % vocab).view(-1)
            tokens = torch.cat([tokens[source], word[:, None]], 1)
            attended = torch.cat([attended[source], location[source, None]], 1)
            state = (state[0][source], state[1][source])
            finished = finished[source] | (word == eos_id)
            scores = top
            if bool(finished.all()):
                break
        best = scores.argmax(1) + torch.arange(batch, device=features.device) * width
        words, locations = [], []
        for row in best.tolist():
            sequence = tokens[row, 1:].tolist()
            length = sequence.index(eos_id) if eos_id in sequence else len(sequence)
            words.append(sequence[:length])
            locations.append(attended[row, :length].tolist())
        return words, locations
