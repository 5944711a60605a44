"""``ram compare``: estimator variants x seeds of one ``ram fit`` config, as resumable jobs, with a report.

    ram compare --config configs/translated_scaled.yaml --estimators reinforce vimco wake_sleep wake_sleep_cv \\
        --seeds 3 --out runs/compare/ts --trainer.max_steps 3000
    ram compare --config configs/quickstart.yaml --estimators reinforce reinforce:baseline=none --seeds 3 --out runs/compare/qs
    ram compare ... --launcher slurm --slurm.partition gpu --slurm.gpus_per_node 1 --slurm.timeout_min 120
    ram compare ... --report-only          # the table, plot and verdicts from the runs already in --out
    ram compare --join runs/compare/a runs/compare/b --out runs/compare/ab   # one report over both

Every other option is a ``ram fit`` option and applies to every run. A variant replaces only the
estimator (``name:option=value,...`` or a plug-in's class path); K, unless the variant sets it,
is the config's. The seed (``--seed_everything``) sets weights, training images and attention
draws. The same command again skips finished runs, resumes unfinished ones from ``last.ckpt``
and changes nothing when all are done; a different experiment in an existing ``--out`` is
refused, naming the differing keys. Runs, files and jobs: ``ram_lightning.compare.runs``; a
setting other than the estimator is compared by joining two comparisons: ``ram_lightning.compare.join``.
"""
from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from ram_lightning.compare.experiment import config_num_samples, differing_keys, fingerprint, get_path, resolve_fit_config
from ram_lightning.compare.join import join_report
from ram_lightning.compare.launch import LAUNCHERS, StopRequest, launch
from ram_lightning.compare.runs import (EXPERIMENT_FILE, RunSpec, is_done, launch_order, newest_last_checkpoint, pace_line,
                                        plan_runs, read_comparison, read_result)
from ram_lightning.compare.tables import write_report
from ram_lightning.compare.trajectories import read_metrics
from ram_lightning.compare.variants import parse_variant
from ram_lightning.diagnostics.run_summary import write_json_atomically
from ram_lightning.errors import UserError
from ram_lightning.run.defaults import csv_folder

USAGE = "ram compare [--config FILE ...] --estimators NAME[:OPTION=VALUE,...] ... --out DIR [options] [ram fit options]"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line `ram: error: ...` (main), not the usage and a second line
        raise UserError(f"{message} (usage: {USAGE})")


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="ram compare", usage=USAGE, formatter_class=argparse.RawDescriptionHelpFormatter,
                description="Estimator variants x seeds of one `ram fit` config, as resumable jobs, with a report.\n\n"
                            + __doc__.split("\n\n")[1].replace("\\\n", "\n"),
                epilog="--slurm.<option> VALUE: submitit's SLURM parameters (timeout_min, gpus_per_node, cpus_per_task, "
                       "mem_gb, partition, ...). Any other option is a `ram fit` option for every run (`ram fit --help`). "
                       "More: docs/lab.md.")
    p.add_argument("--estimators", nargs="+", metavar="NAME[:OPTION=VALUE,...]", help="the variants (at least one)")
    p.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 per variant (default 3)")
    p.add_argument("--out", type=Path, required=True, help="the comparison's folder (runs, jobs, report)")
    p.add_argument("--name", help="the comparison's name, W&B's group (default: the --out folder's name)")
    p.add_argument("--launcher", choices=LAUNCHERS, default="local")
    p.add_argument("--jobs", type=int, default=2, help="runs at a time (local: the CPU cores are split between them)")
    p.add_argument("--targets", nargs="+", default=["0.2", "0.1", "0.05"], help="validation errors to reach (fractions)")
    p.add_argument("--report-only", action="store_true", help="only rebuild the report from the runs in --out")
    p.add_argument("--join", nargs="+", type=Path, metavar="DIR",
                   help="only write one report to --out over these comparisons (their --out folders), each run "
                        "labelled 'variant @ folder': for settings other than the estimator")
    p.add_argument("--variance-reference", metavar="VARIANT",
                   help="the report also gives every other variant's gradient-variance reduction against this one "
                        "at the early / middle / end probes (runs that log a GradientVarianceProbe)")
    return p


def split_slurm_options(argv: List[str]) -> Tuple[List[str], List[str]]:
    """``--slurm.<key> <value>`` (or ``--slurm.<key>=<value>``) pairs out of ``argv``: (rest, ["key=value"])."""
    rest, options, i = [], [], 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("--slurm."):
            key, sep, value = arg[len("--slurm."):].partition("=")
            if not sep:
                if i + 1 >= len(argv):
                    raise UserError(f"{arg}: expected a value")
                value, i = argv[i + 1], i + 1
            options.append(f"{key}={value}")
        else:
            rest.append(arg)
        i += 1
    return rest, options


def parse_targets(texts: List[str]) -> List[float]:
    targets = []
    for text in texts:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not 0.0 < value < 1.0:
            raise UserError(f"--targets: a target validation error must be a fraction in (0, 1), e.g. 0.1, got {text!r}")
        targets.append(value)
    return targets


def check_out(out: Path) -> None:
    for folder in (out, *out.parents):
        if folder.exists():
            if not folder.is_dir():
                where = "" if folder == out else f"{folder} "
                raise UserError(f"--out {out}: {where}is a file; expected a folder for the runs and the report")
            return


def check_classifier(config: Dict[str, Any]) -> None:
    from estimators.registry import import_class

    class_path = get_path(config, "model.class_path") or ""
    monitor = getattr(import_class(class_path, what="model"), "checkpoint_monitor", None) if class_path else None
    if monitor != ("val/error", "min"):
        raise UserError(f"model.class_path: `ram compare` compares classifiers (scored by val/error); got {class_path or 'none'}")


def check_logger_folders(config: Dict[str, Any]) -> None:
    """Each run logs in its own folder: a CSV / TensorBoard logger must follow
    ``trainer.default_root_dir`` (its save_dir and name left null in the config: ``csv_folder``)."""
    save_dir, name = csv_folder(get_path(config, "trainer.default_root_dir"))
    loggers = get_path(config, "trainer.logger")
    for logger in loggers if isinstance(loggers, list) else [loggers]:
        if not isinstance(logger, dict) or str(logger.get("class_path", "")).rpartition(".")[2] not in ("CSVLogger", "TensorBoardLogger"):
            continue
        init = logger.get("init_args") or {}
        if (os.path.normpath(str(init.get("save_dir"))), str(init.get("name"))) != (os.path.normpath(save_dir), name):
            raise UserError(f"trainer.logger: {logger['class_path']} has save_dir {init.get('save_dir')!r} and name "
                            f"{init.get('name')!r}; `ram compare` gives each run its own folder: leave them null "
                            f"(logs then go to trainer.default_root_dir/version_N)")


def experiment_record(out: Path, record: Dict[str, Any]) -> Dict[str, Any]:
    """The stored experiment of ``out`` merged with this command's (more variants or seeds are
    welcome); UserError if the two are different experiments, naming the differing keys."""
    path = out / EXPERIMENT_FILE
    if not path.is_file():
        return record
    stored = read_comparison(out, "--out")
    keys = differing_keys(stored["fingerprint"], record["fingerprint"])
    if keys:
        shown = ", ".join(keys[:6]) + (f" and {len(keys) - 6} more" if len(keys) > 6 else "")
        raise UserError(f"--out {out} holds runs of another experiment ({path}): {shown} differ; "
                        f"give another --out, or the same options as before")
    variants = list(dict.fromkeys(stored["variants"] + record["variants"]))
    runs = {spec["folder"]: spec for spec in stored["runs"] + record["runs"]}  # this command's spec of a run wins
    order = {label: i for i, label in enumerate(variants)}
    ordered = sorted(runs.values(), key=lambda spec: (order.get(spec["label"], len(order)), spec["seed"]))
    return {**record, "variants": variants, "seeds": max(stored["seeds"], record["seeds"]), "runs": ordered}


def check_variance_reference(reference: Optional[str], variants: List[str]) -> None:
    if reference is not None and reference not in variants:
        raise UserError(f"--variance-reference: {reference!r} is not a variant of this comparison "
                        f"(variants: {', '.join(variants)})")


def status_line(runs: List[RunSpec]) -> str:
    done = sum(is_done(r) for r in runs)
    resuming = sum(1 for r in runs if not is_done(r) and newest_last_checkpoint(r) is not None)
    new = len(runs) - done - resuming
    if done == len(runs):
        return f"all {len(runs)} runs done; nothing to run"
    parts = [f"{done} of {len(runs)} runs done"] + ([f"resuming {resuming}"] if resuming else []) + ([f"starting {new}"] if new else [])
    return "; ".join(parts)


def collect(runs: List[RunSpec]) -> List[dict]:
    return [result for result in (read_result(r) for r in runs) if result is not None]


def report(out: Path, runs: List[RunSpec], command: str, targets: List[float], title: str,
           variance_reference: Optional[str] = None) -> Optional[str]:
    results = collect(runs)
    if not results:
        return None
    metrics = {(r.label, r.seed): read_metrics(r.path) for r in runs if is_done(r)}
    return write_report(results, out, command, targets, title, metrics, variance_reference)


def _say(line: str) -> None:
    print(f"ram compare: {line}", file=sys.stderr, flush=True)


def run_compare(argv: List[str]) -> int:
    argv, slurm_options = split_slurm_options(argv)
    args, fit_args = parser().parse_known_args(argv)
    command = "ram compare " + " ".join(shlex.quote(a) for a in argv + [f"--slurm.{o.replace('=', ' ', 1)}" for o in slurm_options])
    out = args.out
    check_out(out)
    targets = parse_targets(args.targets)
    if args.seeds < 1 or args.jobs < 1:
        raise UserError(f"--seeds and --jobs must be >= 1, got {args.seeds} and {args.jobs}")
    group = args.name or out.resolve().name
    if args.join:
        if args.estimators or args.report_only or fit_args:
            raise UserError("--join: only writes a report; it takes --out, --targets and --variance-reference, "
                            f"not {' '.join(['--estimators'] * bool(args.estimators) + ['--report-only'] * args.report_only + fit_args)}")
        text = join_report(args.join, out, command, targets, args.variance_reference)
        _say(f"report in {out}" if text else "no joined comparison has a finished run yet")
        return 0
    if args.report_only:
        stored = read_comparison(out, "--out")
        check_variance_reference(args.variance_reference, stored["variants"])
        runs = [RunSpec(**spec) for spec in stored["runs"]]
        text = report(out, runs, stored["command"], targets, stored["title"], args.variance_reference)
        _say(f"{len(collect(runs))} of {len(runs)} runs done; " + ("report in " + str(out) if text else "nothing to report yet"))
        return 0
    if not args.estimators:
        raise UserError("--estimators: give at least one estimator (a registered name or class path)")
    variants = [parse_variant(spec) for spec in args.estimators]
    if len({v.label for v in variants}) != len(variants):
        raise UserError("--estimators: the same variant is given twice")
    for option, instead in (("--model.init_args.estimator", "--estimators"), ("--seed_everything", "--seeds"),
                            ("--trainer.default_root_dir", "--out"), ("--ckpt_path", "the same command again")):
        if any(arg == option or arg.startswith(option + "=") or arg.startswith(option + ".") for arg in fit_args):
            raise UserError(f"{option}: `ram compare` sets it for each run; use {instead}")
    config = resolve_fit_config(fit_args)
    check_classifier(config)
    check_logger_folders(config)
    # the precision chosen here, the same for every run; no progress bar in a job's log (it only grows the file)
    pinned = {"trainer.precision": str(get_path(config, "trainer.precision")), "trainer.enable_progress_bar": "false"}
    runs = plan_runs(out, fit_args, variants, list(range(args.seeds)), config_num_samples(config), group, pinned)
    title = f"{group}: {', '.join(v.label for v in variants)}; {args.seeds} seeds, {pinned['trainer.precision']}"
    record = experiment_record(out, {"fingerprint": fingerprint(config), "variants": [v.label for v in variants],
                                     "seeds": args.seeds, "command": command, "title": title,
                                     "runs": [r.as_dict() for r in runs]})
    check_variance_reference(args.variance_reference, record["variants"])
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"--out {out}: cannot create the folder ({error.strerror or error})") from None
    write_json_atomically(out / EXPERIMENT_FILE, record)
    _say(status_line(runs))
    every_run = [RunSpec(**spec) for spec in record["runs"]]  # the report covers earlier commands' runs too
    todo = launch_order([r for r in runs if not is_done(r)])
    if not todo:
        if not (out / "table.md").is_file():
            report(out, every_run, command, targets, title, args.variance_reference)
        _say(f"report in {out / 'table.md'}")
        return 0

    started, ended = time.monotonic(), []

    def said(run: RunSpec, outcome: Dict[str, Any]) -> None:
        result = read_result(run)
        ended.append(run)
        detail = f"test error {100 * result['test_error']:.2f}%" if result and result.get("test_error") is not None else \
            outcome.get("error") or f"exit status {outcome.get('exit_code')}"
        _say(f"{run.label} seed {run.seed}: {outcome['status']} ({detail})" + (f"; log {outcome['log']}" if outcome.get("log") else "")
             + f" [{pace_line(len(ended), len(todo), time.monotonic() - started, args.jobs)}]")

    with StopRequest() as stop:
        outcomes = launch(todo, args.launcher, out / "jobs", args.jobs, slurm_options, said, stop, f"ram-compare-{group}")
    text = report(out, every_run, command, targets, title, args.variance_reference)
    done = sum(is_done(r) for r in runs)
    if stop.signum is not None:
        _say(f"stopped by {signal.Signals(stop.signum).name}: {done} of {len(runs)} runs done, the others' checkpoints "
             f"are saved; resume with: {command}")
        return 128 + stop.signum
    failed = [o for o in outcomes if o["status"] != "done"]
    if text:
        print(text)
    _say(f"{done} of {len(runs)} runs done; report in {out}" + (f"; {len(failed)} failed (see above)" if failed else ""))
    return 1 if failed else 0


def main(argv: Optional[List[str]] = None) -> None:
    """Bad input: one line ``ram: error: ...``, exit status 2."""
    try:
        status = run_compare(list(sys.argv[2:] if argv is None else argv))
    except UserError as error:
        print(f"ram: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    raise SystemExit(status)
