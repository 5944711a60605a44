"""Ctrl-C in the estimator lab: one line and exit status 130, never a traceback.

Lightning's ``Trainer.fit`` turns a KeyboardInterrupt into ``sys.exit(1)`` (after "Detected
KeyboardInterrupt, attempting graceful shutdown"), so while the lab runs, SIGINT raises
:class:`Interrupted` instead, which Lightning tears down after and lets through. A second
Ctrl-C ends the process at once. The worker processes of a suite run ignore SIGINT (the
terminal sends it to all of them); the main process stops them (:func:`stop_workers`).
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import signal
import threading
from typing import Iterator


class Interrupted(BaseException):
    """SIGINT (Ctrl-C) during a lab run; a BaseException, like KeyboardInterrupt, so that no
    ``except Exception`` swallows it."""


def _raise_interrupted(signum, frame) -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # a second Ctrl-C ends the process at once
    raise Interrupted()


@contextlib.contextmanager
def sigint_raises_interrupted() -> Iterator[None]:
    """Within the block (in the main thread), SIGINT raises :class:`Interrupted`."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, _raise_interrupted)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def ignore_sigint() -> None:
    """For worker processes: Ctrl-C is the main process's to handle."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def stop_workers(pool: concurrent.futures.ProcessPoolExecutor) -> None:
    """Cancel the runs not started and end the ones running (their results are lost)."""
    terminate = getattr(pool, "terminate_workers", None)  # Python 3.14
    if terminate is not None:
        terminate()
    else:
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            process.terminate()
    pool.shutdown(wait=True, cancel_futures=True)
