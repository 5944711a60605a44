"""Reading and writing checkpoints safely: never run code from a file, never lose a good one.

``SafeCheckpointIO`` is the CheckpointIO plugin the ``ram`` CLI gives every Trainer:

- loads (local path or http(s) URL) always use ``torch.load(weights_only=True)``: a
  checkpoint carrying a pickle payload is refused with one line, its code never runs;
- a checkpoint whose hyperparameters name a class (the model's ``_class_path``, the
  estimator's ``class_path``) outside ram-lightning and its installed plug-ins is refused
  before anything is imported (``check_named_classes``): importing a module runs its code;
- saves are atomic: the checkpoint is written to a temporary file in the destination
  folder, flushed and fsynced, then moved over the real name with ``os.replace``. A failed
  save (no space left, read-only folder, a signal) leaves the previous checkpoint intact and
  no partial file under a checkpoint's name, and stops with one line naming the file; the
  temporary file a killed save left is removed by the next save of that name.
- a URL is downloaded once into a cache keyed by the whole URL (``url_cache_path``); an HTTP
  error is one line, and a downloaded file that is refused is removed from the cache.

``load_checkpoint_file`` is the same load for code outside a Trainer (the CLI reading a
checkpoint's hyperparameters, ``EstimatorModule.load_from_checkpoint``).
"""
from __future__ import annotations

import glob
import hashlib
import os
import pickle
import tempfile
import urllib.error
import zipfile
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, Mapping, Optional, Tuple, Union
from urllib.parse import urlsplit

import torch
from lightning_fabric.utilities.cloud_io import get_filesystem
from pytorch_lightning.plugins.io import TorchCheckpointIO

from ram_lightning.errors import UserError

PathLike = Union[str, os.PathLike]


class CheckpointError(UserError):
    """A checkpoint that cannot be read (missing, not a checkpoint, unsafe) or written."""


def is_url(path: PathLike) -> bool:
    return str(path).startswith(("http://", "https://"))


def url_cache_path(url: str) -> Path:
    """Where the checkpoint at ``url`` is cached: ``$TORCH_HOME/hub/checkpoints/<16 hex digits of
    sha256(url)>-<file name>``, so two URLs ending in the same file name (``.../runA/last.ckpt``,
    ``.../runB/last.ckpt``) never share a file (torch.hub's own cache keys by file name only)."""
    name = Path(urlsplit(url).path).name or "checkpoint"
    digest = hashlib.sha256(url.encode()).hexdigest()[:16]
    return Path(torch.hub.get_dir()) / "checkpoints" / f"{digest}-{name}"


def _download(url: str, where: str) -> Path:
    """The cached copy of ``url``, downloaded first if there is none (torch.hub writes it to a
    temporary file and moves it into place: a broken download leaves no cached file)."""
    path = url_cache_path(url)
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            torch.hub.download_url_to_file(url, str(path), progress=True)
        except urllib.error.HTTPError as error:
            raise CheckpointError(f"{where} cannot be downloaded: HTTP {error.code} {error.reason}") from None
    return path


def load_checkpoint_file(path: PathLike, map_location: Any = "cpu") -> Dict[str, Any]:
    """The checkpoint dict at ``path`` (a local file, or an http(s) URL cached by
    ``url_cache_path``), loaded with ``weights_only=True``; a downloaded file that is refused is
    removed from the cache again.

    Raises:
        CheckpointError: missing file, unreachable URL or an HTTP error, not a checkpoint, a
            pickle payload (anything ``weights_only`` refuses), or a class named outside the project.
    """
    where = f"checkpoint {path}"
    cached = None
    try:
        if is_url(path):
            cached = _download(str(path), where)
            checkpoint = _load_file(cached, map_location, where)
        else:
            if not Path(path).is_file():
                raise CheckpointError(f"{where}: no such file" + (" (it is a directory)" if Path(path).is_dir() else ""))
            checkpoint = _load_file(path, map_location, where)
        if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
            raise CheckpointError(f"{where} is not a Lightning checkpoint (no state_dict)")
        check_named_classes(checkpoint, where)
    except CheckpointError:
        if cached is not None:
            cached.unlink(missing_ok=True)  # never keep a refused file in the download cache
        raise
    except OSError as error:  # unreadable file, URL errors (urllib's URLError is an OSError)
        reason = getattr(error, "strerror", None) or getattr(error, "reason", None) or error
        raise CheckpointError(f"{where} cannot be read: {reason}") from None
    return checkpoint


def _load_file(path: PathLike, map_location: Any, where: str) -> Any:
    """``torch.load(path, weights_only=True)``, its refusals and failures as one-line CheckpointErrors."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        text = str(error)
        if "Unsupported global" in text:
            name = text.split("Unsupported global:", 1)[1].split(" was not", 1)[0].strip()
            raise CheckpointError(
                f"{where} refused: it holds Python objects that a weights-only load does not accept "
                f"({name}); checkpoints are never unpickled with code execution"
            ) from None
        detail = "unpickling failed"
        if "WeightsUnpickler" in text:
            detail = text.rsplit("WeightsUnpickler error:", 1)[-1].strip().splitlines()[0]
        raise CheckpointError(f"{where} is not a PyTorch checkpoint (torch.load: {detail})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError) as error:
        first_line = str(error).splitlines()[0] if str(error) else ""
        raise CheckpointError(f"{where} is not a PyTorch checkpoint ({type(error).__name__}: {first_line})") from None


def named_classes(node: Any, key: str = "") -> Iterator[Tuple[str, Any]]:
    """``(where, class path)`` for every class a checkpoint's hyperparameters name: a
    ``class_path`` at any depth (the estimator's spec, nested ones) and the CLI's ``_class_path``."""
    if isinstance(node, Mapping):
        for name, value in node.items():
            inner = f"{key}.{name}" if key else str(name)
            if name in ("class_path", "_class_path"):
                yield inner, value
            else:
                yield from named_classes(value, inner)
    elif isinstance(node, (list, tuple)):
        for index, value in enumerate(node):
            yield from named_classes(value, f"{key}[{index}]")


def check_named_classes(checkpoint: Mapping[str, Any], where: str) -> None:
    """Refuse a checkpoint whose hyperparameters name a class outside ram-lightning and its
    registered plug-ins (importing it would run that module's code), or an instantiator outside
    Lightning's allowlist; decided from the names alone, before anything is imported.

    Raises:
        CheckpointError: naming the key, the class and what is accepted.
    """
    from pytorch_lightning.core.saving import _ALLOWED_INSTANTIATORS

    from estimators.registry import ENTRY_POINT_GROUP, is_trusted_class_path

    for section in ("hyper_parameters", "datamodule_hyper_parameters"):
        hparams = checkpoint.get(section) or {}
        for key, path in named_classes(hparams, section):
            if not is_trusted_class_path(path):
                raise CheckpointError(
                    f"{where} refused: {key} names {path!r}, which is neither ram-lightning's nor an installed estimator "
                    f"plug-in's, and importing it would run its code; nothing was imported (install the plug-in that "
                    f"defines it under the entry-point group {ENTRY_POINT_GROUP})"
                )
        instantiator = hparams.get("_instantiator") if isinstance(hparams, Mapping) else None
        if instantiator is not None and instantiator not in _ALLOWED_INSTANTIATORS:
            raise CheckpointError(f"{where} refused: {section}._instantiator names {instantiator!r}, "
                                  f"not one of Lightning's trusted instantiators; nothing it names was imported")


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
