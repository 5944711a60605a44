"""Helpers for tests that run ``ram`` in a subprocess or read its checkpoints (the tiny config,
the config writer and the metrics reader are fixtures in ``tests/conftest.py``)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]

# The ``ram`` command in a fresh interpreter (``-m``, so Lightning's DDP launcher can re-run it).
RAM = [sys.executable, "-m", "ram_lightning.cli"]


def load_checkpoint(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)  # what ram itself allows


def subprocess_env() -> dict:
    """Environment for a ``ram`` subprocess: the repository importable, one thread per process."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    env.setdefault("OMP_NUM_THREADS", "1")
    return env
