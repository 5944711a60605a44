"""A non-finite term stops every estimator with one error, before any buffer moves."""
import math

import pytest
import torch

import tests.estimators.custom_plugin  # noqa: F401  (a plug-in is checked like a built-in)
from estimators import SampleTerms, available_estimators, get_estimator
from ram_lightning.errors import NonFiniteError

# Options that give each built-in estimator its buffers (moving average, online coefficient).
STATEFUL = {"reinforce": {"baseline": "moving_average"}, "wake_sleep_cv": {"prior_coefficient": "online"}}


def terms(batch: int = 6, samples: int = 3) -> SampleTerms:
    torch.manual_seed(0)
    t = lambda: torch.randn(batch, samples, requires_grad=True)  # noqa: E731
    return SampleTerms(log_likelihood=-t().abs(), log_prior=t(), log_proposal=t(),
                       correct=torch.ones(batch, samples), entropy=t().abs())


@pytest.mark.parametrize("name", available_estimators())
@pytest.mark.parametrize("term, bad", [("log_likelihood", -math.inf), ("log_prior", math.nan), ("log_proposal", math.inf)])
def test_a_non_finite_term_is_named_with_its_rows_before_any_buffer_moves(name, term, bad):
    estimator = get_estimator(name, num_samples=3, **STATEFUL.get(name, {}))
    estimator(terms())  # one good step, so that the buffers hold something
    before = {k: v.clone() for k, v in estimator.state_dict().items()}
    given = terms()
    value = getattr(given, term).detach().clone()
    value[1, 0] = bad
    value[4, 2] = bad
    setattr(given, term, value)
    if term == "log_proposal" and estimator.sample_from == "prior":
        given.log_proposal = value  # still checked: a prior estimator must not be fed garbage either
    with pytest.raises(NonFiniteError, match=rf"estimator \S+ was given a non-finite SampleTerms\.{term} in 2 of 6 rows"):
        estimator(given)
    for key, value in estimator.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_finite_terms_pass_untouched():
    out = get_estimator("reinforce", num_samples=3, baseline="moving_average")(terms())
    assert torch.isfinite(out.loss)
