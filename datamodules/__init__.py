"""Data modules: MNIST (IDX reading, md5-checked download, rendered fallback) and the
translated / translated-and-scaled / cluttered MNIST tasks for attention models."""
from datamodules.attention_mnist import (
    AttentionMNIST,
    CanvasDataset,
    ClutteredMNIST,
    TranslatedMNIST,
    TranslatedScaledMNIST,
)
from datamodules.mnist import load_mnist, read_idx, render_digits

__all__ = [
    "read_idx",
    "load_mnist",
    "render_digits",
    "CanvasDataset",
    "AttentionMNIST",
    "TranslatedMNIST",
    "TranslatedScaledMNIST",
    "ClutteredMNIST",
]
