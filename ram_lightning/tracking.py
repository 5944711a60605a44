"""Alias kept for old configs (``ram_lightning.tracking.WandbRunInfo``): W&B tracking lives in
:mod:`ram_lightning.run.tracking`."""
from ram_lightning.run.tracking import WandbRunInfo

__all__ = ["WandbRunInfo"]
