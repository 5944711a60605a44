"""Runs are reproducible on CPU: the same seed and config give the same training losses, and
another seed gives other ones."""
import pytest

from ram_lightning.cli import main
from tests.tiny_run import ROOT, metric_rows, tiny_config, write_config

STEPS = 20



def first_losses(root, seed: int) -> list:
    """train/loss of the first STEPS steps of the tiny config (batches of 8, no validation)."""
    config = tiny_config(root)
    config["seed_everything"] = seed
    config["trainer"].update(limit_train_batches=STEPS, limit_val_batches=0, enable_checkpointing=False, callbacks=[])
    config["data"]["init_args"].update(train_size=8 * STEPS, batch_size=8)
    main(["fit", "--config", str(write_config(root / "seed.yaml", config)), "--test_after_fit", "false"])
    losses = [row["train/loss"] for row in metric_rows(root) if "train/loss" in row]
    assert len(losses) == STEPS
    return losses


@pytest.mark.slow
def test_the_same_seed_gives_the_same_losses_and_another_seed_other_ones(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    runs = {}
    for name, seed in (("first", 1), ("again", 1), ("other", 2)):
        (tmp_path / name).mkdir()
        runs[name] = first_losses(tmp_path / name, seed)
    assert runs["again"] == runs["first"]
    assert all(a != b for a, b in zip(runs["other"], runs["first"]))
