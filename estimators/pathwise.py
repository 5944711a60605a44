"""Pathwise (reparameterisation) gradients of F = E_p[log p(y | a, I)] through the glimpse sensor.

The model draws each glimpse location as a = mu(h) + sigma(h) * eps, eps ~ N(0, I), so that
l_k = log p(y | a^k, I) is a differentiable function of the parameters for fixed noise: its
gradient reaches mu and sigma through the bilinear sensor, the glimpse network and every later
state (and the layers before the policy through mu, unless the model detaches the policy's
input). A discrete scale action cannot be reparameterised: it keeps a score-function term,
centred by the leave-one-out mean of the other samples' l (none when K = 1):

    surrogate = -(1/K) sum_k [ l_k + sg(l_k - b_k) * log p(scale^k) ],   b_k = mean_{j != k} l_j

``log p(scale^k)`` is ``SampleTerms.log_prior``: with reparameterised locations the model gives
their log-density without gradient (``Estimator.reparameterize_locations``), so its gradient is
the scales' score alone. Unbiased where l is continuous in the locations (the bilinear sensor
with zero padding: everywhere); the variance does not grow with the location dimension as a
score-function term's does.
"""
from __future__ import annotations

from typing import Dict, Tuple

from torch import Tensor

from .base import Estimator, EstimatorOutput, SampleTerms
from .registry import register
from .rloo import leave_one_out_mean


def pathwise_surrogate(terms: SampleTerms) -> Tuple[Tensor, Dict[str, Tensor]]:
    """Pathwise surrogate of F, with a score-function term for the non-reparameterised actions.

    Args:
        terms: per-sample terms [B, K] of reparameterised draws from the prior: ``log_likelihood``
            differentiable through the sampled locations, ``log_prior`` differentiable only
            through the discrete (scale) choices.

    Returns:
        (loss, metrics): scalar surrogate averaged over B; detached scalar metrics
        ``log_likelihood`` and ``signal_std`` (of the scales' centred signal l_k - b_k).
    """
    l = terms.log_likelihood.detach()
    signal = l - leave_one_out_mean(l) if terms.num_samples >= 2 else l  # [B, K], constant
    loss = -(terms.log_likelihood + signal * terms.log_prior).mean()
    metrics = {
        "log_likelihood": l.mean(),
        "signal_std": signal.std() if signal.numel() > 1 else signal.new_zeros(()),
    }
    return loss, metrics


@register("pathwise")
class Pathwise(Estimator):
    """Pathwise gradients through reparameterised glimpse locations; samples from the prior.

    The scale action, where the model has one, gets a score-function term with a leave-one-out
    baseline; a model that cannot pass location gradients refuses this estimator.

    Args:
        num_samples: K samples from the prior policy per example (K >= 2 gives the scale's
            score term its leave-one-out baseline; with K = 1 it has none).
    """

    sample_from = "prior"

    def __init__(self, num_samples: int = 2) -> None:
        super().__init__(num_samples)

    @property
    def reparameterize_locations(self) -> bool:
        return True

    def forward(self, terms: SampleTerms) -> EstimatorOutput:
        loss, metrics = pathwise_surrogate(terms)
        return EstimatorOutput(loss, metrics)
