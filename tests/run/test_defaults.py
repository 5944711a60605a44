"""The shared defaults (ram_lightning/defaults.yaml + run/defaults.py): composed before every
config, filled in from the run's name and model, shown by --print_config, overridable."""
from pathlib import Path

import pytest
import yaml

from ram_lightning.run.cli import main
from ram_lightning.run.defaults import DEFAULTS_FILE

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))


def resolved_config(args, monkeypatch, capsys) -> dict:
    """What ``ram fit ARGS --print_config`` prints, as a dict (run from the repository root)."""
    monkeypatch.chdir(ROOT)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *args, "--print_config"])
    captured = capsys.readouterr()
    assert exit_info.value.code in (0, None), captured.err
    return yaml.safe_load(captured.out)


def by_class(entries, name):
    return [entry for entry in entries if entry["class_path"].rsplit(".", 1)[-1] == name]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_experiment_configs_say_only_what_differs(config):
    text = config.read_text()
    assert len(text.splitlines()) <= 25
    for shared in ("CSVLogger", "WandbLogger", "ModelCheckpoint", "WandbRunInfo", "Pictures", "default_root_dir"):
        assert shared not in text, f"{config.name} repeats {shared}, which {DEFAULTS_FILE.name} holds"


def test_print_config_shows_the_shared_defaults_filled_in(monkeypatch, capsys):
    printed = resolved_config(["--config", "configs/quickstart.yaml"], monkeypatch, capsys)
    trainer = printed["trainer"]
    assert printed["name"] == "quickstart" and printed["seed_everything"] == 0
    assert trainer["default_root_dir"] == "runs/quickstart" and trainer["max_epochs"] == 12
    (csv,), (wandb,) = by_class(trainer["logger"], "CSVLogger"), by_class(trainer["logger"], "WandbLogger")
    assert (csv["init_args"]["save_dir"], csv["init_args"]["name"]) == ("runs", "quickstart")
    assert (wandb["init_args"]["name"], wandb["init_args"]["save_dir"]) == ("quickstart", "runs/quickstart")
    best = by_class(trainer["callbacks"], "ModelCheckpoint")[0]["init_args"]
    assert (best["monitor"], best["mode"]) == ("val/error", "min")
    assert by_class(trainer["callbacks"], "AttentionPictures") and by_class(trainer["callbacks"], "WandbRunInfo")


def test_a_captioner_checkpoints_its_best_bleu(monkeypatch, capsys):
    printed = resolved_config(["--config", "configs/captions_synthetic.yaml"], monkeypatch, capsys)
    best = by_class(printed["trainer"]["callbacks"], "ModelCheckpoint")[0]["init_args"]
    assert (best["monitor"], best["mode"]) == ("val/bleu4", "max")
    assert [c["class_path"].rsplit(".", 1)[-1] for c in printed["trainer"]["callbacks"]][-1] == "GradientVarianceProbe"


def test_the_command_line_overrides_the_defaults(monkeypatch, capsys):
    printed = resolved_config(["--config", "configs/quickstart.yaml", "--name", "mine", "--seed_everything", "3",
                               "--trainer.log_every_n_steps", "7",
                               "--trainer.callbacks+=pytorch_lightning.callbacks.LearningRateMonitor"],
                              monkeypatch, capsys)
    trainer = printed["trainer"]
    assert printed["seed_everything"] == 3 and trainer["log_every_n_steps"] == 7
    assert trainer["default_root_dir"] == "runs/mine"
    assert {logger["init_args"]["name"] for logger in trainer["logger"]} == {"mine"}
    assert trainer["callbacks"][-1]["class_path"].endswith("LearningRateMonitor") and len(trainer["callbacks"]) == 6


def test_a_config_overrides_the_defaults(tmp_path, monkeypatch, capsys):
    config = tmp_path / "override.yaml"
    config.write_text(yaml.safe_dump({
        "trainer": {
            "default_root_dir": str(tmp_path / "elsewhere"),
            "logger": {"class_path": "pytorch_lightning.loggers.CSVLogger", "init_args": {"save_dir": str(tmp_path)}},
            "callbacks": [{"class_path": "pytorch_lightning.callbacks.ModelCheckpoint",
                           "init_args": {"monitor": "val/loss", "mode": "min"}}],
        },
    }))
    printed = resolved_config(["--config", "configs/quickstart.yaml", "--config", str(config)], monkeypatch, capsys)
    trainer = printed["trainer"]
    assert printed["name"] == "quickstart"  # the first config names the run
    assert trainer["default_root_dir"] == str(tmp_path / "elsewhere")
    assert trainer["logger"]["init_args"]["name"] == "lightning_logs"  # given by the config (its class default): kept
    assert [c["init_args"]["monitor"] for c in trainer["callbacks"]] == ["val/loss"]  # the list is replaced


def test_auto_monitor_with_a_model_that_declares_none_is_one_clear_error(tmp_path, monkeypatch, capsys):
    config = tmp_path / "plain.yaml"
    config.write_text("model: {class_path: pytorch_lightning.demos.boring_classes.BoringModel}\n")
    monkeypatch.chdir(ROOT)
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(config), "--print_config"])
    assert exit_info.value.code == 2
    assert "declares no checkpoint_monitor" in capsys.readouterr().err
