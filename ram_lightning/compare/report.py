"""Summaries over seeds, as pure functions: mean ± sd, updates to reach a target, verdicts, tables.

A verdict compares two sets of per-seed values: the difference of their means against its
standard error sqrt(sd_a^2 / n_a + sd_b^2 / n_b); below twice that it is "not separable at
this budget".
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence, Tuple


def mean_sd(values: Sequence[float]) -> Tuple[float, float]:
    """Mean and sample standard deviation (ddof 1; 0 for a single value)."""
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return mean, sd


def updates_to_reach(curve: Sequence[dict], target: float) -> Optional[int]:
    """The first update at which the validation error is <= ``target``, or None."""
    for point in curve:
        if point["val_error"] <= target:
            return int(point["update"])
    return None


def verdict(name_a: str, values_a: Sequence[float], name_b: str, values_b: Sequence[float],
            lower_is_better: bool = True, scale: float = 100.0, unit: str = "points") -> str:
    """"A ahead of B by X ± Y points" (Y the standard error of the difference), or "not separable"."""
    (mean_a, sd_a), (mean_b, sd_b) = mean_sd(values_a), mean_sd(values_b)
    difference = (mean_b - mean_a) if lower_is_better else (mean_a - mean_b)  # > 0: A ahead
    stderr = math.sqrt(sd_a ** 2 / len(values_a) + sd_b ** 2 / len(values_b))
    if abs(difference) < 2 * stderr or (stderr == 0 and difference == 0):
        return (f"{name_a} vs {name_b}: not separable at this budget "
                f"({name_a} - {name_b} = {-scale * difference:+.2f} ± {scale * stderr:.2f} {unit})")
    ahead, behind = (name_a, name_b) if difference > 0 else (name_b, name_a)
    return f"{ahead} ahead of {behind} by {scale * abs(difference):.2f} ± {scale * stderr:.2f} {unit}"


def averaged_test_error(result: dict) -> Optional[float]:
    """The test error averaged over ``eval_samples`` glimpse sequences (older records: ``test_error_avg10``)."""
    return result.get("test_error_avg", result.get("test_error_avg10"))


def eval_samples(results: Sequence[dict]) -> int:
    """The glimpse sequences the runs' averaged test error is over (older records: 10)."""
    return next((r.get("eval_samples") for r in results if r.get("eval_samples")), 10)


def group_by_label(results: Sequence[dict]) -> Dict[str, List[dict]]:
    """Per-seed results grouped by variant label, in first-seen order."""
    groups: Dict[str, List[dict]] = {}
    for result in results:
        groups.setdefault(result["label"], []).append(result)
    return groups


def _pm(values: Sequence[float], scale: float = 1.0, spec: str = ".2f", suffix: str = "") -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    mean, sd = mean_sd([scale * v for v in values])
    return f"{mean:{spec}} ± {sd:{spec}}{suffix}"


def _reach(runs: Sequence[dict], target: float) -> str:
    reached = [updates_to_reach(r["curve"], target) for r in runs]
    hits = [u for u in reached if u is not None]
    if not hits:
        return "not reached"
    text = _pm(hits, spec=".0f")
    return text if len(hits) == len(runs) else f"{text} ({len(hits)} of {len(runs)} seeds; others not reached)"


def summary_table(results: Sequence[dict], targets: Sequence[float], seconds_per_update: Dict[str, float]) -> str:
    """Markdown: per variant, mean ± sd over seeds of the test errors, updates to each target,
    s / update, final ESS and the policy's gradient variance and SNR."""
    groups = group_by_label(results)
    samples = eval_samples(results)
    head = ["variant", "seeds", "updates", "test error", f"test error (avg {samples})"]
    head += [f"updates to {100 * t:g}% val" for t in targets] + ["s / update", "final ESS", "grad var (policy)", "grad SNR (policy)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, runs in groups.items():
        row = [f"`{label}`", str(len(runs)), _pm([r["updates"] for r in runs], spec=".0f"),
               _pm([r["test_error"] for r in runs], 100, suffix="%"), _pm([averaged_test_error(r) for r in runs], 100, suffix="%")]
        row += [_reach(runs, t) for t in targets]
        seconds = seconds_per_update.get(label)
        row += ["-" if seconds is None else f"{seconds:.3f}", _pm([r.get("ess") for r in runs]),
                _pm([r.get("gradients", {}).get("policy", {}).get("variance") for r in runs], spec=".3g"),
                _pm([r.get("gradients", {}).get("policy", {}).get("snr") for r in runs], spec=".3g")]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def gradient_table(results: Sequence[dict]) -> str:
    """Markdown: per variant and module group, mean ± sd over seeds of the gradient variance and SNR."""
    groups = group_by_label(results)
    names = list(dict.fromkeys(name for r in results for name in r.get("gradients", {})))
    lines = ["| variant | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for label, runs in groups.items():
        cells = []
        for name in names:
            have = [r["gradients"][name] for r in runs if name in r.get("gradients", {})]
            cells.append("-" if not have else
                         f"{_pm([g['variance'] for g in have], spec='.3g')} / {_pm([g['snr'] for g in have], spec='.3g')}")
        lines.append(f"| `{label}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def verdicts(results: Sequence[dict], averaged: bool = False) -> List[str]:
    """One line per pair of variants, on the test error with one glimpse sequence, or with
    ``averaged`` on the error of the class probabilities averaged over ``eval_samples`` sequences
    (pairs where a run lacks it are left out)."""
    errors = {label: [averaged_test_error(r) if averaged else r["test_error"] for r in runs]
              for label, runs in group_by_label(results).items()}
    labels = list(errors)
    lines = []
    for i, a in enumerate(labels):
        for b in labels[i + 1:]:
            if None not in errors[a] + errors[b]:
                lines.append(verdict(a, errors[a], b, errors[b]))
    return lines
