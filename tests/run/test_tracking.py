"""W&B: the offline run of a tiny fit holds the metrics, hyperparameters and checkpoint folder;
the online / offline decision; the periodic last.ckpt of the shipped configs' checkpointing;
a `ram fit` keeps W&B's files in its run folder and says where they are in one line; an
unreachable W&B server with WANDB_MODE=online is one line within seconds."""
import contextlib
import os
import socket
import subprocess
import threading
import time
from argparse import Namespace
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger, WandbLogger

from ram_lightning.run import tracking
from ram_lightning.errors import UserError
from ram_lightning.viz.glimpses import GlimpsePictures
from ram_lightning.run import wandb_server
from ram_lightning.run.tracking import configure_wandb, ensure_wandb_mode
from ram_lightning.run.wandb_run import WandbRunInfo, WandbRunLine
from ram_lightning.run.wandb_server import can_reach
from tests.viz.test_glimpses import fit_tiny
from tests.run.test_wandb_server import closed_port, silent_listener
from tests.tiny_run import RAM, subprocess_env
from tests.wandb_records import finished_records, read_offline_run

WANDB_VARIABLES = ("WANDB_MODE", "WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_BASE_URL", "WANDB_DIR",
                   "WANDB_DATA_DIR", "WANDB_CACHE_DIR", "WANDB_SHOW_INFO")


def without_wandb_variables(monkeypatch) -> None:
    """No W&B variables, each restored (or removed again) after the test, whatever the code set."""
    for name in WANDB_VARIABLES:
        monkeypatch.setenv(name, "")  # recorded first: the undo restores the value before the test
        monkeypatch.delenv(name)
    monkeypatch.setattr(tracking, "_set_by_ram", {})


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No W&B variables, an empty netrc, and the offline line not yet printed in this process."""
    without_wandb_variables(monkeypatch)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    monkeypatch.setattr(tracking, "_announced", False)
    monkeypatch.chdir(tmp_path)  # configure_wandb creates the W&B folder: here, not in the checkout
    return tmp_path


def no_network_check(monkeypatch) -> list:
    calls = []
    monkeypatch.setattr(tracking, "why_unreachable", lambda host, port, timeout=2.0: calls.append((host, port)) or "refused")
    return calls


class SeesLastCheckpoint(pl.Callback):
    """Whether last.ckpt exists after each training batch, before any checkpoint callback runs."""

    def __init__(self) -> None:
        self.seen = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.seen.append((Path(trainer.checkpoint_callback.dirpath) / "last.ckpt").exists())


@pytest.mark.slow
def test_a_tiny_offline_run_records_metrics_hyperparameters_pictures_and_checkpoints(tmp_path, monkeypatch):
    import wandb

    without_wandb_variables(monkeypatch)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.chdir(tmp_path)
    tracking.keep_wandb_files_in(str(tmp_path / "wb" / "wandb"))  # the artifacts' staged copies: in the run folder
    wandb_logger = WandbLogger(project="ram-lightning-test", name="tiny", save_dir=str(tmp_path / "wb"), log_model=True)
    spy = SeesLastCheckpoint()
    callbacks = [  # the shipped configs' checkpointing, with the period shortened from 500 to 2 steps
        ModelCheckpoint(monitor="val/error", mode="min"),
        ModelCheckpoint(filename="last", enable_version_counter=False),
        ModelCheckpoint(filename="last", every_n_train_steps=2, enable_version_counter=False),
        WandbRunInfo(), GlimpsePictures(num_images=2), spy,
    ]
    try:
        trainer = fit_tiny(tmp_path, callbacks, loggers=[CSVLogger(tmp_path, name="tiny"), wandb_logger])
    finally:
        wandb.finish()
    checkpoint_dir = Path(trainer.checkpoint_callback.dirpath)
    assert spy.seen == [False, False, True]  # the periodic last.ckpt at step 2, before any validation
    assert len(list(checkpoint_dir.glob("epoch=0-step=3*.ckpt"))) == 1  # the best
    assert sorted(p.name for p in checkpoint_dir.glob("last*.ckpt")) == ["last.ckpt"]  # shared, no last-v1
    assert torch.load(checkpoint_dir / "last.ckpt", map_location="cpu", weights_only=True)["global_step"] == 3  # the end

    (run_dir,) = (tmp_path / "wb" / "wandb").glob("offline-run-*")
    run = read_offline_run(run_dir)
    assert run["run"].project == "ram-lightning-test" and run["run"].display_name == "tiny"
    config = run["config"]
    assert config["glimpse_size"] == 6 and config["num_glimpses"] == 2  # the module's hyperparameters
    assert config["checkpoint_dir"] == str(checkpoint_dir.resolve())
    assert config["estimator"].startswith("Reinforce(num_samples=1")
    logged = set().union(*run["history"])
    expected = {"train/loss", "train/reward", "train/error", "val/error", "val/error_avg3", "val/log_likelihood", "trainer/global_step"}
    assert expected <= logged, expected - logged
    (picture,) = run["summary"]["val/glimpses/filenames"]
    assert (run_dir / "files" / picture).is_file()

    (run_file,) = run_dir.glob("run-*.wandb")
    artifacts = [r.artifact for r in finished_records(run_file) if r.WhichOneof("record_type") == "artifact"]
    assert artifacts and {a.type for a in artifacts} == {"model"}  # log_model: checkpoints as W&B artifacts
    logged_files = {entry.path for a in artifacts for entry in a.manifest.contents}
    assert logged_files == {"model.ckpt"}
    staging = tmp_path / "wb" / "wandb" / "artifacts" / "staging"
    assert all(Path(entry.local_path).parent == staging for a in artifacts for entry in a.manifest.contents)
    assert any("best" in a.aliases for a in artifacts)


def test_no_api_key_goes_offline_and_says_so_once(clean_env, monkeypatch, capsys):
    calls = no_network_check(monkeypatch)
    assert ensure_wandb_mode("runs/quickstart") == "offline"
    assert tracking.os.environ["WANDB_MODE"] == "offline"
    monkeypatch.delenv("WANDB_MODE")
    assert ensure_wandb_mode("runs/quickstart") == "offline"
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [
        "W&B: no API key found; logging offline to runs/quickstart/wandb (upload later with: wandb sync runs/quickstart/wandb)"
    ]
    assert calls == []  # no key: no need to try the network


KEY = "0123456789abcdef" * 3  # the 40+ characters wandb's own check asks for


def test_a_key_in_netrc_and_no_network_goes_offline(clean_env, monkeypatch, capsys):
    (clean_env / "netrc").write_text(f"machine api.wandb.ai\n  login user\n  password {KEY}\n")

    def refuse(address, timeout=None):
        raise OSError("network unreachable")

    monkeypatch.setattr(wandb_server.socket, "create_connection", refuse)
    assert ensure_wandb_mode() == "offline"
    assert "api.wandb.ai:443 not reachable (network unreachable); logging offline to ./wandb" in capsys.readouterr().err


def test_the_key_lookup_is_wandbs_own_and_needs_no_network(clean_env, monkeypatch):
    from wandb.sdk.lib.wbauth import read_netrc_auth

    def refuse(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    netrc = clean_env / "netrc"
    assert not tracking.has_api_key("api.wandb.ai")  # no netrc file at all
    netrc.write_text("machine other.host\n  login user\n  password " + KEY + "\n")
    assert not tracking.has_api_key("api.wandb.ai") and read_netrc_auth(host="https://api.wandb.ai") is None
    netrc.write_text("machine api.wandb.ai\n  login user\n  password " + KEY + "\n")
    assert tracking.has_api_key("api.wandb.ai") and read_netrc_auth(host="https://api.wandb.ai") == KEY
    monkeypatch.setenv("WANDB_BASE_URL", "http://wandb.local:8080")
    netrc.write_text("machine wandb.local:8080\n  login user\n  password " + KEY + "\n")
    assert tracking.has_api_key(tracking.wandb_host()[0])
    monkeypatch.delenv("WANDB_BASE_URL")
    netrc.write_text("machine api.wandb.ai\n  login user\n  password short\n")  # wandb would refuse it
    with pytest.raises(UserError, match="W&B API key for api.wandb.ai in the netrc file is not valid"):
        tracking.has_api_key("api.wandb.ai")


def test_a_key_and_the_network_go_online_silently(clean_env, monkeypatch, capsys):
    monkeypatch.setenv("WANDB_API_KEY", "0123456789abcdef")
    monkeypatch.setattr(tracking, "why_unreachable", lambda host, port, timeout=2.0: None)  # it answers
    assert ensure_wandb_mode("runs/x") == "online" and tracking.os.environ["WANDB_MODE"] == "online"
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("mode, expected", [("offline", "offline"), ("disabled", "disabled"), ("dryrun", "offline")])
def test_an_explicit_wandb_mode_wins(clean_env, monkeypatch, capsys, mode, expected):
    monkeypatch.setenv("WANDB_MODE", mode)
    calls = no_network_check(monkeypatch)
    assert ensure_wandb_mode("runs/x") == expected
    assert tracking.os.environ["WANDB_MODE"] == mode and calls == [] and capsys.readouterr().err == ""


def test_explicit_online_without_a_key_is_an_error_not_a_login_prompt(clean_env, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "online")
    with pytest.raises(UserError, match="WANDB_MODE=online but no W&B API key"):
        ensure_wandb_mode()
    monkeypatch.setenv("WANDB_MODE", "onlin")
    with pytest.raises(UserError, match="not a W&B mode"):
        ensure_wandb_mode()


def test_a_slow_name_lookup_counts_as_no_network(monkeypatch):
    def slow_lookup(address, timeout=None):
        time.sleep(2)  # name resolution does not honour the socket timeout
        raise OSError("timed out")

    monkeypatch.setattr(wandb_server.socket, "create_connection", slow_lookup)
    start = time.monotonic()
    assert not can_reach("api.wandb.ai", 443, timeout=0.2)
    assert time.monotonic() - start < 1.0


def test_configure_wandb_reads_the_logger_config(clean_env, monkeypatch, capsys):
    calls = no_network_check(monkeypatch)
    csv = Namespace(class_path="pytorch_lightning.loggers.CSVLogger", init_args=Namespace(save_dir="runs"))
    assert configure_wandb(csv) is None and configure_wandb(None) is None and configure_wandb(False) is None
    wandb_logger = Namespace(class_path="pytorch_lightning.loggers.WandbLogger",
                             init_args=Namespace(save_dir="runs/q", offline=False, mode=None))
    assert configure_wandb([csv, wandb_logger]) == "offline"
    assert "logging offline to runs/q/wandb" in capsys.readouterr().err and calls == []
    forced = {"class_path": "pytorch_lightning.loggers.WandbLogger", "init_args": {"offline": True}}
    assert configure_wandb([forced]) == "offline"
    online = {"class_path": "pytorch_lightning.loggers.WandbLogger", "init_args": {"mode": "online"}}
    with pytest.raises(UserError, match="trainer.logger.init_args.mode=online but no W&B API key"):
        configure_wandb(online)


@pytest.mark.parametrize("config", sorted(p.name for p in (Path(__file__).resolve().parents[2] / "configs").glob("*.yaml")))
def test_every_shipped_config_logs_to_wandb_checkpoints_periodically_and_draws_glimpses(config, clean_env, monkeypatch, capsys):
    from tests.run.test_defaults import resolved_config

    full = resolved_config(["--config", f"configs/{config}"], monkeypatch, capsys)  # composed with the shared defaults
    monkeypatch.chdir(clean_env)
    trainer = full["trainer"]
    captions = full["model"]["class_path"].endswith("AttentionCaptioner")
    loggers = {entry["class_path"].rsplit(".", 1)[-1]: entry["init_args"] for entry in trainer["logger"]}
    wandb_args, csv_args = loggers["WandbLogger"], loggers["CSVLogger"]
    assert list(loggers)[0] == "CSVLogger"  # first: checkpoints and pictures go to its version_N folder
    assert wandb_args["project"] == "ram-lightning" and wandb_args["name"] == csv_args["name"]
    assert wandb_args["log_model"] is True  # the kept checkpoints become W&B artifacts
    assert wandb_args["save_dir"] == trainer["default_root_dir"] == f"runs/{csv_args['name']}"
    callbacks = [(entry["class_path"].rsplit(".", 1)[-1], entry.get("init_args", {})) for entry in trainer["callbacks"]]
    best, every_epoch, every_500_steps = [args for name, args in callbacks if name == "ModelCheckpoint"]
    # the first checkpoint: `ram fit` tests its best
    assert (best["monitor"], best["mode"]) == (("val/bleu4", "max") if captions else ("val/error", "min"))
    assert (every_epoch["filename"], every_epoch["enable_version_counter"], every_epoch["every_n_train_steps"]) == ("last", False, None)
    assert (every_500_steps["filename"], every_500_steps["every_n_train_steps"]) == ("last", 500)  # overwrites last.ckpt
    assert not every_500_steps["enable_version_counter"]
    assert {"WandbRunInfo", "AttentionPictures"} <= {name for name, _ in callbacks}
    calls = no_network_check(monkeypatch)
    assert configure_wandb(trainer["logger"]) == "offline" and calls == []
    assert f"logging offline to runs/{csv_args['name']}/wandb" in capsys.readouterr().err


def test_explicit_online_with_a_server_that_does_not_answer_is_an_error_not_a_hang(clean_env, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setenv("WANDB_API_KEY", KEY)
    calls = no_network_check(monkeypatch)
    with pytest.raises(UserError) as raised:
        ensure_wandb_mode("runs/q")
    assert str(raised.value) == (
        "W&B is unreachable at api.wandb.ai:443 (refused) and WANDB_MODE=online asks for it; nothing was run. "
        "Log offline with WANDB_MODE=offline (or unset it: ram then goes offline by itself) and upload later with: wandb sync runs/q/wandb"
    )
    assert calls == [("api.wandb.ai", 443)]


def test_configure_wandb_keeps_wandbs_files_in_the_run_folder_and_quiets_wandb(clean_env, monkeypatch, capsys):
    no_network_check(monkeypatch)
    logger = {"class_path": "pytorch_lightning.loggers.WandbLogger", "init_args": {"save_dir": "runs/q"}}
    monkeypatch.setenv("WANDB_MODE", "offline")  # chosen by the user: said too, since wandb no longer says it
    assert configure_wandb(logger) == "offline"
    folder = clean_env / "runs" / "q" / "wandb"
    assert os.environ["WANDB_DATA_DIR"] == str(folder)  # wandb stages artifact files in <data dir>/artifacts/staging
    assert os.environ["WANDB_CACHE_DIR"] == str(folder / "cache")
    assert os.environ["WANDB_SHOW_INFO"] == "false"
    assert capsys.readouterr().err == (
        "W&B: WANDB_MODE=offline; logging offline to runs/q/wandb (upload later with: wandb sync runs/q/wandb)\n")
    configure_wandb({**logger, "init_args": {"save_dir": "runs/r"}})  # the next run in this process: its own folder
    assert os.environ["WANDB_DATA_DIR"] == str(clean_env / "runs" / "r" / "wandb")
    monkeypatch.setenv("WANDB_DATA_DIR", "/elsewhere")  # the user's own choice is kept
    monkeypatch.setenv("WANDB_SHOW_INFO", "true")
    configure_wandb(logger)
    assert os.environ["WANDB_DATA_DIR"] == "/elsewhere" and os.environ["WANDB_SHOW_INFO"] == "true"
    assert os.environ["WANDB_CACHE_DIR"] == str(folder / "cache")


def test_an_online_run_is_said_once_with_its_url(monkeypatch, capsys):
    class Run:
        offline, disabled, id, url = False, False, "abc123", "https://wandb.ai/me/ram-lightning/runs/abc123"

    class OfflineRun(Run):
        offline, id = True, "off456"

    monkeypatch.setattr(WandbRunLine, "_said", set())
    callback = WandbRunLine()
    for run in (Run(), OfflineRun()):
        trainer = Namespace(is_global_zero=True, loggers=[CSVLogger("unused"), WandbLogger(experiment=run)])
        callback.setup(trainer, None, "fit")
        callback.setup(trainer, None, "test")  # `ram fit` tests after fitting: the same run
    assert capsys.readouterr().err == "W&B: logging online to https://wandb.ai/me/ram-lightning/runs/abc123\n"


def ram_env(home: Path, **variables: str) -> dict:
    """The environment of a `ram` subprocess with ``home`` as HOME (no XDG folders, no W&B or
    proxy variables but ``variables``): what wandb writes outside the run folder lands there."""
    dropped = ("WANDB_", "XDG_", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")
    env = {name: value for name, value in subprocess_env().items() if not name.startswith(dropped)}
    return {**env, "HOME": str(home), "NETRC": str(home / "netrc"), **variables}


def tiny_wandb_config(root: Path, tiny_config, write_config) -> Path:
    """The tiny config logging to CSV and W&B (checkpoints as artifacts), both in root/tiny."""
    config = tiny_config(root)
    config["trainer"]["logger"] = [config["trainer"]["logger"], {
        "class_path": "pytorch_lightning.loggers.WandbLogger",
        "init_args": {"project": "ram-test", "name": "tiny", "save_dir": str(root / "tiny"), "log_model": True}}]
    return write_config(root, config)


@pytest.fixture(scope="module")
def offline_fit(tmp_path_factory, tiny_config, write_config):
    """One `ram fit` of the tiny config with W&B and no API key (so offline), HOME an empty folder."""
    root = tmp_path_factory.mktemp("offline_fit")
    home = root / "home"
    home.mkdir()
    config = tiny_wandb_config(root, tiny_config, write_config)
    result = subprocess.run(RAM + ["fit", "--config", str(config)], cwd=root, env=ram_env(home),
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return root, home, result


def unstyled_lines(text: str) -> list:
    import re

    return [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in text.splitlines()]


@pytest.mark.slow
def test_an_offline_fit_keeps_every_wandb_file_in_its_run_folder(offline_fit):
    root, home, _ = offline_fit
    folder = root / "tiny" / "wandb"
    assert not [str(path) for path in home.rglob("*") if "wandb" in path.name.lower()]  # ~/.local/share/wandb, ~/.cache/wandb
    (run_file,) = folder.glob("offline-run-*/run-*.wandb")
    entries = [entry for record in finished_records(run_file) if record.WhichOneof("record_type") == "artifact"
               for entry in record.artifact.manifest.contents]
    assert len(entries) == 2  # the best and the last checkpoint, each staged as a copy for `wandb sync`
    for entry in entries:
        staged = Path(entry.local_path)
        assert staged.is_absolute() and staged.parent == folder / "artifacts" / "staging"  # absolute: wandb's own choice
        assert staged.stat().st_size == entry.size
    assert list((folder / "cache").rglob("core-debug-*.log"))  # wandb-core's own log: beside the run too


@pytest.mark.slow
def test_an_offline_fit_says_where_its_wandb_run_is_in_one_line(offline_fit):
    root, _, result = offline_fit
    lines = unstyled_lines(result.stdout) + unstyled_lines(result.stderr)
    assert not [line for line in lines if line.startswith("wandb:")]  # no banner, no end lines, no summary
    folder = root / "tiny" / "wandb"
    assert [line for line in lines if "W&B" in line or "wandb" in line] == [
        f"W&B: no API key found; logging offline to {folder} (upload later with: wandb sync {folder})"]


@pytest.mark.slow
def test_quieted_wandb_still_says_its_warnings(tmp_path, tiny_config, write_config):
    config = tiny_wandb_config(tmp_path, tiny_config, write_config)
    home = tmp_path / "home"
    home.mkdir()
    result = subprocess.run(RAM + ["fit", "--config", str(config), "--trainer.logger.init_args.anonymous", "true",
                                   "--trainer.max_steps", "1", "--test_after_fit", "false"],
                            cwd=tmp_path, env=ram_env(home, WANDB_MODE="offline"), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = unstyled_lines(result.stdout) + unstyled_lines(result.stderr)
    # anonymous set by the config: wandb's warning about it stays (the None Lightning passes by default is dropped)
    assert [line for line in lines if line.startswith("wandb:")] == [
        "wandb: WARNING The anonymous setting has no effect and will be removed in a future version."]


def timed_lines(command: list, timeout: float, **kwargs) -> tuple:
    """Run ``command``; (exit status, [(seconds since start, stderr line), ...]). Killed after ``timeout`` s."""
    lines = []
    start = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, **kwargs)

    def read() -> None:
        for line in process.stderr:
            lines.append((time.monotonic() - start, line.rstrip("\n")))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        status = process.wait(timeout=timeout)
    finally:
        process.kill()
    reader.join(5)
    return status, lines


@pytest.mark.slow
@pytest.mark.parametrize("server", ["closed port", "silent listener"])
def test_wandb_mode_online_with_an_unreachable_server_is_one_line_within_seconds(server, tmp_path, tiny_config, write_config):
    """The W&B check costs at most its 2 s timeout, and overlaps with torch's import: on the
    shared 2-core machine where this was written the error line came 3.6-4.9 s after the start
    at a load of 1-2, 6-10 s at a load of 4 (Python and torch starting took nearly all of it);
    the run used to hang 106 s, then print a CommError traceback. What the test can hold on any
    machine: the error line follows the line before the check ("Seed set to") within 3 s."""
    config = tiny_wandb_config(tmp_path, tiny_config, write_config)
    home = tmp_path / "home"
    home.mkdir()
    with (silent_listener() if server == "silent listener" else contextlib.nullcontext(closed_port())) as port:
        env = ram_env(home, WANDB_MODE="online", WANDB_API_KEY="0123456789abcdef" * 2 + "01234567",
                      WANDB_BASE_URL=f"http://127.0.0.1:{port}")
        status, lines = timed_lines(RAM + ["fit", "--config", str(config)], timeout=60, cwd=tmp_path, env=env)
    text = "\n".join(line for _, line in lines)
    errors = [(seconds, line) for seconds, line in lines if line.startswith("ram: error:")]
    assert status == 2 and len(errors) == 1 and "Traceback" not in text, text[-3000:]
    (seconds, error), = errors
    reason = "connection refused" if server == "closed port" else "no answer in 2 s"
    assert error.startswith(f"ram: error: W&B is unreachable at 127.0.0.1:{port} ({reason}) and WANDB_MODE=online asks for it;")
    assert "nothing was run" in error and "WANDB_MODE=offline" in error and "wandb sync" in error
    (seeded,) = [at for at, line in lines if line.startswith("Seed set to")]
    assert seconds - seeded < 3, f"the W&B check took {seconds - seeded:.1f} s ({seconds:.1f} s from the start)"
    assert not (tmp_path / "tiny" / "version_0").exists()  # nothing was run
