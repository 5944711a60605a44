"""The `ram` command end to end on tiny settings: fit + test, plug-ins, helpful errors."""
import csv
import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ram_lightning.cli import main

ROOT = Path(__file__).resolve().parents[1]

TINY = """
seed_everything: 1
trainer:
  max_epochs: 1
  accelerator: cpu
  devices: 1
  limit_train_batches: 3
  limit_val_batches: 2
  limit_test_batches: 2
  enable_progress_bar: false
  enable_model_summary: false
  log_every_n_steps: 1
  default_root_dir: {root}
  logger:
    class_path: pytorch_lightning.loggers.CSVLogger
    init_args: {{save_dir: {root}, name: tiny}}
  callbacks:
    - class_path: pytorch_lightning.callbacks.ModelCheckpoint
      init_args: {{monitor: val/error, mode: min, save_last: true}}
model:
  class_path: ram_lightning.AttentionClassifier
  init_args:
    glimpse_size: 6
    num_patches: 2
    num_glimpses: 2
    hidden_size: 16
    glimpse_hidden: 16
    glimpse_features: 16
    context_size: 8
    eval_samples: 3
    estimator: {estimator}
data:
  class_path: datamodules.TranslatedMNIST
  init_args:
    source: rendered
    canvas_size: 36
    train_size: 96
    val_size: 64
    test_size: 64
    batch_size: 32
"""


def write_config(tmp_path: Path, estimator: str = "reinforce", **replace) -> Path:
    text = TINY.format(root=tmp_path, estimator=estimator)
    for old, new in replace.items():
        text = text.replace(old, new)
    path = tmp_path / "tiny.yaml"
    path.write_text(text)
    return path


def read_metrics(tmp_path: Path) -> dict:
    """Last logged value of every metric in the CSV logger's file."""
    (metrics_file,) = tmp_path.glob("tiny/version_*/metrics.csv")
    values = {}
    with open(metrics_file) as handle:
        for row in csv.DictReader(handle):
            values.update({key: float(value) for key, value in row.items() if value not in ("", None)})
    return values


@pytest.mark.slow
def test_fit_writes_a_checkpoint_and_ends_with_a_finite_test_error(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    main(["fit", "--config", str(write_config(tmp_path))])
    assert list(tmp_path.glob("tiny/version_*/checkpoints/last.ckpt"))
    metrics = read_metrics(tmp_path)
    assert 0.0 <= metrics["test/error"] <= 1.0 and 0.0 <= metrics["test/error_avg3"] <= 1.0
    assert math.isfinite(metrics["train/loss"]) and math.isfinite(metrics["test/log_likelihood"])


@pytest.mark.slow
def test_a_plugin_estimator_from_a_test_module_runs_through_class_path(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    estimator = "{class_path: tests.estimators.custom_plugin.PlainScoreFunction, init_args: {num_samples: 2, weight: 0.5}}"
    main(["fit", "--config", str(write_config(tmp_path, estimator)), "--test_after_fit", "false"])
    assert read_metrics(tmp_path)["train/plugin_weight"] == 0.5


@pytest.mark.slow
def test_the_console_script_runs_help_and_print_config():
    ram = [sys.executable, "-c", "from ram_lightning.cli import main; main()"]
    for args in (["--help"], ["fit", "--help"]):
        result = subprocess.run(ram + args, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
    result = subprocess.run(ram + ["fit", "--config", "configs/quickstart.yaml", "--print_config"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    printed = yaml.safe_load(result.stdout)
    assert printed["model"]["class_path"].endswith("AttentionClassifier")
    assert printed["model"]["init_args"]["estimator"]["class_path"].endswith("Reinforce")


@pytest.mark.slow
def test_wake_sleep_cv_by_name_logs_its_diagnostics_through_the_cli(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    probe = (
        "      init_args: {{monitor: val/error, mode: min, save_last: true}}\n"
        "    - class_path: ram_lightning.callbacks.GradientVarianceProbe\n"
        "      init_args: {{every_n_steps: 1, num_draws: 2}}"
    ).format()
    config = write_config(tmp_path, "wake_sleep_cv", **{"      init_args: {monitor: val/error, mode: min, save_last: true}": probe})
    main(["fit", "--config", str(config), "--test_after_fit", "false"])
    metrics = read_metrics(tmp_path)
    for key in ("train/log_marginal", "train/ess", "train/ess_fraction", "grad_var/policy", "grad_var/inference"):
        assert math.isfinite(metrics[key]), key
    assert 1.0 <= metrics["train/ess"] <= 5.0  # K defaults to 5


@pytest.mark.parametrize("config", sorted(p.name for p in (ROOT / "configs").glob("*.yaml")))
def test_every_shipped_config_is_valid(config, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", f"configs/{config}", "--print_config"])
    assert exit_info.value.code in (0, None), capsys.readouterr().err
    out = capsys.readouterr().out
    assert "class_path: ram_lightning.AttentionClassifier" in out or "class_path: ram_lightning.captioner.AttentionCaptioner" in out


def run_expecting_error(capsys, args) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code not in (0, None)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def test_unknown_estimator_name_is_one_clear_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    err = run_expecting_error(capsys, ["fit", "--config", str(write_config(tmp_path, "reinforse"))])
    assert "ram: error: unknown estimator 'reinforse'" in err and "reinforce" in err


def test_config_key_that_does_not_exist_is_named(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    config = write_config(tmp_path, **{"    eval_samples: 3": "    eval_samples: 3\n    num_glimpse: 4"})
    err = run_expecting_error(capsys, ["fit", "--config", str(config)])
    assert "num_glimpse" in err


def test_missing_data_directory_is_one_clear_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    missing = tmp_path / "no_such_dir"
    config = write_config(tmp_path, **{"    source: rendered": f"    source: mnist\n    download: false\n    data_dir: {missing}"})
    err = run_expecting_error(capsys, ["fit", "--config", str(config)])
    assert "ram: error:" in err and str(missing) in err


def _help(capsys, args) -> str:
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code in (0, None)
    return capsys.readouterr().out


def test_fit_help_ends_by_saying_how_to_list_the_model_data_and_estimator_options(capsys):
    text = _help(capsys, ["fit", "--help"])
    assert text.rstrip().splitlines()[-1].endswith("--print_config.")
    tail = " ".join(text.split()[-80:])
    assert "ram fit --model.help AttentionClassifier" in tail and "--model.estimator.help WakeSleepCV" in tail


@pytest.mark.parametrize("args, described", [
    (["--model.help", "AttentionClassifier"], "side in pixels of each retina patch"),
    (["--model.help", "AttentionCaptioner"], "dropout on the word-prediction input"),
    (["--data.help", "ClutteredMNIST"], "random clutter crops of other digits"),
    (["--model", "AttentionClassifier", "--model.estimator.help", "WakeSleepCV"], "c_q on the proposal control variate"),
])
def test_short_class_names_list_options_with_their_docstring_descriptions(capsys, args, described):
    text = " ".join(_help(capsys, ["fit", *args]).split())
    assert described in text


def test_short_class_names_are_accepted_as_values(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    text = _help(capsys, ["fit", "--model", "AttentionClassifier", "--data", "ClutteredMNIST", "--print_config"])
    printed = yaml.safe_load(text)
    assert printed["model"]["class_path"] == "ram_lightning.AttentionClassifier"
    assert printed["data"]["class_path"] == "datamodules.ClutteredMNIST"
    assert printed["data"]["init_args"]["num_distractors"] == 4


def test_a_run_starts_without_lightnings_advertisement(tmp_path, monkeypatch, capsys):
    import logging

    seen = []

    class Keep(logging.Handler):
        def emit(self, record):
            seen.append(record.getMessage())

    handler = Keep()
    lightning_info = logging.getLogger("pytorch_lightning.utilities.rank_zero")
    lightning_info.addHandler(handler)
    try:
        main(["fit", "--config", str(write_config(tmp_path)), "--trainer.max_steps", "1", "--test_after_fit", "false"])
    finally:
        lightning_info.removeHandler(handler)
    assert any(message.startswith("GPU available") for message in seen)  # Lightning's own lines still come
    assert not [message for message in seen if "Tip" in message or "litlogger" in message]
