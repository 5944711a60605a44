"""Checkpoint loads never run code (local or URL); saves are atomic and a failed save keeps the last one."""
import errno
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from ram_lightning import AttentionClassifier
from ram_lightning.models.checkpoint_reading import CheckpointError, load_checkpoint_file, url_cache_path
from ram_lightning.run.checkpoint_io import SafeCheckpointIO
from tests.http_server import serve
from tests.tiny_run import RAM, ROOT, subprocess_env


class Payload:
    """Unpickling this creates ``marker``: proof that a load ran code from the file."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def unique_name() -> str:
    return f"ckpt-{uuid.uuid4().hex}.ckpt"  # torch.hub caches downloads by file name


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    return tmp_path / "torch_home"


def write_payload(folder: Path, marker: Path) -> Path:
    path = folder / unique_name()
    torch.save({"state_dict": {}, "hyper_parameters": {"x": Payload(marker)}}, path)
    return path


@pytest.mark.parametrize("where", ["local", "url"])
def test_a_checkpoint_with_a_pickle_payload_is_refused_and_its_code_never_runs(where, tmp_path, torch_home):
    marker = tmp_path / "code_ran"
    path = write_payload(tmp_path, marker)
    with serve(tmp_path) as base:
        source = str(path) if where == "local" else f"{base}/{path.name}"
        for load in (load_checkpoint_file, SafeCheckpointIO().load_checkpoint, AttentionClassifier.load_from_checkpoint):
            with pytest.raises(CheckpointError, match="refused: it holds Python objects"):
                load(source)
    assert not marker.exists()
    assert not list(torch_home.rglob("*.ckpt"))  # the refused download is not kept in the cache


def test_a_good_checkpoint_loads_from_a_url(tmp_path, torch_home):
    path = tmp_path / unique_name()
    SafeCheckpointIO().save_checkpoint({"state_dict": {"w": torch.ones(2)}, "epoch": 3}, path)
    with serve(tmp_path) as base:
        checkpoint = SafeCheckpointIO().load_checkpoint(f"{base}/{path.name}")
    assert checkpoint["epoch"] == 3 and torch.equal(checkpoint["state_dict"]["w"], torch.ones(2))


def test_two_urls_ending_in_the_same_file_name_load_their_own_checkpoints(tmp_path, torch_home):
    for run, value in (("runA", 1.0), ("runB", 2.0)):
        (tmp_path / run).mkdir()
        SafeCheckpointIO().save_checkpoint({"state_dict": {"w": torch.full((2,), value)}}, tmp_path / run / "last.ckpt")
    with serve(tmp_path) as base:
        loaded = [load_checkpoint_file(f"{base}/{run}/last.ckpt")["state_dict"]["w"][0].item() for run in ("runA", "runB")]
        again = load_checkpoint_file(f"{base}/runA/last.ckpt")["state_dict"]["w"][0].item()  # from the cache
    assert loaded == [1.0, 2.0] and again == 1.0
    assert len(list((torch_home / "hub" / "checkpoints").glob("*-last.ckpt"))) == 2


def test_a_url_that_answers_an_http_error_is_one_line_and_caches_nothing(tmp_path, torch_home):
    with serve(tmp_path) as base, pytest.raises(CheckpointError, match=r"/gone.ckpt cannot be downloaded: HTTP 404 File not found"):
        load_checkpoint_file(f"{base}/gone.ckpt")
    assert not list(torch_home.rglob("*gone*"))


def test_a_save_removes_the_temporary_files_a_killed_save_left(tmp_path):
    stale = tmp_path / ".last.ckpt.x1y2.partial"
    stale.write_bytes(b"half a checkpoint")
    other = tmp_path / ".best.ckpt.x1y2.partial"  # another name's: not this save's business
    other.write_bytes(b"")
    SafeCheckpointIO().save_checkpoint({"state_dict": {}}, tmp_path / "last.ckpt")
    assert not stale.exists() and other.exists() and (tmp_path / "last.ckpt").is_file()


@pytest.mark.parametrize("content, message", [(None, "no such file"), (b"not a checkpoint", "is not a PyTorch checkpoint")])
def test_a_missing_or_non_checkpoint_file_is_one_clear_error(content, message, tmp_path):
    path = tmp_path / "x.ckpt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint_file(path)


def test_weights_only_false_is_not_allowed(tmp_path):
    with pytest.raises(CheckpointError, match="loads with weights_only off are not allowed"):
        SafeCheckpointIO().load_checkpoint(tmp_path / "x.ckpt", weights_only=False)


def disk_full_after_some_bytes(monkeypatch):
    """torch.save writes a few bytes, then fails as a full disk does."""

    def save(obj, stream, *args, **kwargs):
        stream.write(b"truncated")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("ram_lightning.run.checkpoint_io.torch.save", save)


def test_a_save_on_a_full_disk_keeps_the_previous_checkpoint_and_leaves_no_partial_file(tmp_path, monkeypatch):
    path = tmp_path / "checkpoints" / "last.ckpt"
    io = SafeCheckpointIO()
    io.save_checkpoint({"state_dict": {}, "global_step": 5}, path)
    disk_full_after_some_bytes(monkeypatch)
    with pytest.raises(CheckpointError, match=rf"could not write checkpoint {path}: No space left on device"):
        io.save_checkpoint({"state_dict": {}, "global_step": 6}, path)
    monkeypatch.undo()
    assert load_checkpoint_file(path)["global_step"] == 5
    assert os.listdir(path.parent) == ["last.ckpt"]


def test_a_save_into_a_folder_that_cannot_be_created_is_one_clear_error(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(CheckpointError, match="could not write checkpoint .*file/last.ckpt"):
        SafeCheckpointIO().save_checkpoint({"state_dict": {}}, tmp_path / "file" / "last.ckpt")


def test_a_save_the_folder_refuses_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    SafeCheckpointIO().save_checkpoint({"state_dict": {}, "global_step": 5}, path)

    def read_only(*args, **kwargs):  # what creating a file in a read-only folder raises (the tests may run as root)
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr("ram_lightning.run.checkpoint_io.tempfile.mkstemp", read_only)
    with pytest.raises(CheckpointError, match=rf"could not write checkpoint {path}: Permission denied"):
        SafeCheckpointIO().save_checkpoint({"state_dict": {}, "global_step": 6}, path)
    monkeypatch.undo()
    assert load_checkpoint_file(path)["global_step"] == 5 and os.listdir(tmp_path) == ["last.ckpt"]


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_save_into_a_read_only_folder_keeps_the_previous_checkpoint(tmp_path):
    path = tmp_path / "last.ckpt"
    SafeCheckpointIO().save_checkpoint({"state_dict": {}, "global_step": 5}, path)
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(CheckpointError, match="Permission denied"):
            SafeCheckpointIO().save_checkpoint({"state_dict": {}, "global_step": 6}, path)
    finally:
        tmp_path.chmod(0o700)
    assert load_checkpoint_file(path)["global_step"] == 5


def test_ram_test_with_a_url_to_a_pickle_payload_is_refused_in_one_line(tmp_path, torch_home, monkeypatch, capsys,
                                                                        tiny_config, write_config):
    from ram_lightning.run.cli import main
    from tests.tiny_run import ROOT

    monkeypatch.chdir(ROOT)
    marker = tmp_path / "code_ran"
    path = write_payload(tmp_path, marker)
    config = write_config(tmp_path / "c.yaml", tiny_config(tmp_path))
    with serve(tmp_path) as base, pytest.raises(SystemExit) as exit_info:
        main(["test", "--config", str(config), "--ckpt_path", f"{base}/{path.name}"])
    assert exit_info.value.code == 2 and not marker.exists()
    (line,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("ram: error:")]
    assert f"{base}/{path.name} refused" in line


@pytest.mark.slow
def test_a_full_disk_during_fit_stops_with_one_line_and_no_partial_checkpoint(tmp_path, monkeypatch, capsys, tiny_config, write_config):
    from ram_lightning.run.cli import main
    from tests.tiny_run import ROOT

    monkeypatch.chdir(ROOT)
    config = write_config(tmp_path / "c.yaml", tiny_config(tmp_path))
    disk_full_after_some_bytes(monkeypatch)
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(config), "--test_after_fit", "false"])
    assert exit_info.value.code == 2
    (line,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("ram: error:")]
    assert "could not write checkpoint" in line and "No space left on device" in line
    assert not list(tmp_path.rglob("*.ckpt")) and not list(tmp_path.rglob("*.partial"))


@pytest.mark.slow
def test_ram_test_from_a_url_checkpoint_runs_weights_only(tmp_path, torch_home, monkeypatch, tiny_config, write_config):
    import shutil

    from ram_lightning.run.cli import main
    from tests.tiny_run import ROOT

    monkeypatch.chdir(ROOT)
    config = write_config(tmp_path / "c.yaml", tiny_config(tmp_path))
    main(["fit", "--config", str(config), "--test_after_fit", "false"])
    served = tmp_path / "served"
    served.mkdir()
    name = unique_name()
    shutil.copy(next((tmp_path / "tiny").glob("version_*/checkpoints/last.ckpt")), served / name)
    with serve(served) as base:
        main(["test", "--config", str(config), "--ckpt_path", f"{base}/{name}"])
    (metrics,) = (tmp_path / "tiny").glob("version_0/test/metrics.csv")
    assert "test/error" in metrics.read_text() and url_cache_path(f"{base}/{name}").is_file()
    assert url_cache_path(f"{base}/{name}").parent == torch_home / "hub" / "checkpoints"


# `this` prints the Zen of Python when imported: the proof that a load imported what a file named.
ZEN = "Beautiful is better than ugly"


def write_naming(folder: Path, key: str, class_path: str) -> Path:
    """A good tiny checkpoint whose hyperparameters name ``class_path`` at ``key``."""
    model = AttentionClassifier(image_shape=(1, 24, 24), glimpse_size=6, num_patches=2, num_glimpses=2, hidden_size=16,
                                glimpse_hidden=8, glimpse_features=16, context_size=8)
    hparams = {**model.hparams, "_class_path": "ram_lightning.classifier.AttentionClassifier"}
    if key == "estimator":
        hparams["estimator"] = {"class_path": class_path, "init_args": {}}
    else:
        hparams[key] = class_path
    path = folder / unique_name()
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": hparams, "pytorch-lightning_version": pl.__version__}, path)
    return path


NAMING = """
import sys
from ram_lightning import AttentionClassifier
from ram_lightning.models.checkpoint_reading import CheckpointError
try:
    AttentionClassifier.load_from_checkpoint(sys.argv[1])
except CheckpointError as error:
    print("refused:", error)
print("imported this:", "this" in sys.modules)
"""


@pytest.mark.parametrize("key", ["estimator", "_class_path"])
def test_a_checkpoint_naming_a_class_outside_the_project_and_its_plugins_imports_nothing(key, tmp_path):
    path = write_naming(tmp_path, key, "this.Zen" if key == "estimator" else "this.AttentionClassifier")
    with pytest.raises(CheckpointError, match=rf"refused: hyper_parameters.{key}(.class_path)? names 'this\..*nothing was imported"):
        load_checkpoint_file(path)
    run = subprocess.run([sys.executable, "-c", NAMING, str(path)], cwd=ROOT, env=subprocess_env(), capture_output=True,
                         text=True, timeout=120)
    assert "refused:" in run.stdout and "imported this: False" in run.stdout and ZEN not in run.stdout, run.stdout + run.stderr


def test_a_checkpoint_naming_a_project_class_still_loads(tmp_path):
    path = write_naming(tmp_path, "estimator", "estimators.reinforce.Reinforce")
    assert AttentionClassifier.load_from_checkpoint(path).estimator.sample_from == "prior"


def test_ram_test_with_a_checkpoint_naming_an_outside_class_is_one_line_and_imports_nothing(tmp_path, tiny_config, write_config):
    path = write_naming(tmp_path, "estimator", "this.Zen")
    config = write_config(tmp_path, tiny_config(tmp_path))
    run = subprocess.run(RAM + ["test", "--config", str(config), "--ckpt_path", str(path)], cwd=ROOT, env=subprocess_env(),
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 2 and ZEN not in run.stdout + run.stderr
    assert run.stderr.strip().splitlines()[-1].startswith(f"ram: error: checkpoint {path} refused: hyper_parameters.estimator")
