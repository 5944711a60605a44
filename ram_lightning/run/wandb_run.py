"""A W&B run while it lives: what it records besides Lightning's logger, the one line that says where an
online run is, and finishing it before the ``ram`` command exits. The mode (online, offline, said
once) is decided before the run starts, in :mod:`ram_lightning.run.tracking`.

    trainer:
      callbacks:
        - class_path: ram_lightning.run.wandb_run.WandbRunInfo   # in ram_lightning/defaults.yaml
"""
from __future__ import annotations

import os
import sys
from typing import Any, Optional, Set

import pytorch_lightning as pl
from pytorch_lightning.loggers import WandbLogger


def _absolute(path: Optional[str]) -> Optional[str]:
    """``path`` made absolute (remote URLs such as s3://... are kept as they are)."""
    return path if path is None or "://" in str(path) else os.path.abspath(path)


class WandbRunInfo(pl.Callback):
    """Records in every attached W&B run's config, at the start of fitting: ``checkpoint_dir``
    (the first ModelCheckpoint's folder) and ``log_dir`` (``trainer.log_dir``), as absolute paths,
    ``seed`` (``seed_everything``'s), and, for modules with an ``estimator``, ``estimator`` (its repr: class and options, which the
    hyperparameters leave out). Lightning's WandbLogger records neither."""

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        loggers = [logger for logger in trainer.loggers if isinstance(logger, WandbLogger)]
        if not loggers:
            return
        checkpoint_dir = getattr(trainer.checkpoint_callback, "dirpath", None)
        log_dir = trainer.log_dir  # on every rank: it broadcasts
        info = {"checkpoint_dir": _absolute(checkpoint_dir), "log_dir": _absolute(log_dir)}
        if os.environ.get("PL_GLOBAL_SEED") is not None:  # seed_everything's seed: runs of a comparison differ by it
            info["seed"] = int(os.environ["PL_GLOBAL_SEED"])
        if getattr(pl_module, "estimator", None) is not None:
            info["estimator"] = repr(pl_module.estimator)
        if trainer.is_global_zero:
            for logger in loggers:
                logger.experiment.config.update(info, allow_val_change=True)


def drop_default_anonymous(loggers: Any) -> None:
    """Drop the ``anonymous=None`` that Lightning's WandbLogger always passes to ``wandb.init``
    (wandb 0.31 answers any value with "WARNING The anonymous setting has no effect"); an
    ``anonymous`` the config set is kept, and so is wandb's warning about it."""
    for logger in loggers or []:
        init = getattr(logger, "_wandb_init", None) if isinstance(logger, WandbLogger) else None
        if isinstance(init, dict) and "anonymous" in init and init["anonymous"] is None:
            del init["anonymous"]


def finish_wandb(exit_code: int = 0) -> None:
    """Finish this process's active W&B run, if any. Left to the end of the process, wandb-core
    finishes it and prints its own end lines ("You can sync this run ...") even with
    ``WANDB_SHOW_INFO=false``; finished here, it prints only warnings and errors. A failure to
    finish is said in one line (it must not replace the line of the error that ended the run)."""
    wandb = sys.modules.get("wandb")  # never imported: no run
    run = getattr(wandb, "run", None) if wandb is not None else None
    if run is not None:
        try:
            run.finish(exit_code=exit_code)
        except Exception as error:
            print(f"W&B: could not finish run {run.id}: {type(error).__name__}: {error}", file=sys.stderr, flush=True)


class WandbRunLine(pl.Callback):
    """Says once per run, on rank 0, where an online W&B run is: ``W&B: logging online to <url>``
    (the ``ram`` command quiets wandb's own lines; an offline run was said before it started)."""

    _said: Set[str] = set()  # run ids said in this process (fit, then test, set up twice)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if not trainer.is_global_zero:
            return
        for logger in trainer.loggers:
            run = logger.experiment if isinstance(logger, WandbLogger) else None  # created by Lightning already
            if run is None or getattr(run, "offline", True) or getattr(run, "disabled", True) or run.id in self._said:
                continue
            self._said.add(run.id)
            print(f"W&B: logging online to {run.url}", file=sys.stderr, flush=True)
