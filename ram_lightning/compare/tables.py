"""The report of a comparison, written to its folder: ``results.json`` (every finished run),
``curves.csv``, ``table.md`` (the tables of ``ram_lightning.compare.report`` and the verdicts,
then the diagnostics over training of ``ram_lightning.compare.trajectories``), ``trajectories.json``
(their figures, when the runs logged any) and ``validation_error.png`` (``ram_lightning.compare.plot``). Each file is written whole
(a temporary file, then renamed), so an interrupted report never leaves half a table.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ram_lightning.compare.plot import plot_bands
from ram_lightning.compare.report import eval_samples, gradient_table, group_by_label, mean_sd, summary_table, verdicts
from ram_lightning.compare.trajectories import (Rows, probe_points, reduction_table, scale_use_over_training,
                                                variance_over_training, variance_reduction)
from ram_lightning.diagnostics.run_summary import write_text_atomically

TRAJECTORY_GROUPS = ("policy", "bottom_lstm")  # the groups the control-variate claim is checked on


def seconds_per_update(results: Sequence[dict]) -> Dict[str, float]:
    """Per variant, the median over its runs of training seconds / update (validation excluded)."""
    per_label = {}
    for label, runs in group_by_label(results).items():
        values = sorted(r["train_seconds"] / r["updates"] for r in runs if r.get("updates") and r.get("train_seconds"))
        if values:
            per_label[label] = values[len(values) // 2]
    return per_label


def diagnostics_table(results: Sequence[dict]) -> str:
    """Markdown: q's KL to p (summed over glimpses), label use and the scale histogram, mean ± sd."""
    lines = [r"| variant | KL(q ‖ p), sum over glimpses | bound on log p(y \| I): true - shuffled labels to q "
             "| scale choice (fraction per scale; per seed) |",
             "|---|---|---|---|"]
    for label, runs in group_by_label(results).items():
        kl = [sum(r["kl_q_p_per_glimpse"]) for r in runs if r.get("kl_q_p_per_glimpse")]
        gain = [r["label_use"]["gain"] for r in runs if r.get("label_use")]
        hist = [r["scale_histogram"] for r in runs if r.get("scale_histogram")]

        def fmt(values):
            return "-" if not values else "%.3g ± %.2g" % mean_sd(values)
        scales = "-" if not hist else "; ".join(" / ".join("%.2f" % v for v in h) for h in hist)
        lines.append(f"| `{label}` | {fmt(kl)} | {fmt(gain)} | {scales} |")
    return "\n".join(lines)


def settings_line(results: Sequence[dict]) -> str:
    """Precision and compiled step of the runs, as recorded by each."""
    precisions = sorted({str(r.get("precision")) for r in results})
    compiled = sorted({bool(r.get("compiled")) for r in results})
    said = {(True,): "compiled", (False,): "eager", (False, True): "compiled in some runs, eager in others"}
    return f"Precision: {', '.join(precisions)}; training step: {said.get(tuple(compiled), '-')}."


def trajectory_sections(results: Sequence[dict], metrics: Dict[Tuple[str, int], Rows],
                        variance_reference: Optional[str]) -> Tuple[List[str], Dict[str, Any]]:
    """table.md's sections on diagnostics over training (``ram_lightning.compare.trajectories``)
    and their figures for ``trajectories.json``; nothing where the runs logged none."""
    sections: List[str] = []
    figures: Dict[str, Any] = {"groups": {}, "reductions": {}}
    for group in TRAJECTORY_GROUPS:
        points = probe_points(metrics, group)
        if not points:
            continue
        figures["groups"][group] = points
        sections += [f"Gradient variance / SNR of `{group}` over training (the probe's own draws on the "
                     "training batch; mean ± sd over seeds):", variance_over_training(results, metrics, group)]
        if variance_reference is None:
            continue
        for treated in [label for label in group_by_label(results) if label != variance_reference]:
            rows = variance_reduction(results, metrics, group, variance_reference, treated)
            if rows:
                figures["reductions"][f"{group}: {treated} vs {variance_reference}"] = rows
                sections.append(reduction_table(rows, group, variance_reference, treated))
    scales = scale_use_over_training(results, metrics)
    if scales:
        sections += ["Scale choice over training (share of the validation glimpses at each scale, every "
                     "glimpse of the eval_samples sequences; mean ± sd over seeds):", scales]
    return sections, figures


def write_report(results: List[dict], out: Path, command: str, targets: Sequence[float], title: str,
                 metrics: Optional[Dict[Tuple[str, int], Rows]] = None, variance_reference: Optional[str] = None,
                 notes: Sequence[str] = ()) -> str:
    """Write the report's files to ``out`` (``trajectories.json`` too when ``metrics``, the runs'
    metrics.csv rows by (variant, seed), hold probes or scale use); returns table.md's text.
    ``notes``: paragraphs after the settings line (a joined report's differing settings)."""
    write_text_atomically(out / "results.json", json.dumps(results, indent=1))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["variant", "seed", "update", "train_seconds", "val_error"])
    for r in results:
        for p in r["curve"]:
            writer.writerow([r["label"], r["seed"], p["update"], f"{p['seconds']:.2f}", f"{p['val_error']:.4f}"])
    write_text_atomically(out / "curves.csv", buffer.getvalue())
    capped = [f"{r['label']} seed {r['seed']} ({r['updates']} updates)" for r in results if r.get("capped")]
    over_training, figures = trajectory_sections(results, metrics or {}, variance_reference)
    if over_training:
        write_text_atomically(out / "trajectories.json", json.dumps(figures, indent=1))
    averaged = verdicts(results, averaged=True)
    sections = [
        f"`{command}`",
        settings_line(results),
        *notes,
        summary_table(results, targets, seconds_per_update(results)),
        "Gradient variance / signal-to-noise ratio per module group (final weights, one validation batch; "
        "mean ± sd over seeds):",
        gradient_table(results),
        "q and policy diagnostics (final weights):",
        diagnostics_table(results),
        "Verdicts on the test error (one glimpse sequence):",
        "\n".join(f"- {line}" for line in verdicts(results)),
    ]
    if averaged:
        sections += [f"Verdicts on the test error averaging {eval_samples(results)} sequences:",
                     "\n".join(f"- {line}" for line in averaged)]
    sections += over_training
    if capped:
        sections.append(f"Stopped before max_steps (max_time or early stopping): {', '.join(capped)}")
    text = "\n\n".join(sections) + "\n"
    write_text_atomically(out / "table.md", text)
    plot_bands(results, out / "validation_error.png", title)
    return text
