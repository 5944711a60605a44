"""``ram compare --join A B --out AB``: one report over comparisons that differ in a setting
other than the estimator (a learning-rate schedule, the location std, the budget), which
``--estimators`` cannot vary.

    ram compare --out runs/compare/plateau ... --trainer.max_epochs 30
    ram compare --out runs/compare/cosine ... --trainer.max_epochs 30 --model.init_args.lr_scheduler "{...}"
    ram compare --join runs/compare/plateau runs/compare/cosine --out runs/compare/schedule

Each finished run of each comparison enters the report with its variant's label followed by
``@`` and that comparison's folder name (``reinforce @ cosine``), so the tables, curves and
verdicts are those of ``--report-only`` over all of them; ``table.md`` first lists the settings
in which the joined comparisons differ (their fingerprints' keys), and ``joined.json`` keeps
the sources. The joined folders are only read.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from ram_lightning.compare.experiment import differing_keys
from ram_lightning.compare.runs import RunSpec, read_comparison, read_result
from ram_lightning.compare.tables import write_report
from ram_lightning.compare.trajectories import Rows, read_metrics
from ram_lightning.diagnostics.run_summary import write_json_atomically
from ram_lightning.errors import UserError

JOINED_FILE = "joined.json"


def joined_label(label: str, folder: Path) -> str:
    return f"{label} @ {folder.resolve().name}"


def differences(stored: Sequence[dict], folders: Sequence[Path]) -> List[str]:
    """One line per setting in which a comparison differs from the first: ``key: a | b | ...``."""
    keys = sorted({key for record in stored[1:] for key in differing_keys(stored[0]["fingerprint"], record["fingerprint"])})
    lines = []
    for key in keys:
        values = " | ".join(f"{folder.resolve().name}: {record['fingerprint'].get(key, '<unset>')}"
                            for folder, record in zip(folders, stored))
        lines.append(f"- `{key}`: {values}")
    return lines


def collect_joined(folders: Sequence[Path]) -> Tuple[List[dict], Dict[Tuple[str, int], Rows], List[str]]:
    """Every finished run's result (relabelled), its metrics by (label, seed), and the differences."""
    stored = [read_comparison(folder, "--join") for folder in folders]
    results: List[dict] = []
    metrics: Dict[Tuple[str, int], Rows] = {}
    for folder, record in zip(folders, stored):
        for spec in record["runs"]:
            run = RunSpec(**spec)
            result = read_result(run)  # None until the run is done
            if result is None:
                continue
            label = joined_label(run.label, folder)
            results.append({**result, "label": label})
            metrics[(label, run.seed)] = read_metrics(run.path)
    return results, metrics, differences(stored, folders)


def join_report(folders: Sequence[Path], out: Path, command: str, targets: Sequence[float],
                variance_reference: Optional[str] = None) -> Optional[str]:
    """Write the joined report to ``out`` (never one of ``folders``); its table.md text, or None
    if no joined comparison has a finished run."""
    folders = [Path(f) for f in folders]
    if len(folders) < 2:
        raise UserError("--join: give at least two comparison folders")
    if len({f.resolve() for f in folders}) != len(folders):
        raise UserError("--join: the same comparison folder is given twice")
    if out.resolve() in {f.resolve() for f in folders}:
        raise UserError(f"--out {out}: is one of the joined comparisons; give the joined report a folder of its own")
    results, metrics, differing = collect_joined(folders)
    labels = list(dict.fromkeys(r["label"] for r in results))
    if variance_reference is not None and variance_reference not in labels:
        raise UserError(f"--variance-reference {variance_reference!r}: not a joined variant; they are: {', '.join(labels)}")
    if not results:
        return None
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"--out {out}: cannot create the folder ({error.strerror or error})") from None
    write_json_atomically(out / JOINED_FILE, {"command": command, "sources": [str(f) for f in folders],
                                              "differing": differing, "variants": labels})
    notes = ["Settings in which the joined comparisons differ:", "\n".join(differing) or "- none"]
    title = f"{out.resolve().name}: {', '.join(labels)}"
    return write_report(results, out, command, targets, title, metrics, variance_reference, notes=notes)
