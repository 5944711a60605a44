"""A one-layer bidirectional LSTM over padded sequences, without packing them.

``pack_padded_sequence`` makes the shape of the data depend on the lengths' values (and needs
them on the host), so a step that packs cannot be compiled as one graph nor captured by CUDA
graphs; torch.compile also refuses ``nn.LSTM`` modules. ``PaddedBidirectionalLSTM`` gives the
packed encoding from two unidirectional ``torch.lstm`` runs over the padded [B, T] batch: the
forward direction as it is (positions past a sequence's end are masked afterwards; the valid
positions never read them), the reverse direction on each sequence reversed within its length
(so it starts at the sequence's last word, not at the padding), then reversed back. Shapes
depend only on B and T; the lengths stay on their device. Its parameters, their names, order
and initialisation are those of ``nn.LSTM(input_size, hidden_size, batch_first=True,
bidirectional=True)``, so checkpoints of either load into the other.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

DIRECTIONS = ("", "_reverse")
NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def reverse_within_length(values: Tensor, lengths: Tensor) -> Tensor:
    """values [B, T, ...] with each row's first ``lengths[b]`` positions reversed, the rest in place."""
    positions = torch.arange(values.shape[1], device=values.device)  # [T]
    index = torch.where(positions < lengths[:, None], lengths[:, None] - 1 - positions, positions)  # [B, T]
    return values.gather(1, index.view(*index.shape, *(1,) * (values.dim() - 2)).expand_as(values))


class PaddedBidirectionalLSTM(nn.Module):
    """inputs [B, T, D], lengths [B] -> [B, T, 2E] (zeros past each end); see the module docstring."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        for suffix in DIRECTIONS:
            shapes = ((4 * hidden_size, input_size), (4 * hidden_size, hidden_size), (4 * hidden_size,), (4 * hidden_size,))
            for name, shape in zip(NAMES, shapes):
                self.register_parameter(f"{name}_l0{suffix}", nn.Parameter(torch.empty(shape)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """nn.LSTM's initialisation: every parameter uniform in +-1/sqrt(E), in registration order."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for parameter in self.parameters():
            nn.init.uniform_(parameter, -bound, bound)

    def _direction(self, inputs: Tensor, suffix: str) -> Tensor:
        weights = [getattr(self, f"{name}_l0{suffix}") for name in NAMES]
        zeros = inputs.new_zeros(1, inputs.shape[0], self.hidden_size)
        output, _, _ = torch.lstm(inputs, (zeros, zeros), weights, True, 1, 0.0, self.training, False, True)
        return output

    def forward(self, inputs: Tensor, lengths: Tensor) -> Tensor:
        forward = self._direction(inputs, "")
        backward = reverse_within_length(self._direction(reverse_within_length(inputs, lengths), "_reverse"), lengths)
        valid = torch.arange(inputs.shape[1], device=inputs.device) < lengths[:, None]  # [B, T]
        return torch.cat([forward, backward], -1) * valid[..., None].to(forward.dtype)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, bidirectional, padded"
