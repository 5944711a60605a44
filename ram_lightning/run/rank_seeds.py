"""``RankSeeds``: the callback the ``ram`` CLI gives every Trainer, so that under DDP each process
draws from its own random stream (see :mod:`ram_lightning.models.streams`)."""
from __future__ import annotations

import pytorch_lightning as pl

from ram_lightning.models.streams import seed_rank_stream


class RankSeeds(pl.Callback):
    """Reseeds each process's random stream for its rank when the run is set up."""

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        seed_rank_stream(trainer.global_rank, trainer.world_size)
