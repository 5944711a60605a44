"""The same-weights control-variate measurement: "off" is exactly wake_sleep, "on" exactly
wake_sleep_cv, both from the same attention draws, and the model keeps its own estimator."""
import pytest
import torch

from benchmarks.lab.control_variates import same_weights_variance
from estimators import WakeSleep, WakeSleepCV
from ram_lightning.diagnostics.probe import gradient_summaries
from ram_lightning.models.classifier import AttentionClassifier
from ram_lightning.seeds import mix_seed
from tests.core.test_rollout import SMALL


def model_and_batches():
    torch.manual_seed(0)
    model = AttentionClassifier(**SMALL, num_classes=3, scales=[0.5, 1.0], estimator=WakeSleep(num_samples=3)).train()
    batches = [(torch.rand(6, 1, 24, 20), torch.randint(0, 3, (6,))) for _ in range(2)]
    return model, batches


def summed_variance(model, estimator, batches, draws, seed):
    model.estimator = estimator
    totals = {}
    for index, batch in enumerate(batches):
        generator = torch.Generator().manual_seed(mix_seed(seed, index))
        for group, summary in gradient_summaries(model, batch, draws, generator).items():
            totals[group] = totals.get(group, 0.0) + float(summary["variance"])
    return totals


def test_off_is_wake_sleep_and_on_is_wake_sleep_cv_on_the_same_draws():
    model, batches = model_and_batches()
    own = model.estimator
    found = same_weights_variance(model, batches, num_draws=3, seed=7)
    assert model.estimator is own
    off = summed_variance(model, WakeSleep(num_samples=3), batches, 3, 7)
    on = summed_variance(model, WakeSleepCV(num_samples=3), batches, 3, 7)
    model.estimator = own
    assert set(found) == set(off) and {"policy", "inference", "bottom_lstm"} <= set(found)
    for group in found:
        assert found[group]["variance_off"] == pytest.approx(off[group], rel=1e-5)
        assert found[group]["variance_on"] == pytest.approx(on[group], rel=1e-5)
    # the control variates act on the score terms: the policy's and q's variance change, and
    # the head's (likelihood term only, the same weights w~ from the same draws) does not
    assert found["policy"]["variance_on"] != pytest.approx(found["policy"]["variance_off"], rel=1e-3)
    assert found["inference"]["variance_on"] != pytest.approx(found["inference"]["variance_off"], rel=1e-3)
    assert found["head"]["reduction"] == pytest.approx(0.0, abs=1e-6)


def test_the_check_fails_when_the_draws_are_not_shared():
    """Negative control: other draws for "off" than the measurement used give other variances."""
    model, batches = model_and_batches()
    found = same_weights_variance(model, batches, num_draws=3, seed=7)
    other = summed_variance(model, WakeSleep(num_samples=3), batches, 3, 8)
    assert found["policy"]["variance_off"] != pytest.approx(other["policy"], rel=1e-3)
