"""Data modules and their parts, one purpose a file.

``base`` holds what every DataModule shares and states the contract the ``ram`` CLI links on
(``image_shape``, plus ``num_classes`` or ``vocabulary``) and the batch format each model expects.
Nothing here imports the models (a feature cache gets its encoder handed over).

MNIST: ``idx`` (the IDX format), ``mnist_files`` (names, md5s, where they are looked for),
``mnist_download`` (md5-checked download), ``mnist`` (loading), ``rendered_digits`` (the offline
fallback), ``canvas`` (the translated / scaled / cluttered canvases) and ``attention_mnist`` (the
DataModules). Captions: ``vocabulary`` (tokens and vocabulary), ``caption_dataset`` (dataset and
collate), ``feature_cache`` (frozen-encoder features on disk), ``captions`` (the caption family's base),
``flickr8k_text`` and ``image_folder`` (the Flickr8k files) with ``flickr8k``, and
``synthetic_captions``."""
from datamodules.attention_mnist import (
    AttentionMNIST,
    CanvasDataset,
    ClutteredMNIST,
    TranslatedMNIST,
    TranslatedScaledMNIST,
)
from datamodules.base import BaseDataModule
from datamodules.caption_dataset import CaptionDataset, collate_captions
from datamodules.captions import CaptionDataModule
from datamodules.flickr8k import Flickr8k
from datamodules.flickr8k_text import read_token_file
from datamodules.idx import read_idx
from datamodules.mnist import load_mnist
from datamodules.rendered_digits import render_digits
from datamodules.vocabulary import Vocabulary, tokenize
from datamodules.synthetic_captions import SyntheticCaptions

__all__ = [
    "BaseDataModule",
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
    "CaptionDataModule",
    "read_token_file",
    "Flickr8k",
    "SyntheticCaptions",
]
