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

Bad input (an unknown estimator, ``--out`` naming a file, ...) is one line
``compare_estimators: error: ...`` and exit status 2, before any run. Ctrl-C stops the runs
(``benchmarks.lab.interrupt``) and says in one line which finished runs ``results.json`` keeps
and the command that runs the suite again; exit status 130.
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

from benchmarks.lab.interrupt import Interrupted, ignore_sigint, sigint_raises_interrupted, stop_workers  # noqa: E402
from benchmarks.lab.plot import plot_bands  # noqa: E402
from benchmarks.lab.report import gradient_table, group_by_label, mean_sd, summary_table, verdicts  # noqa: E402
from benchmarks.lab.train import make_data, run_one, time_updates  # noqa: E402
from benchmarks.lab.variants import make_estimator, parse_assignments, parse_variant  # noqa: E402
from ram_lightning.errors import UserError  # noqa: E402

BUILT_IN = ("reinforce", "rloo", "vimco", "pathwise", "wake_sleep", "wake_sleep_cv")
COMMON = dict(num_samples=5, learning_rate=1e-3, hidden_size=256, precision="32-true", compile=False)
BUDGETS = {
    # 4 estimators x 3 seeds took about an hour on 2 CPU cores (two runs at a time, one thread each); 6 built-ins now (not timed)
    "cpu": dict(COMMON, updates=3000, batch_size=64, val_every=300, val_size=2000, seeds=3, time_steps=10, jobs=2),
    # the paper's setting on one GPU: every run at once, each in its own process, the training step compiled
    "gpu": dict(COMMON, updates=60000, batch_size=128, val_every=2000, val_size=5000, seeds=3, time_steps=20, jobs=12,
                compile=True),
    # a seconds-long run of every code path (tests, smoke checks); its figures mean nothing
    "smoke": dict(COMMON, hidden_size=32, updates=4, batch_size=8, val_every=2, val_size=16, seeds=2, time_steps=1,
                  train_size=64, test_size=16, jobs=1),
}


def fail(message: str) -> None:
    """Say ``message`` in one line ``compare_estimators: error: ...`` and exit with status 2."""
    stop(f"error: {message}", 2)


def stop(line: str, status: int) -> None:
    """Say ``line`` as ``compare_estimators: <line>`` on stderr and exit with ``status``."""
    print(f"compare_estimators: {line}", file=sys.stderr)
    raise SystemExit(status)


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
                        help="the Trainer's precision of every run (default 32-true: the lab's figures in docs/lab.md are 32-bit)")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--time-only", type=int, metavar="STEPS", help="only time STEPS updates per variant, interleaved")
    return parser.parse_args(argv)


def out_folder(args: argparse.Namespace) -> Path:
    """``--out``, else ``benchmarks/results/compare_<budget>``."""
    return args.out or Path("benchmarks/results") / f"compare_{args.budget}"


def check_out_folder(out: Path) -> None:
    """UserError if ``out``, or the nearest of its parents that exists, is not a folder."""
    for folder in (out, *out.parents):
        if folder.exists():
            if not folder.is_dir():
                where = "" if folder == out else f"{folder} "
                raise UserError(f"--out {out}: {where}is a file; expected a folder (created if missing) for results.json, "
                                f"curves.csv, table.md and the plot")
            return


def checked_settings(args: argparse.Namespace):
    """(budget, variants, model_args, targets) after checking every input; UserError on bad input."""
    if not args.time_only:
        check_out_folder(out_folder(args))
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
    ignore_sigint()  # the main process handles Ctrl-C and stops the workers


def run_all(jobs: List[tuple], budget: dict, model_args: dict, args: argparse.Namespace, out: Path,
            results: List[dict]) -> List[dict]:
    """Every (variant, seed) run, the budget's ``jobs`` at a time (each in a process with an
    equal share of the CPU threads), appended to ``results`` as it finishes; results.json
    rewritten after each. Interrupted (Ctrl-C): the running workers are stopped."""
    workers = min(budget["jobs"], len(jobs), worker_limit(args.accelerator) or len(jobs))
    # each run's share of the suite's training time: the runs go ``workers`` at a time
    cap = None if args.max_minutes is None else args.max_minutes * workers / len(jobs)
    common = (budget, model_args, args.data_dir, args.source, args.accelerator, cap)

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
        try:
            for future in concurrent.futures.as_completed(futures):
                record(future.result())
        except (Interrupted, KeyboardInterrupt):
            stop_workers(pool)
            raise
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


def interrupted_line(out: Path, results: List[dict], total: Optional[int], command: str) -> str:
    """What Ctrl-C leaves behind, and how to run the suite again."""
    if total is None:
        return "stopped by Ctrl-C before any run started; nothing was written"
    rerun = f"rerun the suite from the start with: {command}"
    if not results:
        return f"stopped by Ctrl-C before any of the {total} runs finished; nothing was written to {out}; {rerun}"
    kept = f"{len(results)} of {total} runs finished, their results are kept in {out / 'results.json'}"
    if len(results) < total:
        return f"stopped by Ctrl-C: {kept} (no table or plot was written); {rerun} (give another --out to keep these)"
    return f"stopped by Ctrl-C while writing the report: {kept}; table.md or the plot may be missing; {rerun}"


def run_suite(args: argparse.Namespace, command: str, out: Path, jobs: List[tuple], results: List[dict]) -> None:
    """Check the settings, then time the variants only (``--time-only``) or run and report the
    suite; ``jobs`` and ``results`` are filled in as it goes (for the Ctrl-C line). UserError on bad input."""
    budget, variants, model_args, targets = checked_settings(args)
    if args.time_only:
        for label, value in time_updates(variants, budget, model_args, args.time_only).items():
            print(f"{label:40s} {value:.3f} s / update (median of {args.time_only}, B={budget['batch_size']}, K={budget['num_samples']})")
        return
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"--out {out}: cannot create the folder ({error.strerror or error})") from None
    jobs.extend((variant, seed) for variant in variants for seed in range(budget["seeds"]))
    started = time.perf_counter()
    seconds = time_updates(variants, budget, model_args, budget["time_steps"]) if budget["time_steps"] else {}
    run_all(jobs, budget, model_args, args, out, results)
    title = f"translated-and-scaled MNIST, {args.budget} budget, {budget['seeds']} seeds, {budget['precision']}"
    print(write_results(results, out, command, targets, seconds, title))
    print(f"total {time.perf_counter() - started:.0f} s; results in {out}")


def main(argv: Optional[List[str]] = None) -> None:
    """Bad input: one line ``compare_estimators: error: ...``, exit status 2; Ctrl-C: one line
    saying what was kept, exit status 130."""
    args = parse_args(argv)
    command = "python -m benchmarks.compare_estimators " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    out, jobs, results = out_folder(args), [], []
    with sigint_raises_interrupted():
        try:
            run_suite(args, command, out, jobs, results)
        except UserError as error:
            fail(str(error))
        except (Interrupted, KeyboardInterrupt):
            stop(interrupted_line(out, results, len(jobs) or None, command), 130)


if __name__ == "__main__":
    main()
