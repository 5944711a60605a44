"""The config a command ran with, saved beside its logs without ever replacing an earlier one.

Lightning's ``SaveConfigCallback`` writes ``config.yaml`` into the log folder, and either refuses
to start when one exists or overwrites it. A resumed ``ram fit`` (or a second ``ram test`` of a
checkpoint) logs into the same folder, so one of the two would lose something: the run's original
settings, or the command. ``KeepingSaveConfig`` saves the later config as ``config-2.yaml``
(``-3``, ...) and says so in one line.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.cli import SaveConfigCallback

from ram_lightning.run.no_clobber import unused_name


class KeepingSaveConfig(SaveConfigCallback):
    """``SaveConfigCallback`` that picks the first free name instead of replacing (see the module docstring)."""

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self.already_saved or not self.save_to_log_dir:
            return super().setup(trainer, pl_module, stage)
        log_dir = trainer.log_dir  # broadcasts: every rank calls it
        name = self.config_filename
        if trainer.is_global_zero:
            free = unused_name(Path(log_dir) / self.config_filename)
            if free.name != name:
                print(f"Config: {free} ({name} of the earlier command in {log_dir} kept)", file=sys.stderr, flush=True)
            name = free.name
        self.config_filename = trainer.strategy.broadcast(name)
        self.overwrite = False  # a file that appeared meanwhile stops the run rather than being replaced
        super().setup(trainer, pl_module, stage)
