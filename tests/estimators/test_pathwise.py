"""Pathwise gradients against the quadrature-exact gradient of F = E[log p(y | a, I)] on a
continuous toy problem (``continuous_toy``: Gaussian locations, scale choices, a smooth likelihood)."""
import pytest
import torch

from estimators import Pathwise, Reinforce, SampleTerms, get_estimator
from tests.estimators import continuous_toy as toy
from tests.estimators.toy_problem import z_scores

DRAWS = 20000
LOCATION_NAMES = tuple(n for n in toy.NAMES if n not in toy.SCALE_NAMES)


@pytest.fixture(scope="module")
def params():
    return toy.make_parameters(seed=4)


@pytest.fixture(scope="module")
def exact(params):
    return toy.exact_gradient(params)


def zeros_like(exact):
    return {k: torch.zeros_like(v) for k, v in exact.items()}


def test_the_quadrature_is_converged(params, exact):
    finer = toy.exact_gradient(params, nodes=160)
    for name in toy.NAMES:
        torch.testing.assert_close(exact[name], finer[name], rtol=0, atol=1e-8)  # far below the estimates' standard errors
    # ... and it is the expectation: a plain Monte Carlo mean agrees within its error
    with torch.no_grad():
        terms = toy.sample_terms(toy.replicate(params, 1), 200000, torch.Generator().manual_seed(0), reparameterize=False)
    l = terms.log_likelihood.flatten()
    assert abs(float(l.mean() - toy.expected_log_likelihood(params))) < 4 * float(l.std()) / l.numel() ** 0.5


@pytest.mark.parametrize("num_samples", [1, 2, 4])
def test_pathwise_is_unbiased_for_every_parameter(num_samples, params, exact):
    estimates = toy.per_draw_gradients(Pathwise(num_samples=num_samples), params, DRAWS, seed=31)
    z = z_scores(estimates, exact, toy.NAMES)
    assert z.max() < 4.5, f"largest |mean - exact| / stderr = {z.max():.2f}"
    assert z_scores(estimates, zeros_like(exact), toy.NAMES).max() > 10  # the check has power


def test_the_score_function_estimator_agrees_on_the_same_toy(params, exact):
    """REINFORCE (no reparameterisation) is unbiased for the same F: a second route to the truth."""
    estimates = toy.per_draw_gradients(Reinforce(num_samples=2, baseline="none"), params, DRAWS, seed=37, reparameterize=False)
    z = z_scores(estimates, exact, toy.NAMES)
    assert z.max() < 4.5, f"largest |mean - exact| / stderr = {z.max():.2f}"


def test_dropping_the_scales_score_term_is_caught(params, exact):
    class WithoutScaleTerm(Pathwise):
        def forward(self, terms):
            out = super().forward(terms)
            out.loss = -terms.log_likelihood.mean()
            return out

    estimates = toy.per_draw_gradients(WithoutScaleTerm(num_samples=2), params, DRAWS, seed=31)
    assert z_scores(estimates, exact, toy.SCALE_NAMES).max() > 10
    # the location path alone is still right for the parameters with no scale upstream
    assert z_scores(estimates, exact, ("likelihood_weight", "likelihood_bias")).max() < 4.5


def test_a_score_term_on_the_reparameterised_locations_too_is_caught(params, exact):
    """Scoring the reparameterised locations' density as well counts their gradient twice."""
    estimates = toy.per_draw_gradients(Pathwise(num_samples=2), params, DRAWS, seed=31, score_locations_too=True)
    assert z_scores(estimates, exact, LOCATION_NAMES).max() > 6


def test_a_blocked_location_gradient_is_caught(params, exact):
    """Reparameterised locations whose gradient is cut (a detach or a rounding in the sensor's
    place) leave the location parameters with the wrong gradient: the check sees it."""
    estimates = toy.per_draw_gradients(Pathwise(num_samples=2), params, DRAWS, seed=31, block_location_gradient=True)
    assert z_scores(estimates, exact, ("first_mean", "second_bias", "second_weight")).max() > 10


def test_given_draws_that_are_not_reparameterised_it_is_rloo(params, exact):
    """With ``sample`` draws, log_prior keeps the locations' score and the surrogate is RLOO's:
    still unbiased (the model reparameterises only when the estimator asks)."""
    estimates = toy.per_draw_gradients(Pathwise(num_samples=2), params, DRAWS, seed=31, reparameterize=False)
    assert z_scores(estimates, exact, toy.NAMES).max() < 4.5


def test_signal_by_hand_and_registration():
    l = torch.tensor([[-1.0, -3.0]], requires_grad=True)
    p = torch.zeros(1, 2, requires_grad=True)
    estimator = get_estimator("pathwise", num_samples=2)
    assert isinstance(estimator, Pathwise) and estimator.reparameterize_locations and estimator.sample_from == "prior"
    out = estimator(SampleTerms(l, p))
    out.loss.backward()
    torch.testing.assert_close(p.grad, torch.tensor([[-1.0, 1.0]]))  # -(1/K) (l_k - l_other)
    torch.testing.assert_close(l.grad, torch.full((1, 2), -0.5))
    assert set(out.metrics) == {"log_likelihood", "signal_std"}
    single = Pathwise(num_samples=1)(SampleTerms(torch.tensor([[-2.0]]), torch.zeros(1, 1, requires_grad=True)))
    assert torch.isfinite(single.loss) and single.metrics["signal_std"] == 0
