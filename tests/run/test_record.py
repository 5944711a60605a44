"""A resumed run keeps its folder, best-checkpoint tracking and W&B run; evaluation with
``--ckpt_path`` logs beside the run; checkpoint hyperparameters never silently beat explicit values."""
import re

import pytest
from pytorch_lightning.loggers import CSVLogger, WandbLogger

from ram_lightning.run.checkpoint_hparams import merge_checkpoint_hparams
from ram_lightning.run.cli import main
from ram_lightning.errors import UserError
from ram_lightning.run.record import apply_run_record, describe_logger
from tests.tiny_run import ROOT, load_checkpoint


def fit_config(root, tiny_config, write_config):
    config = tiny_config(root)
    config["trainer"]["logger"] = [config["trainer"]["logger"], {  # W&B offline, in root/wb/wandb/offline-run-*-<id>
        "class_path": "pytorch_lightning.loggers.WandbLogger", "init_args": {"project": "ram-test", "save_dir": str(root / "wb")}}]
    config["trainer"]["callbacks"] = [{"class_path": "pytorch_lightning.callbacks.ModelCheckpoint",
                                       "init_args": {"monitor": "val/log_likelihood", "mode": "max", "save_top_k": 2, "save_last": True}}]
    return write_config(root / "fit.yaml", config)


def ram(args) -> None:
    """``main(args)`` as its own command: W&B's run is finished after it, as at a process's exit."""
    import wandb

    try:
        main(args)
    finally:
        wandb.finish()


def best_state(checkpoint):
    (state,) = [v for k, v in checkpoint["callbacks"].items() if k.startswith("ModelCheckpoint")]
    return state


@pytest.mark.slow
def test_resume_keeps_the_run_folder_and_best_checkpoints_and_evaluation_logs_beside_the_run(tmp_path, monkeypatch,
                                                                                             capsys, tiny_config,
                                                                                             write_config,
                                                                                             read_metrics):
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("WANDB_MODE", "offline")
    config = fit_config(tmp_path, tiny_config, write_config)
    ram(["fit", "--config", str(config), "--test_after_fit", "false"])
    last = next((tmp_path / "tiny").glob("version_*/checkpoints/last.ckpt"))
    first_best = best_state(load_checkpoint(last))["best_k_models"]
    ram(["fit", "--config", str(config), "--test_after_fit", "false", "--trainer.max_epochs", "2", "--ckpt_path", str(last)])
    assert [p.name for p in (tmp_path / "tiny").iterdir()] == ["version_0"]
    saved = {p.name: p.read_text() for p in (tmp_path / "tiny" / "version_0").glob("config*.yaml")}
    assert sorted(saved) == ["config-2.yaml", "config.yaml"]  # the run's original settings are kept
    assert "max_epochs: 1\n" in saved["config.yaml"] and "max_epochs: 2\n" in saved["config-2.yaml"]
    state = best_state(load_checkpoint(last))
    assert load_checkpoint(last)["epoch"] == 1
    # the two best of both epochs: the first epoch's checkpoint was kept in the ranking across the resume
    assert set(first_best) <= set(state["best_k_models"]) and len(state["best_k_models"]) == 2
    scores = [row["val/log_likelihood"] for row in read_metrics(tmp_path).rows if "val/log_likelihood" in row]
    assert len(scores) == 2 and float(state["best_model_score"]) == pytest.approx(max(scores))
    capsys.readouterr()
    for extra in ([], ["--model.init_args.hidden_size", "256"]):  # the same folder each time, not a new version
        ram(["test", "--config", str(config), "--ckpt_path", str(last), *extra])
    assert sorted(p.name for p in (tmp_path / "tiny").iterdir()) == ["version_0"]
    lines = (tmp_path / "tiny" / "version_0" / "test" / "metrics.csv").read_text().splitlines()
    assert lines[0].count("test/error,") == 1 and len(lines) == 3  # one header, one row per `ram test`
    err = capsys.readouterr().err
    assert "Logging to " + str(tmp_path / "tiny" / "version_0" / "test") in err
    # 256 is the class default, but given explicitly it is still a conflict, said once
    assert err.count("ram: warning: ") == 1
    assert "model.hidden_size=16, the config or command line gives 256; using the checkpoint value 16" in err
    # one W&B run: the fit, the resumed fit and both tests all logged under the id kept in the checkpoint
    runs = sorted((tmp_path / "wb" / "wandb").glob("offline-run-*"))
    ids = {re.match(r"offline-run-\d+_\d+-([a-z0-9]+)", run.name)[1] for run in runs}  # (a "-1" suffix within one second)
    assert len(runs) == 4 and len(ids) == 1


def test_a_checkpoint_records_each_logger_and_the_config_is_pointed_back_at_it(tmp_path):
    wandb = WandbLogger(id="abc123", offline=True, save_dir=str(tmp_path))
    csv = CSVLogger(save_dir=str(tmp_path), name="tiny", version=3)
    record = [describe_logger(wandb), describe_logger(csv)]
    assert record[0]["id"] == "abc123" and record[1]["version"] == 3
    config = [{"class_path": "pytorch_lightning.loggers.CSVLogger",
               "init_args": {"save_dir": str(tmp_path), "name": "tiny", "version": None}},
              {"class_path": "pytorch_lightning.loggers.WandbLogger", "init_args": {"id": None, "version": None}}]
    lines = apply_run_record(config, record, "fit")
    assert config[0]["init_args"]["version"] == 3 and config[1]["init_args"]["id"] == "abc123"
    assert lines == [f"Logging to {tmp_path / 'tiny' / 'version_3'} (beside the checkpoint's run)", "W&B: continuing run abc123"]
    config[0]["init_args"]["version"] = None
    apply_run_record(config, record, "predict")
    assert config[0]["init_args"]["version"] == "version_3/predict"


def loggers_config(save_dir, name="tiny"):
    return [{"class_path": "pytorch_lightning.loggers.CSVLogger", "init_args": {"save_dir": str(save_dir), "name": name}},
            {"class_path": "pytorch_lightning.loggers.WandbLogger", "init_args": {"id": None, "version": None}}]


RECORD = [{"class_path": "pytorch_lightning.loggers.wandb.WandbLogger", "id": "abc123"},
          {"class_path": "pytorch_lightning.loggers.csv_logs.CSVLogger", "save_dir": "/first/runs", "name": "tiny", "version": 3}]


def test_a_command_logging_under_another_name_starts_a_new_wandb_run_and_says_why(tmp_path):
    config = loggers_config("/first/runs", name="other")
    lines = apply_run_record(config, RECORD, "predict", "/first/runs/tiny/version_3/checkpoints/last.ckpt")
    assert "version" not in config[0]["init_args"] and config[1]["init_args"]["id"] is None
    assert lines == ["W&B: a new run (the checkpoint's run abc123 belongs to /first/runs/tiny/version_3, and this command logs elsewhere)"]


def test_a_copied_run_folder_is_continued_where_the_checkpoint_lies(tmp_path):
    copy = tmp_path / "copy" / "runs"
    config = loggers_config(copy)
    lines = apply_run_record(config, RECORD, "fit", str(copy / "tiny" / "version_3" / "checkpoints" / "last.ckpt"))
    assert config[0]["init_args"]["version"] == 3 and config[1]["init_args"]["id"] == "abc123"
    assert lines[0] == f"Logging to {copy / 'tiny' / 'version_3'} (beside the checkpoint's run)"
    config = loggers_config(copy)  # a checkpoint copied out of its run folder: no folder to continue
    apply_run_record(config, RECORD, "fit", str(tmp_path / "last.ckpt"))
    assert "version" not in config[0]["init_args"] and config[1]["init_args"]["id"] is None


MODEL = {"class_path": "ram_lightning.AttentionClassifier", "init_args": {"hidden_size": 128, "eval_samples": 4, "glimpse_size": 6}}
SAVED = {"_class_path": "ram_lightning.AttentionClassifier", "hidden_size": 64, "eval_samples": 10, "glimpse_size": 6,
         "num_patches": 2, "estimator": {"class_path": "estimators.reinforce.Reinforce", "init_args": {"num_samples": 1}}}


def test_a_conflict_with_an_explicit_value_is_one_line_naming_key_values_and_winner():
    lines = []
    merged = merge_checkpoint_hparams(SAVED, MODEL, "h64.ckpt", lines.append)
    assert lines == [
        "ram: warning: h64.ckpt was saved with model.hidden_size=64, the config or command line gives 128; "
        "using the checkpoint value 64 (the saved weights were built with it)",
        "ram: warning: h64.ckpt was saved with model.eval_samples=10, the config or command line gives 4; using the explicit value 4",
    ]
    assert merged["init_args"]["hidden_size"] == 64 and "eval_samples" not in merged["init_args"]
    assert merged["init_args"]["num_patches"] == 2  # not given explicitly: the checkpoint's, silently


def test_a_checkpoint_of_another_model_class_is_one_line():
    saved = dict(SAVED, _class_path="ram_lightning.captioner.AttentionCaptioner")
    expected = "holds a ram_lightning.captioner.AttentionCaptioner model, but the config's model is ram_lightning.AttentionClassifier"
    with pytest.raises(UserError, match=expected):
        merge_checkpoint_hparams(saved, MODEL, "c.ckpt")


def test_an_estimator_given_by_name_equal_to_the_saved_spec_is_no_conflict():
    lines = []
    merge_checkpoint_hparams(SAVED, {**MODEL, "init_args": {"estimator": "reinforce"}}, "x.ckpt", lines.append)
    assert lines == []


def test_a_checkpoint_whose_estimator_plugin_is_not_installed_is_one_line():
    saved = dict(SAVED, estimator={"class_path": "not_installed_package.MyEstimator", "init_args": {}})
    with pytest.raises(UserError, match="'not_installed_package.MyEstimator' cannot be imported"):
        merge_checkpoint_hparams(saved, MODEL, "p.ckpt")


def test_a_checkpoint_trained_on_other_data_shapes_is_one_line():
    from ram_lightning.run.checkpoint_hparams import check_linked_hparams

    check_linked_hparams("x.ckpt", {"image_shape": (1, 60, 60)}, {"image_shape": [1, 60, 60]})  # the same: fine
    expected = r"trained with model.vocabulary = a vocabulary of 5 tokens, but the config's data gives a vocabulary of 6"
    with pytest.raises(UserError, match=expected):
        check_linked_hparams("x.ckpt", {"vocabulary": list("abcde")}, {"vocabulary": list("abcdef")})


def test_explicit_model_keys_come_from_config_files_and_model_options(tmp_path):
    from ram_lightning.run.checkpoint_hparams import explicit_model_keys

    (tmp_path / "a.yaml").write_text("model:\n  class_path: X\n  init_args: {hidden_size: 8, estimator: reinforce}\n")
    args = ["test", "--config", str(tmp_path / "a.yaml"), "--model.init_args.eval_samples", "3", "--model.beam_size=2",
            "--model.estimator.init_args.num_samples", "4", "--trainer.max_epochs", "1", "--ckpt_path", "x.ckpt"]
    assert explicit_model_keys(args) == {"hidden_size", "estimator", "eval_samples", "beam_size"}
    assert explicit_model_keys(["fit", "--model", "{class_path: X, init_args: {dropout: 0.1}}"]) == {"dropout"}


def test_an_explicit_value_equal_to_the_class_default_still_conflicts():
    lines = []
    saved = dict(SAVED, estimator={"class_path": "estimators.wake_sleep.WakeSleep", "init_args": {"num_samples": 5, "sleep_fraction": 0.0}})
    merged = merge_checkpoint_hparams(saved, {**MODEL, "init_args": {"estimator": "reinforce"}}, "w.ckpt", lines.append,
                                      explicit_keys={"estimator"})
    assert len(lines) == 1 and "model.estimator=" in lines[0] and "using the checkpoint value" in lines[0]
    assert merged["init_args"]["estimator"]["class_path"] == "estimators.wake_sleep.WakeSleep"


def test_the_loggers_a_checkpoint_records_are_compared_by_name_never_imported(tmp_path, monkeypatch):
    import estimators.registry

    imported = []
    real = estimators.registry.import_class
    monkeypatch.setattr(estimators.registry, "import_class", lambda path, what="class": imported.append(path) or real(path, what))
    logger = {"class_path": "pytorch_lightning.loggers.CSVLogger", "init_args": {"save_dir": str(tmp_path), "name": "x"}}
    record = [{"class_path": "this.CSVLogger", "save_dir": str(tmp_path), "name": "x", "version": 3}]
    assert apply_run_record([logger], record, "fit") == [] and "version" not in logger["init_args"]
    record[0]["class_path"] = "pytorch_lightning.loggers.csv_logs.CSVLogger"
    assert apply_run_record([logger], record, "fit") and logger["init_args"]["version"] == 3
    assert imported and all(not path.startswith("this") for path in imported)
