"""Wake-sleep with control variates: consistency, variance reduction and the online coefficient."""
import pytest
import torch

from estimators import SampleTerms, WakeSleep, WakeSleepCV, get_estimator
from estimators.wake_sleep import importance_weights
from estimators.wake_sleep_cv import prior_ratio_weights
from ram_lightning.errors import UserError
from tests.estimators.toy_problem import (
    assert_consistent_in_k,
    blended_proposal,
    exact_gradient,
    make_parameters,
    per_draw_gradients,
    replicate,
    sample_terms,
)

THETA = ("prior_first", "prior_second", "likelihood")
POLICY = ("prior_first", "prior_second")
ETA = ("proposal_first", "proposal_second")
TARGET = 1
BLEND = blended_proposal(make_parameters(seed=3), TARGET, 0.5)  # q = (p(a) + p(a|y)) / 2
PRIOR = blended_proposal(make_parameters(seed=3), TARGET, 0.0)  # q = p(a)
K = 5
DRAWS = 10000


def policy_variance(estimates):
    """Total variance over draws of the policy-parameter gradient, summed over components."""
    return sum(estimates[name].var(0).sum() for name in POLICY).item()


def test_theta_and_wake_gradients_are_consistent_as_k_grows():
    small = per_draw_gradients(WakeSleepCV(num_samples=2), BLEND, TARGET, 10000, seed=7)
    large = per_draw_gradients(WakeSleepCV(num_samples=100), BLEND, TARGET, 4000, seed=7)
    assert_consistent_in_k(small, large, exact_gradient(BLEND, TARGET, "log_marginal"), THETA)
    minus_kl = {name: -g for name, g in exact_gradient(BLEND, TARGET, "kl_posterior_proposal").items()}
    assert_consistent_in_k(small, large, minus_kl, ETA)


@pytest.fixture(scope="module")
def k5_gradients():
    """proposal -> (wake_sleep, wake_sleep_cv) per-draw gradients at K=5 on the same draws (same seed)."""
    cache = {}

    def get(proposal):
        if proposal not in cache:
            params = PRIOR if proposal == "prior" else BLEND
            cache[proposal] = tuple(
                per_draw_gradients(cls(num_samples=K), params, TARGET, DRAWS, seed=2) for cls in (WakeSleep, WakeSleepCV)
            )
        return cache[proposal]

    return get


@pytest.mark.parametrize("proposal", ["prior", "blend"])
def test_control_variates_lower_the_policy_gradient_variance(proposal, k5_gradients):
    plain, with_cv = k5_gradients(proposal)
    # same seed -> the same samples: the likelihood term, untouched by the control variates, agrees
    assert torch.allclose(plain["likelihood"], with_cv["likelihood"])
    ratio = policy_variance(with_cv) / policy_variance(plain)
    # measured (seed 3, K=5): 0.21 with q = prior, 0.26 with the blend
    assert ratio < 0.7, f"policy-gradient variance wake_sleep_cv / wake_sleep = {ratio:.3f}"


def _batches(seed, count, rows=256, params=BLEND):
    """``count`` independent batches of ``rows`` examples (one sampling call, sliced): [SampleTerms [rows, K]]."""
    with torch.no_grad():
        terms = sample_terms(replicate(params, count * rows), TARGET, K, "proposal", torch.Generator().manual_seed(seed))
    chunks = zip(*(t.split(rows) for t in (terms.log_likelihood, terms.log_prior, terms.log_proposal)))
    return [SampleTerms(l, p, q) for l, p, q in chunks]


def _coefficient_target(terms):
    """sum_k w~_k r~_k and sum_k r~_k^2, averaged over the batch."""
    w, r = importance_weights(terms).normalised, prior_ratio_weights(terms)
    return (w * r).sum(1).mean().item(), r.pow(2).sum(1).mean().item()


def test_online_coefficient_starts_at_one_updates_in_training_only_and_is_checkpointed():
    estimator = WakeSleepCV(num_samples=K, prior_coefficient="online")
    assert {"cv_numerator", "cv_denominator", "cv_initialised"} <= set(estimator.state_dict())
    first_batch, second_batch = _batches(0, 2)
    out = estimator(first_batch)
    assert out.metrics["prior_coefficient"].item() == 1.0  # no earlier batch: c = 1
    assert torch.isfinite(out.loss) and bool(estimator.cv_initialised)
    first = estimator.current_prior_coefficient().item()
    assert first != 1.0
    estimator.eval()
    assert estimator(second_batch).metrics["prior_coefficient"].item() == pytest.approx(first)
    assert estimator.current_prior_coefficient().item() == first  # frozen in eval mode
    restored = WakeSleepCV(num_samples=K, prior_coefficient="online")
    restored.load_state_dict(estimator.state_dict())
    assert restored.current_prior_coefficient().item() == pytest.approx(first)


def test_online_coefficient_moves_to_its_target():
    # target c* = E[sum_k w~_k r~_k] / E[sum_k r~_k^2], from one large independent batch
    big = _batches(999, 1, rows=20000)[0]
    numerator, denominator = _coefficient_target(big)
    target = numerator / denominator
    w, r = importance_weights(big).normalised, prior_ratio_weights(big)
    per_example = (w * r).sum(1) / denominator - target * r.pow(2).sum(1) / denominator  # delta method
    target_stderr = per_example.std().item() / len(per_example) ** 0.5
    momentum, steps = 0.9, 60
    estimator = WakeSleepCV(num_samples=K, prior_coefficient="online", coefficient_momentum=momentum)
    estimator.cv_numerator.fill_(3.0 * denominator)  # start at c = 3 (on the right scale)
    estimator.cv_denominator.fill_(denominator)
    estimator.cv_initialised.fill_(True)
    start = estimator.current_prior_coefficient().item()
    batch_values = []
    for terms in _batches(0, steps):
        numerator, denominator = _coefficient_target(terms)
        batch_values.append(numerator / denominator)
        out = estimator(terms)
        assert torch.isfinite(out.loss) and torch.isfinite(out.metrics["prior_coefficient"])
    end = estimator.current_prior_coefficient().item()
    # noise of an exponential average of independent batch values, plus what is left of the start
    noise = torch.tensor(batch_values).std().item() * ((1 - momentum) / (1 + momentum)) ** 0.5
    tolerance = 4 * (noise ** 2 + target_stderr ** 2) ** 0.5 + momentum ** steps * abs(start - target)
    assert abs(end - target) < tolerance, (start, end, target, noise, target_stderr)
    assert abs(end - target) < 0.1 * abs(start - target)


def test_online_coefficient_is_close_to_the_variance_optimal_one(k5_gradients):
    """Measured check of the scalar approximation behind "online" (q = blend, seed 3, K = 5)."""
    online = WakeSleepCV(num_samples=K, prior_coefficient="online", coefficient_momentum=0.9)
    for terms in _batches(100, 30):
        online(terms)
    online.eval()
    c = online.current_prior_coefficient().item()
    plain, fixed = k5_gradients("blend")  # c_p = 0 on the policy (wake_sleep) and c_p = 1
    # the policy gradient is linear in c: g(c) = plain - c * d, with d = plain - fixed
    d = {name: plain[name] - fixed[name] for name in POLICY}
    covariance = sum(((plain[n] - plain[n].mean(0)) * (d[n] - d[n].mean(0))).sum(0) for n in POLICY).sum()
    c_opt = (covariance / sum((d[n] - d[n].mean(0)).pow(2).sum(0) for n in POLICY).sum()).item()
    def variance(coef):
        return policy_variance({n: plain[n] - coef * d[n] for n in POLICY})
    assert variance(c) <= variance(1.0), (c, c_opt)  # measured: 0.234 vs 0.255 of wake_sleep's
    assert variance(c) <= 1.1 * variance(c_opt), (c, c_opt)  # measured c = 0.90, c_opt = 0.85


@pytest.mark.parametrize("prior_coefficient", [1.0, "online"])
@pytest.mark.parametrize("case", ["all_underflow", "one_dominates"])
def test_extreme_log_likelihoods_stay_finite(case, prior_coefficient):
    generator = torch.Generator().manual_seed(0)
    l = torch.full((3, 5), -1e4)
    if case == "one_dominates":
        l[:, 2] = 0.0
    l.requires_grad_(True)
    p, q, sleep = (torch.randn(3, 5, generator=generator).requires_grad_(True) for _ in range(3))
    estimator = WakeSleepCV(num_samples=5, sleep_fraction=0.3, prior_coefficient=prior_coefficient)
    for _ in range(2):  # the second call uses the online coefficient from the first
        out = estimator(SampleTerms(l, p, q, sleep_log_proposal=sleep))
        out.loss.backward()
        assert torch.isfinite(out.loss)
        assert all(torch.isfinite(v).all() for v in out.metrics.values())
        assert all(torch.isfinite(t.grad).all() for t in (l, p, q, sleep))


def test_registry_and_clear_errors():
    estimator = get_estimator("wake_sleep_cv")
    assert isinstance(estimator, WakeSleepCV) and estimator.num_samples == 5
    assert estimator.sample_from == "proposal" and estimator.sleep_samples == 0
    assert get_estimator("wake_sleep_cv", sleep_fraction=0.5, num_samples=3).sleep_samples == 3
    with pytest.raises(UserError, match="wake_sleep_cv samples from the proposal.*SampleTerms.log_proposal"):
        estimator(SampleTerms(torch.zeros(2, 5), torch.zeros(2, 5)))
    with pytest.raises(UserError, match="sleep_log_proposal"):
        WakeSleepCV(sleep_fraction=1.0)(SampleTerms(torch.zeros(2, 5), torch.zeros(2, 5), torch.zeros(2, 5)))
    with pytest.raises(UserError, match="prior_coefficient must be a float or 'online'"):
        WakeSleepCV(prior_coefficient="adaptive")
    with pytest.raises(UserError, match="coefficient_momentum must be a number in \\[0.0, 1.0\\)"):
        WakeSleepCV(coefficient_momentum=1.0)
    with pytest.raises(UserError, match="proposal_coefficient"):
        WakeSleepCV(proposal_coefficient="one")
    with pytest.raises(UserError, match="sleep_fraction"):
        WakeSleepCV(sleep_fraction=2)
