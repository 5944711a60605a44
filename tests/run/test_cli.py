"""The `ram` command end to end on tiny settings: fit + test, plug-ins, helpful errors."""
import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ram_lightning.run.cli import main

ROOT = Path(__file__).resolve().parents[2]

@pytest.fixture
def tiny(tmp_path, tiny_config, write_config):
    """``tiny(estimator="reinforce", change=None) -> Path``: the tiny config (changed in place
    by ``change(config)``) written to ``tmp_path``, its run logged under ``tmp_path/tiny``."""

    def make(estimator="reinforce", change=None) -> Path:
        config = tiny_config(tmp_path, estimator)
        if change is not None:
            change(config)
        return write_config(tmp_path, config)

    return make


@pytest.mark.slow
def test_fit_writes_a_checkpoint_and_ends_with_a_finite_test_error(tmp_path, monkeypatch, tiny, read_metrics):
    monkeypatch.chdir(ROOT)
    main(["fit", "--config", str(tiny())])
    assert list(tmp_path.glob("tiny/version_*/checkpoints/last.ckpt"))
    metrics = read_metrics(tmp_path).last
    assert 0.0 <= metrics["test/error"] <= 1.0 and 0.0 <= metrics["test/error_avg3"] <= 1.0
    assert math.isfinite(metrics["train/loss"]) and math.isfinite(metrics["test/log_likelihood"])


@pytest.mark.slow
@pytest.mark.parametrize("estimator, metric", [
    ("rloo", "train/advantage_std"),
    ({"class_path": "estimators.Pathwise", "init_args": {"num_samples": 2}}, "train/signal_std"),
])
def test_rloo_and_pathwise_fit_with_a_scale_action_and_their_checkpoints_load_by_class(estimator, metric, tmp_path, monkeypatch,
                                                                                        tiny, read_metrics):
    from ram_lightning import AttentionClassifier

    monkeypatch.chdir(ROOT)
    main(["fit", "--config", str(tiny(estimator, lambda c: c["model"]["init_args"].update(scales=[1.0, 2.0])))])
    metrics = read_metrics(tmp_path).last
    assert math.isfinite(metrics["train/loss"]) and math.isfinite(metrics[metric]) and 0.0 <= metrics["test/error"] <= 1.0
    (last,) = tmp_path.glob("tiny/version_*/checkpoints/last.ckpt")
    loaded = AttentionClassifier.load_from_checkpoint(last)
    name = estimator if isinstance(estimator, str) else "pathwise"
    assert type(loaded.estimator).__name__.lower() == name and loaded.core.num_scales == 2


@pytest.mark.slow
def test_a_plugin_estimator_from_a_test_module_runs_through_class_path(tmp_path, monkeypatch, tiny, read_metrics):
    monkeypatch.chdir(ROOT)
    estimator = {"class_path": "tests.estimators.custom_plugin.PlainScoreFunction", "init_args": {"num_samples": 2, "weight": 0.5}}
    main(["fit", "--config", str(tiny(estimator)), "--test_after_fit", "false"])
    assert read_metrics(tmp_path).last["train/plugin_weight"] == 0.5


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
def test_wake_sleep_cv_by_name_logs_its_diagnostics_through_the_cli(tmp_path, monkeypatch, tiny, read_metrics):
    monkeypatch.chdir(ROOT)
    probe = {"class_path": "ram_lightning.diagnostics.GradientVarianceProbe", "init_args": {"every_n_steps": 1, "num_draws": 2}}
    config = tiny("wake_sleep_cv", lambda c: c["trainer"]["callbacks"].append(probe))
    main(["fit", "--config", str(config), "--test_after_fit", "false"])
    metrics = read_metrics(tmp_path).last
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
    assert "class_path: ram_lightning.AttentionClassifier" in out or "class_path: ram_lightning.AttentionCaptioner" in out


ESTIMATOR_OVERLAYS = sorted(p.relative_to(ROOT / "configs").as_posix() for p in (ROOT / "configs").glob("*/*.yaml")
                            if (ROOT / "configs" / f"{p.parent.name}.yaml").exists())


def test_the_estimator_overlays_are_found():
    assert {"translated_scaled/reinforce.yaml", "flickr8k/wake_sleep.yaml", "captions_synthetic/reinforce.yaml"} <= set(ESTIMATOR_OVERLAYS)


@pytest.mark.parametrize("overlay", ESTIMATOR_OVERLAYS)
def test_an_estimator_overlay_composed_after_its_base_changes_only_the_estimator(overlay, monkeypatch, capsys):
    """``configs/<task>/<estimator>.yaml`` after ``configs/<task>.yaml``: the base's run with the estimator named by
    the overlay's file name, every other setting as the base prints it."""
    base = f"configs/{overlay.split('/')[0]}.yaml"
    monkeypatch.chdir(ROOT)

    def printed(*configs):
        with pytest.raises(SystemExit) as exit_info:
            main(["fit", *[arg for config in configs for arg in ("--config", config)], "--print_config"])
        captured = capsys.readouterr()
        assert exit_info.value.code in (0, None), captured.err
        return yaml.safe_load(captured.out)

    alone, composed = printed(base), printed(base, f"configs/{overlay}")
    estimator = composed["model"]["init_args"].pop("estimator")
    alone["model"]["init_args"].pop("estimator")
    expected = {"reinforce": "Reinforce", "wake_sleep": "WakeSleep", "wake_sleep_cv": "WakeSleepCV"}[Path(overlay).stem]
    assert estimator["class_path"].rsplit(".", 1)[-1] == expected
    assert composed == alone


def run_expecting_error(capsys, args) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code not in (0, None)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def test_unknown_estimator_name_is_one_clear_line(capsys, monkeypatch, tiny):
    monkeypatch.chdir(ROOT)
    err = run_expecting_error(capsys, ["fit", "--config", str(tiny("reinforse"))])
    assert "ram: error: unknown estimator 'reinforse'" in err and "reinforce" in err


def test_config_key_that_does_not_exist_is_named(capsys, monkeypatch, tiny):
    monkeypatch.chdir(ROOT)
    config = tiny(change=lambda c: c["model"]["init_args"].update(num_glimpse=4))
    err = run_expecting_error(capsys, ["fit", "--config", str(config)])
    assert "num_glimpse" in err


def test_missing_data_directory_is_one_clear_line(tmp_path, capsys, monkeypatch, tiny):
    monkeypatch.chdir(ROOT)
    missing = tmp_path / "no_such_dir"
    config = tiny(change=lambda c: c["data"]["init_args"].update(source="mnist", download=False, data_dir=str(missing)))
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
    (["--model", "AttentionClassifier", "--model.estimator.help", "Rloo"], "K >= 2 samples from the prior policy per example"),
    (["--model", "AttentionClassifier", "--model.estimator.help", "Pathwise"], "gives the scale's score term its leave-one-out baseline"),
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


def test_a_run_starts_without_lightnings_advertisement(tiny):
    import logging

    seen = []

    class Keep(logging.Handler):
        def emit(self, record):
            seen.append(record.getMessage())

    handler = Keep()
    lightning_info = logging.getLogger("pytorch_lightning.utilities.rank_zero")
    lightning_info.addHandler(handler)
    try:
        main(["fit", "--config", str(tiny()), "--trainer.max_steps", "1", "--test_after_fit", "false"])
    finally:
        lightning_info.removeHandler(handler)
    assert any(message.startswith("GPU available") for message in seen)  # Lightning's own lines still come
    assert not [message for message in seen if "Tip" in message or "litlogger" in message]
