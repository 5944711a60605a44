"""The model side of the estimator contract (ram_lightning/models/estimator_inputs.py): the estimator
and its sampling plan, heads from the plan, SampleTerms by keyword, all in one place both models use."""
import inspect

import pytest
import torch
from torch import nn

import ram_lightning.models.captioner as captioner
import ram_lightning.models.classifier as classifier
from estimators import Estimator, EstimatorOutput, get_estimator
from ram_lightning.errors import UserError
from ram_lightning.models.estimator_inputs import EstimatorInputs
from ram_lightning.models.sampling_plan import SamplingPlan


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
    def __init__(self, estimator=None):
        super().__init__()
        self.hparams = {}
        if estimator is not None:
            self.use_estimator(estimator)


@pytest.mark.parametrize("flags, has_baseline, has_q", [
    (dict(), False, False),
    (dict(baseline=True), True, False),
    (dict(sample_from="proposal"), False, True),
    (dict(sleep=2), False, True),
])
def test_the_heads_follow_the_estimators_flags(flags, has_baseline, has_q):
    model = _Model(_Flags(**flags))
    model.build_estimator_heads(baseline=lambda: nn.Linear(4, 1), inference=lambda: nn.Linear(4, 4))
    assert (model.baseline is not None, model.inference is not None) == (has_baseline, has_q)
    assert isinstance(model.estimator, _Flags) and model.plan.num_samples == 3
    assert model.hparams["estimator"]["class_path"].endswith("_Flags")


def test_a_model_without_sleep_updates_refuses_an_estimator_that_wants_them():
    with pytest.raises(UserError, match="sleep updates of q"):
        _Model(_Flags(sleep=2)).build_estimator_heads(nn.Identity, nn.Identity, supports_sleep=False)


def test_reparameterised_draws_only_in_training_and_only_where_the_model_can_pass_location_gradients():
    model = _Model(_Flags(reparameterize=True))
    model.build_estimator_heads(nn.Identity, nn.Identity, location_gradients=True)
    assert model.plan.reparameterized(train=True) and not model.plan.reparameterized(train=False)
    model = _Model(_Flags())
    model.build_estimator_heads(nn.Identity, nn.Identity, location_gradients=True)
    assert not model.plan.reparameterized(train=True)
    with pytest.raises(UserError, match="_Model: estimator _Flags needs the gradient of the likelihood with respect to reparameterised"):
        _Model(_Flags(reparameterize=True)).build_estimator_heads(nn.Identity, nn.Identity)


def test_terms_are_built_by_keyword_with_a_detached_baseline():
    model = _Model(_Flags(baseline=True))
    model.build_estimator_heads(baseline=lambda: nn.Linear(4, 1), inference=nn.Identity)
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
    assert "SampleTerms(" not in source and "get_estimator" not in source
    assert "self.use_estimator(" in source and "self.build_estimator_heads(" in source and "self.sample_terms_from(" in source
    # the estimator's flags are read once, into the sampling plan, never by the models
    for flag in ("num_samples", "sample_from", "sleep_samples", "needs_baseline", "reparameterize_locations"):
        assert f"estimator.{flag}" not in source


@pytest.mark.parametrize("name", ["reinforce", "wake_sleep", "wake_sleep_cv", "vimco", "rloo", "pathwise"])
def test_the_plan_is_read_once_from_the_estimator(name):
    estimator = get_estimator(name, num_samples=2)
    plan = SamplingPlan.of(estimator)
    assert (plan.num_samples, plan.source, plan.sleep_samples, plan.baseline, plan.reparameterize_locations) == (
        2, estimator.sample_from, estimator.sleep_samples, estimator.needs_baseline, estimator.reparameterize_locations)
    assert plan.from_proposal(True) == (estimator.sample_from == "proposal") and not plan.from_proposal(False)
    assert plan.needs_inference == (estimator.sample_from == "proposal" or estimator.sleep_samples > 0)
    assert plan.dreams(False) == 0


@pytest.mark.parametrize("cls, kwargs", [
    (classifier.AttentionClassifier, dict(image_shape=(1, 24, 24), glimpse_size=6, num_patches=2, hidden_size=16)),
    (captioner.AttentionCaptioner, dict(vocabulary=captioner.SPECIAL_TOKENS + ("a",), image_shape=(3, 16, 16),
                                        encoder_channels=(4,), hidden_size=8)),
])
def test_both_models_resolve_their_estimator_once(cls, kwargs, monkeypatch):
    import estimators.registry as registry

    calls = []
    real = registry.estimator_class
    monkeypatch.setattr(registry, "estimator_class", lambda name: calls.append(name) or real(name))
    model = cls(estimator="wake_sleep", **kwargs)
    assert calls == ["wake_sleep"] and model.plan == SamplingPlan.of(model.estimator)


@pytest.mark.parametrize("module", [classifier, captioner])
def test_both_models_shape_their_steps_alike(module):
    cls = getattr(module, "AttentionClassifier", None) or module.AttentionCaptioner
    for method in ("training_terms", "model_step", "gradient_groups"):
        assert method in vars(cls), method
    for method in ("training_step", "validation_step", "test_step", "estimator_output"):
        assert method not in vars(cls), method  # the shared ones, in EstimatorModule
    assert list(inspect.signature(cls.training_terms).parameters) == ["self", "batch", "generator"]
    assert list(inspect.signature(cls.model_step).parameters) == ["self", "batch", "split"]
