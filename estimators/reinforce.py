"""REINFORCE on the variational lower bound F = E_p[log p(y | a, I)] <= log p(y | I).

The estimator of RAM (Mnih et al. 2014), DRAM (Ba et al. 2015) and Show-Attend-Tell hard
attention (Xu et al. 2015). With K samples a^k ~ p(a | I):

    surrogate = -(1/K) sum_k [ l_k + sg(r_k - b_k) * p_k ]  -  beta * H_k  +  (b_k - sg(r_k))^2

where l_k = log p(y | a^k, I), p_k = log p(a^k | I), r_k the reward and b_k a baseline that
does not depend on a^k. With r_k = l_k it is exactly unbiased for grad F (beta = 0); the
0/1 reward of RAM and the entropy bonus are the usual heuristics, biased on purpose.
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import torch
from torch import Tensor

from ram_lightning.errors import UserError

from .base import Estimator, EstimatorOutput, SampleTerms
from .registry import register

REWARDS = ("log_likelihood", "correct")
BASELINES = ("learned", "moving_average", "none")


def reinforce_surrogate(
    terms: SampleTerms,
    reward: Tensor,
    baseline: Optional[Tensor],
    entropy_weight: float = 0.0,
) -> Tuple[Tensor, Dict[str, Tensor]]:
    """Score-function surrogate of the variational bound.

    Args:
        terms: per-sample terms, each [B, K].
        reward: r [B, K], treated as a constant.
        baseline: b [B, K] (independent of the samples) or None for no baseline. If it
            requires grad, a squared-error term trains it towards r.
        entropy_weight: beta of the entropy bonus (needs ``terms.entropy``).

    Returns:
        (loss, metrics): scalar surrogate averaged over B; detached scalar metrics.
    """
    reward = reward.detach()
    centred = reward if baseline is None else reward - baseline.detach()
    per_sample = terms.log_likelihood + centred * terms.log_prior  # [B, K]
    loss = -per_sample.mean()
    metrics = {
        "log_likelihood": terms.log_likelihood.detach().mean(),
        "reward": reward.mean(),
        "advantage_std": centred.std() if centred.numel() > 1 else centred.new_zeros(()),
    }
    if baseline is not None and baseline.requires_grad:
        baseline_mse = (baseline - reward).pow(2).mean()
        loss = loss + baseline_mse
        metrics["baseline_mse"] = baseline_mse.detach()
    if entropy_weight:
        if terms.entropy is None:
            raise UserError("reinforce: entropy_weight > 0 needs SampleTerms.entropy, which the model did not provide")
        loss = loss - entropy_weight * terms.entropy.mean()
        metrics["entropy"] = terms.entropy.detach().mean()
    return loss, metrics


@register("reinforce")
class Reinforce(Estimator):
    """REINFORCE / variational lower bound with a baseline.

    Args:
        num_samples: K samples from the prior policy per example.
        reward: "log_likelihood" (unbiased for grad F) or "correct" (RAM's 0/1 reward).
        baseline: "learned" (an input-dependent b(I) the model provides, trained by squared
            error), "moving_average" (an exponential average of the batch reward), or "none".
        baseline_momentum: decay of the moving average.
        entropy_weight: weight of an entropy bonus on the policy (exploration heuristic).
    """

    sample_from = "prior"

    def __init__(
        self,
        num_samples: int = 1,
        reward: str = "log_likelihood",
        baseline: str = "learned",
        baseline_momentum: float = 0.9,
        entropy_weight: float = 0.0,
    ) -> None:
        super().__init__(num_samples)
        if reward not in REWARDS:
            raise UserError(f"reinforce: reward must be one of {REWARDS}, got {reward!r}")
        if baseline not in BASELINES:
            raise UserError(f"reinforce: baseline must be one of {BASELINES}, got {baseline!r}")
        if not 0.0 <= baseline_momentum < 1.0:
            raise UserError(f"reinforce: baseline_momentum must be in [0, 1), got {baseline_momentum}")
        if entropy_weight < 0:
            raise UserError(f"reinforce: entropy_weight must be >= 0, got {entropy_weight}")
        self.reward = reward
        self.baseline = baseline
        self.baseline_momentum = baseline_momentum
        self.entropy_weight = entropy_weight
        self.register_buffer("reward_average", torch.zeros(()))
        self.register_buffer("average_initialised", torch.zeros((), dtype=torch.bool))

    @property
    def needs_baseline(self) -> bool:
        return self.baseline == "learned"

    def _reward(self, terms: SampleTerms) -> Tensor:
        if self.reward == "log_likelihood":
            return terms.log_likelihood.detach()
        if terms.correct is None:
            raise UserError("reinforce: reward='correct' needs SampleTerms.correct, which the model did not provide")
        return terms.correct.detach().to(terms.log_likelihood.dtype)

    def _baseline(self, terms: SampleTerms, reward: Tensor) -> Optional[Tensor]:
        if self.baseline == "learned":
            if terms.baseline is None:
                raise UserError("reinforce: baseline='learned' needs SampleTerms.baseline, which the model did not provide")
            return terms.baseline
        if self.baseline == "moving_average":
            # The average of earlier batches: independent of this batch's samples, so unbiased.
            value = self.reward_average.expand_as(reward).clone()
            if self.training:
                with torch.no_grad():  # the first batch sets the average, later ones move it (no host sync)
                    batch_mean = reward.mean().to(self.reward_average)
                    moved = self.baseline_momentum * self.reward_average + (1 - self.baseline_momentum) * batch_mean
                    self.reward_average.copy_(torch.where(self.average_initialised, moved, batch_mean))
                    self.average_initialised.fill_(True)
            return value
        return None

    def forward(self, terms: SampleTerms) -> EstimatorOutput:
        reward = self._reward(terms)
        baseline = self._baseline(terms, reward)
        loss, metrics = reinforce_surrogate(terms, reward, baseline, self.entropy_weight)
        return EstimatorOutput(loss, metrics)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, reward={self.reward!r}, baseline={self.baseline!r}, entropy_weight={self.entropy_weight}"
