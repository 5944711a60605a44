"""The location std a policy has learned (claim (c) of WS-RAM: does it collapse without help?).

    python -m benchmarks.lab.learned_std runs/compare/ts_no_exploration/reinforce runs/compare/ts_no_exploration/wake_sleep_cv \\
        --batches 4 --json docs/results/<record>/learned_std.json

With ``learn_std: true`` the policy's std is an output of its head, state by state; nothing
logs it while training. Here each run's final weights (``seed_<k>/version_*/checkpoints/last.ckpt``,
loaded weights only) glimpse the first validation batches of translated-and-scaled MNIST, one
sequence per image from a seeded generator, and the std the policy gives each glimpse is
summarised: its mean (over images, glimpses and both coordinates), min and max; then mean ± sd
over the seeds of each folder. Locations are in [-1, 1], so a std of 0.1 is 3 pixels on 60x60.
A fixed-std policy reports its fixed value.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Dict, List, Sequence

import torch

from benchmarks.lab.control_variates import validation_batches
from benchmarks.lab.records import refuse_existing, write_record
from ram_lightning.compare.report import mean_sd


def policy_std(model, images: Sequence[torch.Tensor], seed: int = 0) -> Dict[str, float]:
    """``{"mean", "min", "max"}`` of the std [R, 2] the policy of ``model`` (an ``AttentionClassifier``)
    gives every glimpse of one sampled sequence per image of ``images`` (a list of [B, C, H, W])."""
    seen: List[torch.Tensor] = []
    handle = model.core.policy.register_forward_hook(lambda module, inputs, out: seen.append(out.std.detach().float()))
    try:
        with torch.no_grad():
            for index, batch in enumerate(images):
                model(batch, num_samples=1, generator=torch.Generator(device=batch.device).manual_seed(seed + index))
    finally:
        handle.remove()
    if not seen:
        raise RuntimeError("the policy was never called")
    stds = torch.cat([s.reshape(-1) for s in seen])
    return {"mean": stds.mean().item(), "min": stds.min().item(), "max": stds.max().item()}


def measure(folders: Sequence[Path], batches: int) -> Dict[str, dict]:
    from ram_lightning.models.classifier import AttentionClassifier

    images = [batch[0] for batch in validation_batches(batches)]
    report: Dict[str, dict] = {}
    for folder in folders:
        runs = {}
        for checkpoint in sorted(Path(folder).glob("seed_*/version_*/checkpoints/last.ckpt")):
            seed = int(checkpoint.parts[-4].split("_", 1)[1])
            model = AttentionClassifier.load_from_checkpoint(str(checkpoint), map_location="cpu", compile=False).eval()
            runs[seed] = {**policy_std(model, images), "learned": bool(model.core.policy.learn_std)}
            print(f"{folder} seed {seed}: std mean {runs[seed]['mean']:.4f} (min {runs[seed]['min']:.4f}, "
                  f"max {runs[seed]['max']:.4f}){'' if runs[seed]['learned'] else ', fixed'}", flush=True)
        means = [r["mean"] for r in runs.values()]
        report[str(folder)] = {"seeds": sorted(runs), "per_seed": runs, "mean_sd": mean_sd(means) if means else None}
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folders", nargs="+", type=Path, help="variant folders of a `ram compare` (holding seed_<k>/)")
    parser.add_argument("--batches", type=int, default=4, help="validation batches of 128")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if args.json:
        refuse_existing(args.json)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
    report = measure(args.folders, args.batches)
    for folder, entry in report.items():
        if entry["mean_sd"] is not None:
            mean, sd = entry["mean_sd"]
            print(f"{folder} (seeds {entry['seeds']}): mean location std {mean:.4f} ± {sd:.4f}")
    if args.json:
        write_record(args.json, "benchmarks.lab.learned_std", [*args.folders, "--batches", args.batches], report)


if __name__ == "__main__":
    main()
