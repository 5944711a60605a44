"""Alias kept for old configs and checkpoints (``ram_lightning.classifier.AttentionClassifier``):
the model lives in :mod:`ram_lightning.models.classifier`."""
from ram_lightning.models.classifier import AttentionClassifier

__all__ = ["AttentionClassifier"]
