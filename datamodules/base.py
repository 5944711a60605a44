"""The base of every DataModule here, and the contract the ``ram`` CLI links on.

**What the CLI reads** (``parser.link_arguments(..., apply_on="instantiate")``, answered right
after construction, before ``setup``, reading no image):

    data.image_shape  -> model.image_shape    (C, H, W) of every image, every DataModule
    data.num_classes  -> model.num_classes    classifiers (the MNIST family, :mod:`datamodules.attention_mnist`)
    data.vocabulary   -> model.vocabulary     captioners (the caption family, :mod:`datamodules.captions`):
                                              the id -> token list, special tokens first

**The batches each model expects:**

    AttentionClassifier   (images float32 [B, C, H, W] in [0, 1], labels int64 [B])
    AttentionCaptioner    {"images": float32 [B, 3, H, W] in [0, 1]  (or "features": [B, L, D], cached),
                           "captions": int64 [B, T] "<bos> w1 .. wn <eos>" padded with <pad> = 0,
                           "lengths": int64 [B] (n + 2), "references": B lists of token lists,
                           "image_ids": B strings}                      (``datamodules.caption_dataset``)
    ram predict (both)    {"images": float32 [B, C, H, W], "image": B paths (a folder) or ids / indices}
                          (the caption family predicts on test batches as above when no folder is given)

:class:`BaseDataModule` holds what both families share: the checks of ``batch_size`` and
``num_workers``, the loaders (one recipe, :func:`make_loader`), ``predict_dir`` and a ``__str__`` that
reads no data. A subclass builds its datasets in ``setup`` (``self._datasets``, one per split) and
gives :meth:`BaseDataModule.collate_fn`, :meth:`BaseDataModule.predict_fit` and :meth:`BaseDataModule.settings`.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Optional

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from ram_lightning.errors import UserError

SPLITS = ("train", "val", "test")


def make_loader(dataset: Dataset, split: str, batch_size: int, num_workers: int,
                collate_fn: Optional[Callable] = None) -> DataLoader:
    """The one DataLoader recipe: shuffled for ``"train"`` only; workers kept alive between epochs;
    pinned memory with CUDA.

    Evaluation loaders get a generator of their own: every new iterator over a DataLoader draws
    a base seed from its generator, which would otherwise be torch's global one, so each
    validation would shift the training random stream.
    """
    evaluation = split != "train"
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=split == "train",
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        pin_memory=torch.cuda.is_available(),
        collate_fn=collate_fn,
        generator=torch.Generator().manual_seed(0) if evaluation else None,
    )


class BaseDataModule(pl.LightningDataModule):
    """What every DataModule here shares; see the module docstring for the contract.

    Args:
        batch_size: items per batch (per device under DDP).
        num_workers: DataLoader worker processes (0: load in the main process).
        predict_dir: a folder of PNG / JPEG files for ``ram predict`` (fitted to the images'
            shape, see ``datamodules.predict_images``); None: predict on the test split.
    """

    splits = SPLITS

    def __init__(self, batch_size: int, num_workers: int, predict_dir: Optional[str] = None) -> None:
        super().__init__()
        if batch_size < 1:
            raise UserError(f"batch_size must be >= 1, got {batch_size}")
        if num_workers < 0:
            raise UserError(f"num_workers must be >= 0, got {num_workers}")
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.predict_dir = predict_dir
        self.data_description: Optional[str] = None  # what setup() loaded, in words
        self._datasets: Optional[Dict[str, Dataset]] = None

    # ---- the contract (subclasses)

    @property
    def image_shape(self) -> tuple:
        """``(C, H, W)`` of every image (linked into the model)."""
        raise NotImplementedError

    def collate_fn(self) -> Optional[Callable]:
        """How items become a batch (None: torch's default collate)."""
        return None

    def predict_fit(self) -> Callable[[Any], torch.Tensor]:
        """How an image file of ``predict_dir`` is fitted to ``image_shape`` (``datamodules.predict_images``)."""
        raise NotImplementedError

    def predict_split(self) -> DataLoader:
        """The loader ``ram predict`` reads when no ``predict_dir`` is given (the test split)."""
        return self._loader("test")

    def settings(self) -> str:
        """The constructor's main settings in words, for ``__str__`` (no data read)."""
        return ""

    # ---- loaders

    def dataset(self, split: str) -> Dataset:
        """The ``"train"``, ``"val"`` or ``"test"`` dataset (calls :meth:`setup` if needed)."""
        if split not in self.splits:
            raise UserError(f"split must be one of {', '.join(self.splits)}; got {split!r}")
        self.setup()
        return self._datasets[split]

    def _loader(self, split: str) -> DataLoader:
        return make_loader(self.dataset(split), split, self.batch_size, self.num_workers, self.collate_fn())

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        """Items ``{"images", "image": path}``: every PNG / JPEG in ``predict_dir`` fitted to the images'
        shape (:meth:`predict_fit`), else :meth:`predict_split`."""
        if not self.predict_dir:
            return self.predict_split()
        from datamodules.predict_images import ImageFolder

        return make_loader(ImageFolder(self.predict_dir, self.predict_fit()), "predict", self.batch_size, self.num_workers)

    def __str__(self) -> str:
        """A description that reads no data (Lightning's would build every dataloader; jsonargparse
        formats the DataModule while it applies the CLI's argument links)."""
        return f"{type(self).__name__}({self.settings()})"
