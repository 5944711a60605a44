"""Data modules: MNIST (IDX reading, md5-checked download, rendered fallback) and the
translated / translated-and-scaled / cluttered MNIST tasks for attention models; captioning:
Flickr8k and synthetic shapes-on-a-grid captions (shared vocabulary, dataset, collate)."""
from datamodules.attention_mnist import (
    AttentionMNIST,
    CanvasDataset,
    ClutteredMNIST,
    TranslatedMNIST,
    TranslatedScaledMNIST,
)
from datamodules.captions import CaptionDataset, Vocabulary, collate_captions, tokenize
from datamodules.flickr8k import Flickr8k, read_token_file
from datamodules.mnist import load_mnist, read_idx, render_digits
from datamodules.synthetic_captions import SyntheticCaptions

__all__ = [
    "read_idx",
    "load_mnist",
    "render_digits",
    "CanvasDataset",
    "AttentionMNIST",
    "TranslatedMNIST",
    "TranslatedScaledMNIST",
    "ClutteredMNIST",
    "tokenize",
    "Vocabulary",
    "CaptionDataset",
    "collate_captions",
    "read_token_file",
    "Flickr8k",
    "SyntheticCaptions",
]
