"""Runs are reproducible on CPU: the same seed and config give the same training losses, and
another seed gives other ones."""
import pytest

from ram_lightning.run.cli import main
from tests.tiny_run import ROOT

STEPS = 20



def first_losses(root, seed: int, tiny_config, write_config, read_metrics) -> list:
    """train/loss of the first STEPS steps of the tiny config (batches of 8, no validation)."""
    config = tiny_config(root)
    config["seed_everything"] = seed
    config["trainer"].update(limit_train_batches=STEPS, limit_val_batches=0, enable_checkpointing=False, callbacks=[])
    config["data"]["init_args"].update(train_size=8 * STEPS, batch_size=8)
    main(["fit", "--config", str(write_config(root / "seed.yaml", config)), "--test_after_fit", "false"])
    losses = [row["train/loss"] for row in read_metrics(root).rows if "train/loss" in row]
    assert len(losses) == STEPS
    return losses


@pytest.mark.slow
def test_the_same_seed_gives_the_same_losses_and_another_seed_other_ones(tmp_path, monkeypatch, tiny_config, write_config,
                                                                        read_metrics):
    monkeypatch.chdir(ROOT)
    runs = {}
    for name, seed in (("first", 1), ("again", 1), ("other", 2)):
        (tmp_path / name).mkdir()
        runs[name] = first_losses(tmp_path / name, seed, tiny_config, write_config, read_metrics)
    assert runs["again"] == runs["first"]
    assert all(a != b for a, b in zip(runs["other"], runs["first"]))


def losses_validating_every(root, every: int, tiny_config, write_config, read_metrics) -> list:
    """train/loss of the first 12 steps of the tiny config, validating every ``every`` steps."""
    config = tiny_config(root, estimator="wake_sleep_cv")
    config["trainer"].update(max_epochs=None, max_steps=12, limit_train_batches=None, limit_val_batches=2,
                             val_check_interval=every, check_val_every_n_epoch=None,
                             enable_checkpointing=False, callbacks=[])
    config["data"]["init_args"].update(train_size=8 * 12, batch_size=8)
    main(["fit", "--config", str(write_config(root / "every.yaml", config)), "--test_after_fit", "false"])
    rows = read_metrics(root).rows
    losses = [row["train/loss"] for row in rows if "train/loss" in row]
    validations = {int(row["step"]): row["val/error"] for row in rows if "val/error" in row}
    assert len(losses) == 12 and validations
    return losses, validations


@pytest.mark.slow
def test_how_often_one_validates_never_changes_the_training_draws(tmp_path, monkeypatch, tiny_config, write_config, read_metrics):
    monkeypatch.chdir(ROOT)
    (tmp_path / "four").mkdir()
    (tmp_path / "six").mkdir()
    tools = (tiny_config, write_config, read_metrics)
    four, val_four = losses_validating_every(tmp_path / "four", 4, *tools)
    six, val_six = losses_validating_every(tmp_path / "six", 6, *tools)
    assert four == six
    # an evaluation at a given step is the same whatever evaluations came before it
    shared = set(val_four) & set(val_six)
    assert shared and all(val_four[step] == val_six[step] for step in shared)
