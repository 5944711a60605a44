"""A ``ram`` run prints what informs and none of the lines that tell a user nothing."""
import subprocess

import pytest

from tests.tiny_run import RAM, ROOT, subprocess_env

NOISE = ("not supported by the model summary", "LeafSpec", "skip_none", "could not find the monitored key",
         "`weights_only` was not set", "💡 Tip")


@pytest.mark.slow
def test_a_run_stopped_before_validation_says_so_in_one_line_and_prints_no_noise(tmp_path, tiny_config, write_config):
    config = tiny_config(tmp_path)
    config["trainer"].update(precision="bf16-mixed", enable_model_summary=True, max_steps=2)
    run = subprocess.run(RAM + ["fit", "--config", str(write_config(tmp_path, config))], cwd=ROOT, env=subprocess_env(),
                         capture_output=True, text=True, timeout=300)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-3000:]
    assert [line for line in output.splitlines() if any(noise in line for noise in NOISE)] == []
    assert "No validation ran before training stopped at step 2: no best checkpoint by val/error was chosen" in run.stderr
    assert "Total params" in output  # the summary itself still shows


@pytest.mark.slow
def test_after_a_validation_a_misspelt_monitor_is_still_warned_about(tmp_path, tiny_config, write_config):
    config = tiny_config(tmp_path)
    config["trainer"]["callbacks"][0]["init_args"]["monitor"] = "val/eror"
    run = subprocess.run(RAM + ["fit", "--config", str(write_config(tmp_path, config)), "--test_after_fit", "false"],
                         cwd=ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert "`ModelCheckpoint(monitor='val/eror')` could not find the monitored key" in run.stdout + run.stderr
