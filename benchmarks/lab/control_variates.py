"""The control variates' variance reduction on the same weights (WS-RAM's claim (b), paired).

    python -m benchmarks.lab.control_variates runs/compare/ts/wake_sleep_cv runs/compare/ts/wake_sleep \\
        --batches 4 --draws 8 --json docs/results/<record>/control_variates.json

Comparing the probe's variance of two estimators' runs at the same update mixes two things: the
estimators and the different weights each training path led to. Here both estimators are
applied to the same weights: for each run (``<variant>/seed_<k>/`` with a ``last.ckpt``) its
final weights are loaded (weights only) and, on the same validation batches with the same
attention draws (one generator per batch, seeded alike for both), the gradient of the
wake-sleep surrogate is drawn D times with the control variates on (c_p = c_q = 1, the
``wake_sleep_cv`` estimator) and off (c_p = c_q = 0: term by term the ``wake_sleep``
surrogate). Per module group: total variance of each (trace of the covariance, summed over the
batches), the reduction ``100 (1 - var_on / var_off)`` and the SNR of each; mean ± sd over the
seeds of each folder.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Dict, List, Sequence

import torch

from benchmarks.lab.records import refuse_existing, write_record
from estimators import WakeSleepCV
from ram_lightning.compare.report import mean_sd
from ram_lightning.diagnostics.probe import gradient_summaries
from ram_lightning.seeds import mix_seed

SETTINGS = {"on": 1.0, "off": 0.0}  # c_p = c_q


def same_weights_variance(model, batches: Sequence, num_draws: int, seed: int = 0) -> Dict[str, Dict[str, float]]:
    """``{group: {"variance_on", "variance_off", "snr_on", "snr_off", "reduction"}}`` of ``model``
    (an ``AttentionClassifier`` whose estimator samples from q) over ``batches`` of (images [B, C, H, W],
    labels [B]): the D-draw gradient summaries with the control variates on and off, from the same
    attention draws. The model's own estimator is put back afterwards."""
    own = model.estimator
    totals: Dict[str, Dict[str, float]] = {}
    try:
        for setting, coefficient in SETTINGS.items():
            model.estimator = WakeSleepCV(num_samples=own.num_samples, prior_coefficient=coefficient,
                                          proposal_coefficient=coefficient).to(model.device)
            for index, batch in enumerate(batches):
                generator = torch.Generator(device=model.device)
                generator.manual_seed(mix_seed(seed, index))
                for group, summary in gradient_summaries(model, batch, num_draws, generator).items():
                    entry = totals.setdefault(group, {})
                    for key in ("variance", "signal"):
                        entry[f"{key}_{setting}"] = entry.get(f"{key}_{setting}", 0.0) + float(summary[key])
    finally:
        model.estimator = own
    found = {}
    for group, entry in totals.items():
        off, on = entry["variance_off"], entry["variance_on"]
        found[group] = {"variance_on": on, "variance_off": off,
                        "snr_on": entry["signal_on"] / max(on, 1e-30), "snr_off": entry["signal_off"] / max(off, 1e-30),
                        "reduction": 100.0 * (1.0 - on / off) if off > 0 else 0.0}
    return found


def validation_batches(count: int, batch_size: int = 128) -> List:
    """The first ``count`` validation batches of translated-and-scaled MNIST (real digits, $RAM_DATA_DIR)."""
    from datamodules import TranslatedScaledMNIST

    data = TranslatedScaledMNIST(source="mnist", batch_size=batch_size, num_workers=0, download=False)
    data.prepare_data()
    data.setup("fit")
    batches = []
    for batch in data.val_dataloader():
        batches.append(batch)
        if len(batches) == count:
            break
    return batches


def measure(folders: Sequence[Path], batches: int, draws: int) -> Dict[str, dict]:
    from ram_lightning.models.classifier import AttentionClassifier

    data = validation_batches(batches)
    report: Dict[str, dict] = {}
    for folder in folders:
        runs = {}
        for checkpoint in sorted(Path(folder).glob("seed_*/version_*/checkpoints/last.ckpt")):
            seed = int(checkpoint.parts[-4].split("_", 1)[1])
            model = AttentionClassifier.load_from_checkpoint(str(checkpoint), map_location="cpu", compile=False)
            model.train()
            runs[seed] = same_weights_variance(model, data, draws, seed)
            print(f"{folder} seed {seed}: " + ", ".join(f"{g} {v['reduction']:+.1f}%" for g, v in runs[seed].items()), flush=True)
        groups = list(dict.fromkeys(g for r in runs.values() for g in r))
        summary = {}
        for group in groups:
            values = [r[group]["reduction"] for r in runs.values() if group in r]
            ratio = [r[group]["snr_on"] / r[group]["snr_off"] for r in runs.values() if group in r and r[group]["snr_off"] > 0]
            summary[group] = {"reduction_mean_sd": mean_sd(values), "reduction_per_seed": values,
                              "snr_ratio_mean_sd": mean_sd(ratio) if ratio else None}
        report[str(folder)] = {"seeds": sorted(runs), "per_seed": runs, "summary": summary}
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folders", nargs="+", type=Path, help="variant folders of a `ram compare` (holding seed_<k>/)")
    parser.add_argument("--batches", type=int, default=4, help="validation batches of 128")
    parser.add_argument("--draws", type=int, default=8, help="gradient draws per batch and setting (>= 2)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if args.json:
        refuse_existing(args.json)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
    report = measure(args.folders, args.batches, args.draws)
    for folder, entry in report.items():
        print(f"\n{folder} (seeds {entry['seeds']}): reduction 100 (1 - var_on / var_off), mean ± sd over seeds")
        for group, s in entry["summary"].items():
            mean, sd = s["reduction_mean_sd"]
            snr = ""
            if s["snr_ratio_mean_sd"] is not None:
                snr_mean, snr_sd = s["snr_ratio_mean_sd"]
                snr = f"; SNR on / off {snr_mean:.2f} ± {snr_sd:.2f}"
            print(f"  {group:12s} {mean:+6.1f} ± {sd:4.1f}%{snr}")
    if args.json:
        arguments = [*args.folders, "--batches", args.batches, "--draws", args.draws]
        write_record(args.json, "benchmarks.lab.control_variates", arguments, report)


if __name__ == "__main__":
    main()
