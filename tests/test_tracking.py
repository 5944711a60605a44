"""W&B: the offline run of a tiny fit holds the metrics, hyperparameters and checkpoint folder;
the online / offline decision; the periodic last.ckpt of the shipped configs' checkpointing."""
import time
from argparse import Namespace
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger, WandbLogger

from ram_lightning import tracking
from ram_lightning.errors import UserError
from ram_lightning.glimpse_pictures import GlimpsePictures
from ram_lightning.tracking import WandbRunInfo, can_reach, configure_wandb, ensure_wandb_mode
from tests.test_glimpse_pictures import fit_tiny
from tests.wandb_records import read_offline_run

WANDB_VARIABLES = ("WANDB_MODE", "WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_BASE_URL", "WANDB_DIR")


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No W&B variables, an empty netrc, and the offline line not yet printed in this process."""
    for name in WANDB_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    monkeypatch.setattr(tracking, "_announced", False)
    monkeypatch.chdir(tmp_path)  # configure_wandb creates the W&B folder: here, not in the checkout
    return tmp_path


def no_network_check(monkeypatch) -> list:
    calls = []
    monkeypatch.setattr(tracking, "can_reach", lambda host, port, timeout=1.5: calls.append((host, port)) or False)
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

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.chdir(tmp_path)
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
    from tests.wandb_records import finished_records

    (run_file,) = run_dir.glob("run-*.wandb")
    artifacts = [r.artifact for r in finished_records(run_file) if r.WhichOneof("record_type") == "artifact"]
    assert artifacts and {a.type for a in artifacts} == {"model"}  # log_model: checkpoints as W&B artifacts
    logged_files = {entry.path for a in artifacts for entry in a.manifest.contents}
    assert logged_files == {"model.ckpt"}
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

    monkeypatch.setattr(tracking.socket, "create_connection", refuse)
    assert ensure_wandb_mode() == "offline"
    assert "api.wandb.ai:443 not reachable; logging offline to ./wandb" in capsys.readouterr().err


def test_the_key_lookup_is_wandbs_own_and_needs_no_network(clean_env, monkeypatch):
    from wandb.sdk.lib.wbauth import read_netrc_auth

    def refuse(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(tracking.socket, "create_connection", refuse)
    monkeypatch.setattr(tracking.socket, "getaddrinfo", refuse)
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

    class Connection:
        def close(self):
            pass

    monkeypatch.setattr(tracking.socket, "create_connection", lambda address, timeout=None: Connection())
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

    monkeypatch.setattr(tracking.socket, "create_connection", slow_lookup)
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


@pytest.mark.parametrize("config", sorted(p.name for p in (Path(__file__).resolve().parents[1] / "configs").glob("*.yaml")))
def test_every_shipped_config_logs_to_wandb_checkpoints_periodically_and_draws_glimpses(config, clean_env, monkeypatch, capsys):
    from tests.test_run_defaults import resolved_config

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
