"""Contrast runs of several lab outputs at one update: ablations against the standard suite.

    python -m benchmarks.lab.contrast --update 1200 benchmarks/results/compare_cpu benchmarks/results/ablation_a

Every (folder, variant) row gets its validation error at ``--update`` (mean ± sd over seeds;
every run must have validated there), and every pair of rows of the same estimator gets a
verdict ("A ahead of B by X ± Y points" or "not separable at this budget"). Runs from the
same seed share initial weights and training data up to that update, whatever the budget
they were started with, and evaluation draws from a stream seeded by the step, so the rows
are comparable.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

from ram_lightning.compare.report import group_by_label, mean_sd, verdict


def row_name(folder: Path, run: dict) -> str:
    settings = " ".join(f"{k}={v}" for k, v in sorted(run.get("model_args", {}).items()))
    if run.get("precision", "32-true") != "32-true":
        settings = f"{settings} precision={run['precision']}".strip()
    return run["label"] + (f" [{settings}]" if settings else "")


def errors_at(runs: Sequence[dict], update: int) -> List[float]:
    values = []
    for run in runs:
        match = [p["val_error"] for p in run["curve"] if p["update"] == update]
        if not match:
            raise SystemExit(f"contrast: error: {run['label']} seed {run['seed']} did not validate at update {update}")
        values.append(match[0])
    return values


def contrast(folders: Sequence[Path], update: int) -> str:
    rows: Dict[str, Tuple[str, List[float]]] = {}
    for folder in folders:
        results = json.loads((folder / "results.json").read_text())
        for label, runs in group_by_label(results).items():
            rows[f"{row_name(folder, runs[0])} ({folder.name})"] = (runs[0]["estimator"], errors_at(runs, update))
    lines = [f"Validation error at update {update} (mean ± sd over seeds):", "",
             "| run | seeds | val error |", "|---|---|---|"]
    for name, (_, values) in rows.items():
        mean, sd = mean_sd(values)
        lines.append(f"| {name} | {len(values)} | {100 * mean:.2f} ± {100 * sd:.2f}% |")
    lines += ["", "Verdicts (same estimator):", ""]
    names = list(rows)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if rows[a][0] == rows[b][0]:
                lines.append(f"- {verdict(a, rows[a][1], b, rows[b][1])}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folders", nargs="+", type=Path, help="output folders of compare_estimators (results.json)")
    parser.add_argument("--update", type=int, required=True, help="the update at which to compare")
    args = parser.parse_args()
    print(contrast(args.folders, args.update))


if __name__ == "__main__":
    main()
