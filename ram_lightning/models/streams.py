"""Random streams: one per DDP process for training, private ones for evaluation and probes.

``seed_everything`` gives every process the same seed (so that every replica starts from the
same weights). The attention samples (glimpse locations and scales) and the training images
drawn in the main process (``num_workers: 0``) come from torch's global generator, so
without more every rank would draw the same noise for row b of its batch. After the
processes have started, each rank therefore reseeds torch's generator from (global seed,
rank): distinct streams per rank, the same ones on every run with the same seed.

Evaluation never touches that stream: :class:`EvaluationStreams` gives validation, test, prediction
and the gradient probe generators of their own.
"""
from __future__ import annotations

import os
from typing import Optional

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


# Tags of the private random streams (one generator per evaluation stage, reseeded each epoch).
STREAMS = {"validate": 1, "test": 2, "predict": 3, "probe": 4}


class EvaluationStreams:
    """Mixin of :class:`~ram_lightning.models.module.EstimatorModule`: training draws from torch's
    global stream (reseeded per DDP rank in ``setup``); validation, test and prediction draw their
    attention samples from a private generator seeded from (run seed, rank, stage, global step), so
    training draws never depend on how often or how much one evaluates, and an evaluation at step N
    is the same whatever evaluations came before it. The gradient probe has a stream of its own."""

    _eval_stream: Optional[torch.Generator] = None

    def private_stream(self, name: str) -> torch.Generator:
        """A new generator on this module's device for the stream ``name`` (a key of ``STREAMS``),
        seeded from (run seed, process rank, stream, global step); torch's global stream is untouched."""
        generator = torch.Generator(device=self.device)
        generator.manual_seed(stream_seed(run_seed(), self.global_rank, STREAMS[name], self.global_step))
        return generator

    def eval_stream(self) -> torch.Generator:
        """The generator evaluation draws from in the current validation / test / predict epoch."""
        if self._eval_stream is None or self._eval_stream.device != self.device:
            self._eval_stream = self.private_stream("validate")
        return self._eval_stream

    def on_validation_epoch_start(self) -> None:
        self._eval_stream = self.private_stream("validate")

    def on_test_epoch_start(self) -> None:
        self._eval_stream = self.private_stream("test")

    def on_predict_epoch_start(self) -> None:
        self._eval_stream = self.private_stream("predict")

    def setup(self, stage: str) -> None:
        """Under DDP, give each process its own random stream (``seed_rank_stream``)."""
        if self._trainer is not None:
            seed_rank_stream(self.global_rank, self.trainer.world_size)
