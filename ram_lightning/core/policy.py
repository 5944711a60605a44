"""Distributions over one glimpse action: a location (Gaussian) and an optional scale (categorical).

``AttentionHead`` maps a feature vector to an ``AttentionDistribution``; the glimpse policy
p(a_n | a_<n, I) and the inference network q(a_n | y, a_<n, I) are both such heads, so
every estimator sees the two densities of one family. The location is never clamped: the
value scored is the value the sensor uses (the sensor reads zeros outside the image), and a
reparameterised location (``rsample``) passes its gradient wherever it falls.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .precision import Float32Linear

LOG_2PI = math.log(2 * math.pi)


@dataclass
class AttentionAction:
    """One sampled glimpse per row: ``location`` [R, 2] (x, y); ``scale`` [R] long index or None;
    ``reparameterized``: the location was drawn as mean + std * eps and carries their gradient."""

    location: Tensor
    scale: Optional[Tensor] = None
    reparameterized: bool = False


@dataclass
class AttentionDistribution:
    """Product of a diagonal Gaussian over the location and a categorical over S scales.

    Attributes:
        mean: [R, 2] location mean.
        std: [R, 2] location standard deviation (> 0).
        scale_log_probs: [R, S] normalised log-probabilities of the scales, or None.
    """

    mean: Tensor
    std: Tensor
    scale_log_probs: Optional[Tensor] = None

    def sample(self, generator: Optional[torch.Generator] = None) -> AttentionAction:
        """A detached sample: gradients reach the policy only through ``log_prob``.

        ``generator``: the random stream to draw from (None: torch's global one); on the
        device of ``mean``.
        """
        with torch.no_grad():
            noise = torch.randn(self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype)
            location = self.mean + self.std * noise
            scale = None
            if self.scale_log_probs is not None:
                scale = torch.multinomial(self.scale_log_probs.exp(), 1, generator=generator).squeeze(-1)
        return AttentionAction(location, scale)

    def rsample(self, generator: Optional[torch.Generator] = None) -> AttentionAction:
        """A reparameterised sample: location = mean + std * eps, eps ~ N(0, I) from ``generator``,
        differentiable in ``mean`` and ``std`` (pathwise gradients); the scale is drawn as by
        ``sample`` (a discrete choice: no gradient through it). The same draws as ``sample`` with
        the same generator state.
        """
        noise = torch.randn(self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype)
        location = self.mean + self.std * noise
        scale = None
        if self.scale_log_probs is not None:
            with torch.no_grad():
                scale = torch.multinomial(self.scale_log_probs.exp(), 1, generator=generator).squeeze(-1)
        return AttentionAction(location, scale, reparameterized=True)

    def log_prob(self, action: AttentionAction) -> Tensor:
        """log density of ``action`` [R].

        For a ``reparameterized`` action the location's part is returned without gradient (same
        value): its gradient reaches the parameters through the sampled location itself, and a
        score-function term on it as well would count it twice. The scale's part keeps its
        gradient (through the state, hence through earlier reparameterised locations too).
        """
        z = (action.location - self.mean) / self.std
        log_prob = (-0.5 * z.pow(2) - self.std.log() - 0.5 * LOG_2PI).sum(-1)
        if action.reparameterized:
            log_prob = log_prob.detach()
        if self.scale_log_probs is not None:
            log_prob = log_prob + self.scale_log_probs.gather(-1, action.scale[:, None]).squeeze(-1)
        return log_prob

    def entropy(self) -> Tensor:
        """Entropy [R] (differential for the location part)."""
        entropy = (0.5 + 0.5 * LOG_2PI + self.std.log()).sum(-1)
        if self.scale_log_probs is not None:
            entropy = entropy - (self.scale_log_probs.exp() * self.scale_log_probs).sum(-1)
        return entropy


class AttentionHead(nn.Module):
    """Features [R, F] -> AttentionDistribution over the next glimpse.

    Args:
        in_features: F.
        num_scales: S (0 or 1: no scale choice).
        location_std: the fixed standard deviation, or the initial one when learned.
        learn_std: make the std a (state-dependent) output of the head.
        min_std: floor of a learned std.
        scale_epsilon: in training, mix the scale distribution with a uniform one,
            (1 - eps) * softmax + eps / S; the mixture is the distribution sampled and scored.
    """

    def __init__(
        self,
        in_features: int,
        num_scales: int = 0,
        location_std: float = 0.1,
        learn_std: bool = False,
        min_std: float = 0.01,
        scale_epsilon: float = 0.0,
    ) -> None:
        super().__init__()
        if location_std <= 0 or (learn_std and location_std <= min_std):
            raise ValueError(f"location_std must be > 0 (and > min_std={min_std} when learned), got {location_std}")
        if not 0.0 <= scale_epsilon < 1.0:
            raise ValueError(f"scale_epsilon must be in [0, 1), got {scale_epsilon}")
        self.num_scales = num_scales if num_scales > 1 else 0
        self.location_std = location_std
        self.learn_std = learn_std
        self.min_std = min_std
        self.scale_epsilon = scale_epsilon
        # fp32 also under autocast: the densities of the estimators are computed from these outputs
        self.location = Float32Linear(in_features, 4 if learn_std else 2)
        self.scale = Float32Linear(in_features, self.num_scales) if self.num_scales else None
        if learn_std:  # start at location_std: softplus(b) = location_std - min_std
            with torch.no_grad():
                self.location.weight[2:].zero_()
                self.location.bias[2:].fill_(math.log(math.expm1(location_std - min_std)))

    def forward(self, features: Tensor) -> AttentionDistribution:
        """features [R, F] (any float dtype) -> distribution with R rows, its tensors fp32 (or fp64)."""
        out = self.location(features)
        mean = torch.tanh(out[:, :2])
        if self.learn_std:
            std = self.min_std + F.softplus(out[:, 2:])
        else:
            std = mean.new_full(mean.shape, self.location_std)
        scale_log_probs = None
        if self.scale is not None:
            scale_log_probs = self.scale(features).log_softmax(-1)
            if self.training and self.scale_epsilon > 0:
                uniform = math.log(self.scale_epsilon / self.num_scales)
                scale_log_probs = torch.logaddexp(scale_log_probs + math.log1p(-self.scale_epsilon), scale_log_probs.new_tensor(uniform))
        return AttentionDistribution(mean, std, scale_log_probs)


def where_features(action: AttentionAction, num_scales: int) -> Tensor:
    """The glimpse network's 'where' input [R, 2 + S]: location and one-hot scale."""
    if not num_scales:
        return action.location
    return torch.cat([action.location, F.one_hot(action.scale, num_scales).to(action.location.dtype)], dim=-1)


def scale_factors(action: AttentionAction, values: Optional[Tensor]) -> Optional[Tensor]:
    """Width factor per row [R] for the chosen scale index, or None without scale choice."""
    if values is None or action.scale is None:
        return None
    return values[action.scale]
