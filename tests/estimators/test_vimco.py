"""VIMCO against the exact gradient of the K-sample bound on the enumerable toy problem."""
import math

import pytest
import torch

from estimators import SampleTerms, Vimco, get_estimator
from estimators.vimco import leave_one_out_bounds
from ram_lightning.errors import UserError
from tests.estimators.toy_problem import (
    exact_gradient,
    exact_multi_sample_gradient,
    exact_objectives,
    make_parameters,
    multi_sample_bound,
    per_draw_gradients,
    z_scores,
)

MODEL_TABLES = ("prior_first", "prior_second", "likelihood")
DRAWS = 20000
TARGET = 2


def test_the_enumerated_bound_lies_between_the_variational_bound_and_log_p_y():
    params = make_parameters(seed=5)
    exact = exact_objectives(params, TARGET)
    one, two, three = (multi_sample_bound(params, TARGET, k) for k in (1, 2, 3))
    torch.testing.assert_close(one, exact["variational_bound"])
    assert one < two < three < exact["log_marginal"]


@pytest.mark.parametrize("num_samples", [2, 3])
def test_vimco_is_unbiased_for_the_multi_sample_bound(num_samples):
    params = make_parameters(seed=5)
    exact = exact_multi_sample_gradient(params, TARGET, num_samples)
    estimates = per_draw_gradients(Vimco(num_samples=num_samples), params, TARGET, DRAWS, seed=13)
    z = z_scores(estimates, exact, MODEL_TABLES)
    assert z.max() < 4.5, f"largest |mean - exact| / stderr = {z.max():.2f}"
    assert z_scores(estimates, {k: torch.zeros_like(v) for k, v in exact.items()}, MODEL_TABLES).max() > 10
    # ... and the check has power against the wrong target: the single-sample bound's gradient
    wrong = exact_gradient(params, TARGET, "variational_bound")
    assert z_scores(estimates, wrong, MODEL_TABLES).max() > 6


def test_without_leave_one_out_centring_the_check_fails():
    """Centring the signal on the mean of all K (which depends on a^k) biases the policy gradient."""

    class CentredOnAll(Vimco):
        def forward(self, terms):
            out = super().forward(terms)
            l = terms.log_likelihood.detach()
            bound = l.logsumexp(1, keepdim=True) - math.log(l.shape[1])
            signal = bound - l.mean(1, keepdim=True) - (l - l.mean(1, keepdim=True))
            weights = l.softmax(1)
            out.loss = -(signal * terms.log_prior + weights * terms.log_likelihood).sum(1).mean()
            return out

    params = make_parameters(seed=5)
    exact = exact_multi_sample_gradient(params, TARGET, 3)
    estimates = per_draw_gradients(CentredOnAll(num_samples=3), params, TARGET, DRAWS, seed=13)
    assert z_scores(estimates, exact, ("prior_first", "prior_second")).max() > 6


def test_leave_one_out_bounds_by_hand():
    l = torch.tensor([[0.0, -1.0, -3.0]])
    bound, loo = leave_one_out_bounds(l)
    torch.testing.assert_close(bound, torch.tensor([math.log((1 + math.exp(-1) + math.exp(-3)) / 3)]))
    # leaving out sample 0: its l replaced by the mean of the others, -2
    torch.testing.assert_close(loo[0, 0], torch.tensor(math.log((math.exp(-2) + math.exp(-1) + math.exp(-3)) / 3)))


def test_metrics_and_registration():
    estimator = get_estimator("vimco", num_samples=4)
    assert isinstance(estimator, Vimco) and estimator.sample_from == "prior" and not estimator.needs_baseline
    l = torch.randn(3, 4, requires_grad=True)
    out = estimator(SampleTerms(l, torch.randn(3, 4, requires_grad=True)))
    expected = (l.detach().logsumexp(1) - math.log(4)).mean()
    torch.testing.assert_close(out.metrics["log_marginal"], expected)
    assert 1 <= out.metrics["ess"] <= 4


@pytest.mark.parametrize("num_samples", [1, 0, -3, 2.5])
def test_fewer_than_two_samples_is_a_clear_error(num_samples):
    with pytest.raises(UserError, match=rf"vimco: num_samples must be >= 2 .*, got {num_samples}$"):
        Vimco(num_samples=num_samples)
