"""``ram predict`` results as JSON lines, through Lightning's ``BasePredictionWriter``.

Each module's ``predict_step`` returns a dict of batch-first values (tensors [B, ...] or
lists of length B); ``JsonLinesWriter`` writes one JSON object per image to
``<run folder>/predictions.jsonl`` (``trainer.log_dir``; ``predictions.rank<r>.jsonl`` per
process under DDP), through a temporary file moved into place at the end, so a failed prediction
run never leaves a half-written file under that name. A file from an earlier ``ram predict`` is
never replaced: the new one takes the next free name (``predictions-2.jsonl``), and ``ram`` says so.

Classification lines: ``{"image": <index or path>, "prediction": 7, "probabilities": [...],
"locations": [[x, y], ...], "scales": [...] or null}``; captions: ``{"image": <id or path>,
"caption": "a red circle ...", "tokens": [...], "attended_cells": [[row, col], ...]}``.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import BasePredictionWriter

from ram_lightning.run.no_clobber import place


def records(prediction: Dict[str, Any]) -> List[Dict[str, Any]]:
    """One JSON-ready dict per image from a dict of batch-first values (None stays None)."""
    columns = {key: value.detach().cpu().tolist() if torch.is_tensor(value) else value for key, value in prediction.items()}
    size = next(len(value) for value in columns.values() if value is not None)
    return [{key: None if value is None else value[row] for key, value in columns.items()} for row in range(size)]


class JsonLinesWriter(BasePredictionWriter):
    """Writes every predicted batch as JSON lines (see the module docstring).

    Args:
        filename: the file name in the run folder.
        announce: print ``Predictions: <path>`` when prediction ends (the ``ram`` CLI prints
            it itself, last).
    """

    def __init__(self, filename: str = "predictions.jsonl", announce: bool = True) -> None:
        super().__init__(write_interval="batch")
        self.filename = filename
        self.announce = announce
        self.path: Optional[Path] = None
        self.kept: Optional[Path] = None
        self._handle = None
        self._temporary: Optional[Path] = None

    def on_predict_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        folder = Path(trainer.log_dir or trainer.default_root_dir)  # log_dir broadcasts: every rank calls it
        name = self.filename
        if trainer.world_size > 1:
            stem, dot, suffix = name.rpartition(".")
            name = f"{stem}.rank{trainer.global_rank}{dot}{suffix}" if dot else f"{name}.rank{trainer.global_rank}"
        self.path, self.kept = folder / name, None
        folder.mkdir(parents=True, exist_ok=True)
        self._temporary = folder / f".{name}.{os.getpid()}.partial"
        self._handle = open(self._temporary, "w")

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx) -> None:
        for record in records(prediction):
            self._handle.write(json.dumps(record) + "\n")

    def on_predict_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        self._handle = None
        placed = place(self._temporary, self.path)
        self.kept = self.path if placed != self.path else None  # an earlier file under the name, kept
        self.path = placed
        if self.announce and trainer.is_global_zero:
            print(self.summary(), flush=True)

    def summary(self) -> str:
        """``Predictions: <path>``, and the earlier file kept if the name was taken."""
        kept = f" ({self.kept.name} from an earlier ram predict kept)" if self.kept is not None else ""
        return f"Predictions: {self.path}{kept}"

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
            if self._temporary is not None and self._temporary.exists():
                self._temporary.unlink()
