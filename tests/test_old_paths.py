"""Checkpoints and configs written before ``ram_lightning`` moved into sub-packages still work.

The checkpoints are written here, not committed: a Trainer saves a tiny model, and its
hyperparameters are given the class paths the flat layout wrote (``ram fit`` records the config's
``_class_path`` and the estimator's spec), e.g. ``ram_lightning.classifier.AttentionClassifier`` and
``estimators.reinforce.Reinforce``. The alias modules (``ram_lightning.classifier``, ...) keep them
importable."""
import sys
from pathlib import Path

import pytest
import torch

from ram_lightning import AttentionCaptioner, AttentionClassifier
from ram_lightning.run.checkpoint_hparams import merge_checkpoint_hparams
from ram_lightning.run.cli import build_cli, main
from tests.models.test_load_from_checkpoint import TINY_CAPTIONER, non_default_estimator, save

OLD_MODEL_PATHS = {AttentionClassifier: "ram_lightning.classifier.AttentionClassifier",
                   AttentionCaptioner: "ram_lightning.captioner.AttentionCaptioner"}
# What the flat layout's configs and defaults.yaml name, each still a class path that imports.
OLD_CLASS_PATHS = ["ram_lightning.AttentionClassifier", "ram_lightning.classifier.AttentionClassifier",
                   "ram_lightning.captioner.AttentionCaptioner", "ram_lightning.callbacks.GradientVarianceProbe",
                   "ram_lightning.pictures.AttentionPictures", "ram_lightning.tracking.WandbRunInfo",
                   "ram_lightning.cli.main"]


def old_checkpoint(model, path: Path) -> Path:
    """``model`` saved by a Trainer, its hyperparameters naming the flat layout's class paths as
    ``ram fit`` wrote them (the LightningCLI's instantiator, the model's and the estimator's paths)."""
    save(model, path)
    checkpoint = torch.load(path, weights_only=True)
    hparams = checkpoint["hyper_parameters"]
    hparams["_class_path"] = OLD_MODEL_PATHS[type(model)]
    hparams["_instantiator"] = "pytorch_lightning.cli.instantiate_module"
    estimator = type(model.estimator)
    assert hparams["estimator"]["class_path"] == f"{estimator.__module__}.{estimator.__qualname__}"  # e.g. estimators.reinforce.Reinforce
    torch.save(checkpoint, path)
    return path


@pytest.mark.parametrize("path", OLD_CLASS_PATHS)
def test_every_class_path_the_flat_layout_wrote_still_imports(path):
    from estimators.registry import import_class

    assert import_class(path) is not None


def test_the_alias_modules_say_what_they_are():
    import importlib

    for name in ("classifier", "captioner", "callbacks", "pictures", "tracking"):
        assert "Alias kept for old" in importlib.import_module(f"ram_lightning.{name}").__doc__
    cli = importlib.import_module("ram_lightning.cli")  # the console script: dispatches, and keeps the old names
    assert "console script" in cli.__doc__ and {"RamCLI", "build_cli", "main"} <= set(vars(cli))


@pytest.mark.parametrize("estimator", ["reinforce", "wake_sleep_cv"])
def test_an_old_classifier_checkpoint_loads_with_its_estimator_state(estimator, tmp_path, tiny_config, monkeypatch):
    monkeypatch.delitem(sys.modules, "ram_lightning.classifier", raising=False)  # as in a fresh process: the alias not imported yet
    sizes = {k: v for k, v in tiny_config(tmp_path)["model"]["init_args"].items() if k != "estimator"}
    model = AttentionClassifier(image_shape=(1, 36, 36), **sizes, estimator=non_default_estimator(estimator))
    path = old_checkpoint(model, tmp_path / "old.ckpt")
    saved = torch.load(path, weights_only=True)["hyper_parameters"]
    assert saved["_class_path"] == "ram_lightning.classifier.AttentionClassifier"
    loaded = AttentionClassifier.load_from_checkpoint(path)  # Lightning's instantiator builds the old path's class
    assert type(loaded) is AttentionClassifier and type(loaded.estimator) is type(model.estimator)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
    images = torch.rand(3, 1, 36, 36)
    outputs = [m.eval()(images, num_samples=2, generator=torch.Generator().manual_seed(1)) for m in (model, loaded)]
    assert torch.equal(*outputs)
    lines = []  # the config names the short path, the checkpoint the old one: the same class, no conflict
    merged = merge_checkpoint_hparams(saved, {"class_path": "ram_lightning.AttentionClassifier", "init_args": {}}, "old.ckpt",
                                      lines.append)
    assert lines == [] and merged["init_args"]["estimator"]["class_path"] == saved["estimator"]["class_path"]


def test_an_old_captioner_checkpoint_loads(tmp_path, monkeypatch):
    monkeypatch.delitem(sys.modules, "ram_lightning.captioner", raising=False)
    model = AttentionCaptioner(**TINY_CAPTIONER, estimator=non_default_estimator("wake_sleep"))
    loaded = AttentionCaptioner.load_from_checkpoint(old_checkpoint(model, tmp_path / "old.ckpt"))
    images = torch.rand(2, 3, 16, 16)
    assert type(loaded.estimator) is type(model.estimator) and model.eval().decode(images) == loaded.eval().decode(images)


@pytest.mark.slow
def test_ram_test_runs_an_old_checkpoint_with_an_old_config(tmp_path, tiny_config, write_config, read_metrics, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = tiny_config(tmp_path)
    config["model"]["class_path"] = "ram_lightning.classifier.AttentionClassifier"
    config["trainer"]["callbacks"] += [
        {"class_path": "ram_lightning.callbacks.GradientVarianceProbe", "init_args": {"every_n_steps": 100, "num_draws": 2}},
        {"class_path": "ram_lightning.pictures.AttentionPictures"},
        {"class_path": "ram_lightning.tracking.WandbRunInfo"},
    ]
    path = write_config(tmp_path, config)
    cli = build_cli(["--config", str(path)], run=False)  # the old names still build
    names = {type(callback).__name__ for callback in cli.trainer.callbacks}
    assert {"GradientVarianceProbe", "AttentionPictures", "WandbRunInfo"} <= names and type(cli.model) is AttentionClassifier
    sizes = {k: v for k, v in config["model"]["init_args"].items() if k != "estimator"}
    model = AttentionClassifier(image_shape=(1, 36, 36), **sizes, estimator=non_default_estimator("reinforce"))
    checkpoint = old_checkpoint(model, tmp_path / "old.ckpt")
    main(["test", "--config", str(path), "--ckpt_path", str(checkpoint)])
    (metrics,) = tmp_path.glob("tiny/version_*/metrics.csv")
    assert "test/error" in metrics.read_text()
