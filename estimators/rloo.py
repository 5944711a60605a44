"""REINFORCE with leave-one-out baselines (RLOO; Kool, van Hoof & Welling 2019).

With K >= 2 samples a^k ~ p(a | I), l_k = log p(y | a^k, I), p_k = log p(a^k | I) and a
reward r_k (l_k, or RAM's 0/1 correctness), per example:

    b_k = (1 / (K - 1)) sum_{j != k} r_j                        (the mean of the other samples)
    surrogate = -(1/K) sum_k [ l_k + sg(r_k - b_k) * p_k ]

b_k depends only on the other samples, which are independent of a^k, so E[b_k grad p_k] = 0
and the gradient is unbiased for grad F, F = E_p[log p(y | a, I)], with r_k = l_k (as
``reinforce``), but with no learned baseline to train and no state between batches.
"""
from __future__ import annotations

from typing import Dict, Tuple

from torch import Tensor

from ram_lightning.errors import UserError

from .base import Estimator, EstimatorOutput, SampleTerms
from .registry import register
from .reinforce import REWARDS, reinforce_surrogate


def leave_one_out_mean(values: Tensor) -> Tensor:
    """values [B, K], K >= 2 -> [B, K]: entry k is the mean of the other K - 1 entries of its row."""
    K = values.shape[1]
    return (values.sum(dim=1, keepdim=True) - values) / (K - 1)


def rloo_reward(terms: SampleTerms, reward: str) -> Tensor:
    """The reward r [B, K] (detached): ``log_likelihood`` l_k, or ``correct`` (RAM's 0/1 reward)."""
    if reward == "log_likelihood":
        return terms.log_likelihood.detach()
    if terms.correct is None:
        raise UserError("rloo: reward='correct' needs SampleTerms.correct, which the model did not provide")
    return terms.correct.detach().to(terms.log_likelihood.dtype)


def rloo_surrogate(terms: SampleTerms, reward: Tensor) -> Tuple[Tensor, Dict[str, Tensor]]:
    """Score-function surrogate of F with leave-one-out baselines.

    Args:
        terms: per-sample terms [B, K] (samples from the prior), K >= 2.
        reward: r [B, K], treated as a constant.

    Returns:
        (loss, metrics): scalar surrogate averaged over B; detached scalar metrics
        ``log_likelihood``, ``reward``, ``advantage_std`` (of r_k - b_k).
    """
    K = terms.num_samples
    if K < 2:
        raise UserError(f"rloo needs num_samples >= 2 (the baseline of each sample is the mean of the others), got {K}")
    reward = reward.detach()
    return reinforce_surrogate(terms, reward, leave_one_out_mean(reward))


@register("rloo")
class Rloo(Estimator):
    """REINFORCE with leave-one-out baselines; samples K >= 2 from the prior.

    Args:
        num_samples: K >= 2 samples from the prior policy per example.
        reward: "log_likelihood" (unbiased for grad F) or "correct" (RAM's 0/1 reward).
    """

    sample_from = "prior"

    def __init__(self, num_samples: int = 5, reward: str = "log_likelihood") -> None:
        super().__init__(num_samples)
        if num_samples < 2:
            raise UserError(f"rloo: num_samples must be >= 2 (the baseline of each sample is the mean of the others), got {num_samples}")
        if reward not in REWARDS:
            raise UserError(f"rloo: reward must be one of {REWARDS}, got {reward!r}")
        self.reward = reward

    def forward(self, terms: SampleTerms) -> EstimatorOutput:
        loss, metrics = rloo_surrogate(terms, rloo_reward(terms, self.reward))
        return EstimatorOutput(loss, metrics)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, reward={self.reward!r}"
