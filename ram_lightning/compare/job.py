"""One run of a comparison, as it executes inside its job (a submitit job: a local process or a
SLURM task). Module-level functions only: submitit pickles ``run_job`` by reference and the
run's :class:`RunSpec` as data, so a job file names code of this package and nothing else.
"""
from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any, Dict, List

from ram_lightning.compare.runs import COMMAND_FILE, RESULT_FILE, RunSpec, newest_last_checkpoint
from ram_lightning.diagnostics.run_summary import SUMMARY_FILE, write_json_atomically


def run_job(run: RunSpec) -> Dict[str, Any]:
    """``ram fit`` of the run (resumed from its newest ``last.ckpt`` if it has one), then its
    ``result.json``. Returns ``{"label", "seed", "status", "exit_code"}``; status ``done``,
    ``stopped`` (a signal: the checkpoint is saved) or ``failed``."""
    if run.threads:
        os.environ["OMP_NUM_THREADS"] = str(run.threads)
        import torch

        torch.set_num_threads(run.threads)
    os.environ.update(run.env)
    run.path.mkdir(parents=True, exist_ok=True)
    command = run.command_line()
    (run.path / COMMAND_FILE).write_text(command + "\n")
    args = list(run.fit_args)
    checkpoint = newest_last_checkpoint(run)
    if checkpoint is not None:
        args += ["--ckpt_path", str(checkpoint)]
        print(f"ram compare: resuming {run.label} seed {run.seed} from {checkpoint}", flush=True)
    for signum in (signal.SIGINT, signal.SIGTERM):  # until fitting starts; then ram fit's own handlers save and stop
        signal.signal(signum, _stop_before_fit)
    exit_code = _ram_fit(args)
    status = "done" if exit_code == 0 else ("stopped" if exit_code in (130, 143) else "failed")
    if status == "done":
        summary = _summary(run)
        if summary is None:
            status = "failed"
        else:
            write_json_atomically(run.path / RESULT_FILE, {
                "label": run.label, "estimator": run.estimator, "options": run.options, "seed": run.seed,
                "command": command, **summary})
    return {"label": run.label, "seed": run.seed, "status": status, "exit_code": exit_code}


def _stop_before_fit(signum, frame) -> None:
    """SIGINT / SIGTERM before ``ram fit``'s own handlers are in place (or after they are gone):
    stop now. Called by those handlers in turn (they chain to the previous one): nothing to do."""
    if signal.getsignal(signum) is _stop_before_fit:
        raise KeyboardInterrupt


def _ram_fit(args: List[str]) -> int:
    from ram_lightning.run.cli import main

    try:
        main(["fit", *args])
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    except KeyboardInterrupt:
        return 130
    return 0


def _summary(run: RunSpec) -> Dict[str, Any]:
    """The newest ``summary.json`` the run's RunSummary wrote (None if none)."""
    found = sorted(run.path.glob(f"version_*/{SUMMARY_FILE}"), key=lambda p: p.stat().st_mtime)
    return json.loads(Path(found[-1]).read_text()) if found else None
