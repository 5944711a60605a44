"""Alias kept for old configs and checkpoints (``ram_lightning.captioner.AttentionCaptioner``):
the model lives in :mod:`ram_lightning.models.captioner`."""
from ram_lightning.models.captioner import SPECIAL_TOKENS, AttentionCaptioner

__all__ = ["SPECIAL_TOKENS", "AttentionCaptioner"]
