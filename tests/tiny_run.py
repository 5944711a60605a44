"""The tiny CLI config of ``tests/test_cli.py`` as a dict, for tests that change a few keys;
and readers for what a run leaves behind (CSV metrics, checkpoints)."""
from __future__ import annotations

import csv
import os
import sys
from pathlib import Path
from typing import Dict, List

import torch
import yaml

from tests.test_cli import ROOT, TINY

# The ``ram`` command in a fresh interpreter (``-m``, so Lightning's DDP launcher can re-run it).
RAM = [sys.executable, "-m", "ram_lightning.cli"]


def tiny_config(root: Path, estimator="reinforce") -> dict:
    """The tiny config, logging CSV under ``root/tiny``; ``estimator`` a name or a dict."""
    config = yaml.safe_load(TINY.format(root=root, estimator="reinforce"))
    config["model"]["init_args"]["estimator"] = estimator
    return config


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def metric_rows(root: Path) -> List[Dict[str, float]]:
    """Every row of the CSV logger's file (one run under ``root/tiny``), empty cells left out."""
    (metrics_file,) = root.glob("tiny/version_*/metrics.csv")
    with open(metrics_file) as handle:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(handle)]


def metric_keys(root: Path) -> set:
    (metrics_file,) = root.glob("tiny/version_*/metrics.csv")
    with open(metrics_file) as handle:
        return set(next(csv.reader(handle)))


def last_values(root: Path) -> Dict[str, float]:
    values: Dict[str, float] = {}
    for row in metric_rows(root):
        values.update(row)
    return values


def load_checkpoint(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)  # what ram itself allows


def subprocess_env() -> dict:
    """Environment for a ``ram`` subprocess: the repository importable, one thread per process."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    env.setdefault("OMP_NUM_THREADS", "1")
    return env
