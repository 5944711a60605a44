"""The captioner's inference network q(a_t | y, a_<t, I): attention that reads the whole caption.

q scores the grid locations for word t from the decoder state h_{t-1}, a bidirectional-LSTM
encoding of the whole caption at the position of the word being generated (so it knows that
word and the ones after it), and the grid features. Decoder state and features are read
detached: q's updates train q's own parameters only.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .caption_decoder import CaptionProposal
from .padded_lstm import PaddedBidirectionalLSTM
from .precision import Float32Linear, sequence_rnn_precision


class CaptionInferenceNetwork(nn.Module):
    """(decoder state, caption, grid) -> location logits over the grid.

    Args:
        vocab_size: V; feature_size: D of the grid; state_size: H of the decoder.
        embedding_size, encoder_size, attention_size: layer sizes (the caption encoding is 2*encoder_size).
    """

    def __init__(self, vocab_size: int, feature_size: int, state_size: int, embedding_size: int = 128,
                 encoder_size: int = 128, attention_size: int = 128) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embedding_size)
        self.encoder = PaddedBidirectionalLSTM(embedding_size, encoder_size)  # nn.LSTM's weights, without packing
        self.state = nn.Linear(state_size + 2 * encoder_size, attention_size)
        self.feature = nn.Linear(feature_size, attention_size, bias=False)
        self.score = Float32Linear(attention_size, 1)  # fp32 logits under bf16 autocast

    def encode(self, captions: Tensor, lengths: Tensor) -> Tensor:
        """captions [B, T] (padded), lengths [B] -> per-position encodings [B, T, 2E] (zeros past the end)."""
        embedded = self.embed(captions)
        with sequence_rnn_precision(embedded.device):  # fp32 where the CPU's LSTM kernel has no bf16
            return self.encoder(embedded, lengths)

    def proposal(self, features: Tensor, captions: Tensor, lengths: Tensor, num_samples: int) -> CaptionProposal:
        """q for the decoder's rollout: rows b*K + k; at step t it reads the encoding of word t+1."""
        encoded = self.encode(captions, lengths).repeat_interleave(num_samples, 0)  # [R, T, 2E]
        projected = self.feature(features.detach()).repeat_interleave(num_samples, 0)  # [R, L, A]

        def logits(state: Tensor, step: int) -> Tensor:
            query = self.state(torch.cat([state.detach(), encoded[:, step + 1]], -1))  # [R, A]
            return self.score(torch.tanh(projected + query[:, None])).squeeze(-1)  # [R, L]

        return logits
