"""Reading a checkpoint safely: never run code from a file.

``load_checkpoint_file`` is the one load of a checkpoint, for the Trainer's CheckpointIO
(``ram_lightning.run.checkpoint_io.SafeCheckpointIO``), the CLI reading a checkpoint's
hyperparameters and ``EstimatorModule.load_from_checkpoint``:

- a local path or an http(s) URL, always with ``torch.load(weights_only=True)``: a checkpoint
  carrying a pickle payload is refused with one line, its code never runs;
- a checkpoint whose hyperparameters name a class (the model's ``_class_path``, the
  estimator's ``class_path``) outside ram-lightning and its installed plug-ins is refused
  before anything is imported (``check_named_classes``): importing a module runs its code;
- a URL is downloaded once into a cache keyed by the whole URL (``url_cache_path``); an HTTP
  error is one line, and a downloaded file that is refused is removed from the cache.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import urllib.error
import zipfile
from pathlib import Path
from typing import Any, Dict, Iterator, Mapping, Tuple, Union
from urllib.parse import urlsplit

import torch

from estimators.registry import ENTRY_POINT_GROUP, is_trusted_class_path
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
