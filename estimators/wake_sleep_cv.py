"""Wake-sleep with control variates (the WS-RAM baseline of harvardnlp/var-attn, mode "wsram").

As ``wake_sleep`` (K samples from q, w~_k = softmax_k(l_k + p_k - q_k)), but each
score-function term subtracts a control variate of (approximately) zero mean:

    r~_k = softmax_k(p_k - q_k)       (self-normalised prior/proposal ratio)
    surrogate = -sum_k [ sg(w~_k) l_k + sg(w~_k - c_p r~_k) p_k + sg(w~_k - c_q / K) q_k ]

sum_k r~_k grad p_k estimates E_p[grad log p(a | I)] = 0 (self-normalised, so zero mean only
as K grows) and (1/K) sum_k grad q_k has mean exactly 0 under q. c_p = c_q = 1 by default.

``prior_coefficient="online"`` estimates c_p to minimise variance, with a scalar
approximation: the score vectors grad p_k are treated as uncorrelated with equal expected
squared norm, so Var[sum_k (w~_k - c r~_k) grad p_k] is proportional to
E[sum_k (w~_k - c r~_k)^2], minimised by c* = E[sum_k w~_k r~_k] / E[sum_k r~_k^2]. Numerator
and denominator are exponential moving averages over earlier training batches (buffers, so
checkpoints keep them); the current batch uses the estimate from earlier batches only (1
before the first), so c is independent of the current draws.
"""
from __future__ import annotations

from typing import Dict, Tuple, Union

import torch
from torch import Tensor

from ram_lightning.errors import UserError

from .base import Estimator, EstimatorOutput, SampleTerms
from .registry import register
from .wake_sleep import check_sleep_fraction, importance_weights, mix_wake_sleep, weight_metrics

NAME = "wake_sleep_cv"


def prior_ratio_weights(terms: SampleTerms) -> Tensor:
    """r~ [B, K] = softmax_k(p_k - q_k), detached (needs ``terms.log_proposal``)."""
    log_ratio = (terms.log_prior - terms.log_proposal).detach()  # [B, K]
    return (log_ratio - log_ratio.logsumexp(dim=1, keepdim=True)).exp()


def wake_sleep_cv_surrogate(
    terms: SampleTerms,
    prior_coefficient: Union[float, Tensor] = 1.0,
    proposal_coefficient: float = 1.0,
    sleep_fraction: float = 0.0,
) -> Tuple[Tensor, Dict[str, Tensor]]:
    """Wake-sleep surrogate with control variates on the score-function terms.

    Args:
        terms: per-sample terms [B, K] with ``log_proposal``; ``sleep_log_proposal`` [B, K']
            when ``sleep_fraction`` > 0.
        prior_coefficient: c_p, scalar (float or 0-dim tensor, treated as a constant).
        proposal_coefficient: c_q.
        sleep_fraction: s in [0, 1], the share of the q update that is the sleep update.

    Returns:
        (loss, metrics): scalar surrogate averaged over B; detached scalar metrics
        (those of wake_sleep plus ``prior_coefficient``).
    """
    sleep_fraction = check_sleep_fraction(sleep_fraction, NAME)
    weights = importance_weights(terms, NAME)
    w = weights.normalised  # [B, K], constant
    K = terms.num_samples
    c_p = torch.as_tensor(prior_coefficient, dtype=w.dtype, device=w.device).detach()
    prior_weight = w - c_p * prior_ratio_weights(terms)  # [B, K]
    theta_loss = -(w * terms.log_likelihood + prior_weight * terms.log_prior).sum(dim=1).mean()
    wake = -((w - proposal_coefficient / K) * terms.log_proposal).sum(dim=1).mean()
    metrics = weight_metrics(terms, weights)
    metrics["prior_coefficient"] = c_p.clone()
    eta_loss = mix_wake_sleep(wake, terms, sleep_fraction, metrics, NAME)
    return theta_loss + eta_loss, metrics


def _number(value, option: str, low: float, high: float, high_open: bool = False) -> float:
    ok = not isinstance(value, bool) and isinstance(value, (int, float))
    if ok:
        ok = low <= value < high if high_open else low <= value <= high
    if not ok:
        bracket = ")" if high_open else "]"
        raise UserError(f"{NAME}: {option} must be a number in [{low}, {high}{bracket}, got {value!r}")
    return float(value)


@register(NAME)
class WakeSleepCV(Estimator):
    """Reweighted wake-sleep with control variates for the prior and proposal score terms.

    Args:
        num_samples: K samples from the proposal q(a | y, I) per example.
        sleep_fraction: share s in [0, 1] of the q update that is the sleep update.
        prior_coefficient: c_p on the prior control variate, a float or "online" (a running
            variance-minimising estimate, see the module docstring).
        proposal_coefficient: c_q on the proposal control variate (any value keeps it unbiased).
        coefficient_momentum: decay in [0, 1) of the moving averages behind "online".
    """

    sample_from = "proposal"

    def __init__(
        self,
        num_samples: int = 5,
        sleep_fraction: float = 0.0,
        prior_coefficient: Union[float, str] = 1.0,
        proposal_coefficient: float = 1.0,
        coefficient_momentum: float = 0.99,
    ) -> None:
        super().__init__(num_samples)
        self.sleep_fraction = check_sleep_fraction(sleep_fraction, NAME)
        if isinstance(prior_coefficient, str):
            if prior_coefficient != "online":
                raise UserError(f"{NAME}: prior_coefficient must be a float or 'online', got {prior_coefficient!r}")
        else:
            prior_coefficient = _number(prior_coefficient, "prior_coefficient", float("-inf"), float("inf"))
        self.prior_coefficient = prior_coefficient
        self.proposal_coefficient = _number(proposal_coefficient, "proposal_coefficient", float("-inf"), float("inf"))
        self.coefficient_momentum = _number(coefficient_momentum, "coefficient_momentum", 0.0, 1.0, high_open=True)
        # Moving averages of E[sum_k w~_k r~_k] and E[sum_k r~_k^2] for prior_coefficient="online".
        self.register_buffer("cv_numerator", torch.zeros(()))
        self.register_buffer("cv_denominator", torch.zeros(()))
        self.register_buffer("cv_initialised", torch.zeros((), dtype=torch.bool))

    @property
    def online(self) -> bool:
        return self.prior_coefficient == "online"

    @property
    def sleep_samples(self) -> int:
        return self.num_samples if self.sleep_fraction > 0 else 0

    def current_prior_coefficient(self) -> Tensor:
        """c_p for the next batch: the fixed value, or the online estimate from earlier batches (1 before any)."""
        if not self.online:
            return self.cv_numerator.new_tensor(self.prior_coefficient)  # on the estimator's device
        # no host synchronisation (a compiled step): both branches computed, one kept
        return torch.where(self.cv_initialised, self.cv_numerator / self.cv_denominator.clamp_min(1e-30),
                           torch.ones_like(self.cv_numerator))

    @torch.no_grad()
    def _update_online(self, terms: SampleTerms) -> None:
        w = importance_weights(terms, NAME).normalised  # [B, K]
        r = prior_ratio_weights(terms)  # [B, K]
        numerator = (w * r).sum(dim=1).mean().to(self.cv_numerator)
        denominator = r.pow(2).sum(dim=1).mean().to(self.cv_denominator)  # >= 1/K > 0
        m = self.coefficient_momentum  # the first batch sets the averages, later ones move them (no host sync)
        self.cv_numerator.copy_(torch.where(self.cv_initialised, m * self.cv_numerator + (1 - m) * numerator, numerator))
        self.cv_denominator.copy_(torch.where(self.cv_initialised, m * self.cv_denominator + (1 - m) * denominator, denominator))
        self.cv_initialised.fill_(True)

    def forward(self, terms: SampleTerms) -> EstimatorOutput:
        coefficient = self.current_prior_coefficient()  # from earlier batches only
        loss, metrics = wake_sleep_cv_surrogate(terms, coefficient, self.proposal_coefficient, self.sleep_fraction)
        if self.online and self.training:
            self._update_online(terms)
        return EstimatorOutput(loss, metrics)

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, sleep_fraction={self.sleep_fraction}, prior_coefficient={self.prior_coefficient!r}, "
            f"proposal_coefficient={self.proposal_coefficient}"
        )
