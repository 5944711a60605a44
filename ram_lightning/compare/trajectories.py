"""Diagnostics over training, read from each run's ``metrics.csv``, as pure functions.

The translated-and-scaled configs log, while training, the gradient probe's
``grad_var/<group>`` / ``grad_snr/<group>`` every N updates (``GradientVarianceProbe``) and, at
every validation, ``val/scale_use/<s>`` (the fraction of evaluation glimpses at scale s). A
comparison's report turns them into tables over its seeds:

- ``probe_points``: the updates at which every run of the report was probed, reduced to three
  points, early (the first probe), middle (the probe nearest the middle) and end (the last);
- ``variance_over_training``: per variant, gradient variance and SNR of a module group at those
  points, mean ± sd over seeds;
- ``variance_reduction``: how much lower one variant's variance is than another's at each
  point, ``100 (1 - var_b / var_a)`` per seed (seeds matched by number), mean ± sd, with the
  2-standard-error verdict on log10 of the variances;
- ``scale_use_over_training``: per variant, the fraction of glimpses at each scale at each
  validation, mean ± sd over seeds, and the largest single-scale share per seed at the end.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from ram_lightning.compare.report import group_by_label, mean_sd, verdict

Rows = List[Dict[str, str]]


def read_metrics(run_folder: Path) -> Rows:
    """The rows of the newest ``version_*/metrics.csv`` under a run's folder ([] if none)."""
    found = sorted(Path(run_folder).glob("version_*/metrics.csv"), key=lambda p: p.stat().st_mtime)
    if not found:
        return []
    with open(found[-1], newline="") as handle:
        return list(csv.DictReader(handle))


def series(rows: Rows, column: str) -> Dict[int, float]:
    """``{update: value}`` of a column logged during training or validation.

    Two conventions of Lightning's CSV rows are undone here: a value logged after update u
    (in ``on_train_batch_end``, or by a validation within the epoch) is written with
    ``step`` u - 1; and a step-level value (the probe's) is written again, unchanged, in every
    later row until it is logged anew, so only the first row of each run of equal values counts.
    Blank cells (rows of other metrics) are skipped.
    """
    values: Dict[int, float] = {}
    previous = None
    for row in rows:
        text = row.get(column)
        if text in (None, "") or row.get("step") in (None, ""):
            continue
        if text != previous:
            values[int(float(row["step"])) + 1] = float(text)
        previous = text
    return values


def three_points(updates: Sequence[int]) -> Dict[str, int]:
    """``{"early", "middle", "end"}``: the first update, the one nearest the middle, the last."""
    ordered = sorted(set(updates))
    if not ordered:
        return {}
    middle = min(ordered, key=lambda u: (abs(u - (ordered[0] + ordered[-1]) / 2), u))
    return {"early": ordered[0], "middle": middle, "end": ordered[-1]}


def probe_points(metrics: Dict[Tuple[str, int], Rows], group: str) -> Dict[str, int]:
    """The three points (``three_points``) among the updates every run was probed at."""
    common = None
    for rows in metrics.values():
        updates = set(series(rows, f"grad_var/{group}"))
        common = updates if common is None else common & updates
    return three_points(sorted(common or []))


def _at(metrics: Dict[Tuple[str, int], Rows], label: str, seeds: Sequence[int], column: str, update: int) -> Dict[int, float]:
    found = {}
    for seed in seeds:
        value = series(metrics.get((label, seed), []), column).get(update)
        if value is not None:
            found[seed] = value
    return found


def _seeds(results: Sequence[dict]) -> Dict[str, List[int]]:
    return {label: [r["seed"] for r in runs] for label, runs in group_by_label(results).items()}


def _pm(values: Sequence[float], spec: str = ".3g") -> str:
    if not values:
        return "-"
    mean, sd = mean_sd(values)
    return f"{mean:{spec}} ± {sd:{spec}}"


def variance_over_training(results: Sequence[dict], metrics: Dict[Tuple[str, int], Rows], group: str) -> str:
    """Markdown: per variant, ``grad_var/<group>`` and ``grad_snr/<group>`` (mean ± sd over seeds)
    at the early / middle / end probes."""
    points = probe_points(metrics, group)
    if not points:
        return f"(no gradient probe of `{group}` common to every run)"
    head = [f"{name} (update {u})" for name, u in points.items()]
    lines = [f"| variant: `{group}` variance / SNR | " + " | ".join(head) + " |", "|---|" + "---|" * len(head)]
    for label, seeds in _seeds(results).items():
        cells = []
        for update in points.values():
            var = list(_at(metrics, label, seeds, f"grad_var/{group}", update).values())
            snr = list(_at(metrics, label, seeds, f"grad_snr/{group}", update).values())
            cells.append(f"{_pm(var)} / {_pm(snr)}")
        lines.append(f"| `{label}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def variance_reduction(results: Sequence[dict], metrics: Dict[Tuple[str, int], Rows], group: str,
                       reference: str, treated: str) -> List[dict]:
    """Per point: ``{"point", "update", "reduction": [percent per seed], "snr_ratio": [per seed],
    "verdict"}``; reduction ``100 (1 - var_treated / var_reference)`` for each seed both ran."""
    seeds = _seeds(results)
    points = probe_points(metrics, group)
    found = []
    for name, update in points.items():
        var_a = _at(metrics, reference, seeds.get(reference, []), f"grad_var/{group}", update)
        var_b = _at(metrics, treated, seeds.get(treated, []), f"grad_var/{group}", update)
        snr_a = _at(metrics, reference, seeds.get(reference, []), f"grad_snr/{group}", update)
        snr_b = _at(metrics, treated, seeds.get(treated, []), f"grad_snr/{group}", update)
        both = sorted(set(var_a) & set(var_b))
        if not both:
            continue
        logs_a = [math.log10(var_a[s]) for s in both]
        logs_b = [math.log10(var_b[s]) for s in both]
        found.append({
            "point": name, "update": update, "seeds": both,
            "reduction": [100 * (1 - var_b[s] / var_a[s]) for s in both],
            "snr_ratio": [snr_b[s] / snr_a[s] for s in both if s in snr_a and s in snr_b and snr_a[s] > 0],
            "verdict": verdict(treated, logs_b, reference, logs_a, scale=1.0, unit="in log10 of the variance"),
        })
    return found


def reduction_table(rows: Sequence[dict], group: str, reference: str, treated: str) -> str:
    """Markdown of ``variance_reduction``'s rows."""
    lines = [f"| point (update) | `{group}` variance reduction of `{treated}` vs `{reference}` | SNR ratio | verdict |",
             "|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['point']} ({row['update']}) | {_pm(row['reduction'], '.1f')}% "
                     f"(per seed: {', '.join('%.1f' % v for v in row['reduction'])}) | {_pm(row['snr_ratio'], '.2f')} | {row['verdict']} |")
    return "\n".join(lines)


def scale_columns(rows: Rows) -> List[str]:
    """The ``val/scale_use/<s>`` columns of a run, in scale order."""
    names = {name for row in rows[:1] for name in row if name.startswith("val/scale_use/")}
    return sorted(names, key=lambda name: int(name.rsplit("/", 1)[1]))


def scale_use_over_training(results: Sequence[dict], metrics: Dict[Tuple[str, int], Rows]) -> Optional[str]:
    """Markdown: per variant and validation, the share of each scale (mean ± sd over seeds), and
    at the last validation the largest single-scale share of each seed (1.0: collapsed); None
    when the runs logged no scale use."""
    lines = []
    for label, seeds in _seeds(results).items():
        runs = [metrics.get((label, seed), []) for seed in seeds]
        columns = scale_columns(runs[0]) if runs and runs[0] else []
        if not columns:
            continue
        updates = sorted(set.intersection(*(set(series(rows, columns[0])) for rows in runs)))
        if not updates:
            continue
        lines += [f"`{label}`:", "", "| update | " + " | ".join(f"scale {c.rsplit('/', 1)[1]}" for c in columns) + " |",
                  "|---|" + "---|" * len(columns)]
        for update in updates:
            cells = [_pm([series(rows, c)[update] for rows in runs], ".2f") for c in columns]
            lines.append(f"| {update} | " + " | ".join(cells) + " |")
        last = updates[-1]
        largest = [max(series(rows, c)[last] for c in columns) for rows in runs]
        lines += ["", f"Largest single-scale share at update {last}, per seed: "
                  + ", ".join("%.2f" % v for v in largest) + f" (mean {_pm(largest, '.2f')})", ""]
    return "\n".join(lines).strip() or None
