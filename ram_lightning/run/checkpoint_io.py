"""Writing checkpoints safely: never lose a good one; and the CheckpointIO plugin of every run.

``SafeCheckpointIO`` is the CheckpointIO plugin the ``ram`` CLI gives every Trainer:

- loads go through ``ram_lightning.models.checkpoint_reading.load_checkpoint_file``: weights only,
  classes named outside the project refused before anything is imported, URLs cached;
- saves are atomic: the checkpoint is written to a temporary file in the destination
  folder, flushed and fsynced, then moved over the real name with ``os.replace``. A failed
  save (no space left, read-only folder, a signal) leaves the previous checkpoint intact and
  no partial file under a checkpoint's name, and stops with one line naming the file; the
  temporary file a killed save left is removed by the next save of that name.
"""
from __future__ import annotations

import glob
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, Optional

import torch
from lightning_fabric.utilities.cloud_io import get_filesystem
from pytorch_lightning.plugins.io import TorchCheckpointIO

from ram_lightning.models.checkpoint_reading import CheckpointError, PathLike, is_url, load_checkpoint_file


def atomic_torch_save(obj: Any, path: PathLike) -> None:
    """``torch.save(obj, path)`` through a temporary file in ``path``'s folder, fsynced, then
    ``os.replace``d; on failure the temporary file is removed and ``path`` is untouched.

    Raises:
        CheckpointError: the folder cannot be created or written, or the disk is full.
    """
    path = Path(path)
    temporary = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_partials(path)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
        with os.fdopen(handle, "wb") as stream:
            torch.save(obj, stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
        temporary = None
        _fsync_folder(path.parent)
    except OSError as error:
        reason = error.strerror or str(error)
        raise CheckpointError(
            f"could not write checkpoint {path}: {reason}; the previous checkpoint under that name (if any) is intact"
        ) from None
    finally:
        if temporary is not None:
            try:
                os.unlink(temporary)
            except OSError:
                pass


def remove_stale_partials(path: Path) -> None:
    """Remove temporary files an earlier save of ``path`` left behind (a SIGKILL or power loss
    mid-save). Saves of one name are never concurrent: a run saves from one process, and two runs
    never share a version folder (``ram_lightning.run.folders``)."""
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.partial"):
        try:
            stale.unlink()
        except OSError:
            pass


def _fsync_folder(folder: Path) -> None:
    """Make the rename durable (best effort: not every file system allows opening a folder)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _is_local(path: PathLike) -> bool:
    protocol = get_filesystem(path).protocol
    return "file" in (protocol if isinstance(protocol, tuple) else (protocol,))


def _keep_device(storage, location):
    return storage


class SafeCheckpointIO(TorchCheckpointIO):
    """TorchCheckpointIO with weights-only loads and atomic local saves (see the module docstring)."""

    def save_checkpoint(self, checkpoint: Dict[str, Any], path: PathLike, storage_options: Optional[Any] = None) -> None:
        if "://" in str(path) and not str(path).startswith("file://"):
            return super().save_checkpoint(checkpoint, path, storage_options)  # fsspec's own transaction
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} does not take storage_options")
        atomic_torch_save(checkpoint, path)

    def load_checkpoint(self, path: PathLike, map_location: Optional[Callable] = None,
                        weights_only: Optional[bool] = None) -> Dict[str, Any]:
        if weights_only is False:
            raise CheckpointError(f"checkpoint {path}: loads with weights_only off are not allowed in ram (they can run code)")
        if is_url(path) or _is_local(path):
            return load_checkpoint_file(path, map_location if map_location is not None else _keep_device)
        return super().load_checkpoint(path, map_location, weights_only=True)
