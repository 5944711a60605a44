"""Alias kept for old configs and checkpoints (``ram_lightning.tracking.WandbRunInfo``): W&B tracking
lives in :mod:`ram_lightning.run.tracking` (the mode) and :mod:`ram_lightning.run.wandb_run` (the run)."""
from ram_lightning.run.wandb_run import WandbRunInfo

__all__ = ["WandbRunInfo"]
