"""A run killed by SIGKILL mid-epoch resumes from its last checkpoint with ``--ckpt_path``:
global step, optimizer state, learning-rate schedule and estimator state all continue."""
import copy
import shutil
import signal
import subprocess
import time

import pytest
import pytorch_lightning as pl
import torch

from ram_lightning.run.cli import main
from tests.tiny_run import RAM, ROOT, load_checkpoint, subprocess_env


STEPS_PER_EPOCH = 4
EPOCHS = 4
SAVE_EVERY = 3   # checkpoints at steps 3, 6, 9, ...: most fall inside an epoch
KILL_AFTER = 9   # kill at a checkpoint of step >= 9 (epoch >= 2: the scheduler has stepped twice)
LR, GAMMA = 0.01, 0.5


class SlowSteps(pl.Callback):
    """Sleeps after every training batch, so that the test can kill the run between checkpoints."""

    def __init__(self, seconds: float = 0.1) -> None:
        self.seconds = seconds

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        time.sleep(self.seconds)


class RecordState(pl.Callback):
    """Saves to ``path``, when training ends, the training state at its first batch and at its end."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.states = {}

    @staticmethod
    def state(trainer, pl_module, batch_idx=None) -> dict:
        optimizer, scheduler = trainer.optimizers[0], trainer.lr_scheduler_configs[0].scheduler
        return {
            "global_step": trainer.global_step, "epoch": trainer.current_epoch, "batch_idx": batch_idx,
            "adam": copy.deepcopy(optimizer.state_dict()["state"].get(0)), "lr": optimizer.param_groups[0]["lr"],
            "scheduler_epoch": scheduler.last_epoch, "reward_average": pl_module.estimator.reward_average.clone(),
        }

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.states.setdefault("start", self.state(trainer, pl_module, batch_idx))

    def on_train_end(self, trainer, pl_module) -> None:
        self.states["end"] = self.state(trainer, pl_module)
        torch.save(self.states, self.path)


def resume_config(root, tiny_config, write_config):
    config = tiny_config(root, {"class_path": "estimators.Reinforce", "init_args": {"baseline": "moving_average"}})
    config["trainer"].update(max_epochs=EPOCHS, limit_train_batches=STEPS_PER_EPOCH, limit_val_batches=0, callbacks=[
        {"class_path": "pytorch_lightning.callbacks.ModelCheckpoint",
         "init_args": {"every_n_train_steps": SAVE_EVERY, "save_last": True}},
        {"class_path": "tests.run.test_resume.SlowSteps"},
        {"class_path": "tests.run.test_resume.RecordState", "init_args": {"path": str(root / "states.pt")}},
    ])
    config["model"]["init_args"]["optimizer"] = {"class_path": "torch.optim.Adam", "init_args": {"lr": LR}}
    config["model"]["init_args"]["lr_scheduler"] = {"class_path": "torch.optim.lr_scheduler.StepLR",
                                                    "init_args": {"step_size": 1, "gamma": GAMMA}}
    config["data"]["init_args"].update(train_size=32 * STEPS_PER_EPOCH)
    return write_config(root / "resume.yaml", config)


def run_until_killed(config, root, timeout: float = 60.0) -> dict:
    """Start ``ram fit`` in a subprocess and SIGKILL it once last.ckpt is from a step >= KILL_AFTER
    inside an epoch; returns that checkpoint."""
    checkpoints, log = root / "tiny", root / "killed_run.log"
    with open(log, "w") as output:
        process = subprocess.Popen(RAM + ["fit", "--config", str(config), "--test_after_fit", "false"], cwd=ROOT,
                                   env=subprocess_env(), stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and process.poll() is None:
            last = next(checkpoints.glob("version_*/checkpoints/last.ckpt"), None)
            step = load_checkpoint(last)["global_step"] if last is not None else 0
            if step >= KILL_AFTER and step % STEPS_PER_EPOCH:  # a checkpoint from inside an epoch
                process.send_signal(signal.SIGKILL)
                break
            time.sleep(0.02)
        returncode = process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
    assert returncode == -signal.SIGKILL, f"the run ended by itself ({returncode}): {log.read_text()[-2000:]}"
    return load_checkpoint(last)


@pytest.mark.slow
def test_a_run_killed_mid_epoch_resumes_where_its_checkpoint_left_off(tmp_path, monkeypatch, tiny_config, write_config):
    monkeypatch.chdir(ROOT)
    config = resume_config(tmp_path, tiny_config, write_config)
    killed = run_until_killed(config, tmp_path)
    step, epoch = killed["global_step"], killed["epoch"]
    assert step >= KILL_AFTER and step % STEPS_PER_EPOCH != 0, "the checkpoint is from inside an epoch"
    saved = tmp_path / "killed.ckpt"  # the resumed run continues its folder and rewrites last.ckpt
    shutil.copy(next((tmp_path / "tiny").glob("version_*/checkpoints/last.ckpt")), saved)

    main(["fit", "--config", str(config), "--ckpt_path", str(saved), "--test_after_fit", "false"])

    # The resumed run starts from the checkpoint's state ...
    states = torch.load(tmp_path / "states.pt", weights_only=True)
    start, end = states["start"], states["end"]
    adam = killed["optimizer_states"][0]["state"][0]
    assert (start["global_step"], start["epoch"], start["batch_idx"]) == (step, epoch, step % STEPS_PER_EPOCH)
    assert start["adam"]["step"] == adam["step"] == step
    assert torch.equal(start["adam"]["exp_avg"], adam["exp_avg"]) and torch.equal(start["adam"]["exp_avg_sq"], adam["exp_avg_sq"])
    assert start["scheduler_epoch"] == killed["lr_schedulers"][0]["last_epoch"] == epoch
    assert start["lr"] == pytest.approx(LR * GAMMA**epoch)
    assert torch.equal(start["reward_average"], killed["state_dict"]["estimator.reward_average"])
    # ... and carries it on to the end, as one uninterrupted run would: the rest of the epoch, then the
    # remaining epochs, with Adam's step count, the schedule and the moving average continued.
    total = EPOCHS * STEPS_PER_EPOCH
    assert end["global_step"] == end["adam"]["step"] == total  # Adam's count not restarted at 0
    assert end["scheduler_epoch"] == EPOCHS and end["lr"] == pytest.approx(LR * GAMMA**EPOCHS)
    assert not torch.equal(end["reward_average"], start["reward_average"])
