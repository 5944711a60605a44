"""The model side of the estimator contract (ram_lightning/estimator_inputs.py): heads from the
estimator's flags, SampleTerms by keyword, both in one place that both models use."""
import inspect

import pytest
import torch
from torch import nn

import ram_lightning.models.captioner as captioner
import ram_lightning.models.classifier as classifier
from estimators import Estimator, EstimatorOutput
from ram_lightning.errors import UserError
from ram_lightning.models.estimator_inputs import EstimatorInputs


class _Flags(Estimator):
    def __init__(self, sample_from="prior", baseline=False, sleep=0, reparameterize=False):
        self.sample_from = sample_from
        super().__init__(num_samples=3)
        self._baseline, self._sleep, self._reparameterize = baseline, sleep, reparameterize

    @property
    def reparameterize_locations(self):
        return self._reparameterize

    @property
    def needs_baseline(self):
        return self._baseline

    @property
    def sleep_samples(self):
        return self._sleep

    def forward(self, terms):
        return EstimatorOutput(terms.log_likelihood.mean())


class _Model(EstimatorInputs, nn.Module):
    pass


@pytest.mark.parametrize("flags, has_baseline, has_q", [
    (dict(), False, False),
    (dict(baseline=True), True, False),
    (dict(sample_from="proposal"), False, True),
    (dict(sleep=2), False, True),
])
def test_the_heads_follow_the_estimators_flags(flags, has_baseline, has_q):
    model = _Model()
    model.build_estimator_heads(_Flags(**flags), baseline=lambda: nn.Linear(4, 1), inference=lambda: nn.Linear(4, 4))
    assert (model.baseline is not None, model.inference is not None) == (has_baseline, has_q)
    assert isinstance(model.estimator, _Flags)


def test_a_model_without_sleep_updates_refuses_an_estimator_that_wants_them():
    with pytest.raises(UserError, match="sleep updates of q"):
        _Model().build_estimator_heads(_Flags(sleep=2), nn.Identity, nn.Identity, supports_sleep=False)


def test_reparameterised_draws_only_in_training_and_only_where_the_model_can_pass_location_gradients():
    model = _Model()
    model.build_estimator_heads(_Flags(reparameterize=True), nn.Identity, nn.Identity, location_gradients=True)
    assert model.reparameterized_draws(train=True) and not model.reparameterized_draws(train=False)
    model.build_estimator_heads(_Flags(), nn.Identity, nn.Identity, location_gradients=True)
    assert not model.reparameterized_draws(train=True)
    with pytest.raises(UserError, match="_Model: estimator _Flags needs the gradient of the likelihood with respect to reparameterised"):
        _Model().build_estimator_heads(_Flags(reparameterize=True), nn.Identity, nn.Identity)


def test_terms_are_built_by_keyword_with_a_detached_baseline():
    model = _Model()
    model.build_estimator_heads(_Flags(baseline=True), baseline=lambda: nn.Linear(4, 1), inference=nn.Identity)
    features = torch.randn(2, 4, requires_grad=True)
    log_likelihood, log_prior = torch.randn(2, 3), torch.randn(2, 3)
    terms = model.sample_terms_from(log_likelihood=log_likelihood, log_prior=log_prior, baseline_input=features)
    assert terms.baseline.shape == (2, 3) and torch.equal(terms.baseline[:, 0], terms.baseline[:, 2])
    terms.baseline.sum().backward()
    assert features.grad is None and model.baseline.weight.grad is not None  # b learns; the model is not moved
    assert terms.log_proposal is None and terms.correct is None and terms.sleep_log_proposal is None
    with pytest.raises(TypeError):
        model.sample_terms_from(log_likelihood, log_prior)  # keywords only


@pytest.mark.parametrize("module", [classifier, captioner])
def test_both_models_build_terms_and_heads_only_through_the_shared_methods(module):
    source = inspect.getsource(module)
    assert "SampleTerms(" not in source
    assert "self.build_estimator_heads(" in source and "self.sample_terms_from(" in source
