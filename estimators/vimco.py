"""VIMCO: the multi-sample variational bound with leave-one-out learning signals (Mnih & Rezende 2016).

With K samples a^k ~ p(a | I) and l_k = log p(y | a^k, I), per example:

    L = logsumexp_k l_k - log K                      (the K-sample bound, <= log p(y | I))
    L_-k = logsumexp_j (l_j, with l_k replaced by mean_{j != k} l_j) - log K
    surrogate = -sum_k [ sg(L - L_-k) p_k + sg(w~_k) l_k ],     w~_k = softmax_k(l_k)

L_-k does not depend on a^k given the other samples, so each learning signal is centred
without bias: the surrogate's gradient is unbiased for grad E[L], for the policy (through
p_k) and the likelihood (through l_k) alike. Needs K >= 2.
"""
from __future__ import annotations

import math
from typing import Dict, Tuple

from torch import Tensor

from ram_lightning.errors import UserError

from .base import Estimator, EstimatorOutput, SampleTerms
from .registry import register


def leave_one_out_bounds(log_likelihood: Tensor) -> Tuple[Tensor, Tensor]:
    """The K-sample bound and its leave-one-out stand-ins, detached.

    Args:
        log_likelihood: l [B, K], K >= 2.

    Returns:
        (bound [B], loo [B, K]): bound = logsumexp_k l_k - log K; loo[:, k] the same with l_k
        replaced by the mean of the other K - 1 values (the geometric-mean stand-in).
    """
    l = log_likelihood.detach()
    K = l.shape[1]
    log_k = math.log(K)
    bound = l.logsumexp(dim=1) - log_k  # [B]
    others_mean = (l.sum(dim=1, keepdim=True) - l) / (K - 1)  # [B, K]
    replaced = l[:, None, :].repeat(1, K, 1)  # [B, K (left out), K]
    replaced.diagonal(dim1=1, dim2=2).copy_(others_mean)
    loo = replaced.logsumexp(dim=2) - log_k  # [B, K]
    return bound, loo


def vimco_surrogate(terms: SampleTerms) -> Tuple[Tensor, Dict[str, Tensor]]:
    """VIMCO surrogate of the K-sample bound.

    Args:
        terms: per-sample terms [B, K] (samples from the prior), K >= 2.

    Returns:
        (loss, metrics): scalar surrogate averaged over B; detached scalar metrics
        ``log_marginal`` (the K-sample bound L), ``log_likelihood``, ``ess`` and
        ``ess_fraction`` of the weights w~ = softmax(l), ``signal_std``.
    """
    K = terms.num_samples
    if K < 2:
        raise UserError(f"vimco needs num_samples >= 2 (leave-one-out signals), got {K}")
    bound, loo = leave_one_out_bounds(terms.log_likelihood)
    signal = bound[:, None] - loo  # [B, K], constant
    l = terms.log_likelihood.detach()
    weights = (l - l.logsumexp(dim=1, keepdim=True)).exp()  # [B, K]
    loss = -(signal * terms.log_prior + weights * terms.log_likelihood).sum(dim=1).mean()
    ess = (1.0 / weights.pow(2).sum(dim=1)).mean()
    metrics = {
        "log_marginal": bound.mean(),
        "log_likelihood": l.mean(),
        "ess": ess,
        "ess_fraction": ess / K,
        "signal_std": signal.std(),
    }
    return loss, metrics


@register("vimco")
class Vimco(Estimator):
    """VIMCO (multi-sample bound, leave-one-out baselines); samples from the prior.

    Args:
        num_samples: K >= 2 samples from the prior policy per example.
    """

    sample_from = "prior"

    def __init__(self, num_samples: int = 5) -> None:
        if not isinstance(num_samples, int) or num_samples < 2:  # before the base class's ">= 1" check
            raise UserError(f"vimco: num_samples must be >= 2 (leave-one-out signals need another sample), got {num_samples!r}")
        super().__init__(num_samples)

    def forward(self, terms: SampleTerms) -> EstimatorOutput:
        loss, metrics = vimco_surrogate(terms)
        return EstimatorOutput(loss, metrics)
