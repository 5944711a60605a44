"""The inference network q(a_{n+1} | y, a_{1:n}, I): a glimpse proposal that sees the target.

q reads the prediction network's top hidden state h_n (which summarises I and a_{1:n}) and an
encoding of the target y (a label embedding for classification, a caption encoding for
captions), and emits the same family of distributions as the glimpse policy p, so that
importance weights p(a)/q(a) are ratios of densities of one kind. It is used only in training
(wake-sleep estimators); prediction never calls it.

Its input state is detached: the q updates train q's own parameters (eta), never the model's
(theta), which is what the wake and sleep updates of wake-sleep prescribe.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from .policy import AttentionAction, AttentionDistribution, AttentionHead
from .rollout import Proposal


class InferenceNetwork(nn.Module):
    """(h_n [R, H], target features [R, E]) -> q(a_{n+1} | y, a_{1:n}, I) with R rows.

    Args:
        state_size: H, the top hidden state size of the prediction network.
        target_size: E, the size of the target encoding.
        hidden_size: width of the hidden layer that mixes the two.
        num_scales: S, as the glimpse policy (0: no scale choice).
        location_std: std of the location proposal (fixed, or initial when learned).
        learn_std: learn a state-dependent std.
    """

    def __init__(
        self,
        state_size: int,
        target_size: int,
        hidden_size: int = 256,
        num_scales: int = 0,
        location_std: float = 0.1,
        learn_std: bool = False,
    ) -> None:
        super().__init__()
        self.mix = nn.Sequential(nn.Linear(state_size + target_size, hidden_size), nn.ReLU())
        self.head = AttentionHead(hidden_size, num_scales, location_std, learn_std)

    def forward(self, state: Tensor, target_features: Tensor) -> AttentionDistribution:
        """state [R, H] (detached here), target_features [R, E] -> distribution over R rows."""
        return self.head(self.mix(torch.cat([state.detach(), target_features], dim=-1)))

    def proposal(self, target_features: Tensor) -> Proposal:
        """The rollout's proposal for target features [B*K, E] (rows b*K + k, as the rollout)."""
        return lambda state, step: self(state, target_features)

    def log_prob(self, states: Tensor, target_features: Tensor, locations: Tensor, scales: Optional[Tensor]) -> Tensor:
        """log q of whole recorded sequences, all glimpses in one call.

        Args:
            states: [R, N, H] the top state each glimpse was chosen from (``Rollout.top_states``).
            target_features: [R, E].
            locations: [R, N, 2]; scales: [R, N] scale indices or None.

        Returns:
            [R] log q(a_{1:N} | y, I), summed over the N glimpses.
        """
        rows, steps = states.shape[:2]
        features = target_features[:, None].expand(rows, steps, target_features.shape[-1])
        distribution = self(states.reshape(rows * steps, -1), features.reshape(rows * steps, -1))
        action = AttentionAction(locations.reshape(rows * steps, 2), None if scales is None else scales.reshape(rows * steps))
        return distribution.log_prob(action).view(rows, steps).sum(1)

