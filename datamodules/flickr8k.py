"""Flickr8k (Hodosh et al. 2013) for image captioning: the official text release and JPEGs.

Layout under ``data_dir`` (None: ``$RAM_FLICKR8K_DIR``, else ``./data/flickr8k``)::

    <data_dir>/Flicker8k_Dataset/*.jpg        the 8091 JPEGs (official, misspelt folder name;
                                              Flickr8k_Dataset/ and Images/ are accepted too)
    <data_dir>/Flickr8k_text/Flickr8k.token.txt             "<image>.jpg#<n><TAB><caption>"
    <data_dir>/Flickr8k_text/Flickr_8k.trainImages.txt      6000 image names
    <data_dir>/Flickr8k_text/Flickr_8k.devImages.txt        1000 (used as validation)
    <data_dir>/Flickr8k_text/Flickr_8k.testImages.txt       1000
    <data_dir>/dataset_flickr8k.json          optional: Karpathy's splits (split_source="karpathy")

(the text files may also sit directly in ``<data_dir>``). The JPEGs cannot be downloaded by a
script: the University of Illinois hands them out through a request form, see
:data:`IMAGES_HINT`.

Quirks of the real token file (see :mod:`datamodules.flickr8k_text`), handled by :func:`read_token_file` and reported, not hidden:
the five lines ``2258277193_586949ec62.jpg.1#0..4`` carry a stray ``.1`` after ``.jpg``
(normalised to ``2258277193_586949ec62.jpg``; that image is in no split list), and 92 of the
8092 captioned images are in no split list (counted and reported, not used). Lines without a
tab or without an ``<image>#<n>`` id are skipped and reported with their line numbers, up to
``max_malformed`` (default 10) of them; more means the file is not a Flickr8k token file and
raises a DataError.

Images: before any DataLoader starts, :meth:`Flickr8k.setup` checks that every image of the
three splits exists and (``check_images=True``, the default) decodes completely; the missing
or unreadable ones raise one DataError listing how many and the first few names
(``on_bad_image="error"``, the default) or are dropped from their split with a warning that
counts them (``on_bad_image="skip"``). Images are resized (bilinear, antialiased, aspect ratio
not kept) to ``image_size`` and returned as float32 [3, H, W] in [0, 1]; normalisation for a
pretrained encoder is the model's business. With ``cache_features`` (e.g. ``efficientnet_lite0``)
a frozen encoder's features of every image are computed once into ``feature_cache_dir`` and the
batches carry them instead of the images (:class:`~datamodules.captions.CaptionDataModule`).

Example::

    ram fit --data Flickr8k --data.data_dir /path/to/flickr8k --data.vocab_path runs/vocab.json

    >>> from datamodules.flickr8k import read_token_file                 # doctest: +SKIP
    >>> captions, report = read_token_file("Flickr8k_text/Flickr8k.token.txt")  # doctest: +SKIP
    >>> len(captions), report.lines, report.renamed_lines                # doctest: +SKIP
    (8092, 40460, 5)
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pytorch_lightning.utilities import rank_zero_warn

from datamodules.captions import CaptionDataModule
from datamodules.flickr8k_text import (
    DATA_DIR_ENV,
    KARPATHY_FILE,
    SPLIT_FILES,
    TEXT_DIR,
    TOKEN_FILE,
    TokenFileReport,
    find_text_file,
    first_names,
    read_karpathy_json,
    read_split_file,
    read_token_file,
    resolve_data_dir,
)
from datamodules.image_folder import JpegLoader, check_image
from ram_lightning.errors import DataError, UserError

IMAGE_DIRS = ("Flicker8k_Dataset", "Flickr8k_Dataset", "Images")
SPLIT_SOURCES = ("official", "karpathy")
BAD_IMAGE_POLICIES = ("error", "skip")
IMAGES_HINT = (
    "The Flickr8k JPEGs are not downloadable by script: request Flickr8k_Dataset.zip through the "
    "University of Illinois form (https://forms.illinois.edu/sec/1713398, linked from "
    "http://nlp.cs.illinois.edu/HockenmaierGroup/8k-pictures.html) and unzip it into the data "
    "directory, which gives Flicker8k_Dataset/<name>.jpg"
)


class Flickr8k(CaptionDataModule):
    """Flickr8k images with five captions each, for captioning (see the module docstring).

    Splits: ``split_source="official"``: the train / dev / test lists of the text release
    (6000 / 1000 / 1000 images; dev is validation) with captions from ``Flickr8k.token.txt``;
    ``"karpathy"``: the splits and captions of ``dataset_flickr8k.json``. Training items are
    (image, caption) pairs (30000 an epoch); validation and test items are images with all
    their references (for BLEU).

    Args:
        data_dir: the Flickr8k folder. None: ``$RAM_FLICKR8K_DIR``, else ``./data/flickr8k``.
        image_dir: the JPEG folder; None: the first of ``Flicker8k_Dataset``,
            ``Flickr8k_Dataset``, ``Images`` in ``data_dir`` that exists.
        split_source: ``"official"`` or ``"karpathy"``.
        karpathy_json: Karpathy's file; None: ``dataset_flickr8k.json`` in ``data_dir`` or
            ``data_dir/Flickr8k_text``.
        image_size: side of the resized images, or ``(H, W)`` (default 224).
        min_count: words seen fewer times in the training captions become ``<unk>``.
        check_images: decode every image once in :meth:`setup` (a few seconds per thousand
            images) so an unreadable JPEG never fails inside a DataLoader worker. Missing
            images are always checked.
        on_bad_image: ``"error"`` (a DataError listing the missing / unreadable images) or
            ``"skip"`` (drop them from their split, with a warning counting them).
        max_malformed: most malformed token-file lines skipped before it is an error.
        **kwargs: ``vocab_path``, ``batch_size``, ``num_workers``, ``cache_features``,
            ``feature_cache_dir``, ``feature_encoder``, ``predict_dir``: see
            :class:`~datamodules.captions.CaptionDataModule`.
    """

    def __init__(
        self,
        data_dir: str | None = None,
        image_dir: str | None = None,
        split_source: str = "official",
        karpathy_json: str | None = None,
        image_size: int | tuple[int, int] = 224,
        min_count: int = 5,
        check_images: bool = True,
        on_bad_image: str = "error",
        max_malformed: int = 10,
        **kwargs: Any,
    ) -> None:
        super().__init__(image_size=image_size, min_count=min_count, **kwargs)
        if split_source not in SPLIT_SOURCES:
            raise UserError(f"split_source must be one of {', '.join(SPLIT_SOURCES)}; got {split_source!r}")
        if on_bad_image not in BAD_IMAGE_POLICIES:
            raise UserError(f"on_bad_image must be one of {', '.join(BAD_IMAGE_POLICIES)}; got {on_bad_image!r}")
        if max_malformed < 0:
            raise UserError(f"max_malformed must be >= 0, got {max_malformed}")
        self.data_dir = data_dir
        self.image_dir = image_dir
        self.split_source = split_source
        self.karpathy_json = karpathy_json
        self.check_images = check_images
        self.on_bad_image = on_bad_image
        self.max_malformed = max_malformed
        self.token_report: TokenFileReport | None = None
        self.unsplit_images: list[str] = []  # captioned images in no split list (official)
        self.bad_images: dict[str, str] = {}  # name -> why, dropped with on_bad_image="skip"
        self._text_source = ""

    @property
    def root(self) -> Path:
        return resolve_data_dir(self.data_dir)

    # ---- captions

    def _text_file(self, name: str) -> Path:
        path = find_text_file(self.root, name)
        if path is None:
            raise DataError(
                f"Flickr8k text file {name} not found in {self.root / TEXT_DIR} or {self.root}; "
                f"expected the Flickr8k text release ({TOKEN_FILE} and "
                f"{', '.join(SPLIT_FILES.values())}) there (set data_dir or ${DATA_DIR_ENV})"
            )
        return path

    def _caption_splits(self) -> dict[str, list[tuple[str, Any, list[str]]]]:
        if self.split_source == "karpathy":
            return self._karpathy_splits()
        token_path = self._text_file(TOKEN_FILE)
        captions, self.token_report = read_token_file(token_path, self.max_malformed)
        for number, reason in self.token_report.skipped:
            rank_zero_warn(f"{token_path}: skipped line {number}: {reason}")
        splits: dict[str, list[tuple[str, Any, list[str]]]] = {}
        owner: dict[str, str] = {}
        for split, file_name in SPLIT_FILES.items():
            path = self._text_file(file_name)
            names = read_split_file(path)
            uncaptioned = [n for n in names if n not in captions]
            if uncaptioned:
                raise DataError(
                    f"{path}: {len(uncaptioned)} of {len(names)} images have no caption in "
                    f"{token_path} ({first_names(uncaptioned)}); expected every listed image to be captioned"
                )
            twice = [n for n in names if n in owner]
            if twice:
                raise DataError(
                    f"{path}: {len(twice)} images are also in the {owner[twice[0]]} split "
                    f"({first_names(twice)}); expected disjoint splits"
                )
            owner.update((n, split) for n in names)
            splits[split] = [(n, n, captions[n]) for n in names]
        self.unsplit_images = sorted(n for n in captions if n not in owner)
        self._text_source = f"official splits, captions from {token_path} ({self.token_report.summary()})"
        if self.unsplit_images:
            self._text_source += (f"; {len(self.unsplit_images)} captioned images in no split list, "
                                  f"not used ({first_names(self.unsplit_images, 3)})")
        return splits

    def _karpathy_splits(self) -> dict[str, list[tuple[str, Any, list[str]]]]:
        if self.karpathy_json is not None:
            path = Path(self.karpathy_json).expanduser()
        else:
            path = find_text_file(self.root, KARPATHY_FILE) or self.root / KARPATHY_FILE
        splits = read_karpathy_json(path)
        seen: dict[str, str] = {}
        for split, items in splits.items():
            for name, _ in items:
                if name in seen:
                    raise DataError(f"{path}: image {name} is in both the {seen[name]} and {split} splits")
                seen[name] = split
            if not items:
                raise DataError(f"{path}: no image in the {split} split")
        self._text_source = f"Karpathy splits and captions from {path}"
        return {split: [(n, n, caps) for n, caps in items] for split, items in splits.items()}

    # ---- images

    def find_image_dir(self) -> Path:
        """The JPEG folder, or a DataError saying where they were expected and how to get them."""
        if self.image_dir is not None:
            candidates = [Path(self.image_dir).expanduser()]
        else:
            candidates = [self.root / name for name in IMAGE_DIRS]
        for candidate in candidates:
            if candidate.is_dir():
                return candidate
        example = self.samples("train")[0][0]
        raise DataError(
            f"Flickr8k images not found: no folder {' or '.join(str(c) for c in candidates)}; "
            f"expected the 8091 JPEGs there (e.g. {example}). {IMAGES_HINT}"
        )

    def _image_loader(self) -> JpegLoader:
        return JpegLoader(self.find_image_dir(), self.image_hw)

    def _check_images(self, samples: dict[str, list]) -> dict[str, list]:
        image_dir = self.find_image_dir()
        names = [name for items in samples.values() for name, _, _ in items]
        if self.check_images:
            workers = min(8, os.cpu_count() or 1)
            with ThreadPoolExecutor(workers) as pool:  # PIL decodes without the GIL
                problems = list(pool.map(check_image, (image_dir / n for n in names), chunksize=64))
        else:
            problems = [None if (image_dir / n).is_file() else "missing" for n in names]
        bad = {name: why for name, why in zip(names, problems) if why is not None}
        if not bad:
            return samples
        missing = [n for n, why in bad.items() if why == "missing"]
        unreadable = [n for n, why in bad.items() if why != "missing"]
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing ({first_names(missing)})")
        if unreadable:
            first = "; ".join(f"{n}: {bad[n]}" for n in unreadable[:3])
            parts.append(f"{len(unreadable)} unreadable ({first}{'; ...' if len(unreadable) > 3 else ''})")
        what = f"{len(bad)} of {len(names)} Flickr8k images in {image_dir}: {', '.join(parts)}"
        if self.on_bad_image == "error":
            hint = IMAGES_HINT if len(missing) == len(names) else (
                "restore them, or set on_bad_image='skip' to train without them")
            raise DataError(f"{what}. {hint}")
        self.bad_images = bad
        rank_zero_warn(f"skipping {what}")
        kept = {split: [s for s in items if s[0] not in bad] for split, items in samples.items()}
        empty = [split for split, items in kept.items() if not items]
        if empty:
            raise DataError(f"{what}: no image left in the {', '.join(empty)} split(s)")
        return kept

    def _describe(self) -> str:
        sizes = " / ".join(
            f"{self._datasets[s].num_images} {s}" for s in self.splits
        )
        height, width = self.image_hw
        text = (f"Data: Flickr8k from {self.find_image_dir()} ({sizes} images, "
                f"{len(self._datasets['train'])} training captions), {height}x{width} images; "
                f"{self._text_source}")
        if self.bad_images:
            text += f"; {len(self.bad_images)} missing or unreadable images skipped"
        return text
