"""Reweighted wake-sleep (Bornschein & Bengio 2015; WS-RAM, Ba et al. 2015).

With K samples a^k ~ q(a | y, I), l_k = log p(y | a^k, I), p_k = log p(a^k | I) and
q_k = log q(a^k | y, I), per example:

    log w_k = l_k + p_k - q_k,      w~_k = softmax_k(log w_k)       (in log space)
    theta:  -sum_k sg(w~_k) (l_k + p_k)    -> grad log p(y | I) as K grows (consistent)
    eta:    -sum_k sg(w~_k) q_k            wake update: -> -grad KL(p(a | y, I) || q)

An optional sleep update trains q on (a', y') drawn from the model, a' ~ p(a | I),
y' ~ p(y | a', I): eta loss = (1 - s) * wake + s * (-mean log q(a' | y', I)), s the
``sleep_fraction``. The helpers here (weights, metrics, wake/sleep mixing) are shared with
``wake_sleep_cv``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Tuple

from torch import Tensor

from ram_lightning.errors import UserError

from .base import Estimator, EstimatorOutput, SampleTerms
from .registry import register


@dataclass
class ImportanceWeights:
    """Detached importance weights of one batch of K proposal samples per example."""

    log_weights: Tensor  # [B, K]  log w_k = l_k + p_k - q_k
    normalised: Tensor  # [B, K]  w~_k = softmax_k(log w_k), rows sum to 1
    log_marginal: Tensor  # [B]  logsumexp_k(log w_k) - log K, a stochastic lower bound on log p(y | I)
    ess: Tensor  # [B]  effective sample size 1 / sum_k w~_k^2, in [1, K]


def importance_weights(terms: SampleTerms, name: str = "wake_sleep") -> ImportanceWeights:
    """Log weights, normalised weights, per-example log-marginal estimate and ESS (all detached).

    Raises UserError when ``terms.log_proposal`` is missing (``name`` is the estimator's name).
    """
    if terms.log_proposal is None:
        raise UserError(
            f"{name} samples from the proposal q(a | y, I) and needs SampleTerms.log_proposal, "
            f"which the model did not provide (does the model have a proposal network?)"
        )
    log_weights = (terms.log_likelihood + terms.log_prior - terms.log_proposal).detach()  # [B, K]
    log_total = log_weights.logsumexp(dim=1, keepdim=True)  # [B, 1]
    normalised = (log_weights - log_total).exp()  # [B, K]; finite even if every weight underflows
    log_marginal = log_total.squeeze(1) - math.log(terms.num_samples)  # [B]
    ess = 1.0 / normalised.pow(2).sum(dim=1)  # [B]
    return ImportanceWeights(log_weights, normalised, log_marginal, ess)


def weight_metrics(terms: SampleTerms, weights: ImportanceWeights) -> Dict[str, Tensor]:
    """Detached scalar metrics, means over B: log_marginal, ess, ess_fraction, log_likelihood."""
    ess = weights.ess.mean()
    return {
        "log_marginal": weights.log_marginal.mean(),
        "ess": ess,
        "ess_fraction": ess / terms.num_samples,
        "log_likelihood": terms.log_likelihood.detach().mean(),
    }


def check_sleep_fraction(sleep_fraction: float, name: str = "wake_sleep") -> float:
    """Validate s in [0, 1]; returns it as a float."""
    if isinstance(sleep_fraction, bool) or not isinstance(sleep_fraction, (int, float)) or not 0.0 <= sleep_fraction <= 1.0:
        raise UserError(
            f"{name}: sleep_fraction must be a number in [0, 1] (the share of the q update that is "
            f"the sleep update), got {sleep_fraction!r}"
        )
    return float(sleep_fraction)


def mix_wake_sleep(
    wake: Tensor, terms: SampleTerms, sleep_fraction: float, metrics: Dict[str, Tensor], name: str = "wake_sleep"
) -> Tensor:
    """(1 - s) * wake + s * sleep, the scalar loss of q; the wake term is dropped when s == 1.

    sleep = -mean over B and K' of ``terms.sleep_log_proposal`` [B, K'] (needed when s > 0).
    Adds the detached metric ``sleep_log_proposal`` when the sleep term is used.
    """
    if sleep_fraction == 0.0:
        return wake
    if terms.sleep_log_proposal is None:
        raise UserError(
            f"{name}: sleep_fraction={sleep_fraction} > 0 needs SampleTerms.sleep_log_proposal "
            f"(log q(a' | y', I) for a' ~ p(a | I), y' ~ p(y | a', I)), which the model did not provide"
        )
    sleep_log_proposal = terms.sleep_log_proposal  # [B, K']
    metrics["sleep_log_proposal"] = sleep_log_proposal.detach().mean()
    sleep = -sleep_log_proposal.mean()
    if sleep_fraction == 1.0:
        return sleep
    return (1.0 - sleep_fraction) * wake + sleep_fraction * sleep


def wake_sleep_surrogate(terms: SampleTerms, sleep_fraction: float = 0.0) -> Tuple[Tensor, Dict[str, Tensor]]:
    """Reweighted wake-sleep surrogate.

    Args:
        terms: per-sample terms [B, K] with ``log_proposal`` (samples drawn from q); and
            ``sleep_log_proposal`` [B, K'] when ``sleep_fraction`` > 0.
        sleep_fraction: s in [0, 1], the share of the q update that is the sleep update.

    Returns:
        (loss, metrics): scalar surrogate averaged over B (theta and eta terms summed);
        detached scalar metrics log_marginal, ess, ess_fraction, log_likelihood.
    """
    sleep_fraction = check_sleep_fraction(sleep_fraction)
    weights = importance_weights(terms)
    w = weights.normalised  # [B, K], constant
    theta_loss = -(w * (terms.log_likelihood + terms.log_prior)).sum(dim=1).mean()
    wake = -(w * terms.log_proposal).sum(dim=1).mean()
    metrics = weight_metrics(terms, weights)
    eta_loss = mix_wake_sleep(wake, terms, sleep_fraction, metrics)
    return theta_loss + eta_loss, metrics


@register("wake_sleep")
class WakeSleep(Estimator):
    """Reweighted wake-sleep: importance-weighted gradients for the model and the proposal.

    Args:
        num_samples: K samples from the proposal q(a | y, I) per example.
        sleep_fraction: share s in [0, 1] of the q update that is the sleep update (q trained
            on (a', y') sampled from the model); 0 is the pure wake update.
    """

    sample_from = "proposal"

    def __init__(self, num_samples: int = 5, sleep_fraction: float = 0.0) -> None:
        super().__init__(num_samples)
        self.sleep_fraction = check_sleep_fraction(sleep_fraction)

    @property
    def sleep_samples(self) -> int:
        return self.num_samples if self.sleep_fraction > 0 else 0

    def forward(self, terms: SampleTerms) -> EstimatorOutput:
        loss, metrics = wake_sleep_surrogate(terms, self.sleep_fraction)
        return EstimatorOutput(loss, metrics)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, sleep_fraction={self.sleep_fraction}"
