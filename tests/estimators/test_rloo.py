"""RLOO (REINFORCE with leave-one-out baselines) against exact gradients on the enumerable toy problem."""
import dataclasses

import pytest
import torch

from estimators import Rloo, SampleTerms, get_estimator
from estimators.rloo import leave_one_out_mean
from ram_lightning.errors import UserError
from tests.estimators.toy_problem import (
    exact_gradient,
    log_joint_tables,
    make_parameters,
    per_draw_gradients,
    z_scores,
)

MODEL_TABLES = ("prior_first", "prior_second", "likelihood")
POLICY_TABLES = ("prior_first", "prior_second")
DRAWS = 20000
TARGET = 1


def zeros_like(exact):
    return {k: torch.zeros_like(v) for k, v in exact.items()}


@pytest.mark.parametrize("num_samples", [2, 4])
def test_rloo_is_unbiased_for_the_variational_bound(num_samples):
    params = make_parameters(seed=3)
    exact = exact_gradient(params, TARGET, "variational_bound")
    estimates = per_draw_gradients(Rloo(num_samples=num_samples), params, TARGET, DRAWS, seed=17)
    z = z_scores(estimates, exact, MODEL_TABLES)
    assert z.max() < 4.5, f"largest |mean - exact| / stderr = {z.max():.2f}"
    assert z_scores(estimates, zeros_like(exact), MODEL_TABLES).max() > 10  # the check has power


# The 0/1 reward of a toy sequence: "correct" where log p(y | a) is above the median of the 16
# sequences (a fixed function of the sampled sequence, as the classifier's argmax is).
def correct_threshold(params) -> float:
    return float(log_joint_tables(params, TARGET)["log_likelihood"].flatten().median())


def with_correct(threshold: float):
    def hook(terms: SampleTerms) -> SampleTerms:
        return dataclasses.replace(terms, correct=(terms.log_likelihood.detach() > threshold).to(terms.log_likelihood.dtype))
    return hook


def exact_correct_reward_gradient(params, threshold: float):
    """sum_a sg(p(a)) grad log p(y|a) + sum_a c(a) grad p(a): what the surrogate with the 0/1
    reward estimates (the likelihood through l_k, the policy through the score of c alone)."""
    leaves = {name: value.detach().clone().requires_grad_(True) for name, value in params.tensors().items()}
    t = log_joint_tables(type(params)(**leaves), TARGET)
    correct = (t["log_likelihood"].detach() > threshold).double()
    prior = t["log_prior"].exp()
    value = (prior.detach() * t["log_likelihood"] + prior * correct).sum()
    grads = torch.autograd.grad(value, list(leaves.values()), allow_unused=True)
    return {name: (g if g is not None else torch.zeros_like(leaves[name])) for name, g in zip(leaves, grads)}


def test_rloo_with_the_correct_reward_is_unbiased_for_its_objective():
    params = make_parameters(seed=3)
    threshold = correct_threshold(params)
    exact = exact_correct_reward_gradient(params, threshold)
    estimates = per_draw_gradients(Rloo(num_samples=3, reward="correct"), params, TARGET, DRAWS, seed=19,
                                   terms_hook=with_correct(threshold))
    z = z_scores(estimates, exact, MODEL_TABLES)
    assert z.max() < 4.5, f"largest |mean - exact| / stderr = {z.max():.2f}"
    # ... and the 0/1 reward is not the log-likelihood reward: the policy gradient differs
    assert z_scores(estimates, exact_gradient(params, TARGET, "variational_bound"), POLICY_TABLES).max() > 10


def test_a_baseline_that_includes_the_sample_itself_is_caught():
    """Centring on the mean of all K samples (which depends on a^k) scales the policy gradient
    by (K - 1) / K: the same check must fail."""

    class CentredOnAll(Rloo):
        def forward(self, terms):
            out = super().forward(terms)
            r = terms.log_likelihood.detach()
            out.loss = -(terms.log_likelihood + (r - r.mean(1, keepdim=True)) * terms.log_prior).mean()
            return out

    params = make_parameters(seed=3)
    exact = exact_gradient(params, TARGET, "variational_bound")
    estimates = per_draw_gradients(CentredOnAll(num_samples=2), params, TARGET, DRAWS, seed=17)
    assert z_scores(estimates, exact, POLICY_TABLES).max() > 10


def test_leave_one_out_signal_by_hand():
    torch.testing.assert_close(leave_one_out_mean(torch.tensor([[1.0, 2.0, 6.0]])), torch.tensor([[4.0, 3.5, 1.5]]))
    l = torch.tensor([[-1.0, -3.0]], requires_grad=True)
    p = torch.zeros(1, 2, requires_grad=True)
    out = get_estimator("rloo", num_samples=2)(SampleTerms(l, p))
    out.loss.backward()
    # d loss / d p_k = -(1/K) (r_k - r_other): -(1/2) * (+2), -(1/2) * (-2)
    torch.testing.assert_close(p.grad, torch.tensor([[-1.0, 1.0]]))
    torch.testing.assert_close(l.grad, torch.full((1, 2), -0.5))
    assert set(out.metrics) == {"log_likelihood", "reward", "advantage_std"}


def test_registration_and_clear_errors():
    estimator = get_estimator("rloo")
    assert isinstance(estimator, Rloo) and estimator.num_samples == 5 and estimator.sample_from == "prior"
    assert not estimator.needs_baseline and not estimator.reparameterize_locations
    with pytest.raises(UserError, match="rloo: num_samples must be >= 2"):
        Rloo(num_samples=1)
    with pytest.raises(UserError, match="rloo: reward must be one of"):
        Rloo(reward="accuracy")
    with pytest.raises(UserError, match="reward='correct' needs SampleTerms.correct"):
        Rloo(num_samples=2, reward="correct")(SampleTerms(torch.zeros(2, 2), torch.zeros(2, 2)))
    with pytest.raises(UserError, match="rloo needs num_samples >= 2"):
        Rloo(num_samples=2)(SampleTerms(torch.zeros(2, 1), torch.zeros(2, 1)))
