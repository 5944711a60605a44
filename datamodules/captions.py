"""Pieces shared by the captioning data modules: tokenising, the vocabulary, a caption dataset
and its collate function.

Tokenising (:func:`tokenize`): lower-cased, then split by one nltk ``RegexpTokenizer`` (no
corpus to download). A token is a run of letters and digits, possibly joined by inner hyphens
or apostrophes (``t-shirt``, ``o'clock``, ``man's``); the Penn-Treebank clitics that Flickr8k
already writes apart (``'s``, ``n't``, ``'re``, ``'ve``, ``'ll``, ``'d``, ``'m``) are tokens of
their own; every other character (``.``, ``,``, quotes, ``!``, ``?``, brackets, ``&``, ...) is
dropped. BLEU is computed on these tokens, so hypotheses and references agree.

Batches (:func:`collate_captions`) are dicts::

    images      float32 [B, 3, H, W] in [0, 1]
    captions    int64   [B, T]  rows "<bos> w1 .. wn <eos>", padded with <pad> (= 0)
    lengths     int64   [B]     n + 2 (bos and eos included); T = lengths.max()
    references  list (len B) of lists of token lists: every reference caption of the image
    image_ids   list (len B) of str

In training each item is one (image, caption) pair, so an image appears once per caption in
an epoch; in evaluation each item is one image, ``captions`` holds its first reference and
``references`` all of them.
"""
from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from nltk.tokenize import RegexpTokenizer
from pytorch_lightning.utilities import rank_zero_info
from torch.utils.data import DataLoader, Dataset

from datamodules.loading import make_loader
from ram_lightning.errors import DataError, UserError

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIAL_TOKENS: tuple[str, ...] = (PAD, BOS, EOS, UNK)  # ids 0, 1, 2, 3
VOCAB_FORMAT = "ram-lightning-vocabulary"
VOCAB_VERSION = 1

_TOKENIZER = RegexpTokenizer(r"n't\b|'(?:s|re|ve|ll|d|m)\b|[^\W_]+(?:[-'][^\W_]+)*")


def tokenize(caption: str) -> list[str]:
    """Lower-cased word tokens of ``caption``; punctuation dropped (see the module docstring).

    >>> tokenize("A man's T-shirt , isn't it ? Two dogs do n't play .")
    ['a', "man's", 't-shirt', "isn't", 'it', 'two', 'dogs', 'do', "n't", 'play']
    """
    return _TOKENIZER.tokenize(caption.lower())


# --------------------------------------------------------------------------- vocabulary


class Vocabulary:
    """Token <-> id mapping: ``<pad>`` = 0, ``<bos>`` = 1, ``<eos>`` = 2, ``<unk>`` = 3, then
    the words, most frequent first (ties alphabetical), so a build is deterministic.

    Args:
        words: the non-special tokens in id order (ids 4, 5, ...).
        min_count: the threshold it was built with (kept for the record in ``vocab.json``).
    """

    pad_id, bos_id, eos_id, unk_id = 0, 1, 2, 3

    def __init__(self, words: Iterable[str], min_count: int | None = None) -> None:
        words = list(words)
        self.itos: list[str] = list(SPECIAL_TOKENS) + words
        self.stoi: dict[str, int] = {token: i for i, token in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            seen: set[str] = set()
            dups = sorted({t for t in self.itos if t in seen or seen.add(t)})
            raise UserError(f"Vocabulary: duplicate or special tokens among the words: {dups[:5]}")
        self.min_count = min_count

    @classmethod
    def build(cls, token_lists: Iterable[Sequence[str]], min_count: int = 5) -> "Vocabulary":
        """Words that occur at least ``min_count`` times in ``token_lists`` (training captions)."""
        if min_count < 1:
            raise UserError(f"min_count must be >= 1, got {min_count}")
        counts = Counter(token for tokens in token_lists for token in tokens)
        for special in SPECIAL_TOKENS:
            counts.pop(special, None)
        words = sorted((w for w, n in counts.items() if n >= min_count), key=lambda w: (-counts[w], w))
        return cls(words, min_count)

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: str) -> bool:
        return token in self.stoi

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.itos == other.itos

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} tokens, min_count={self.min_count})"

    def encode(self, tokens: Sequence[str]) -> list[int]:
        """``[<bos>, id(w1), .., id(wn), <eos>]``; unknown words map to ``<unk>``."""
        unk = self.unk_id
        return [self.bos_id, *(self.stoi.get(t, unk) for t in tokens), self.eos_id]

    def decode(self, ids: Iterable[int], keep_unk: bool = True) -> list[str]:
        """Tokens of ``ids``, stopping at the first ``<eos>``, dropping ``<pad>`` and ``<bos>``.

        ``<unk>`` is kept by default (it stands for a real word, so dropping it would shorten
        the hypothesis and change BLEU's brevity penalty); ``keep_unk=False`` drops it too.
        """
        out = []
        for i in ids:
            i = int(i)
            if i == self.eos_id:
                break
            if i in (self.pad_id, self.bos_id) or (i == self.unk_id and not keep_unk):
                continue
            out.append(self.itos[i] if 0 <= i < len(self.itos) else UNK)
        return out

    # ---- files

    def to_dict(self) -> dict[str, Any]:
        return {"format": VOCAB_FORMAT, "version": VOCAB_VERSION, "min_count": self.min_count,
                "tokens": self.itos}

    @classmethod
    def from_dict(cls, data: Any, where: str = "vocabulary") -> "Vocabulary":
        """Inverse of :meth:`to_dict`; a DataError names ``where`` and the bad field."""
        if not isinstance(data, dict):
            raise DataError(f"{where}: expected a JSON object with a 'tokens' list, got {type(data).__name__}")
        if data.get("format", VOCAB_FORMAT) != VOCAB_FORMAT:
            raise DataError(f"{where}: field 'format' is {data.get('format')!r}, expected {VOCAB_FORMAT!r}")
        tokens = data.get("tokens")
        if not isinstance(tokens, list) or not all(isinstance(t, str) and t for t in tokens):
            raise DataError(f"{where}: field 'tokens' must be a list of non-empty strings")
        if tuple(tokens[: len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
            raise DataError(
                f"{where}: field 'tokens' must start with {list(SPECIAL_TOKENS)} (ids 0-3), "
                f"got {tokens[: len(SPECIAL_TOKENS)]}"
            )
        words = tokens[len(SPECIAL_TOKENS):]
        if len(set(tokens)) != len(tokens):
            dups = sorted(w for w, n in Counter(tokens).items() if n > 1)
            raise DataError(f"{where}: field 'tokens' has duplicates: {dups[:5]}")
        min_count = data.get("min_count")
        if min_count is not None and (not isinstance(min_count, int) or isinstance(min_count, bool)):
            raise DataError(f"{where}: field 'min_count' must be an integer or null, got {min_count!r}")
        return cls(words, min_count)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the vocabulary as JSON (atomically: a temporary file, then a rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(self.to_dict(), f, ensure_ascii=False, indent=0)
                f.write("\n")
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Vocabulary":
        """Read a file written by :meth:`save`.

        Raises:
            DataError: the file is missing, unreadable, not JSON, or lacks a valid ``tokens``
                list starting with the four special tokens.
        """
        path = Path(path)
        if not path.is_file():
            raise DataError(f"vocabulary file {path} not found (expected a vocab.json written by Vocabulary.save)")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as err:
            raise DataError(f"cannot read vocabulary file {path}: {err}") from err
        except json.JSONDecodeError as err:
            raise DataError(f"vocabulary file {path} is not valid JSON ({err}); delete it to rebuild") from err
        return cls.from_dict(data, where=f"vocabulary file {path}")


# --------------------------------------------------------------------------- dataset


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


# --------------------------------------------------------------------------- data module base


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


class CaptionDataModule(pl.LightningDataModule):
    """What :class:`~datamodules.flickr8k.Flickr8k` and
    :class:`~datamodules.synthetic_captions.SyntheticCaptions` share: the vocabulary (loaded
    from ``vocab_path`` when that file exists, else built from the training captions and saved
    there), the properties the model links to, and the loaders.

    Subclasses implement :meth:`_caption_splits` (text only: ``{"train"|"val"|"test":
    [(image_id, source, captions), ...]}``) and :meth:`_image_loader`, and may check the
    images in :meth:`_check_images`.
    """

    splits = ("train", "val", "test")

    def __init__(self, image_size: int | Sequence[int], batch_size: int, num_workers: int,
                 min_count: int, vocab_path: str | os.PathLike | None,
                 cache_features: str | None = None, feature_cache_dir: str | os.PathLike | None = None,
                 predict_dir: str | os.PathLike | None = None) -> None:
        super().__init__()
        self.predict_dir = predict_dir  # ram predict: a folder of PNG / JPEG files instead of the test split
        self.cache_features = cache_features
        self.feature_cache_dir = Path(feature_cache_dir) if feature_cache_dir is not None else Path("cache") / "features"
        self.image_hw = image_hw(image_size)
        if batch_size < 1:
            raise UserError(f"batch_size must be >= 1, got {batch_size}")
        if num_workers < 0:
            raise UserError(f"num_workers must be >= 0, got {num_workers}")
        if min_count < 1:
            raise UserError(f"min_count must be >= 1, got {min_count}")
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.min_count = min_count
        self.vocab_path = None if vocab_path is None else Path(vocab_path)
        self.data_description: str | None = None  # what setup() loaded, in words
        self.vocab_description: str | None = None
        self._samples: dict[str, list[tuple[str, Any, list[str]]]] | None = None
        self._tokens: dict[str, list[list[list[str]]]] = {}
        self._vocab: Vocabulary | None = None
        self._datasets: dict[str, CaptionDataset] | None = None

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
        ``feature_cache_dir`` (keyed by image id, encoder and image size); items then carry
        ``features`` [L, D] instead of images. Returns (samples keyed by image id, loader)."""
        from datamodules.feature_cache import FeatureCache
        from ram_lightning.core.image_encoder import build_grid_encoder

        cache = FeatureCache(self.feature_cache_dir, self.cache_features, self.image_hw)
        source_of = {image_id: source for items in samples.values() for image_id, source, _ in items}
        computed = cache.fill(list(source_of), lambda image_id: load(source_of[image_id]), build_grid_encoder(self.cache_features),
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

    def dataset(self, split: str) -> CaptionDataset:
        """The ``"train"``, ``"val"`` or ``"test"`` dataset (calls :meth:`setup` if needed)."""
        if split not in self.splits:
            raise UserError(f"split must be one of {', '.join(self.splits)}; got {split!r}")
        self.setup()
        return self._datasets[split]

    def _loader(self, split: str) -> DataLoader:
        return make_loader(self.dataset(split), split, self.batch_size, self.num_workers, collate_captions)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        """Every PNG / JPEG in ``predict_dir`` resized to ``image_size`` (items ``{"images",
        "image": path}``), else the test split (batches with ``image_ids``)."""
        if not self.predict_dir:
            return self._loader("test")
        from datamodules.predict_images import ImageFolder, ResizeRGB

        return make_loader(ImageFolder(self.predict_dir, ResizeRGB(self.image_hw)), "predict", self.batch_size, self.num_workers)

    def __str__(self) -> str:
        """A description that reads no data (Lightning's would build every dataloader; jsonargparse
        formats the DataModule while it applies the CLI's argument links)."""
        return f"{type(self).__name__}(image_size={self.image_hw[0]}x{self.image_hw[1]})"
