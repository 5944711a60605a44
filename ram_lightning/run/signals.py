"""Ctrl-C (SIGINT) and SIGTERM (SLURM preemption, ``kill``) stop training at the end of the
current step with a resumable checkpoint and one line saying how to resume.

Lightning already turns SIGTERM into a clean stop: its handler sets ``trainer.received_sigterm``
and the training loop raises ``SIGTERMException`` after the step in progress (so optimizer,
loops and callbacks are in a consistent state). ``SaveOnSignal`` sends the first SIGINT the same
way (a second Ctrl-C interrupts at once, as usual) and, in ``on_exception``, saves
``last.ckpt`` in the checkpoint folder (or ``interrupted.ckpt`` in the run's root without a
ModelCheckpoint) and prints

    Stopped by SIGTERM at step 12: checkpoint runs/x/version_0/checkpoints/last.ckpt; resume with: ram fit \
        --config x.yaml --ckpt_path runs/x/version_0/checkpoints/last.ckpt

While that checkpoint is written, further SIGINT / SIGTERM are deferred (one line says so): the
save completes and the line above is still printed. A second Ctrl-C before the save starts (the
step or validation in progress is slow) stops at once without saving, and the line names the
last checkpoint on disk, if any, and how to resume from it.

The ``ram`` command then exits with status 128 + the signal number (130 for SIGINT, 143 for SIGTERM).
"""
from __future__ import annotations

import os
import shlex
import signal
import sys
import threading
from typing import List, Optional, Sequence

import pytorch_lightning as pl
from pytorch_lightning.trainer.states import TrainerFn
from pytorch_lightning.utilities.exceptions import SIGTERMException


def resume_command(args: Sequence[str], ckpt_path: str) -> str:
    """``ram <args>`` with ``--ckpt_path ckpt_path`` in place of any ``--ckpt_path`` in ``args``."""
    kept: List[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
            continue
        if arg == "--ckpt_path":
            skip = True
            continue
        if arg.startswith("--ckpt_path="):
            continue
        kept.append(arg)
    return shlex.join(["ram", *kept, "--ckpt_path", ckpt_path])


def _saved_step(path: str) -> object:
    """The global step a checkpoint was saved at (read weights-only), or '?' if it cannot be read."""
    from ram_lightning.models.checkpoint_reading import load_checkpoint_file
    from ram_lightning.errors import UserError

    try:
        return load_checkpoint_file(path).get("global_step", "?")
    except UserError:
        return "?"


class SaveOnSignal(pl.Callback):
    """See the module docstring. ``args``: the command line, for the resume hint."""

    def __init__(self, args: Optional[Sequence[str]] = None) -> None:
        self.args = list(sys.argv[1:] if args is None else args)
        self.signal: Optional[int] = None
        self.saved: Optional[str] = None
        self._saving = self._deferral_said = False
        self._previous = {}

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.signal, self.saved = None, None
        if threading.current_thread() is not threading.main_thread():
            return
        # Lightning's SIGTERM handler is in place by now; ours records the signal and calls it.
        for signum, handler in ((signal.SIGINT, self._on_sigint), (signal.SIGTERM, self._on_sigterm)):
            self._previous[signum] = signal.getsignal(signum)
            signal.signal(signum, handler)
        self._trainer = trainer

    def _on_sigterm(self, signum, frame) -> None:
        if self._deferred(signum):
            return
        self.signal = self.signal or signum
        self._trainer._signal_connector.received_sigterm = True  # also where Lightning did not install its handler
        previous = self._previous.get(signal.SIGTERM)  # (it does not where one was there before, as in a submitit job)
        if callable(previous):
            previous(signum, frame)

    def _deferred(self, signum: int) -> bool:
        """During the save: say (once) that the signal waits for the checkpoint, and do nothing else."""
        if not self._saving:
            return False
        if self._deferral_said:
            return True
        self._deferral_said = True
        print(f"{signal.Signals(signum).name} again: finishing the checkpoint first (it is being written)",
              file=sys.stderr, flush=True)
        return True

    def _on_sigint(self, signum, frame) -> None:
        if self._deferred(signum):
            return
        if self.signal is not None:  # a second Ctrl-C before the save: stop now
            raise KeyboardInterrupt
        self.signal = signum
        self._trainer._signal_connector.received_sigterm = True  # the stop Lightning makes for SIGTERM

    def _restore(self) -> None:
        if threading.current_thread() is threading.main_thread():
            for signum, handler in self._previous.items():
                signal.signal(signum, handler)
        self._previous = {}

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._restore()

    def checkpoint_path(self, trainer: pl.Trainer) -> str:
        callback = trainer.checkpoint_callback
        if callback is not None and getattr(callback, "dirpath", None):
            return os.path.join(callback.dirpath, "last.ckpt")
        return os.path.join(trainer.default_root_dir, "interrupted.ckpt")

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if trainer.state.fn != TrainerFn.FITTING:
            return
        if isinstance(exception, KeyboardInterrupt) and self.signal is not None:
            self._stopped_without_saving(trainer)
            return
        if not isinstance(exception, SIGTERMException):
            return
        self.signal = self.signal or signal.SIGTERM
        path = self.checkpoint_path(trainer)
        self._saving = True
        try:
            trainer.save_checkpoint(path)  # the full state (Lightning's default): optimizer, loops, callbacks
        finally:
            self._saving = False
        self.saved = path
        if trainer.is_global_zero:
            name = signal.Signals(self.signal).name
            print(f"Stopped by {name} at step {trainer.global_step}: checkpoint {path}; resume with: "
                  f"{resume_command(self.args, path)}", file=sys.stderr, flush=True)

    def _stopped_without_saving(self, trainer: pl.Trainer) -> None:
        """The line for a second Ctrl-C before the save: what is on disk and how to resume from it."""
        if not trainer.is_global_zero:
            return
        path = self.checkpoint_path(trainer)
        where = (f"the last checkpoint is {path} (step {_saved_step(path)}); resume with: {resume_command(self.args, path)}"
                 if os.path.isfile(path) else "no checkpoint was saved in this run")
        print(f"Stopped by a second SIGINT at step {trainer.global_step}, before saving: {where}", file=sys.stderr, flush=True)

    @property
    def exit_status(self) -> int:
        return 128 + int(self.signal or signal.SIGTERM)
