"""Random streams under data-parallel training (DDP).

``seed_everything`` gives every process the same seed (so that every replica starts from the
same weights). The attention samples (glimpse locations and scales) and the training images
drawn in the main process (``num_workers: 0``) come from torch's global generator, so
without more every rank would draw the same noise for row b of its batch. After the
processes have started, each rank therefore reseeds torch's generator from (global seed,
rank): distinct streams per rank, the same ones on every run with the same seed.
"""
from __future__ import annotations

import os

import torch

from ram_lightning.seeds import mix_seed


def stream_seed(seed: int, *words: int) -> int:
    """A 63-bit seed for the random stream named by ``words`` (e.g. rank, step) of a run seeded
    with ``seed``: distinct streams for distinct words, the same ones on every run
    (:func:`ram_lightning.seeds.mix_seed`, the project's one seeding scheme)."""
    return mix_seed(seed, *words)


def rank_seed(seed: int, rank: int) -> int:
    """A 63-bit seed for process ``rank`` of a run seeded with ``seed`` (distinct per rank)."""
    return mix_seed(seed, rank)


def run_seed() -> int:
    """The run's base seed: ``PL_GLOBAL_SEED`` (set by ``seed_everything``), else torch's initial seed."""
    return int(os.environ.get("PL_GLOBAL_SEED", torch.initial_seed()))


def seed_rank_stream(rank: int, world_size: int) -> None:
    """With several processes, reseed torch's global generator (CPU and CUDA) for this ``rank``.

    The base seed is ``PL_GLOBAL_SEED`` (set by ``seed_everything``, the same on every rank),
    else ``torch.initial_seed()``. A single process keeps its stream unchanged.
    """
    if world_size <= 1:
        return
    torch.manual_seed(rank_seed(run_seed(), rank))
