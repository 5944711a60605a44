"""The estimator lab's old command, now a thin alias of ``ram compare`` (``ram_lightning.compare``).

    python -m benchmarks.compare_estimators --budget cpu --seeds 3 --estimators reinforce rloo
    # is
    ram compare --config configs/translated_scaled.yaml --config configs/lab/cpu.yaml \\
        --estimators reinforce rloo --seeds 3 --out benchmarks/results/compare_cpu

The budgets are configs (``configs/lab/{cpu,gpu,smoke}.yaml``) composed after the task's config,
so the lab and ``ram fit`` share one definition of the experiment: the model settings are the
task config's (``detach_policy_input: true`` included; the lab's figures in docs/lab.md made
before this alias say which setting they used). Options map one to one:

    --budget B             --config configs/translated_scaled.yaml --config configs/lab/B.yaml
    --model-args k=v ...   --model.init_args.k v ...
    --updates N            --trainer.max_steps N           --val-every N   --trainer.val_check_interval N
    --precision P          --trainer.precision P           --data-dir D    --data.init_args.data_dir D
    --source S             --data.init_args.source S       --test-size N   --data.init_args.test_size N
    --estimators, --seeds, --jobs, --targets, --out, --report-only: as they are

Every other option is passed to ``ram compare`` unchanged (``ram fit`` options included).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional

from ram_lightning.compare.variants import parse_assignments
from ram_lightning.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
TASK_CONFIG = ROOT / "configs" / "translated_scaled.yaml"
BUDGETS = ("cpu", "gpu", "smoke")
BUILT_IN = ("reinforce", "rloo", "vimco", "pathwise", "wake_sleep", "wake_sleep_cv")
RENAMED = {"updates": "--trainer.max_steps", "val_every": "--trainer.val_check_interval", "precision": "--trainer.precision",
           "data_dir": "--data.init_args.data_dir", "source": "--data.init_args.source", "test_size": "--data.init_args.test_size"}


def compare_args(argv: List[str]) -> List[str]:
    """The ``ram compare`` arguments that ``argv`` (this alias's) stands for."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compare_estimators", add_help=True,
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--budget", choices=BUDGETS, default="cpu")
    parser.add_argument("--estimators", nargs="+", default=list(BUILT_IN))
    parser.add_argument("--model-args", nargs="+", action="extend", default=[], metavar="OPTION=VALUE")
    parser.add_argument("--out", type=Path)
    for key in RENAMED:
        parser.add_argument(f"--{key.replace('_', '-')}", dest=key)
    args, rest = parser.parse_known_args(argv)
    out = args.out or Path("benchmarks/results") / f"compare_{args.budget}"
    translated = ["--config", str(TASK_CONFIG), "--config", str(ROOT / "configs" / "lab" / f"{args.budget}.yaml"),
                  "--estimators", *args.estimators, "--out", str(out)]
    for key, value in parse_assignments(args.model_args, "--model-args").items():
        text = "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
        translated += [f"--model.init_args.{key}", text]
    for key, option in RENAMED.items():
        if getattr(args, key) is not None:
            translated += [option, getattr(args, key)]
    return translated + rest


def main(argv: Optional[List[str]] = None) -> None:
    from ram_lightning.compare.command import main as compare

    try:
        translated = compare_args(list(sys.argv[1:] if argv is None else argv))
    except UserError as error:
        print(f"ram: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    compare(translated)


if __name__ == "__main__":
    main()
