"""GradientVarianceProbe: what it measures and that it leaves training untouched."""
import pytest
import pytorch_lightning as pl
import torch

from estimators import get_estimator
from ram_lightning.diagnostics import probe as probe_module
from ram_lightning.diagnostics.probe import GradientVarianceProbe, probe_gradient_variance
from ram_lightning.models.classifier import AttentionClassifier
from ram_lightning.diagnostics.gradient_variance import gradient_draws, gradient_variance
from tests.core.test_rollout import SMALL


def test_gradient_variance_of_known_draws():
    draws = torch.tensor([[1.0, 2.0], [3.0, 2.0], [5.0, 2.0]])
    summary = gradient_variance(draws)
    assert summary["variance"].item() == pytest.approx(4.0)  # var([1, 3, 5]) + var([2, 2, 2])
    assert summary["mean_sq_norm"].item() == pytest.approx(9.0 + 4.0)


def test_signal_is_unbiased_for_the_squared_norm_of_the_expected_gradient():
    torch.manual_seed(0)
    # draws g = mu + noise, ||mu||^2 = 0.25, total noise variance 4: the raw squared norm of the
    # mean over D = 4 draws is biased up by 4 / 4 = 1; ``signal`` removes that on average.
    mu = torch.tensor([0.3, 0.4])
    signals = torch.stack([gradient_variance(mu + 2 ** 0.5 * torch.randn(4, 2))["signal"] for _ in range(4000)])
    raw = torch.stack([gradient_variance(mu + 2 ** 0.5 * torch.randn(4, 2))["mean_sq_norm"] for _ in range(4000)])
    assert signals.mean().item() == pytest.approx(0.25, abs=0.06)
    assert raw.mean().item() == pytest.approx(1.25, abs=0.1)


def test_gradient_groups_cover_every_parameter_once():
    model = AttentionClassifier(num_classes=5, **SMALL, inference_hidden=12, label_embedding_size=4,
                                estimator=get_estimator("wake_sleep_cv", num_samples=3))
    grouped = [id(p) for params in model.gradient_groups().values() for p in params]
    assert sorted(grouped) == sorted(id(p) for p in model.parameters())


def test_gradient_draws_are_independent_draws_of_a_stochastic_loss():
    weight = torch.nn.Parameter(torch.ones(3))
    draws = gradient_draws(lambda: (weight * torch.randn(3)).sum(), {"w": [weight]}, num_draws=400)["w"]
    assert draws.shape == (400, 3)
    assert gradient_variance(draws)["variance"].item() == pytest.approx(3.0, rel=0.25)  # each component ~ N(0, 1)


def test_probe_reports_both_groups_and_does_not_change_the_training_random_stream():
    torch.manual_seed(0)
    model = AttentionClassifier(num_classes=5, **SMALL, inference_hidden=12, label_embedding_size=4,
                                estimator=get_estimator("wake_sleep_cv", num_samples=3, prior_coefficient="online"))
    batch = (torch.rand(4, 1, 24, 20), torch.randint(0, 5, (4,)))
    state = {k: v.clone() for k, v in model.estimator.state_dict().items()}
    torch.manual_seed(1)
    metrics = probe_gradient_variance(model, batch, num_draws=3)
    after_probe = torch.rand(3)
    torch.manual_seed(1)
    assert torch.equal(after_probe, torch.rand(3))
    groups = ("policy", "inference", "top_lstm", "bottom_lstm", "glimpse", "context", "head")
    assert set(metrics) == {f"{kind}/{group}" for kind in ("grad_var", "grad_signal", "grad_snr") for group in groups}
    assert all(torch.isfinite(v) for v in metrics.values())
    assert all(metrics[f"grad_var/{group}"] > 0 for group in groups)
    for key, value in model.estimator.state_dict().items():  # running averages untouched
        torch.testing.assert_close(value, state[key])
    assert model.estimator.training


@pytest.mark.parametrize("precision, autocast", [("32-true", False), ("bf16-mixed", True)])
def test_probe_draws_in_the_training_precision(precision, autocast, monkeypatch):
    seen = []

    def probe(pl_module, batch, num_draws):
        seen.append(torch.is_autocast_enabled("cpu"))
        return {}

    monkeypatch.setattr(probe_module, "probe_gradient_variance", probe)
    trainer = pl.Trainer(accelerator="cpu", precision=precision, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    GradientVarianceProbe(every_n_steps=1, num_draws=2).on_train_batch_end(trainer, None, None, None, 0)
    assert seen == [autocast]
