"""The comparison the WS-RAM paper is about: reinforce vs wake_sleep vs wake_sleep_cv.

    python -m benchmarks.compare_estimators --budget cpu     # all three in about 45 min on 2 CPU cores
    python -m benchmarks.compare_estimators --budget gpu     # the full setting, one GPU
    python -m benchmarks.compare_estimators --time-only 20   # seconds per update only, interleaved

Trains the three estimators on translated-and-scaled MNIST with the same seed, data stream,
architecture, optimizer, number of samples K and number of updates, validating every
``val_every`` updates, then tests each on the 10,000 test images. Writes to ``--out``
(default ``benchmarks/results/compare_<budget>``):

- ``table.md``: test error (one glimpse sequence, and class probabilities averaged over 10),
  validation error at every check, training wall-clock per update (validation excluded),
  the final gradient variance of the policy (and q) parameters on one fixed batch (trace of
  the covariance over 16 independent draws, ``ram_lightning.metrics``), and the final ESS;
- ``curves.csv``: estimator, update, training seconds, validation error;
- ``validation_error.png`` (when matplotlib is installed): validation error against updates
  and against wall-clock time, one curve per estimator.

Expected if the estimators are right (the paper's Table 1: 3.11%, 1.85%, 1.62% after full
training): at equal updates wake_sleep_cv <= wake_sleep <= reinforce in error.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import time
from pathlib import Path
from typing import Dict, List

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see benchmarks/throughput.py

import pytorch_lightning as pl  # noqa: E402
import torch  # noqa: E402

from datamodules import TranslatedScaledMNIST  # noqa: E402
from estimators import get_estimator  # noqa: E402
from ram_lightning.callbacks import probe_gradient_variance  # noqa: E402
from ram_lightning.classifier import AttentionClassifier  # noqa: E402

ESTIMATORS = ("reinforce", "wake_sleep", "wake_sleep_cv")

# The WS-RAM architecture (12x12 retina, 3 patches, 3 scale actions, 6 glimpses) in both
# budgets; the CPU budget trains fewer updates on smaller batches and validates on fewer images.
BUDGETS: Dict[str, dict] = {
    "cpu": dict(updates=3000, batch_size=64, val_every=300, val_size=2000, hidden_size=256),
    "gpu": dict(updates=60000, batch_size=128, val_every=2000, val_size=5000, hidden_size=256),
}
MODEL = dict(glimpse_size=12, num_patches=3, num_glimpses=6, scales=[0.5, 1.0, 2.0], glimpse_hidden=128,
             glimpse_features=256, context_size=12, location_std=0.1, eval_samples=10)
NUM_SAMPLES = 5
LEARNING_RATE = 1e-3


class Recorder(pl.Callback):
    """Training wall-clock (validation excluded) and the validation curve."""

    def __init__(self) -> None:
        self.train_seconds = 0.0
        self.curve: List[dict] = []
        self.last_metrics: Dict[str, float] = {}
        self._start = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.train_seconds += time.perf_counter() - self._start
        self.last_metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("train/")}

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        error = float(trainer.callback_metrics["val/error"])
        self.curve.append({"update": trainer.global_step, "seconds": self.train_seconds, "val_error": error})
        print(f"  update {trainer.global_step:6d}  {self.train_seconds:7.1f} s  val/error {error:.4f}", flush=True)


def build_model(name: str, budget: dict, image_shape=(1, 60, 60), num_classes: int = 10) -> AttentionClassifier:
    """The architecture every estimator is trained with; only the estimator differs."""
    return AttentionClassifier(
        image_shape=image_shape, num_classes=num_classes, hidden_size=budget["hidden_size"], **MODEL,
        estimator=get_estimator(name, num_samples=NUM_SAMPLES),
        optimizer=lambda params: torch.optim.Adam(params, lr=LEARNING_RATE),
    )


def time_updates(names, budget: dict, steps: int, seed: int) -> Dict[str, float]:
    """Median seconds of one full update (sample, loss, backward, Adam) per estimator, on one fixed
    random batch, the estimators interleaved step by step so that machine load hits all alike."""
    torch.manual_seed(seed)
    images = torch.rand(budget["batch_size"], 1, 60, 60)
    targets = torch.randint(0, 10, (budget["batch_size"],))
    runs = {}
    for name in names:
        model = build_model(name, budget).train()
        runs[name] = (model, model.configure_optimizers())
    times: Dict[str, List[float]] = {name: [] for name in names}
    for step in range(steps + 2):
        for name, (model, optimizer) in runs.items():
            start = time.perf_counter()
            model.estimator_output((images, targets)).loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if step >= 2:  # two warm-up steps
                times[name].append(time.perf_counter() - start)
    return {name: sorted(values)[len(values) // 2] for name, values in times.items()}


def run_one(name: str, budget: dict, data_dir, seed: int, accelerator: str) -> dict:
    pl.seed_everything(seed, workers=True)
    data = TranslatedScaledMNIST(data_dir=data_dir, source="mnist", batch_size=budget["batch_size"], seed=seed,
                                 test_size=budget.get("test_size"))
    model = build_model(name, budget, data.image_shape, data.num_classes)
    recorder = Recorder()
    trainer = pl.Trainer(
        max_steps=budget["updates"], val_check_interval=budget["val_every"], check_val_every_n_epoch=None,
        limit_val_batches=budget["val_size"] // budget["batch_size"], num_sanity_val_steps=0,
        accelerator=accelerator, devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, callbacks=[recorder],
    )
    print(f"== {name}: {budget['updates']} updates, B={budget['batch_size']}, K={NUM_SAMPLES}", flush=True)
    trainer.fit(model, datamodule=data)
    test = trainer.test(model, datamodule=data, verbose=False)[0]
    model.train()
    batch = next(iter(data.val_dataloader()))
    batch = [t.to(model.device) for t in batch]
    variance = {k: float(v) for k, v in probe_gradient_variance(model, batch, num_draws=16).items()}
    return {
        "estimator": name,
        "test_error": test["test/error"],
        "test_error_avg10": test["test/error_avg10"],
        "curve": recorder.curve,
        "seconds_per_update": recorder.train_seconds / max(trainer.global_step, 1),
        "grad_var": variance,
        "ess": recorder.last_metrics.get("train/ess"),
        "log_marginal": recorder.last_metrics.get("train/log_marginal"),
    }


def write_results(results: List[dict], out: Path, command: str) -> str:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    with open(out / "curves.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["estimator", "update", "train_seconds", "val_error"])
        for result in results:
            for point in result["curve"]:
                writer.writerow([result["estimator"], point["update"], f"{point['seconds']:.2f}", f"{point['val_error']:.4f}"])
    updates = [p["update"] for p in results[0]["curve"]]
    fmt = lambda v, spec: "n/a" if v is None else format(v, spec)
    lines = [
        f"`{command}`", "",
        "| estimator | test error | test error (avg 10) | s / update | grad var (policy) | grad var (q) | final ESS (of K=5) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['estimator']} | {100 * r['test_error']:.2f}% | {100 * r['test_error_avg10']:.2f}% | "
            f"{r['seconds_per_update']:.3f} | {r['grad_var']['grad_var/policy']:.3g} | "
            f"{fmt(r['grad_var'].get('grad_var/inference'), '.3g')} | {fmt(r['ess'], '.2f')} |"
        )
    lines += ["", "Validation error (%) after N updates:", "",
              "| estimator | " + " | ".join(str(u) for u in updates) + " |", "|---|" + "---|" * len(updates)]
    for r in results:
        lines.append(f"| {r['estimator']} | " + " | ".join(f"{100 * p['val_error']:.2f}" for p in r["curve"]) + " |")
    table = "\n".join(lines) + "\n"
    (out / "table.md").write_text(table)
    plot(results, out / "validation_error.png")
    return table


def plot(results: List[dict], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install matplotlib): no plot written; the curves are in curves.csv")
        return
    figure, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for r in results:
        updates = [p["update"] for p in r["curve"]]
        seconds = [p["seconds"] for p in r["curve"]]
        errors = [100 * p["val_error"] for p in r["curve"]]
        axes[0].plot(updates, errors, marker="o", label=r["estimator"])
        axes[1].plot(seconds, errors, marker="o", label=r["estimator"])
    axes[0].set(xlabel="updates", ylabel="validation error (%)", yscale="log")
    axes[1].set(xlabel="training wall-clock (s)")
    axes[0].legend()
    figure.suptitle("translated-and-scaled MNIST")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    print(f"plot: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budget", choices=sorted(BUDGETS), default="cpu")
    parser.add_argument("--updates", type=int, help="override the budget's number of updates")
    parser.add_argument("--val-every", type=int, help="override the budget's validation interval")
    parser.add_argument("--test-size", type=int, help="test on the first N test images (default: all 10,000)")
    parser.add_argument("--estimators", nargs="+", default=list(ESTIMATORS))
    parser.add_argument("--data-dir", default=None, help="MNIST IDX files (default: $RAM_DATA_DIR, else ./data/mnist)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--accelerator", default="auto")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--time-only", type=int, metavar="STEPS",
                        help="only time STEPS updates per estimator, interleaved on one batch (seconds per update)")
    args = parser.parse_args()
    budget = dict(BUDGETS[args.budget])
    if args.updates:
        budget["updates"] = args.updates
    if args.val_every:
        budget["val_every"] = args.val_every
    budget["test_size"] = args.test_size
    if args.time_only:
        for name, seconds in time_updates(args.estimators, budget, args.time_only, args.seed).items():
            print(f"{name:15s} {seconds:.3f} s / update (median of {args.time_only}, B={budget['batch_size']}, K={NUM_SAMPLES})")
        return
    out = args.out or Path("benchmarks/results") / f"compare_{args.budget}"
    options = (("budget", args.budget), ("updates", args.updates), ("val_every", args.val_every), ("test_size", args.test_size),
               ("estimators", " ".join(args.estimators) if list(args.estimators) != list(ESTIMATORS) else None),
               ("out", args.out))
    command = "python -m benchmarks.compare_estimators " + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in options if v)
    started = time.perf_counter()
    results = [run_one(name, budget, args.data_dir, args.seed, args.accelerator) for name in args.estimators]
    print(write_results(results, out, command))
    print(f"total {time.perf_counter() - started:.0f} s; results in {out}")


if __name__ == "__main__":
    main()
