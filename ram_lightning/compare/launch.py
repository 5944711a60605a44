"""Runs as submitit jobs: ``local`` (processes on this machine, ``jobs`` at a time, the CPU cores
split between them, each given one of the machine's GPUs if it has any: the least busy) or
``slurm`` (one job array, ``jobs`` tasks at a time).

Stopping (SIGINT or SIGTERM to ``ram compare``): no new run starts; every running job gets
SIGTERM (local: through submitit's controller, which forwards it; SLURM: ``scancel``, which
sends it), so ``ram fit`` stops after its step with ``last.ckpt`` saved
(``ram_lightning.run.signals``). Ctrl-C in a terminal reaches the runs themselves too: the
controllers are started with SIGINT ignored, so that submitit does not kill a run one second
later, in the middle of its checkpoint.
"""
from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

import yaml

from ram_lightning.compare.job import run_job
from ram_lightning.compare.runs import RunSpec
from ram_lightning.errors import UserError

LAUNCHERS = ("local", "slurm")
LOCAL_TIMEOUT_MIN = 60 * 24 * 30  # submitit's local default (2 minutes) would stop every run
# submitit's executor-independent parameters; any other --slurm.<key> is passed as slurm_<key>
GENERIC = {"timeout_min", "gpus_per_node", "cpus_per_task", "nodes", "tasks_per_node", "mem_gb", "name", "stderr_to_stdout"}
POLL_SECONDS = 0.5


def slurm_parameters(options: List[str], jobs: int) -> Dict[str, Any]:
    """``["partition=gpu", "gpus_per_node=1", ...]`` -> submitit's AutoExecutor parameters."""
    parameters: Dict[str, Any] = {"slurm_array_parallelism": jobs}
    for option in options:
        key, sep, value = option.partition("=")
        if not sep or not key:
            raise UserError(f"--slurm.{option}: expected --slurm.<option> <value>")
        parameters[key if key in GENERIC else f"slurm_{key}"] = yaml.safe_load(value)
    return parameters


def make_executor(launcher: str, folder: Path, slurm_options: List[str], jobs: int, name: str = "ram-compare"):
    """The submitit executor for ``launcher`` writing its job files and logs to ``folder``."""
    import submitit

    if launcher == "local":
        executor = submitit.LocalExecutor(folder=str(folder))
        executor.update_parameters(timeout_min=LOCAL_TIMEOUT_MIN)
        return executor
    try:
        executor = submitit.AutoExecutor(folder=str(folder), cluster="slurm")
    except RuntimeError as error:  # no srun / sbatch here
        raise UserError(f"--launcher slurm: {error}") from None
    try:
        executor.update_parameters(**{"name": name, **slurm_parameters(slurm_options, jobs)})
    except (ValueError, TypeError) as error:
        raise UserError(f"--slurm options: {error}") from None
    return executor


@contextlib.contextmanager
def sigint_ignored() -> Iterator[None]:
    """SIGINT ignored while processes are started (they inherit it: see the module docstring)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class StopRequest:
    """SIGINT / SIGTERM to ``ram compare`` while its runs go: recorded, acted on by the wait loop."""

    def __init__(self) -> None:
        self.signum: Optional[int] = None
        self._previous: Dict[int, Any] = {}

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self.signum = self.signum or signum

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def local_gpu_count() -> int:
    """CUDA devices this machine shows (each local job is given one, round robin)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _stop_job(job: Any) -> None:
    process = getattr(job, "_process", None)  # a local job: its controller forwards SIGTERM to the run
    if process is not None:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    else:
        job.cancel(check=False)  # SLURM: scancel, which sends SIGTERM


def _outcome(job: Any, run: RunSpec) -> Dict[str, Any]:
    try:
        return job.result()
    except Exception as error:  # the job ended without a result (crashed, killed): its last error line and log
        log = Path(str(getattr(job.paths, "stderr", "")))
        lines = [line for line in (log.read_text(errors="replace").splitlines() if log.is_file() else [])
                 if line.strip() and not line[0].isspace() and not line.startswith("Traceback")]
        return {"label": run.label, "seed": run.seed, "status": "failed",
                "error": lines[-1][:300] if lines else type(error).__name__, "log": str(log)}


def launch(runs: List[RunSpec], launcher: str, folder: Path, jobs: int, slurm_options: List[str],
           report: Callable[[RunSpec, Dict[str, Any]], None], stop: StopRequest, name: str = "ram-compare") -> List[Dict[str, Any]]:
    """Run every run as a job, at most ``jobs`` at a time; ``report(run, outcome)`` as each ends.
    Returns the outcomes. On a stop request, running jobs get SIGTERM and are waited for."""
    executor = make_executor(launcher, folder, slurm_options, jobs, name)
    gpus = local_gpu_count() if launcher == "local" else 0
    if launcher == "local":
        threads = max(1, (os.cpu_count() or 1) // max(1, min(jobs, len(runs))))
        for run in runs:
            run.threads = threads
    pending, running, outcomes = list(runs), [], []
    if launcher == "slurm":
        with sigint_ignored():
            running = list(zip(executor.map_array(run_job, pending), pending))
        pending = []
    stopping = False
    while pending or running:
        if stop.signum is not None and not stopping:
            stopping, pending = True, []
            for job, _ in running:
                _stop_job(job)
        while pending and len(running) < jobs and not stopping:
            run = pending.pop(0)
            if launcher == "local" and gpus:  # submitit hides every GPU from a local job unless given some
                busy = [getattr(r, "gpu", None) for _, r in running]
                run.gpu = min(range(gpus), key=busy.count)  # the GPU with the fewest runs on it
                executor.update_parameters(gpus_per_node=1, visible_gpus=[run.gpu])
            with sigint_ignored():
                running.append((executor.submit(run_job, run), run))
        for entry in [e for e in running if e[0].done()]:
            running.remove(entry)
            outcome = _outcome(*entry)
            outcomes.append(outcome)
            report(entry[1], outcome)
        time.sleep(POLL_SECONDS)
    return outcomes
