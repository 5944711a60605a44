"""What Lightning and the libraries under it print at every ``ram`` start that tells a user
nothing, silenced with the reason for each; whatever informs stays.

``quiet()`` wraps a whole ``ram`` command; ``NoValidationYet`` (a callback the CLI adds) replaces
Lightning's "could not find the monitored key" warning, when a run stops before its first
validation, by one line that says what happened.
"""
from __future__ import annotations

import contextlib
import logging
import sys
import warnings
from typing import Iterator, Optional

import pytorch_lightning as pl

# Warnings (message regex, why silenced).
WARNINGS = (
    (r"Precision bf16-mixed is not supported by the model summary",
     "the summary's size estimate only; the weights are fp32 master weights whatever the precision"),
    (r".*isinstance\(treespec, LeafSpec\)` is deprecated",
     "Lightning's own use of a torch API; nothing a user can change"),
    (r"\s*skip_none parameter was deprecated",
     "Lightning's own call into jsonargparse; nothing a user can change"),
)
# Log lines (logger, message start, why silenced).
LOG_LINES = (
    ("pytorch_lightning.utilities.rank_zero", "💡 Tip:", "an advertisement to install another package"),
    ("pytorch_lightning.trainer.connectors.checkpoint_connector", "`weights_only` was not set",
     "said of a save (the full state, on purpose), it reads like a load without weights_only; ram loads weights-only"),
)
MISSING_MONITOR = r".*could not find the monitored key"


class _DropLines(logging.Filter):
    def __init__(self, start: str) -> None:
        super().__init__()
        self.start = start

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.start)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence ``WARNINGS`` and ``LOG_LINES`` for the duration of a command."""
    filters = [(logging.getLogger(name), _DropLines(start)) for name, start, _ in LOG_LINES]
    with warnings.catch_warnings():
        for message, _ in WARNINGS:
            warnings.filterwarnings("ignore", message=message)
        for logger, line_filter in filters:
            logger.addFilter(line_filter)
        try:
            yield
        finally:
            for logger, line_filter in filters:
                logger.removeFilter(line_filter)


class NoValidationYet(pl.Callback):
    """Until the first validation, a checkpoint callback that monitors a validation score cannot
    find it, and Lightning warns (with a hint to log the key) at every epoch end or stop: silenced
    until then, and at the end of a fit that never validated, one line says so. After a validation
    the warning shows as usual (then a missing key is a real mistake, e.g. a misspelt monitor)."""

    def __init__(self) -> None:
        self.validated = False
        self._filter: Optional[tuple] = None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.validated = False
        warnings.filterwarnings("ignore", message=MISSING_MONITOR)
        self._filter = warnings.filters[0]

    def _unsilence(self) -> None:
        if self._filter is not None and self._filter in warnings.filters:
            warnings.filters.remove(self._filter)
            warnings._filters_mutated()
        self._filter = None

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.validated = True
            self._unsilence()

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._unsilence()
        monitor = getattr(trainer.checkpoint_callback, "monitor", None)
        if not self.validated and monitor and trainer.is_global_zero:
            print(f"No validation ran before training stopped at step {trainer.global_step}: no best checkpoint "
                  f"by {monitor} was chosen", file=sys.stderr, flush=True)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self._unsilence()
