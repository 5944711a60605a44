"""A continuous attention problem whose expectation is exact by Gauss-Hermite quadrature.

Two glimpses, each a 1-D Gaussian location and a choice among S = 2 scales, drawn by the
model's own distribution class (``AttentionDistribution``: ``rsample`` / ``sample``, ``log_prob``):

    a1 ~ N(m1, s1^2),                      c1 ~ softmax(z1)
    a2 ~ N(m2, s2^2),  m2 = b + w sin(a1) + v[c1],  log s2 = g + e sin(a1)
                                           c2 ~ softmax(u + t a1)
    log p(y | a, c) = log_softmax(W[c1, c2] phi(a1, a2) + d[c1, c2])[y],
                      phi = (sin a1, cos a2, sin(a1 + a2), tanh(a1 a2))

The second glimpse depends on the first location and scale (as the LSTM state does), so a
pathwise gradient must flow through a1 into m2, s2 and the second scale's logits, and the
scales' score terms must reach the first location's parameters. Every function is smooth,
so E over (a1, a2) by Gauss-Hermite quadrature (nodes a = m + s sqrt(2) x_i) and the sum over
the 4 scale pairs (96 nodes a dimension) and its autograd gradient are exact to ~1e-9.

Per-draw gradients use the replication of ``toy_problem``: row r*K + k reads copy r.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Dict

import numpy as np
import torch
from torch import Tensor

from estimators import Estimator, SampleTerms
from ram_lightning.core.policy import AttentionDistribution
from tests.estimators import toy_problem  # call_estimator: how every check calls an estimator

NUM_SCALES = 2
NUM_CLASSES = 3
NUM_FEATURES = 4
TARGET = 1


@dataclass
class ContinuousParameters:
    """Every parameter; a leading draw dimension R after ``replicate``."""

    first_mean: Tensor  # [..., 1]
    first_log_std: Tensor  # [..., 1]
    first_scale: Tensor  # [..., S]
    second_bias: Tensor  # [..., 1]
    second_weight: Tensor  # [..., 1]
    second_shift: Tensor  # [..., S]   v[c1]
    second_log_std: Tensor  # [..., 1]
    second_log_std_weight: Tensor  # [..., 1]
    second_scale: Tensor  # [..., S]
    second_scale_weight: Tensor  # [..., S]
    likelihood_weight: Tensor  # [..., S, S, C, F]
    likelihood_bias: Tensor  # [..., S, S, C]

    def tensors(self) -> Dict[str, Tensor]:
        return dict(self.__dict__)


NAMES = tuple(ContinuousParameters.__dataclass_fields__)
SCALE_NAMES = ("first_scale", "second_scale", "second_scale_weight")


def make_parameters(seed: int = 0) -> ContinuousParameters:
    generator = torch.Generator().manual_seed(seed)

    def draw(*shape, scale=0.8, shift=0.0):
        return shift + scale * torch.randn(*shape, generator=generator, dtype=torch.float64)

    S, C, F = NUM_SCALES, NUM_CLASSES, NUM_FEATURES
    return ContinuousParameters(
        first_mean=draw(1, scale=0.3), first_log_std=draw(1, scale=0.1, shift=math.log(0.5)), first_scale=draw(S),
        second_bias=draw(1, scale=0.3), second_weight=draw(1, scale=0.5), second_shift=draw(S, scale=0.4),
        second_log_std=draw(1, scale=0.1, shift=math.log(0.4)), second_log_std_weight=draw(1, scale=0.2),
        second_scale=draw(S), second_scale_weight=draw(S), likelihood_weight=draw(S, S, C, F, scale=1.2),
        likelihood_bias=draw(S, S, C, scale=0.5),
    )


def replicate(params: ContinuousParameters, draws: int) -> ContinuousParameters:
    return ContinuousParameters(**{
        name: value.detach()[None].repeat(draws, *([1] * value.dim())).requires_grad_(True)
        for name, value in params.tensors().items()
    })


def features(a1: Tensor, a2: Tensor) -> Tensor:
    """phi(a1, a2) [..., F]."""
    return torch.stack([a1.sin(), a2.cos(), (a1 + a2).sin(), (a1 * a2).tanh()], dim=-1)


def log_likelihood(weight: Tensor, bias: Tensor, a1: Tensor, a2: Tensor) -> Tensor:
    """weight [..., C, F], bias [..., C] (already indexed by the scales), a1, a2 [...] -> log p(y | .) [...]."""
    logits = (weight @ features(a1, a2)[..., None]).squeeze(-1) + bias
    return logits.log_softmax(-1)[..., TARGET]


def second_glimpse(p: ContinuousParameters, a1: Tensor, c1: Tensor) -> AttentionDistribution:
    """The second glimpse's distribution for rows of (replicated-and-repeated) parameters ``p``."""
    rows = torch.arange(a1.shape[0])
    mean = p.second_bias[:, 0] + p.second_weight[:, 0] * a1.sin() + p.second_shift[rows, c1]
    std = (p.second_log_std[:, 0] + p.second_log_std_weight[:, 0] * a1.sin()).exp()
    scale_logits = p.second_scale + p.second_scale_weight * a1[:, None]
    return AttentionDistribution(mean[:, None], std[:, None], scale_logits.log_softmax(-1))


# --- exact expectation by quadrature -------------------------------------------------------------


def expected_log_likelihood(params: ContinuousParameters, nodes: int = 96) -> Tensor:
    """F = E[log p(y | a, c)] by Gauss-Hermite quadrature over a1, a2 and a sum over the scales."""
    x, w = np.polynomial.hermite.hermgauss(nodes)
    x = torch.tensor(x * math.sqrt(2.0), dtype=torch.float64)  # nodes for N(0, 1)
    w = torch.tensor(w / math.sqrt(math.pi), dtype=torch.float64)
    p = params
    total = p.first_mean.new_zeros(())
    log_pi1 = p.first_scale.log_softmax(-1)
    a1 = p.first_mean + p.first_log_std.exp() * x  # [n]
    log_pi2 = (p.second_scale + p.second_scale_weight * a1[:, None]).log_softmax(-1)  # [n, S]
    std2 = (p.second_log_std + p.second_log_std_weight * a1.sin()).exp()  # [n]
    for c1 in range(NUM_SCALES):
        m2 = p.second_bias + p.second_weight * a1.sin() + p.second_shift[c1]  # [n]
        a2 = m2[:, None] + std2[:, None] * x  # [n (a1), n (a2)]
        for c2 in range(NUM_SCALES):
            inner = (w * log_likelihood(p.likelihood_weight[c1, c2], p.likelihood_bias[c1, c2],
                                        a1[:, None].expand_as(a2), a2)).sum(-1)  # [n]
            total = total + log_pi1[c1].exp() * (w * log_pi2[:, c2].exp() * inner).sum()
    return total


def exact_gradient(params: ContinuousParameters, nodes: int = 96) -> Dict[str, Tensor]:
    leaves = {name: value.detach().clone().requires_grad_(True) for name, value in params.tensors().items()}
    value = expected_log_likelihood(ContinuousParameters(**leaves), nodes)
    return dict(zip(leaves, torch.autograd.grad(value, list(leaves.values()))))


# --- sampled terms -------------------------------------------------------------------------------


def sample_terms(params: ContinuousParameters, num_samples: int, generator: torch.Generator, reparameterize: bool = True,
                 score_locations_too: bool = False, block_location_gradient: bool = False) -> SampleTerms:
    """K draws per copy of replicated ``params`` [R, ...] -> SampleTerms [R, K], as the rollout
    draws them: ``rsample`` (or ``sample`` without ``reparameterize``) and ``log_prob`` of the
    actions used. Negative controls: ``score_locations_too`` scores reparameterised locations
    as if they were not, giving their log-density its gradient in ``log_prior``;
    ``block_location_gradient`` detaches the reparameterised locations (as a sensor that
    cannot pass their gradient would)."""
    R = params.first_mean.shape[0]
    p = ContinuousParameters(**{name: value.repeat_interleave(num_samples, 0) for name, value in params.tensors().items()})

    def draw(distribution: AttentionDistribution):
        action = distribution.rsample(generator) if reparameterize else distribution.sample(generator)
        if block_location_gradient:
            action = replace(action, location=action.location.detach())
        scored = replace(action, reparameterized=False) if score_locations_too else action
        return action, distribution.log_prob(scored)

    first, log_prior_1 = draw(AttentionDistribution(p.first_mean, p.first_log_std.exp(), p.first_scale.log_softmax(-1)))
    a1, c1 = first.location[:, 0], first.scale
    second, log_prior_2 = draw(second_glimpse(p, a1, c1))
    a2, c2 = second.location[:, 0], second.scale
    rows = torch.arange(a1.shape[0])
    l = log_likelihood(p.likelihood_weight[rows, c1, c2], p.likelihood_bias[rows, c1, c2], a1, a2)
    return SampleTerms(l.view(R, num_samples), (log_prior_1 + log_prior_2).view(R, num_samples))


def per_draw_gradients(estimator: Estimator, params: ContinuousParameters, draws: int, seed: int, **options) -> Dict[str, Tensor]:
    """Gradient estimates of ``draws`` independent draws of K samples: name -> [R, ...]."""
    copies = replicate(params, draws)
    terms = sample_terms(copies, estimator.num_samples, torch.Generator().manual_seed(seed), **options)
    loss = toy_problem.call_estimator(estimator, terms).loss
    tensors = copies.tensors()
    grads = torch.autograd.grad(loss, list(tensors.values()), allow_unused=True)
    return {name: (-draws * g if g is not None else torch.zeros_like(tensors[name])) for name, g in zip(tensors, grads)}
