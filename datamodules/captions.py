"""The base of the captioning data modules (:class:`CaptionDataModule`): captions, the
vocabulary (:mod:`datamodules.vocabulary`) and the optional feature cache; the loaders are those of
:class:`datamodules.base.BaseDataModule`, the batches those of
:func:`datamodules.caption_dataset.collate_captions`.

The feature cache computes a frozen encoder's features once per image. The encoder is handed in,
never imported from the models: ``feature_encoder`` (a callable from the encoder's name, e.g.
``efficientnet_lite0``, to the ``nn.Module``) is set in the config
(``feature_encoder: ram_lightning.core.image_encoder.build_grid_encoder``) or, when the config leaves
it out, by the ``ram`` command from the model side (``ram_lightning.run.cli``).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Optional

import torch
from pytorch_lightning.utilities import rank_zero_info

from datamodules.base import BaseDataModule
from datamodules.caption_dataset import CaptionDataset, collate_captions
from datamodules.vocabulary import Vocabulary, tokenize
from ram_lightning.errors import UserError


def image_hw(image_size: int | Sequence[int]) -> tuple[int, int]:
    """``image_size`` as ``(H, W)``; an int means a square image."""
    if isinstance(image_size, int) and not isinstance(image_size, bool):
        size = (image_size, image_size)
    elif (isinstance(image_size, (tuple, list)) and len(image_size) == 2
          and all(isinstance(s, int) and not isinstance(s, bool) for s in image_size)):
        size = (int(image_size[0]), int(image_size[1]))
    else:
        raise UserError(f"image_size must be an int or a pair of ints (H, W), got {image_size!r}")
    if min(size) < 1:
        raise UserError(f"image_size must be positive, got {image_size!r}")
    return size


class CaptionDataModule(BaseDataModule):
    """What :class:`~datamodules.flickr8k.Flickr8k` and
    :class:`~datamodules.synthetic_captions.SyntheticCaptions` share: the vocabulary (loaded
    from ``vocab_path`` when that file exists, else built from the training captions and saved
    there), the properties the model links to (``image_shape``, ``vocabulary``), the feature cache
    and the loaders (:class:`~datamodules.base.BaseDataModule`). Batches: see ``datamodules.base``.

    Subclasses implement :meth:`_caption_splits` (text only: ``{"train"|"val"|"test":
    [(image_id, source, captions), ...]}``) and :meth:`_image_loader`, and may check the
    images in :meth:`_check_images`; they declare ``image_size`` and ``min_count`` with their own
    defaults and pass the rest on by keyword.

    Args:
        image_size: side of the resized images, or ``(H, W)``.
        min_count: words seen fewer times in the training captions become ``<unk>``.
        vocab_path: ``vocab.json`` to load if it exists, else to write after building from the
            training captions. None: built in memory and, with a Trainer that has a logger, saved as
            ``vocab.json`` in the run's log directory.
        batch_size: items per batch.
        num_workers: DataLoader worker processes (0: load in the main process).
        cache_features: a frozen encoder's name (e.g. ``efficientnet_lite0``): compute its
            features of every image once into ``feature_cache_dir``; batches then carry
            ``features`` [B, L, D] instead of images. None: images.
        feature_cache_dir: root of the feature cache (None: ./cache/features).
        feature_encoder: builds the encoder named by ``cache_features`` (a callable: name ->
            ``nn.Module`` with ``feature_size``); None: the ``ram`` command hands over the models'
            ``ram_lightning.core.image_encoder.build_grid_encoder``.
        predict_dir: a folder of PNG / JPEG files for ``ram predict`` (resized to
            ``image_size``); None: predict on the test split.
    """

    def __init__(self, image_size: int | Sequence[int], min_count: int, vocab_path: str | None = None,
                 batch_size: int = 32, num_workers: int = 0, cache_features: str | None = None,
                 feature_cache_dir: str | None = None, feature_encoder: Optional[Callable[[str], Any]] = None,
                 predict_dir: str | None = None) -> None:
        super().__init__(batch_size=batch_size, num_workers=num_workers, predict_dir=predict_dir)
        self.cache_features = cache_features
        self.feature_cache_dir = Path(feature_cache_dir) if feature_cache_dir is not None else Path("cache") / "features"
        self.feature_encoder = feature_encoder
        self.image_hw = image_hw(image_size)
        if min_count < 1:
            raise UserError(f"min_count must be >= 1, got {min_count}")
        self.min_count = min_count
        self.vocab_path = None if vocab_path is None else Path(vocab_path)
        self.vocab_description: str | None = None
        self._samples: dict[str, list[tuple[str, Any, list[str]]]] | None = None
        self._tokens: dict[str, list[list[list[str]]]] = {}
        self._vocab: Vocabulary | None = None

    # ---- to implement

    def _caption_splits(self) -> dict[str, list[tuple[str, Any, list[str]]]]:
        raise NotImplementedError

    def _image_loader(self) -> Callable[[Any], torch.Tensor]:
        raise NotImplementedError

    def _check_images(self, samples: dict[str, list]) -> dict[str, list]:
        return samples

    def _describe(self) -> str:
        raise NotImplementedError

    # ---- text: captions and vocabulary (no images needed, so the CLI can link early)

    def samples(self, split: str) -> list[tuple[str, Any, list[str]]]:
        if split not in self.splits:
            raise UserError(f"split must be one of {', '.join(self.splits)}; got {split!r}")
        if self._samples is None:
            self._samples = self._caption_splits()
        return self._samples[split]

    def tokens(self, split: str) -> list[list[list[str]]]:
        """The captions of :meth:`samples` tokenised (per image, per caption), cached."""
        if split not in self._tokens:
            self._tokens[split] = [[tokenize(c) for c in caps] for _, _, caps in self.samples(split)]
        return self._tokens[split]

    @property
    def vocab(self) -> Vocabulary:
        """The vocabulary: read from ``vocab_path`` if that file exists, else built from the
        training captions with ``min_count`` (and saved to ``vocab_path`` when one is set).
        Available before :meth:`setup` (it reads only the caption files)."""
        if self._vocab is None:
            self._vocab = self._resolve_vocab()
        return self._vocab

    @property
    def vocabulary(self) -> list[str]:
        """The id -> token list (what ``AttentionCaptioner(vocabulary=...)`` takes)."""
        return list(self.vocab.itos)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def _resolve_vocab(self) -> Vocabulary:
        path = self.vocab_path
        if path is not None and path.exists():
            vocab = Vocabulary.load(path)
            self.vocab_description = f"vocabulary of {len(vocab)} tokens loaded from {path}"
            return vocab
        train = self.tokens("train")
        vocab = Vocabulary.build((t for refs in train for t in refs), self.min_count)
        where = "not saved (no vocab_path)"
        if path is not None:
            vocab.save(path)
            where = f"saved to {path}"
        self.vocab_description = (
            f"vocabulary of {len(vocab)} tokens built from {len(train)} training images "
            f"(min_count {self.min_count}), {where}"
        )
        return vocab

    @property
    def max_caption_length(self) -> int:
        """Longest caption over all splits, in tokens with ``<bos>`` and ``<eos>``."""
        return max(len(t) + 2 for split in self.splits for refs in self.tokens(split) for t in refs)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(3, H, W)`` of every image."""
        return (3, *self.image_hw)

    # ---- setup and loaders

    def setup(self, stage: str | None = None) -> None:
        """Read the captions, resolve the vocabulary, check the images, build the datasets."""
        if self._datasets is not None:
            return
        vocab, load = self.vocab, self._image_loader()
        self._save_vocab_beside_run()
        samples = self._check_images({split: self.samples(split) for split in self.splits})
        if self.cache_features:
            samples, load = self._cached_features(samples, load)
        self._datasets = {}
        for split, items in samples.items():
            tokens = dict(zip((s[0] for s in self.samples(split)), self.tokens(split)))
            self._datasets[split] = CaptionDataset(items, load, vocab, per_caption=split == "train",
                                                   references=[tokens[s[0]] for s in items])
        self.data_description = f"{self._describe()}; {self.vocab_description}"
        rank_zero_info(self.data_description)

    def _cached_features(self, samples: dict[str, list], load: Callable[[Any], torch.Tensor]):
        """Features of the frozen encoder ``cache_features`` for every image, computed once into
        ``feature_cache_dir`` (keyed by image id, encoder, image size and a digest of the encoder's
        weights); items then carry
        ``features`` [L, D] instead of images. Returns (samples keyed by image id, loader)."""
        from datamodules.feature_cache import FeatureCache, weights_digest

        if self.feature_encoder is None:
            raise UserError(
                f"cache_features={self.cache_features!r} needs the encoder that computes the features: set "
                f"feature_encoder (e.g. ram_lightning.core.image_encoder.build_grid_encoder; the ram command sets it)"
            )
        encoder = self.feature_encoder(self.cache_features)
        cache = FeatureCache(self.feature_cache_dir, self.cache_features, self.image_hw, weights_digest(encoder))
        source_of = {image_id: source for items in samples.values() for image_id, source, _ in items}
        computed = cache.fill(list(source_of), lambda image_id: load(source_of[image_id]), encoder,
                              batch_size=self.batch_size)
        rank_zero_info(f"Features: {self.cache_features} for {len(source_of)} images in {cache.folder} ({computed} computed now)")
        keyed = {split: [(image_id, image_id, captions) for image_id, _, captions in items] for split, items in samples.items()}
        return keyed, cache.get

    def _save_vocab_beside_run(self) -> None:
        """With no ``vocab_path``, attached to a Trainer that has a logger: save ``vocab.json``
        in the run's log directory (global rank 0), so the vocabulary sits beside the logs."""
        if self.vocab_path is not None or self.trainer is None or not self.trainer.loggers:
            return  # without a logger, log_dir would be the working directory
        log_dir = self.trainer.log_dir
        if not log_dir:
            return
        path = Path(log_dir) / "vocab.json"
        if self.trainer.is_global_zero:
            self.vocab.save(path)
        self.vocab_description = self.vocab_description.replace(
            "not saved (no vocab_path)", f"saved beside the run to {path}")

    # ---- what the base's loaders need

    def collate_fn(self) -> Callable:
        return collate_captions

    def predict_fit(self) -> Callable[[Any], torch.Tensor]:
        """``ram predict`` folders: RGB, resized to ``image_size``."""
        from datamodules.predict_images import ResizeRGB

        return ResizeRGB(self.image_hw)

    def settings(self) -> str:
        return f"image_size={self.image_hw[0]}x{self.image_hw[1]}"
