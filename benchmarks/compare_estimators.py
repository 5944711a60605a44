"""The estimator lab: every estimator on the WS-RAM task, over seeds, with spreads and verdicts.

    python -m benchmarks.compare_estimators --budget cpu --seeds 3                         # every built-in estimator
    python -m benchmarks.compare_estimators --estimators reinforce my_estimator --seeds 3    # a plug-in, by name or class path
    python -m benchmarks.compare_estimators --estimators wake_sleep_cv wake_sleep_cv:prior_coefficient=0
    python -m benchmarks.compare_estimators --model-args detach_policy_input=true          # a model setting for every run
    python -m benchmarks.compare_estimators --budget gpu --max-minutes 9 --jobs 12         # the paper's setting, capped
    python -m benchmarks.compare_estimators --time-only 20                                 # seconds per update only
    python -m benchmarks.compare_estimators --precision bf16-mixed                         # bf16 products (default 32-true)

Trains each variant (an estimator, optionally with options: ``name:option=value,...``) from
each seed on translated-and-scaled MNIST with the same architecture, data, optimizer, K and
number of updates, validating every ``val_every`` updates, then tests on the test set. The
seed sets the initial weights, the training images and the attention draws; validation and
test images are the same for every run, and evaluation draws from a private random stream.
Writes to ``--out`` (default ``benchmarks/results/compare_<budget>``): ``results.json``
(every run, per seed, updated after each run), ``curves.csv``, ``table.md`` (mean ± sd over
seeds, updates to reach each target, s / update from interleaved timing, final ESS,
gradient variance and SNR per module group, q diagnostics, scale histograms, and a verdict
per pair) and ``validation_error.png`` (mean with a ±1 sd band per variant).
"""
from __future__ import annotations

import argparse
import concurrent.futures
import csv
import json
import multiprocessing
import os
import shlex
import sys
import time
from pathlib import Path
from typing import List, Optional

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # several processes may share the cores

import torch  # noqa: E402

from benchmarks.lab.plot import plot_bands  # noqa: E402
from benchmarks.lab.report import gradient_table, group_by_label, mean_sd, summary_table, verdicts  # noqa: E402
from benchmarks.lab.train import make_data, run_one, time_updates  # noqa: E402
from benchmarks.lab.variants import make_estimator, parse_assignments, parse_variant  # noqa: E402
from ram_lightning.errors import UserError  # noqa: E402

BUILT_IN = ("reinforce", "rloo", "vimco", "pathwise", "wake_sleep", "wake_sleep_cv")
COMMON = dict(num_samples=5, learning_rate=1e-3, hidden_size=256, precision="32-true")
BUDGETS = {
    # 4 estimators x 3 seeds took about an hour on 2 CPU cores (two runs at a time, one thread each); 6 built-ins now (not timed)
    "cpu": dict(COMMON, updates=3000, batch_size=64, val_every=300, val_size=2000, seeds=3, time_steps=10, jobs=2),
    # the paper's setting on one GPU: every run at once, each in its own process
    "gpu": dict(COMMON, updates=60000, batch_size=128, val_every=2000, val_size=5000, seeds=3, time_steps=20, jobs=12),
    # a seconds-long run of every code path (tests, smoke checks); its figures mean nothing
    "smoke": dict(COMMON, hidden_size=32, updates=4, batch_size=8, val_every=2, val_size=16, seeds=2, time_steps=1,
                  train_size=64, test_size=16, jobs=1),
}


def fail(message: str) -> None:
    print(f"compare_estimators: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budget", choices=sorted(BUDGETS), default="cpu")
    parser.add_argument("--estimators", nargs="+", default=list(BUILT_IN), metavar="NAME[:OPTION=VALUE,...]",
                        help="registered names or class paths, each optionally with estimator options")
    parser.add_argument("--model-args", nargs="+", default=[], metavar="OPTION=VALUE",
                        help="AttentionClassifier options for every run (e.g. detach_policy_input=true learn_std=true)")
    parser.add_argument("--seeds", type=int, help="seeds per variant, 0..N-1 (default: the budget's, 3)")
    parser.add_argument("--updates", type=int, help="override the budget's number of updates")
    parser.add_argument("--val-every", type=int, help="override the budget's validation interval")
    parser.add_argument("--test-size", type=int, help="test on the first N test images (default: all 10,000)")
    parser.add_argument("--targets", nargs="+", default=["0.2", "0.1"], help="validation errors to reach (fractions)")
    parser.add_argument("--max-minutes", type=float, help="cap on the training wall-clock of the whole suite")
    parser.add_argument("--jobs", type=int, help="runs at a time, each in its own process (default: the budget's)")
    parser.add_argument("--data-dir", default=None, help="MNIST IDX files (default: $RAM_DATA_DIR, else ./data/mnist)")
    parser.add_argument("--source", choices=("mnist", "rendered"), default="mnist", help="rendered: offline stand-in digits")
    parser.add_argument("--accelerator", default="auto")
    parser.add_argument("--precision", choices=("32-true", "bf16-mixed"), default=None,
                        help="the Trainer's precision of every run (default 32-true: the lab's figures in the README are 32-bit)")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--time-only", type=int, metavar="STEPS", help="only time STEPS updates per variant, interleaved")
    return parser.parse_args(argv)


def checked_settings(args: argparse.Namespace):
    """(budget, variants, model_args, targets) after checking every input; UserError on bad input."""
    budget = dict(BUDGETS[args.budget])
    for key in ("updates", "val_every", "test_size", "seeds", "jobs"):
        value = getattr(args, key)
        if value is not None:
            if value < 1:
                raise UserError(f"--{key.replace('_', '-')} must be >= 1, got {value}")
            budget[key] = value
    if args.precision is not None:
        budget["precision"] = args.precision
    if budget["val_every"] > budget["updates"]:
        raise UserError(f"no validation point: --val-every {budget['val_every']} is more than the {budget['updates']} updates")
    if args.max_minutes is not None and args.max_minutes <= 0:
        raise UserError(f"--max-minutes must be > 0, got {args.max_minutes}")
    targets = []
    for text in args.targets:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not 0.0 < value < 1.0:
            raise UserError(f"--targets: a target validation error must be a fraction in (0, 1), e.g. 0.1, got {text!r}")
        targets.append(value)
    variants = [parse_variant(spec) for spec in args.estimators]
    if len({v.label for v in variants}) != len(variants):
        raise UserError("--estimators: the same variant is given twice")
    model_args = parse_assignments(args.model_args, "--model-args")
    for variant in variants:
        make_estimator(variant, budget["num_samples"])  # unknown names and options fail here, before any run
    if not args.time_only:
        make_data(budget, args.data_dir, args.source).prepare_data()  # missing MNIST fails here, before any run
    return budget, variants, model_args, targets


GPU_MEMORY_PER_RUN = 4 * 2**30  # generous: a gpu-budget run (B=128, K=5) peaks well below this


def worker_limit(accelerator: str) -> Optional[int]:
    """How many runs fit on the GPU at once (free memory / GPU_MEMORY_PER_RUN), or None off GPUs."""
    if accelerator not in ("auto", "gpu", "cuda") or not torch.cuda.is_available():
        return None
    free, _ = torch.cuda.mem_get_info()
    return max(1, free // GPU_MEMORY_PER_RUN)


def _init_worker(threads: int) -> None:
    torch.set_num_threads(threads)


def run_all(jobs: List[tuple], budget: dict, model_args: dict, args: argparse.Namespace, out: Path) -> List[dict]:
    """Every (variant, seed) run, the budget's ``jobs`` at a time (each in a process with an
    equal share of the CPU threads); results.json rewritten after each."""
    workers = min(budget["jobs"], len(jobs), worker_limit(args.accelerator) or len(jobs))
    # each run's share of the suite's training time: the runs go ``workers`` at a time
    cap = None if args.max_minutes is None else args.max_minutes * workers / len(jobs)
    common = (budget, model_args, args.data_dir, args.source, args.accelerator, cap)
    results: List[dict] = []

    def record(result: dict) -> None:
        results.append(result)
        (out / "results.json").write_text(json.dumps(results, indent=1))

    if workers == 1:
        for variant, seed in jobs:
            record(run_one(variant, seed, *common))
        return results
    threads = max(1, (os.cpu_count() or 1) // workers)
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=(threads,)) as pool:
        futures = [pool.submit(run_one, variant, seed, *common) for variant, seed in jobs]
        for future in concurrent.futures.as_completed(futures):
            record(future.result())
    order = {(v.label, s): i for i, (v, s) in enumerate(jobs)}
    results.sort(key=lambda r: order[(r["label"], r["seed"])])
    (out / "results.json").write_text(json.dumps(results, indent=1))  # in job order, whatever order they finished in
    return results


def diagnostics_table(results: List[dict]) -> str:
    """Markdown: q's KL to p (summed over glimpses), label use and the scale histogram, mean ± sd."""
    lines = [r"| variant | KL(q ‖ p), sum over glimpses | bound on log p(y \| I): true - shuffled labels to q "
             "| scale choice (fraction per scale) |",
             "|---|---|---|---|"]
    for label, runs in group_by_label(results).items():
        kl = [sum(r["kl_q_p_per_glimpse"]) for r in runs if r.get("kl_q_p_per_glimpse")]
        gain = [r["label_use"]["gain"] for r in runs if r.get("label_use")]
        hist = [r["scale_histogram"] for r in runs if r.get("scale_histogram")]
        def fmt(values):
            return "-" if not values else "%.3g ± %.2g" % mean_sd(values)
        scales = "-" if not hist else " / ".join("%.2f" % mean_sd([h[i] for h in hist])[0] for i in range(len(hist[0])))
        lines.append(f"| `{label}` | {fmt(kl)} | {fmt(gain)} | {scales} |")
    return "\n".join(lines)


def write_results(results: List[dict], out: Path, command: str, targets, seconds: dict, title: str) -> str:
    with open(out / "curves.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["variant", "seed", "update", "train_seconds", "val_error"])
        for r in results:
            for p in r["curve"]:
                writer.writerow([r["label"], r["seed"], p["update"], f"{p['seconds']:.2f}", f"{p['val_error']:.4f}"])
    capped = [f"{r['label']} seed {r['seed']} ({r['updates']} updates)" for r in results if r["capped"]]
    text = "\n\n".join([
        f"`{command}`",
        summary_table(results, targets, seconds),
        "Gradient variance / signal-to-noise ratio per module group (final weights, one validation batch, "
        "16 draws; mean ± sd over seeds):",
        gradient_table(results),
        "q and policy diagnostics (final weights):",
        diagnostics_table(results),
        "Verdicts on the test error (one glimpse sequence):",
        "\n".join(f"- {line}" for line in verdicts(results)),
    ] + ([f"Stopped by --max-minutes before the budget: {', '.join(capped)}"] if capped else [])) + "\n"
    (out / "table.md").write_text(text)
    if plot_bands(results, out / "validation_error.png", title):
        print(f"plot: {out / 'validation_error.png'}")
    return text


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    try:
        budget, variants, model_args, targets = checked_settings(args)
    except UserError as error:
        fail(str(error))
    if args.time_only:
        for label, value in time_updates(variants, budget, model_args, args.time_only).items():
            print(f"{label:40s} {value:.3f} s / update (median of {args.time_only}, B={budget['batch_size']}, K={budget['num_samples']})")
        return
    out = args.out or Path("benchmarks/results") / f"compare_{args.budget}"
    out.mkdir(parents=True, exist_ok=True)
    command = "python -m benchmarks.compare_estimators " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    started = time.perf_counter()
    seconds = time_updates(variants, budget, model_args, budget["time_steps"]) if budget["time_steps"] else {}
    jobs = [(variant, seed) for variant in variants for seed in range(budget["seeds"])]
    results = run_all(jobs, budget, model_args, args, out)
    title = f"translated-and-scaled MNIST, {args.budget} budget, {budget['seeds']} seeds, {budget['precision']}"
    print(write_results(results, out, command, targets, seconds, title))
    print(f"total {time.perf_counter() - started:.0f} s; results in {out}")


if __name__ == "__main__":
    main()
