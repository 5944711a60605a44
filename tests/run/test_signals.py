"""SIGTERM (a real signal to a real ``ram fit`` process) and Ctrl-C (a real SIGINT the run sends
itself, in-process) save a resumable checkpoint, print one line with the resume command, and the
resumed run continues from that step."""
import os
import re
import signal
import subprocess
import time

import pytest
import torch

from ram_lightning.run.cli import main
from ram_lightning.run.signals import resume_command
import pytorch_lightning as pl

from tests.run.test_resume import RecordState, SlowSteps  # noqa: F401  (class paths used in the config)
from tests.tiny_run import RAM, ROOT, load_checkpoint, subprocess_env

STEPS_PER_EPOCH, EPOCHS = 4, 6


class SignalSelf(pl.Callback):
    """Sends ``signum`` to this very process after training step ``step`` (a real Ctrl-C, in-process)."""

    def __init__(self, step: int = 3, signum: int = int(signal.SIGINT)) -> None:
        self.step, self.signum = step, signum

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), self.signum)


def interrupt_config(root, tiny_config, write_config, extra=(), step_seconds: float = 0.15):
    config = tiny_config(root, {"class_path": "estimators.Reinforce", "init_args": {"baseline": "moving_average"}})
    config["trainer"].update(max_epochs=EPOCHS, limit_train_batches=STEPS_PER_EPOCH, limit_val_batches=0, callbacks=[
        {"class_path": "pytorch_lightning.callbacks.ModelCheckpoint", "init_args": {"every_n_train_steps": 2, "save_last": True}},
        {"class_path": "tests.run.test_resume.SlowSteps", "init_args": {"seconds": step_seconds}},
        {"class_path": "tests.run.test_resume.RecordState", "init_args": {"path": str(root / "states.pt")}}, *extra,
    ])
    config["model"]["init_args"]["lr_scheduler"] = {"class_path": "torch.optim.lr_scheduler.StepLR", "init_args": {"step_size": 1}}
    config["data"]["init_args"].update(train_size=32 * STEPS_PER_EPOCH)
    return write_config(root / "interrupt.yaml", config)


def run_and_signal(config, root, signum, timeout: float = 90.0):
    """Start ``ram fit``, send ``signum`` once a checkpoint of step >= 3 exists; returns (status, output)."""
    process = subprocess.Popen(RAM + ["fit", "--config", str(config), "--test_after_fit", "false"], cwd=ROOT,
                               env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and process.poll() is None:
            last = next((root / "tiny").glob("version_*/checkpoints/last.ckpt"), None)
            if last is not None and load_checkpoint(last)["global_step"] >= 3:
                process.send_signal(signum)
                break
            time.sleep(0.05)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    return process.returncode, output


def check_line_and_resume(line, config, root, signum, args):
    """The printed line names ``signum``, the step and a checkpoint of that step; running the
    printed command continues from there to the end, in the same run folder."""
    match = re.fullmatch(rf"Stopped by {signum.name} at step (\d+): checkpoint (\S+); resume with: (.+)", line)
    assert match, line
    step, path, command = int(match[1]), match[2], match[3]
    assert command == resume_command(args, path)
    saved = load_checkpoint(path)
    assert saved["global_step"] == step and step < EPOCHS * STEPS_PER_EPOCH
    assert saved["optimizer_states"][0]["state"][0]["step"] == step  # the step in progress was completed, not cut

    main(command.split()[1:])  # the printed command, as the user would run it

    states = torch.load(root / "states.pt", weights_only=True)
    assert states["start"]["global_step"] == step and states["start"]["adam"]["step"] == step
    assert torch.equal(states["start"]["reward_average"], saved["state_dict"]["estimator.reward_average"])
    assert states["end"]["global_step"] == states["end"]["adam"]["step"] == EPOCHS * STEPS_PER_EPOCH
    assert len(list((root / "tiny").glob("version_*"))) == 1  # resumed in the same run folder


def fit_with_ctrl_c(tmp_path, monkeypatch, capsys, tiny_config, write_config, callback: str):
    """``ram fit`` in-process with the Ctrl-C callback ``tests.run.test_signals.<callback>`` at step 3;
    checks the exit status 130; returns (config, args, the stderr lines)."""
    monkeypatch.chdir(ROOT)
    config = interrupt_config(tmp_path, tiny_config, write_config,
                              [{"class_path": f"tests.run.test_signals.{callback}", "init_args": {"step": 3}}], 0.0)
    args = ["fit", "--config", str(config), "--test_after_fit", "false"]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 128 + signal.SIGINT
    return config, args, capsys.readouterr().err.strip().splitlines()


@pytest.mark.slow
def test_sigterm_to_a_real_ram_process_saves_says_how_to_resume_and_the_resumed_run_continues(tmp_path, monkeypatch,
                                                                                              tiny_config,
                                                                                              write_config):
    monkeypatch.chdir(ROOT)
    config = interrupt_config(tmp_path, tiny_config, write_config)
    status, output = run_and_signal(config, tmp_path, signal.SIGTERM)
    assert status == 128 + signal.SIGTERM, output[-3000:]
    assert "`weights_only` was not set" not in output  # Lightning's line about the full-state save: silenced
    args = ["fit", "--config", str(config), "--test_after_fit", "false"]
    check_line_and_resume(output.strip().splitlines()[-1], config, tmp_path, signal.SIGTERM, args)


@pytest.mark.slow
def test_ctrl_c_saves_says_how_to_resume_and_the_resumed_run_continues(tmp_path, monkeypatch, capsys, tiny_config,
                                                                       write_config):
    config, args, lines = fit_with_ctrl_c(tmp_path, monkeypatch, capsys, tiny_config, write_config, "SignalSelf")
    assert lines[-1].startswith("Stopped by SIGINT at step 3: ")
    check_line_and_resume(lines[-1], config, tmp_path, signal.SIGINT, args)


def test_the_resume_command_replaces_an_earlier_ckpt_path():
    assert resume_command(["fit", "--config", "a b.yaml", "--ckpt_path", "old.ckpt"], "new.ckpt") == \
        "ram fit --config 'a b.yaml' --ckpt_path new.ckpt"
    assert resume_command(["fit", "--ckpt_path=old.ckpt"], "n.ckpt") == "ram fit --ckpt_path n.ckpt"


class SignalDuringSave(SignalSelf):
    """Ctrl-C at step ``step``, and again (``again`` times) while the interrupt's checkpoint is being written."""

    def __init__(self, step: int = 3, again: int = 2) -> None:
        super().__init__(step)
        self.again = again

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        if trainer.received_sigterm or trainer._signal_connector.received_sigterm:  # the interrupt's own save
            for _ in range(self.again):
                os.kill(os.getpid(), signal.SIGINT)


class SecondCtrlC(SignalSelf):
    """Ctrl-C after step ``step`` and again right away, before the step ends (a slow step)."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)


@pytest.mark.slow
def test_ctrl_c_during_the_interrupt_save_waits_for_the_checkpoint(tmp_path, monkeypatch, capsys, tiny_config, write_config):
    config, args, lines = fit_with_ctrl_c(tmp_path, monkeypatch, capsys, tiny_config, write_config, "SignalDuringSave")
    assert lines.count("SIGINT again: finishing the checkpoint first (it is being written)") == 1
    assert lines[-1].startswith("Stopped by SIGINT at step 3: ")
    check_line_and_resume(lines[-1], config, tmp_path, signal.SIGINT, args)


@pytest.mark.slow
def test_a_second_ctrl_c_before_the_save_stops_at_once_and_names_the_last_checkpoint(tmp_path, monkeypatch, capsys,
                                                                                      tiny_config, write_config):
    _, _, lines = fit_with_ctrl_c(tmp_path, monkeypatch, capsys, tiny_config, write_config, "SecondCtrlC")
    line = lines[-1]
    last = next((tmp_path / "tiny").glob("version_*/checkpoints/last.ckpt"))
    assert line.startswith(f"Stopped by a second SIGINT at step 3, before saving: the last checkpoint is {last} (step 2); "
                           f"resume with: ram fit"), line
