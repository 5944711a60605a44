"""The defaults every ``ram`` run shares, written once: ``ram_lightning/defaults.yaml`` (loggers,
checkpoints, run info, pictures), composed by the CLI before any ``--config``, and
:func:`fill_run_defaults`, which fills in what that file leaves null from the run's ``name``
and model:

    trainer.default_root_dir          null -> runs/<name>
    CSVLogger save_dir / name         null -> the parent / last part of trainer.default_root_dir
                                      (metrics.csv and checkpoints in <default_root_dir>/version_N)
    WandbLogger name                  null -> <name>
    WandbLogger save_dir              null -> trainer.default_root_dir
    ModelCheckpoint monitor           auto -> the model's score and mode
                                      (``checkpoint_monitor`` of its class: val/error min, val/bleu4 max)
    trainer.precision                 null -> bf16-mixed where the device multiplies bf16 natively,
                                      else 32-true (``ram_lightning.run.precision_choice``), said in one line

``name`` defaults to the stem of the first ``--config`` file (``configs/quickstart.yaml`` ->
``quickstart``), else ``ram``. Values a config or the command line gives are never changed.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Optional, Tuple

from jsonargparse import Namespace

from estimators.registry import import_class
from ram_lightning.errors import UserError
from ram_lightning.run.precision_choice import choose_precision, emulated_bf16_warning, precision_line

DEFAULTS_FILE = Path(__file__).resolve().parents[1] / "defaults.yaml"  # ram_lightning/defaults.yaml (package data)
DEFAULT_NAME = "ram"
RUNS_DIR = "runs"
AUTO = "auto"  # ModelCheckpoint(monitor="auto"): the model's checkpoint_monitor
_NAMED_LOGGERS = ("CSVLogger", "WandbLogger")


def experiment_name(config: Namespace) -> str:
    """``config.name``, else the stem of the first ``--config`` file, else ``ram``."""
    if config.get("name"):
        return str(config.name)
    files = [f for f in (config.get("config") or []) if f is not None]
    if files:
        return Path(str(getattr(files[0], "relative", files[0]))).stem
    return DEFAULT_NAME


def model_monitor(model: Any) -> Optional[Tuple[str, str]]:
    """``(metric, mode)`` a model class declares as ``checkpoint_monitor``; None if no model is
    configured (then parsing reports the missing model).

    Raises:
        UserError: the model (given by ``class_path``) declares none.
    """
    class_path = model.get("class_path") if isinstance(model, Namespace) else None
    if not class_path:
        return None
    monitor = getattr(import_class(class_path, what="model"), "checkpoint_monitor", None)
    if monitor is None:
        raise UserError(f"{class_path} declares no checkpoint_monitor; set monitor and mode of the "
                        f"ModelCheckpoint that has monitor: auto")
    return monitor


def _class_name(spec: Any) -> Optional[str]:
    class_path = spec.get("class_path") if isinstance(spec, Namespace) else None
    return class_path.rpartition(".")[2] if class_path else None


def _as_list(value: Any) -> list:
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value] if isinstance(value, Namespace) else []


def csv_folder(default_root_dir: Any) -> Tuple[str, str]:
    """``(save_dir, name)`` of a CSV logger left null: the parent and last part of the run folder,
    so that its logs go to ``<default_root_dir>/version_N`` (``runs/<name>`` -> ``("runs", "<name>")``)."""
    parent, last = os.path.split(os.path.normpath(str(default_root_dir)))
    return parent or ".", last


def fill_run_defaults(config: Namespace, announce: Optional[Callable[[str], None]] = None) -> Namespace:
    """Fill in (in place) the values ``defaults.yaml`` leaves null; see the module docstring.

    Args:
        config: one subcommand's parsed config (``trainer``, ``model``, ``config``, ``name``, ...).
        announce: called with the line that says which precision was chosen and why, if one was, or
            with the warning for an explicit bf16 precision on a CPU that would emulate it.
    """
    name = experiment_name(config)
    config.name = name
    trainer = config.get("trainer")
    if trainer is None:
        return config
    if trainer.get("default_root_dir") is None:
        trainer.default_root_dir = f"{RUNS_DIR}/{name}"
    if "precision" in trainer and trainer.precision is None:
        trainer.precision, reason = choose_precision(trainer.get("accelerator"))
        if announce is not None:
            announce(precision_line(trainer.precision, reason))
    elif announce is not None and (warning := emulated_bf16_warning(trainer.get("precision"), trainer.get("accelerator"))):
        announce(warning)
    parent, last = csv_folder(trainer.default_root_dir)
    for logger in _as_list(trainer.get("logger")):
        init = logger.get("init_args")
        if _class_name(logger) not in _NAMED_LOGGERS or init is None:
            continue
        if _class_name(logger) == "CSVLogger":
            if "save_dir" in init and init.save_dir is None:
                init.save_dir = parent
            if "name" in init and init.name is None:
                init.name = last if init.save_dir == parent else name
            continue
        if "name" in init and init.name is None:
            init.name = name
        if _class_name(logger) == "WandbLogger" and "save_dir" in init and init.save_dir is None:
            init.save_dir = trainer.default_root_dir
    for callback in _as_list(trainer.get("callbacks")):
        init = callback.get("init_args")
        if _class_name(callback) == "ModelCheckpoint" and init is not None and init.get("monitor") == AUTO:
            monitor = model_monitor(config.get("model"))
            if monitor is not None:
                init.monitor, init.mode = monitor
    return config
