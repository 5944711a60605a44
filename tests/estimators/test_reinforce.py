"""REINFORCE against the exact gradient of F = E_p[log p(y | a)] on the enumerable toy problem."""
import pytest
import torch

from estimators import Reinforce, SampleTerms, get_estimator
from ram_lightning.errors import UserError
from tests.estimators.toy_problem import (
    exact_gradient,
    exact_objectives,
    make_parameters,
    per_draw_gradients,
    replicate,
    sample_terms,
    z_scores,
)

MODEL_TABLES = ("prior_first", "prior_second", "likelihood")
DRAWS = 20000
TARGET = 1


@pytest.mark.parametrize("num_samples", [1, 4])
@pytest.mark.parametrize("baseline", ["none", "learned", "moving_average"])
def test_reinforce_is_unbiased_for_the_variational_bound(num_samples, baseline):
    params = make_parameters(seed=3)
    exact = exact_gradient(params, TARGET, "variational_bound")
    estimator = Reinforce(num_samples=num_samples, baseline=baseline)
    b = None
    if baseline == "learned":
        b = torch.full((DRAWS, 1), -1.0, dtype=torch.float64, requires_grad=True)
    if baseline == "moving_average":
        estimator.reward_average.fill_(-0.7)  # any value fixed before the draws keeps it unbiased
        estimator.average_initialised.fill_(True)
    estimates = per_draw_gradients(estimator, params, TARGET, DRAWS, seed=11, baseline=b)
    z = z_scores(estimates, exact, MODEL_TABLES)
    assert z.max() < 4.5, f"largest |mean - exact| / stderr = {z.max():.2f}"
    # the comparison has power: the gradients are far from zero relative to their error
    assert z_scores(estimates, {k: torch.zeros_like(v) for k, v in exact.items()}, MODEL_TABLES).max() > 10


def test_the_exact_gradient_check_detects_a_biased_estimator():
    """Without the score-function term the policy gets no gradient: the same check must fail."""

    class PathwiseOnly(Reinforce):
        def forward(self, terms):
            out = super().forward(terms)
            out.loss = -terms.log_likelihood.mean()
            return out

    params = make_parameters(seed=3)
    exact = exact_gradient(params, TARGET, "variational_bound")
    estimates = per_draw_gradients(PathwiseOnly(num_samples=2, baseline="none"), params, TARGET, DRAWS, seed=11)
    assert z_scores(estimates, exact, ("prior_first", "prior_second")).max() > 10


def _policy_gradient_variance(estimates):
    return sum(estimates[name].var(0).sum() for name in ("prior_first", "prior_second"))


def test_learned_baseline_lowers_the_policy_gradient_variance():
    params = make_parameters(seed=3)
    # Train b by the estimator's own squared-error term, as the module does.
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.SGD([b], lr=0.2)
    estimator = Reinforce(num_samples=1, baseline="learned")
    for step in range(100):
        optimizer.zero_grad()
        generator = torch.Generator().manual_seed(step)
        terms = sample_terms(replicate(params, 256), TARGET, 1, "prior", generator, b.expand(256, 1))
        estimator(terms).loss.backward()
        optimizer.step()
    with_baseline = per_draw_gradients(estimator, params, TARGET, DRAWS, seed=5, baseline=b.detach().expand(DRAWS, 1))
    without = per_draw_gradients(Reinforce(num_samples=1, baseline="none"), params, TARGET, DRAWS, seed=5)
    ratio = _policy_gradient_variance(with_baseline) / _policy_gradient_variance(without)
    assert ratio < 0.5, f"variance with / without the learned baseline = {ratio:.3f}"
    bound = exact_objectives(params, TARGET)["variational_bound"]
    assert abs(b.item() - bound.item()) < 0.15, "the learned baseline should approach E_p[log p(y|a)]"


def test_moving_average_tracks_the_reward_and_lowers_variance():
    params = make_parameters(seed=3)
    estimator = Reinforce(num_samples=1, baseline="moving_average", baseline_momentum=0.5)
    for step in range(20):
        per_draw_gradients(estimator, params, TARGET, 256, seed=100 + step)
    assert bool(estimator.average_initialised)
    estimator.eval()  # freeze the average during the measurement
    with_average = per_draw_gradients(estimator, params, TARGET, DRAWS, seed=5)
    without = per_draw_gradients(Reinforce(num_samples=1, baseline="none"), params, TARGET, DRAWS, seed=5)
    assert _policy_gradient_variance(with_average) < 0.5 * _policy_gradient_variance(without)


def test_correctness_reward_and_entropy_bonus():
    l = torch.tensor([[-0.1, -2.0]], requires_grad=True)
    p = torch.tensor([[-1.0, -1.0]], requires_grad=True)
    h = torch.tensor([[0.5, 0.5]], requires_grad=True)
    terms = SampleTerms(l, p, correct=torch.tensor([[1.0, 0.0]]), entropy=h)
    out = get_estimator("reinforce", num_samples=2, reward="correct", baseline="none", entropy_weight=0.1)(terms)
    out.loss.backward()
    # d loss / d p_k = -(1/K) r_k ; d loss / d H_k = -beta / K
    assert torch.allclose(p.grad, torch.tensor([[-0.5, 0.0]]))
    assert torch.allclose(h.grad, torch.full((1, 2), -0.05))
    assert "entropy" in out.metrics


def test_missing_terms_give_clear_errors():
    terms = SampleTerms(torch.zeros(2, 3), torch.zeros(2, 3))
    with pytest.raises(UserError, match="baseline"):
        Reinforce(num_samples=3)(terms)
    with pytest.raises(UserError, match="correct"):
        Reinforce(num_samples=3, reward="correct", baseline="none")(terms)
    with pytest.raises(UserError, match="reward must be one of"):
        Reinforce(reward="accuracy")
    with pytest.raises(UserError, match="shape"):
        SampleTerms(torch.zeros(2, 3), torch.zeros(2, 2))
