"""Reweighted wake-sleep against exact gradients and log-marginals on the enumerable toy problem."""
import math

import pytest
import torch

from estimators import SampleTerms, WakeSleep, get_estimator
from estimators.wake_sleep import importance_weights
from ram_lightning.errors import UserError
from tests.estimators.toy_problem import (
    assert_consistent_in_k,
    blended_proposal,
    exact_gradient,
    exact_objectives,
    exact_sleep_gradient,
    log_joint_tables,
    make_parameters,
    per_draw_gradients,
    per_draw_gradients_with_sleep,
    posterior_proposal,
    replicate,
    sample_terms,
    z_scores,
)

THETA = ("prior_first", "prior_second", "likelihood")
ETA = ("proposal_first", "proposal_second")
TARGET = 1
# q = an even blend of prior and posterior: neither exact nor the prior, so both l and p - q matter.
PARAMS = blended_proposal(make_parameters(seed=3), TARGET, 0.5)
# (K, draws): enough draws that the Monte Carlo error is well below the K=2 bias.
SMALL_K, LARGE_K = (2, 10000), (100, 4000)


@pytest.fixture(scope="module")
def draws():
    """Per-draw gradient estimates of WakeSleep at K=2 and K=100: {K: name -> [R, ...]}."""
    return {K: per_draw_gradients(WakeSleep(num_samples=K), PARAMS, TARGET, R, seed=7) for K, R in (SMALL_K, LARGE_K)}


def test_theta_gradient_tends_to_the_log_marginal_gradient(draws):
    exact = exact_gradient(PARAMS, TARGET, "log_marginal")
    assert_consistent_in_k(draws[SMALL_K[0]], draws[LARGE_K[0]], exact, THETA)
    # The check has power: the variational bound's gradient (what REINFORCE targets) is far away.
    bound = exact_gradient(PARAMS, TARGET, "variational_bound")
    assert z_scores(draws[LARGE_K[0]], bound, THETA).max() > 10


def test_wake_proposal_gradient_tends_to_minus_the_kl_gradient(draws):
    exact_kl = exact_gradient(PARAMS, TARGET, "kl_posterior_proposal")
    assert_consistent_in_k(draws[SMALL_K[0]], draws[LARGE_K[0]], {name: -value for name, value in exact_kl.items()}, ETA)
    # Sign matters: with +grad KL the K=100 mean is many standard errors off.
    assert z_scores(draws[LARGE_K[0]], exact_kl, ETA).max() > 10


def test_proposal_equal_to_the_posterior_gives_uniform_weights():
    params = posterior_proposal(make_parameters(seed=3), TARGET)
    K = 7
    terms = sample_terms(replicate(params, 50), TARGET, K, "proposal", torch.Generator().manual_seed(0))
    weights = importance_weights(terms)
    assert torch.allclose(weights.normalised, torch.full_like(weights.normalised, 1 / K), atol=1e-12)
    metrics = WakeSleep(num_samples=K)(terms).metrics
    assert metrics["ess"].item() == pytest.approx(K, abs=1e-9)
    assert metrics["ess_fraction"].item() == pytest.approx(1.0, abs=1e-9)
    # every log w_k equals log p(y): the estimate is exact
    assert metrics["log_marginal"].item() == pytest.approx(exact_objectives(params, TARGET)["log_marginal"].item(), abs=1e-9)


def test_sleep_update_is_unbiased_for_the_expected_log_proposal_under_the_model():
    estimator = WakeSleep(num_samples=4, sleep_fraction=1.0)
    assert estimator.sleep_samples == 4
    estimates = per_draw_gradients_with_sleep(estimator, PARAMS, TARGET, 10000, seed=5)
    exact = exact_sleep_gradient(PARAMS)
    z = z_scores(estimates, exact, ETA)
    assert z.max() < 4.5, f"largest |mean - exact| / stderr = {z.max():.2f}"
    assert z_scores(estimates, {k: torch.zeros_like(v) for k, v in exact.items()}, ETA).max() > 10


def test_sleep_fraction_mixes_wake_and_sleep_linearly():
    generator = torch.Generator().manual_seed(0)
    l, p, q, sleep = (torch.randn(3, 4, generator=generator, dtype=torch.float64, requires_grad=True) for _ in range(4))

    def grads(s):
        loss = WakeSleep(num_samples=4, sleep_fraction=s)(SampleTerms(l, p, q, sleep_log_proposal=sleep)).loss
        inputs = [l, p, q, sleep]
        grads = torch.autograd.grad(loss, inputs, allow_unused=True)
        return [g if g is not None else torch.zeros_like(x) for g, x in zip(grads, inputs)]

    wake, half, full = grads(0.0), grads(0.5), grads(1.0)
    for g0, g5, g1 in zip(wake, half, full):
        assert torch.allclose(g5, 0.5 * g0 + 0.5 * g1)
    assert torch.count_nonzero(full[2]) == 0 and torch.count_nonzero(wake[3]) == 0
    assert torch.allclose(full[3], torch.full_like(sleep, -1 / 12))  # -mean over B=3, K'=4


def test_log_marginal_metric_is_a_lower_bound_that_tightens_with_k():
    exact = exact_objectives(PARAMS, TARGET)["log_marginal"].item()
    t = log_joint_tables(PARAMS, TARGET)
    q = t["log_proposal"]
    kl_q_posterior = (q.exp() * (q - t["log_prior"] - t["log_likelihood"])).sum().item() + exact
    gaps, stderrs = {}, {}
    with torch.no_grad():
        for K in (1, 5, 50):
            terms = sample_terms(replicate(PARAMS, 20000), TARGET, K, "proposal", torch.Generator().manual_seed(K))
            values = importance_weights(terms).log_marginal  # [R]
            gaps[K] = exact - values.mean().item()
            stderrs[K] = values.std().item() / math.sqrt(len(values))
            assert WakeSleep(num_samples=K)(terms).metrics["log_marginal"].item() == pytest.approx(values.mean().item())
    # K=1: E_q[log w] = log p(y) - KL(q || p(a | y)) exactly
    assert abs(gaps[1] - kl_q_posterior) < 4 * stderrs[1], (gaps, kl_q_posterior, stderrs)
    assert gaps[1] > 10 * stderrs[1]
    assert gaps[5] < gaps[1] - 4 * math.hypot(stderrs[1], stderrs[5])
    assert gaps[50] < gaps[5] - 4 * math.hypot(stderrs[5], stderrs[50])
    assert gaps[50] > -4 * stderrs[50]  # still a lower bound on average
    assert gaps[50] < 0.1 * gaps[1]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", ["all_underflow", "one_dominates"])
def test_extreme_log_likelihoods_stay_finite(case, dtype):
    generator = torch.Generator().manual_seed(0)
    l = torch.full((3, 5), -1e4, dtype=dtype)
    if case == "one_dominates":
        l[:, 2] = 0.0
    l.requires_grad_(True)
    p, q, sleep = (torch.randn(3, 5, generator=generator).to(dtype).requires_grad_(True) for _ in range(3))
    out = WakeSleep(num_samples=5, sleep_fraction=0.3)(SampleTerms(l, p, q, sleep_log_proposal=sleep))
    out.loss.backward()
    assert torch.isfinite(out.loss)
    assert all(torch.isfinite(v).all() for v in out.metrics.values())
    assert all(torch.isfinite(t.grad).all() for t in (l, p, q, sleep))
    if case == "one_dominates":
        assert out.metrics["ess"].item() == pytest.approx(1.0)
        assert torch.allclose(l.grad[:, 2], torch.full((3,), -1 / 3, dtype=dtype))


def test_registry_and_clear_errors():
    estimator = get_estimator("wake_sleep", num_samples=3)
    assert isinstance(estimator, WakeSleep) and estimator.num_samples == 3
    assert estimator.sample_from == "proposal" and estimator.sleep_samples == 0 and not estimator.needs_baseline
    terms = SampleTerms(torch.zeros(2, 3), torch.zeros(2, 3))
    with pytest.raises(UserError, match="wake_sleep samples from the proposal.*SampleTerms.log_proposal"):
        estimator(terms)
    with pytest.raises(UserError, match="sleep_log_proposal"):
        WakeSleep(num_samples=3, sleep_fraction=0.5)(SampleTerms(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2, 3)))
    for bad in (-0.1, 1.5, "half", True):
        with pytest.raises(UserError, match="sleep_fraction must be a number in \\[0, 1\\]"):
            WakeSleep(sleep_fraction=bad)
    with pytest.raises(UserError, match="num_samples"):
        WakeSleep(num_samples=0)
    with pytest.raises(UserError, match="wake_sleep"):
        get_estimator("wake_sleep", samples=3)
