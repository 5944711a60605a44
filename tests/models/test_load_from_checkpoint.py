"""``load_from_checkpoint(path)`` alone rebuilds the exact model: estimator class, options, state."""
import pytest
import pytorch_lightning as pl
import torch

import tests.estimators.custom_plugin  # noqa: F401  (registers a plug-in defined in a test module)
from estimators import available_estimators, get_estimator
from ram_lightning import AttentionClassifier
from ram_lightning.models.captioner import AttentionCaptioner
from ram_lightning.errors import UserError

TINY_CLASSIFIER = dict(image_shape=(1, 24, 24), glimpse_size=6, num_patches=2, num_glimpses=2, hidden_size=16,
                       glimpse_hidden=8, glimpse_features=16, context_size=8, eval_samples=2)
TINY_CAPTIONER = dict(vocabulary=["<pad>", "<bos>", "<eos>", "<unk>", "a", "b"], image_shape=(3, 16, 16),
                      encoder_channels=(4, 8), embedding_size=8, hidden_size=8, attention_size=8,
                      inference_embedding=8, inference_hidden=8, max_length=4, beam_size=2)


def save(model: pl.LightningModule, path) -> None:
    trainer = pl.Trainer(logger=False, enable_checkpointing=False, accelerator="cpu", enable_progress_bar=False)
    trainer.strategy.connect(model)
    trainer.save_checkpoint(path)


def non_default_estimator(name: str):
    """The estimator with K = 3 and every buffer perturbed, so that defaults or fresh state would show."""
    estimator = get_estimator(name, num_samples=3)
    with torch.no_grad():
        for buffer in estimator.buffers():
            if buffer.is_floating_point():
                buffer.add_(0.25)
    return estimator


def assert_same_estimator(original, loaded) -> None:
    assert type(loaded) is type(original) and loaded.num_samples == 3
    assert loaded._init_args == original._init_args
    for (name, a), (_, b) in zip(original.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name


def reloaded(model, path):
    """``model`` saved to ``path`` and loaded back by its class alone; the estimator checked equal."""
    save(model, path)
    loaded = type(model).load_from_checkpoint(path)
    assert_same_estimator(model.estimator, loaded.estimator)
    return loaded


@pytest.mark.parametrize("name", available_estimators())
def test_a_classifier_checkpoint_rebuilds_its_estimator_state_and_outputs(name, tmp_path):
    model = AttentionClassifier(**TINY_CLASSIFIER, estimator=non_default_estimator(name))
    loaded = reloaded(model, tmp_path / "model.ckpt")
    images = torch.rand(4, 1, 24, 24)
    outputs = [module.eval()(images, num_samples=2, generator=torch.Generator().manual_seed(3)) for module in (model, loaded)]
    assert torch.equal(*outputs)


# The captioner supports neither sleep updates nor reparameterised locations (it refuses those estimators).
@pytest.mark.parametrize("name", [n for n in available_estimators()
                                  if get_estimator(n).sleep_samples == 0 and not get_estimator(n).reparameterize_locations])
def test_a_captioner_checkpoint_rebuilds_its_estimator_state_and_outputs(name, tmp_path):
    model = AttentionCaptioner(**TINY_CAPTIONER, estimator=non_default_estimator(name))
    loaded = reloaded(model, tmp_path / "model.ckpt")
    images = torch.rand(2, 3, 16, 16)
    assert model.eval().decode(images) == loaded.eval().decode(images)
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)


def test_a_plugin_from_a_test_module_keeps_its_own_option(tmp_path):
    from tests.estimators.custom_plugin import PlainScoreFunction

    save(AttentionClassifier(**TINY_CLASSIFIER, estimator=PlainScoreFunction(num_samples=2, weight=0.5)), tmp_path / "m.ckpt")
    loaded = AttentionClassifier.load_from_checkpoint(tmp_path / "m.ckpt")
    assert isinstance(loaded.estimator, PlainScoreFunction) and loaded.estimator.weight == 0.5
    assert loaded.hparams.estimator == {"class_path": "tests.estimators.custom_plugin.PlainScoreFunction",
                                        "init_args": {"num_samples": 2, "weight": 0.5}}


def test_a_plugin_that_is_not_installed_is_one_line_naming_its_class_path(tmp_path):
    save(AttentionClassifier(**TINY_CLASSIFIER), tmp_path / "m.ckpt")
    checkpoint = torch.load(tmp_path / "m.ckpt", weights_only=True)
    checkpoint["hyper_parameters"]["estimator"]["class_path"] = "not_installed_package.MyEstimator"
    torch.save(checkpoint, tmp_path / "m.ckpt")
    with pytest.raises(UserError, match="names 'not_installed_package.MyEstimator', which is neither ram-lightning's"):
        AttentionClassifier.load_from_checkpoint(tmp_path / "m.ckpt")
