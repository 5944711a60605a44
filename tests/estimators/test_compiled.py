"""The exact-gradient checks again, through the call the compiled training step makes: the
estimator inside ``torch.compile(fullgraph=True)`` with its buffers guarded
(``estimators.base.call_without_host_sync``). The graphs run through AOTAutograd's traced forward
and backward (backend ``aot_eager``: what inductor compiles, without its C++ build, so the checks
stay seconds long); tests/models/test_compiled_step.py compares inductor's code with eager on the model."""
import pytest
import torch

from estimators.base import call_without_host_sync
from tests.estimators import continuous_toy, test_pathwise, test_reinforce, test_rloo, test_vimco, test_wake_sleep
from tests.estimators import test_wake_sleep_cv, toy_problem


def compiled_call(estimator, terms):
    output, finite = torch.compile(call_without_host_sync, fullgraph=True, backend="aot_eager")(estimator, terms)
    assert bool(finite)
    return output


@pytest.fixture(autouse=True)
def through_the_compiled_call(monkeypatch):
    torch._dynamo.reset()  # each check compiles its own graph (no recompile limit across checks)
    monkeypatch.setattr(toy_problem, "call_estimator", compiled_call)
    yield
    torch._dynamo.reset()


CHECKS = {
    "reinforce, learned baseline, K=4": lambda: test_reinforce.test_reinforce_is_unbiased_for_the_variational_bound(4, "learned"),
    "reinforce, moving average, K=1": lambda: test_reinforce.test_reinforce_is_unbiased_for_the_variational_bound(1, "moving_average"),
    "reinforce, negative control": test_reinforce.test_the_exact_gradient_check_detects_a_biased_estimator,
    "vimco, K=3": lambda: test_vimco.test_vimco_is_unbiased_for_the_multi_sample_bound(3),
    "vimco, negative control": test_vimco.test_without_leave_one_out_centring_the_check_fails,
    "wake_sleep, sleep update": test_wake_sleep.test_sleep_update_is_unbiased_for_the_expected_log_proposal_under_the_model,
    "wake_sleep_cv, consistency": test_wake_sleep_cv.test_theta_and_wake_gradients_are_consistent_as_k_grows,
    "rloo, K=2": lambda: test_rloo.test_rloo_is_unbiased_for_the_variational_bound(2),
    "rloo, negative control": test_rloo.test_a_baseline_that_includes_the_sample_itself_is_caught,
    "pathwise, K=2": lambda: test_pathwise.test_pathwise_is_unbiased_for_every_parameter(2, *continuous()),
    "pathwise, negative control": lambda: test_pathwise.test_dropping_the_scales_score_term_is_caught(*continuous()),
}


def continuous():
    """(params, exact) of the continuous toy, as test_pathwise's fixtures give them."""
    params = continuous_toy.make_parameters(seed=4)
    return params, continuous_toy.exact_gradient(params)


@pytest.mark.parametrize("check", list(CHECKS))
def test_the_exact_gradient_checks_hold_through_the_compiled_call(check):
    calls = []
    real = toy_problem.call_estimator
    toy_problem.call_estimator = lambda estimator, terms: calls.append(1) or real(estimator, terms)
    try:
        CHECKS[check]()
    finally:
        toy_problem.call_estimator = real
    assert calls  # the check went through the compiled call


def test_the_compiled_call_keeps_the_buffers_when_a_term_is_not_finite():
    from estimators import get_estimator
    from tests.estimators.test_non_finite_terms import terms

    estimator = get_estimator("reinforce", num_samples=3, baseline="moving_average")
    estimator(terms())
    before = {k: v.clone() for k, v in estimator.state_dict().items()}
    given = terms()
    given.log_likelihood = given.log_likelihood.detach().clone()
    given.log_likelihood[2, 1] = float("nan")
    _, finite = torch.compile(call_without_host_sync, fullgraph=True, backend="aot_eager")(estimator, given)
    assert not bool(finite)
    for key, value in estimator.state_dict().items():
        assert torch.equal(value, before[key]), key
    estimator(terms())  # and a finite call does move them (the check above can fail)
    assert not torch.equal(estimator.reward_average, before["reward_average"])
