"""The banded plot: validation error against updates, mean over seeds with a ±1 sd band per variant."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ram_lightning.compare.report import group_by_label, mean_sd


def banded_curves(results: Sequence[dict]) -> dict:
    """label -> (updates, mean %, sd %) over the updates every seed of that label reached."""
    curves = {}
    for label, runs in group_by_label(results).items():
        per_update: dict = {}
        for run in runs:
            for point in run["curve"]:
                per_update.setdefault(point["update"], []).append(100 * point["val_error"])
        updates = [u for u in sorted(per_update) if len(per_update[u]) == len(runs)]
        stats = [mean_sd(per_update[u]) for u in updates]
        curves[label] = (updates, [m for m, _ in stats], [s for _, s in stats])
    return curves


def plot_bands(results: Sequence[dict], path: Path, title: str) -> bool:
    """Write the PNG; False (and a line saying so) when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install -e '.[bench]'): no plot written; the curves are in curves.csv")
        return False
    figure, axis = plt.subplots(figsize=(7, 4.5))
    for label, (updates, mean, sd) in banded_curves(results).items():
        line, = axis.plot(updates, mean, marker="o", markersize=3, label=label)
        axis.fill_between(updates, [m - s for m, s in zip(mean, sd)], [m + s for m, s in zip(mean, sd)],
                          color=line.get_color(), alpha=0.2, linewidth=0)
    axis.set(xlabel="updates", ylabel="validation error (%)", yscale="log", title=title)
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return True
