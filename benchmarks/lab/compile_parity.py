"""The table of ``benchmarks/compile_parity.sh``: test errors and wall times of the quickstart,
eager against compiled, over seeds (mean +- sd), the verdict by the 2-standard-error rule, and a
record with the commit in ``docs/results/compile_parity/records.json``.

    python -m benchmarks.lab.compile_parity [--runs runs] [--out docs/results/compile_parity]
"""
from __future__ import annotations

import argparse
import csv
import json
import re
import subprocess
from pathlib import Path
from typing import Dict, List

from ram_lightning.compare.report import mean_sd, verdict

KINDS = ("eager", "compiled")
METRICS = ("test/error", "test/error_avg10")


def read_run(runs: Path, name: str) -> Dict[str, object]:
    """Test metrics, precision and wall time of the run ``runs/<name>``."""
    (metrics_file,) = sorted((runs / name).glob("version_*/metrics.csv"))[-1:]  # ram fit tests into the run's own file
    with open(metrics_file) as handle:
        rows = list(csv.DictReader(handle))
    values = {key: float(row[key]) for row in rows for key in METRICS if row.get(key)}
    start, end = (float(v) for v in (runs / f"{name}.time").read_text().split())
    log = (runs / f"{name}.log").read_text()
    precision = re.search(r"Precision: (\S+),", log)
    compiled = re.search(r"Compiled the training step in ([\d.]+) s", log)
    return {"name": name, **values, "wall_s": end - start, "precision": precision[1] if precision else None,
            "compile_s": float(compiled[1]) if compiled else None}


def main(argv: List[str] = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=Path("runs"))
    parser.add_argument("--out", type=Path, default=Path("docs/results/compile_parity"))
    args = parser.parse_args(argv)
    names = sorted(p.stem for p in args.runs.glob("compile_parity_*_s*.time"))
    runs = [read_run(args.runs, name) for name in names]
    by_kind = {kind: [r for r in runs if r["name"].startswith(f"compile_parity_{kind}_")] for kind in KINDS}
    lines = [f"| quickstart, {len(by_kind['eager'])} seeds | " + " | ".join(METRICS) + " | wall time |", "|---" * 4 + "|"]
    for kind in KINDS:
        cells = [mean_sd([100 * r[m] for r in by_kind[kind]]) for m in METRICS]
        wall = mean_sd([r["wall_s"] / 60 for r in by_kind[kind]])
        lines.append(f"| {kind} | " + " | ".join(f"{m:.2f} ± {s:.2f}%" for m, s in cells) + f" | {wall[0]:.1f} ± {wall[1]:.1f} min |")
    verdicts = {m: verdict("compiled", [r[m] for r in by_kind["compiled"]], "eager", [r[m] for r in by_kind["eager"]])
                for m in METRICS}
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    record = {"command": "bash benchmarks/compile_parity.sh && python -m benchmarks.lab.compile_parity", "commit": commit,
              "runs": runs, "table": lines, "verdicts": verdicts}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "records.json").write_text(json.dumps(record, indent=2))
    print("\n".join(lines))
    for metric, text in verdicts.items():
        print(f"{metric}: {text}")
    return record


if __name__ == "__main__":
    main()
