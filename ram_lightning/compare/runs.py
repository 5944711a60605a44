"""The runs of a comparison: one ``ram fit`` per (variant, seed), each in its own folder.

    <out>/compare.json                       the experiment: fingerprint, variants, seeds, command
    <out>/<variant>/seed_<k>/command.txt      the run's full command line (``ram fit`` reproduces it alone)
    <out>/<variant>/seed_<k>/version_0/       config.yaml, metrics.csv, checkpoints/, pictures, summary.json
    <out>/<variant>/seed_<k>/result.json      written when the run has finished and been tested: it is done
    <out>/jobs/                               submitit's job files and logs

A run's command line is the comparison's ``ram fit`` options followed by the variant's estimator
(``--model.init_args.estimator``), the seed (``--seed_everything``), the run folder
(``--trainer.default_root_dir``), a name, and the ``RunSummary`` callback; W&B's group and job
type travel as ``WANDB_RUN_GROUP`` / ``WANDB_JOB_TYPE`` (set by the job, written in front of the
command). A run started before continues from its newest ``last.ckpt`` (``--ckpt_path``).
"""
from __future__ import annotations

import json
import shlex
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, List, Optional

from ram_lightning.compare.variants import Variant, estimator_spec, folder_name
from ram_lightning.errors import UserError

EXPERIMENT_FILE = "compare.json"
RESULT_FILE = "result.json"
COMMAND_FILE = "command.txt"
SUMMARY_CALLBACK = '{"class_path": "ram_lightning.diagnostics.RunSummary"}'


@dataclass
class RunSpec:
    """One run: its variant label, seed, folder and ``ram fit`` arguments (without ``fit``),
    the environment it adds (W&B group and job type), how many CPU threads it may use and, for a
    local job on a machine with GPUs, which GPU it was given."""

    label: str
    seed: int
    folder: str
    fit_args: List[str]
    env: Dict[str, str] = field(default_factory=dict)
    estimator: str = ""
    options: Dict[str, Any] = field(default_factory=dict)
    threads: Optional[int] = None
    gpu: Optional[int] = None

    @property
    def path(self) -> Path:
        return Path(self.folder)

    def command_line(self) -> str:
        """The run's full command line, environment first."""
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(self.env.items()))
        return f"{env} ram fit {' '.join(shlex.quote(a) for a in self.fit_args)}".strip()

    def as_dict(self) -> Dict[str, Any]:
        return asdict(self)


def plan_runs(out: Path, fit_args: List[str], variants: List[Variant], seeds: List[int], num_samples: Optional[int],
              group: str, pinned: Dict[str, str]) -> List[RunSpec]:
    """Every (variant, seed) run of the comparison, variants outer, seeds inner.

    Args:
        out: the comparison's folder.
        fit_args: the ``ram fit`` options every run shares (``--config ...``, overrides).
        num_samples: the config's K (None: each variant's own default).
        group: the comparison's name (W&B group).
        pinned: ``ram fit`` options fixed for every run because the comparison resolved them
            (``--trainer.precision`` chosen on this machine), added unless ``fit_args`` gives them.
    """
    extra = [item for key, value in pinned.items() if f"--{key}" not in fit_args for item in (f"--{key}", value)]
    runs = []
    for variant in variants:
        spec = json.dumps(estimator_spec(variant, num_samples), separators=(",", ":"))
        name = folder_name(variant.label)
        for seed in seeds:
            folder = out / name / f"seed_{seed}"
            args = [*fit_args, *extra, "--model.init_args.estimator", spec, "--seed_everything", str(seed),
                    "--trainer.default_root_dir", str(folder), "--name", f"{group}-{name}-seed{seed}",
                    "--trainer.callbacks+", SUMMARY_CALLBACK]
            env = {"WANDB_RUN_GROUP": group, "WANDB_JOB_TYPE": variant.label}
            runs.append(RunSpec(variant.label, seed, str(folder), args, env, variant.estimator, dict(variant.options)))
    return runs


def launch_order(runs: List[RunSpec]) -> List[RunSpec]:
    """The runs seeds outer, variants inner, so that a comparison stopped part-way (a session's
    end, a cluster's time limit) leaves the variants with about as many seeds done each, rather
    than whole variants not started."""
    return sorted(runs, key=lambda run: run.seed)


def pace_line(ended: int, total: int, elapsed_s: float, jobs: int) -> str:
    """``"4 of 12 ended in 25 min; about 50 min to go at this pace"``: the wall time so far per
    ended run, times the runs left. Said only once ``jobs`` runs (those at a time) have ended:
    before, the first runs' ends say nothing of the pace. Resumed runs make it look faster."""
    line = f"{ended} of {total} ended in {elapsed_s / 60:.0f} min"
    if min(jobs, total) <= ended < total:
        line += f"; about {(total - ended) * elapsed_s / ended / 60:.0f} min to go at this pace"
    return line


def newest_last_checkpoint(run: RunSpec) -> Optional[Path]:
    """The newest ``version_*/checkpoints/last.ckpt`` under the run's folder, or None."""
    found = sorted(run.path.glob("version_*/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


RECORD_KEYS = ("fingerprint", "variants", "seeds", "runs", "command", "title")  # what compare.json holds


def read_comparison(folder: Path, option: str) -> dict:
    """The ``compare.json`` in ``folder``; a UserError naming ``option`` (the flag that named the
    folder) if it is missing, unreadable or not a comparison record (its keys, and each run's)."""
    path = folder / EXPERIMENT_FILE
    if not path.is_file():
        raise UserError(f"{option} {folder}: {path} not found; no comparison has run in {folder}")
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise UserError(f"{option} {folder}: {path} is not a comparison record ({error})") from None
    required = {f.name for f in fields(RunSpec) if f.default is MISSING and f.default_factory is MISSING}
    missing = [key for key in RECORD_KEYS if key not in record] if isinstance(record, dict) else list(RECORD_KEYS)
    if not missing and not (isinstance(record["runs"], list) and all(isinstance(r, dict) and required <= set(r) for r in record["runs"])):
        missing = [f"runs[].{key}" for key in sorted(required)]
    if missing:
        raise UserError(f"{option} {folder}: {path} is not a comparison record (expected the keys {', '.join(missing)})")
    return record


def is_done(run: RunSpec) -> bool:
    return (run.path / RESULT_FILE).is_file()


def read_result(run: RunSpec) -> Optional[dict]:
    """The run's ``result.json`` (None if it is not done)."""
    path = run.path / RESULT_FILE
    return json.loads(path.read_text()) if path.is_file() else None
