"""The caption dataset and its collate function.

Batches (:func:`collate_captions`) are dicts::

    images      float32 [B, 3, H, W] in [0, 1]   (or ``features`` [B, L, D] from the feature cache)
    captions    int64   [B, T]  rows "<bos> w1 .. wn <eos>", padded with <pad> (= 0)
    lengths     int64   [B]     n + 2 (bos and eos included); T = lengths.max()
    references  list (len B) of lists of token lists: every reference caption of the image
    image_ids   list (len B) of str

In training each item is one (image, caption) pair, so an image appears once per caption in
an epoch; in evaluation each item is one image, ``captions`` holds its first reference and
``references`` all of them.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.utils.data import Dataset

from datamodules.vocabulary import Vocabulary, tokenize
from ram_lightning.errors import UserError


class CaptionDataset(Dataset):
    """Images with their reference captions.

    Args:
        samples: ``(image_id, source, captions)`` per image; ``source`` is whatever
            ``load_image`` takes (a path, a scene description, ...), captions are raw strings.
        load_image: ``source -> float32 [3, H, W]`` in [0, 1]; must be picklable when
            DataLoader workers are used (a module-level function or a small class).
        vocab: encodes the captions (looked up at access time, so it can be replaced).
        per_caption: True (training): one item per (image, caption) pair; False (evaluation):
            one item per image, whose ``caption`` is its first reference.
        tokenizer: caption -> tokens (default :func:`tokenize`).
        references: the captions already tokenised, per sample (then ``tokenizer`` is unused).

    Items are dicts ``{"image", "caption" (int64 [n + 2]), "references", "image_id"}``.
    """

    def __init__(
        self,
        samples: Sequence[tuple[str, Any, Sequence[str]]],
        load_image: Callable[[Any], torch.Tensor],
        vocab: Vocabulary,
        per_caption: bool,
        tokenizer: Callable[[str], list[str]] = tokenize,
        references: Sequence[list[list[str]]] | None = None,
    ) -> None:
        if references is not None and len(references) != len(samples):
            raise UserError(f"CaptionDataset: {len(references)} reference lists for {len(samples)} samples")
        self.image_ids: list[str] = []
        self.sources: list[Any] = []
        self.references: list[list[list[str]]] = []
        for k, (image_id, source, captions) in enumerate(samples):
            if not captions:
                raise UserError(f"CaptionDataset: image {image_id!r} has no captions")
            self.image_ids.append(str(image_id))
            self.sources.append(source)
            self.references.append(list(references[k]) if references is not None
                                   else [tokenizer(c) for c in captions])
        self.load_image = load_image
        self.vocab = vocab
        self.per_caption = per_caption
        # item -> (image index, caption index)
        if per_caption:
            self.index = [(i, j) for i, refs in enumerate(self.references) for j in range(len(refs))]
        else:
            self.index = [(i, 0) for i in range(len(self.references))]

    def __len__(self) -> int:
        return len(self.index)

    @property
    def num_images(self) -> int:
        return len(self.image_ids)

    def max_length(self) -> int:
        """Longest encoded caption (bos and eos included)."""
        return max((len(t) + 2 for refs in self.references for t in refs), default=2)

    def __getitem__(self, item: int) -> dict[str, Any]:
        i, j = self.index[item]
        return {
            "image": self.load_image(self.sources[i]),
            "caption": torch.tensor(self.vocab.encode(self.references[i][j]), dtype=torch.long),
            "references": self.references[i],
            "image_id": self.image_ids[i],
        }


def collate_captions(batch: Sequence[dict[str, Any]], pad_id: int = Vocabulary.pad_id) -> dict[str, Any]:
    """Stack items of :class:`CaptionDataset` into the batch dict (see the module docstring)."""
    if not batch:
        raise UserError("collate_captions: empty batch")
    lengths = torch.tensor([len(item["caption"]) for item in batch], dtype=torch.long)
    captions = torch.full((len(batch), int(lengths.max())), pad_id, dtype=torch.long)
    for row, item in enumerate(batch):
        captions[row, : len(item["caption"])] = item["caption"]
    key = "features" if batch[0]["image"].dim() == 2 else "images"  # cached grid features [L, D]
    return {
        key: torch.stack([item["image"] for item in batch]).float(),
        "captions": captions,
        "lengths": lengths,
        "references": [item["references"] for item in batch],
        "image_ids": [item["image_id"] for item in batch],
    }
