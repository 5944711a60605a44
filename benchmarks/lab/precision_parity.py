"""bf16-mixed against 32-bit at equal updates: the table and plot of ``benchmarks/precision_parity.sh``.

    python -m benchmarks.lab.precision_parity [--runs runs] [--results benchmarks/results]

Reads the quickstart-setting runs ``<runs>/parity_quickstart_<precision>_s<seed>/version_*/metrics.csv``
(the newest version of each) and the lab's wake_sleep_cv runs (``<results>/parity_wake_sleep_cv_bf16``
and ``<results>/ablation_base_1200``). Prints, per task and precision, the validation error at
every validated update and the test error (mean ± sd over seeds), a verdict per task at the last
common update ("A ahead of B by X ± Y points" or "not separable at this budget"), and writes
``<results>/precision_parity.png`` (mean with a ±1 sd band per precision).
"""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Dict, List

from ram_lightning.compare.report import mean_sd, verdict

PRECISIONS = ("32-true", "bf16-mixed")
Curves = Dict[str, List[dict]]  # precision -> one {"curve": {update: val error}, "test": error} per seed


def quickstart_runs(runs: Path) -> Curves:
    found: Curves = {p: [] for p in PRECISIONS}
    for precision in PRECISIONS:
        for folder in sorted(runs.glob(f"parity_quickstart_{precision}_s*")):
            versions = sorted(folder.glob("version_*/metrics.csv"), key=lambda p: int(p.parent.name.split("_")[1]))
            if not versions:
                continue
            curve, test = {}, None
            with open(versions[-1]) as handle:
                for row in csv.DictReader(handle):
                    if row.get("val/error"):
                        curve[int(row["step"]) + 1] = float(row["val/error"])  # logged at step index (updates - 1)
                    if row.get("test/error"):
                        test = float(row["test/error"])
            found[precision].append({"curve": curve, "test": test})
    return found


def lab_runs(results: Path) -> Curves:
    found: Curves = {p: [] for p in PRECISIONS}
    for folder in ("ablation_base_1200", "parity_wake_sleep_cv_bf16"):
        path = results / folder / "results.json"
        if not path.exists():
            continue
        for run in json.loads(path.read_text()):
            if run["label"] == "wake_sleep_cv" and not run.get("model_args"):
                found[run.get("precision", "32-true")].append(
                    {"curve": {p["update"]: p["val_error"] for p in run["curve"]}, "test": run["test_error"]})
    return found


def table(task: str, curves: Curves) -> List[str]:
    if not all(curves[p] for p in PRECISIONS):
        return [f"{task}: runs missing ({', '.join(f'{p}: {len(curves[p])} seeds' for p in PRECISIONS)})"]
    updates = sorted(set.intersection(*(set(run["curve"]) for p in PRECISIONS for run in curves[p])))
    lines = [f"{task} (validation error at equal updates, mean ± sd over seeds):", "",
             "| precision | seeds | " + " | ".join(f"update {u}" for u in updates) + " | test error |",
             "|---" * (len(updates) + 3) + "|"]
    for precision in PRECISIONS:
        runs = curves[precision]
        cells = ["%.2f ± %.2f%%" % tuple(100 * v for v in mean_sd([r["curve"][u] for r in runs])) for u in updates]
        tests = [r["test"] for r in runs if r["test"] is not None]
        test = "%.2f ± %.2f%%" % tuple(100 * v for v in mean_sd(tests)) if tests else "-"
        lines.append(f"| {precision} | {len(runs)} | " + " | ".join(cells) + f" | {test} |")
    last = updates[-1]
    if min(len(curves[p]) for p in PRECISIONS) < 2:
        return lines + ["", f"- at update {last}: fewer than 2 seeds of a precision, no verdict"]
    lines += ["", f"- at update {last}: " + verdict("bf16-mixed", [r["curve"][last] for r in curves["bf16-mixed"]],
                                                   "32-bit", [r["curve"][last] for r in curves["32-true"]])]
    return lines


def plot(tasks: Dict[str, Curves], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install -e '.[bench]'): no plot written")
        return False
    figure, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 4))
    for axis, (task, curves) in zip(axes if len(tasks) > 1 else [axes], tasks.items()):
        for precision in PRECISIONS:
            runs = curves[precision]
            if not runs:
                continue
            updates = sorted(set.intersection(*(set(r["curve"]) for r in runs)))
            stats = [mean_sd([100 * r["curve"][u] for r in runs]) for u in updates]
            line, = axis.plot(updates, [m for m, _ in stats], marker="o", markersize=3, label=f"{precision} ({len(runs)} seeds)")
            axis.fill_between(updates, [m - s for m, s in stats], [m + s for m, s in stats], color=line.get_color(), alpha=0.2, linewidth=0)
        axis.set(xlabel="updates", ylabel="validation error (%)", title=task)
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=Path, default=Path("runs"))
    parser.add_argument("--results", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    tasks = {"quickstart settings: translated MNIST, reinforce": quickstart_runs(args.runs),
             "translated-and-scaled MNIST, wake_sleep_cv": lab_runs(args.results)}
    for task, curves in tasks.items():
        print("\n".join(table(task, curves)) + "\n")
    if plot(tasks, args.results / "precision_parity.png"):
        print(f"plot: {args.results / 'precision_parity.png'}")


if __name__ == "__main__":
    main()
