"""Two-layer recurrent prediction network with a context network (DRAM / WS-RAM).

The bottom LSTM reads glimpse features and carries what the model has seen (the class is
predicted from it); the top LSTM reads the bottom one and emits the next glimpse. The
context network reads a low-resolution copy of the whole image and sets the initial state
of the top layer only, so the low-resolution view steers where to look but cannot
shortcut the classification.
"""
from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

State = Tuple[Tensor, Tensor]


class ContextNetwork(nn.Module):
    """Images [B, C, H, W] -> initial top-layer hidden state [B, hidden_size].

    The image is average-pooled to ``context_size`` x ``context_size`` and read by two small
    convolutions and a linear layer.
    """

    def __init__(self, in_channels: int, hidden_size: int, context_size: int = 12, channels: int = 16) -> None:
        super().__init__()
        self.context_size = context_size
        self.conv1 = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, 2 * channels, 3, padding=1, stride=2)
        reduced = (context_size + 1) // 2
        self.linear = nn.Linear(2 * channels * reduced * reduced, hidden_size)

    def forward(self, images: Tensor) -> Tensor:
        low_res = F.adaptive_avg_pool2d(images, self.context_size)  # [B, C, c, c]
        features = F.relu(self.conv2(F.relu(self.conv1(low_res))))
        return torch.tanh(self.linear(features.flatten(1)))  # [B, hidden]


class PredictionNetwork(nn.Module):
    """Two stacked LSTM cells: bottom (input: glimpse features) and top (input: bottom state)."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.bottom = nn.LSTMCell(input_size, hidden_size)
        self.top = nn.LSTMCell(hidden_size, hidden_size)

    def initial_state(self, context: Tensor) -> Tuple[State, State]:
        """context [R, hidden] -> (bottom state zeros, top state (context, zeros))."""
        zeros = torch.zeros_like(context)
        return (zeros, zeros), (context, zeros)

    def forward(self, glimpse: Tensor, bottom: State, top: State, update_top: bool = True,
                detach_top_input: bool = False) -> Tuple[State, State]:
        """glimpse [R, input_size] -> new (bottom, top) states, each ([R, hidden], [R, hidden]).

        ``update_top=False`` skips the top layer (after the last glimpse nothing reads it);
        ``detach_top_input`` feeds the top layer a detached copy of the bottom state, so no
        gradient flows from the top layer into the bottom one.
        """
        bottom = self.bottom(glimpse, bottom)
        if update_top:
            top = self.top(bottom[0].detach() if detach_top_input else bottom[0], top)
        return bottom, top
