"""Where a run logs, kept in its checkpoints, so that later commands continue beside it.

``RunRecord`` (a callback the ``ram`` CLI always adds) stores in every checkpoint each
logger's class, ``save_dir``, ``name`` and ``version`` (for W&B, the run id). When a command
is given ``--ckpt_path``, ``apply_run_record`` points the config's loggers back at that run
before they are built:

- ``ram fit --ckpt_path``: the same version folder (so ModelCheckpoint's ``dirpath`` is the
  same and best-checkpoint tracking carries over the resume) and the same W&B run;
- ``ram test / validate / predict --ckpt_path``: a sub-folder of the run's version folder
  named after the command (``runs/x/version_3/test/``), appended to on each call, and the
  same W&B run.

A logger whose ``version`` (or W&B ``id``) the config sets explicitly is left as it is.
``continue_csv_logs`` makes the CSV logger append to the folder's ``metrics.csv`` (Lightning's
own writer would delete it).
"""
from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytorch_lightning as pl
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger, WandbLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter

from estimators import registry
from estimators.spec import class_path

STATE_KEY = "RunRecord"
FOLDER_LOGGERS = (CSVLogger, TensorBoardLogger)


def describe_logger(logger: Any) -> Optional[Dict[str, Any]]:
    """What identifies ``logger``'s run: class path, and save_dir/name/version or the W&B id."""
    if isinstance(logger, WandbLogger):
        return {"class_path": class_path(type(logger)), "id": logger.version}
    if isinstance(logger, FOLDER_LOGGERS):
        return {"class_path": class_path(type(logger)), "save_dir": os.path.abspath(logger.save_dir),
                "name": logger.name, "version": logger.version}
    return None


class RunRecord(pl.Callback):
    """Saves ``{"loggers": [describe_logger(...), ...]}`` in every checkpoint (see the module docstring)."""

    def __init__(self) -> None:
        self._trainer: Optional[pl.Trainer] = None

    @property
    def state_key(self) -> str:
        return STATE_KEY

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._trainer = trainer

    def state_dict(self) -> Dict[str, Any]:
        if self._trainer is None:
            return {}
        return {"loggers": [d for d in map(describe_logger, self._trainer.loggers) if d is not None]}

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        """Nothing to restore: the CLI reads the record before the loggers are built."""


def read_run_record(checkpoint: Dict[str, Any]) -> List[Dict[str, Any]]:
    return list((checkpoint.get("callbacks") or {}).get(STATE_KEY, {}).get("loggers", []))


def _get(node: Any, key: str) -> Any:
    return node.get(key) if isinstance(node, dict) else getattr(node, key, None)


def _set(node: Any, key: str, value: Any) -> None:
    if isinstance(node, dict):
        node[key] = value
    else:
        setattr(node, key, value)


def _resolve(path: Any) -> Optional[type]:
    """The class a config entry names (the user's config: trusted; the recorded names are only
    compared with it as text, never imported)."""
    try:
        return registry.import_class(str(path))
    except Exception:
        return None


def _version_folder(version: Any) -> str:
    return version if isinstance(version, str) else f"version_{version}"


def located_save_dir(record: Dict[str, Any], ckpt_path: Any) -> Optional[str]:
    """The ``save_dir`` the checkpoint file itself sits in, if it lies where the recorded run keeps
    its checkpoints (``<save_dir>/<name>/<version>/checkpoints/``): a run folder copied or moved
    elsewhere is still recognised as the checkpoint's run."""
    if not ckpt_path or "://" in str(ckpt_path):
        return None
    folder = Path(os.path.abspath(str(ckpt_path))).parent
    if folder.name != "checkpoints" or folder.parent.name != _version_folder(record.get("version")):
        return None
    run = folder.parent.parent
    if record.get("name"):
        if run.name != record["name"]:
            return None
        run = run.parent
    return str(run)


def apply_run_record(logger_config: Any, record: List[Dict[str, Any]], subcommand: str, ckpt_path: Any = None) -> List[str]:
    """Point the ``trainer.logger`` config entries at the recorded run (in place); returns
    one line per logger changed, saying where it now logs.

    A folder logger continues the recorded folder when the config's ``save_dir`` and ``name``
    are the recorded ones, or name the folder the checkpoint file lies in (a copied run). W&B
    continues the recorded run only where every folder logger continues too: a command that
    logs into another folder (another ``--name``) starts a new W&B run, and says so."""
    entries = [e for e in (logger_config if isinstance(logger_config, (list, tuple)) else [logger_config])
               if e is not None and not isinstance(e, bool) and _get(e, "init_args") is not None]
    said: List[str] = []
    remaining = list(record)
    matched = []
    for entry in entries:
        cls = _resolve(_get(entry, "class_path"))
        match = next((r for r in remaining if cls is not None and r.get("class_path") == class_path(cls)), None)
        if match is not None:
            remaining.remove(match)
            matched.append((entry, cls, match))
    elsewhere = []
    for entry, cls, match in matched:
        if issubclass(cls, WandbLogger):
            continue
        init_args = _get(entry, "init_args")
        save_dir = os.path.abspath(str(_get(init_args, "save_dir") or "."))
        name = _get(init_args, "name")
        recorded = os.path.join(match["save_dir"], match["name"] or "", _version_folder(match["version"]))
        if _get(init_args, "version") is not None:
            continue
        if name != match["name"] or save_dir not in (match["save_dir"], located_save_dir(match, ckpt_path)):
            elsewhere.append(recorded)
            continue
        folder = _version_folder(match["version"])
        if subcommand != "fit":
            folder = f"{folder}/{subcommand}"
        _set(init_args, "version", match["version"] if subcommand == "fit" else folder)
        said.append(f"Logging to {os.path.join(save_dir, name or '', folder)} (beside the checkpoint's run)")
    for entry, cls, match in matched:
        init_args = _get(entry, "init_args")
        if not issubclass(cls, WandbLogger) or _get(init_args, "id") or _get(init_args, "version") or not match.get("id"):
            continue
        if elsewhere:
            said.append(f"W&B: a new run (the checkpoint's run {match['id']} belongs to {elsewhere[0]}, "
                        f"and this command logs elsewhere)")
            continue
        _set(init_args, "id", match["id"])
        said.append(f"W&B: continuing run {match['id']}")
    return said


class ContinuingExperimentWriter(ExperimentWriter):
    """Lightning's CSV writer, appending to an existing ``metrics.csv`` instead of deleting it
    (a resumed run keeps the metrics of the steps before the resume)."""

    def _check_log_dir_exists(self) -> None:
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as handle:
                self.metrics_keys = sorted(next(csv.reader(handle), []))


def continue_csv_logs(loggers: List[Any]) -> None:
    """Give every CSVLogger whose folder already holds a ``metrics.csv`` a writer that appends to it."""
    for logger in loggers:
        if isinstance(logger, CSVLogger) and getattr(logger, "_experiment", None) is None:
            if os.path.isfile(os.path.join(logger.log_dir, ExperimentWriter.NAME_METRICS_FILE)):
                logger._experiment = ContinuingExperimentWriter(log_dir=logger.log_dir)
