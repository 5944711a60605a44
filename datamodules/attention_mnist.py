"""Translated, translated-and-scaled and cluttered MNIST, generated on the fly.

A :class:`CanvasDataset` puts each 28x28 digit at a uniformly random position on an H x W
canvas, optionally resized first (translated-and-scaled) and with random 8x8 crops of other
digits added and clipped to [0, 1] (cluttered, the DeepMind mnist-cluttered recipe). Training
items draw fresh randomness every time (every epoch differs); validation and test items are
fixed by a seed per item, so every run and every worker count scores the same images, and
nothing is stored.

Examples, with the ``ram`` command (LightningCLI) and from Python::

    ram fit --data TranslatedMNIST --data.data_dir /path/to/mnist
    ram fit --data ClutteredMNIST --data.canvas_size 100 --data.num_distractors 8

    >>> dm = TranslatedMNIST(source="rendered", train_size=256)   # doctest: +SKIP
    >>> dm.setup()                                                # doctest: +SKIP
    >>> images, labels = next(iter(dm.train_dataloader()))         # doctest: +SKIP
    >>> images.shape, labels.shape                                 # doctest: +SKIP
    (torch.Size([128, 1, 60, 60]), torch.Size([128]))
"""
from __future__ import annotations

import logging

import torch
from pytorch_lightning.utilities import rank_zero_info, rank_zero_only
from torch.utils.data import DataLoader

from datamodules.base import BaseDataModule, make_loader
from datamodules.canvas import CanvasDataset, check_geometry, parse_canvas_size
from datamodules.mnist import load_mnist
from datamodules.mnist_download import download_mnist
from datamodules.mnist_files import DATA_DIR_ENV, find_mnist, resolve_data_dir
from datamodules.rendered_digits import MNIST_TEST_COUNT, MNIST_TRAIN_COUNT, rendered_pool
from ram_lightning.errors import DataError, UserError
from ram_lightning.seeds import mix_seed

SOURCES = ("auto", "mnist", "rendered")
log = logging.getLogger(__name__)


def fallback_message(root, reason: str) -> str:
    """The one line said when ``source="auto"`` falls back to rendered digits (about 200 chars)."""
    return (f"MNIST not found in {root} ({reason}); using RENDERED digits. To get MNIST: "
            f"python -m datamodules.mnist_download {root} (shows why it fails), or set {DATA_DIR_ENV}")


_ARGS_DOC = """
    Args:
        data_dir: folder with the four MNIST IDX files (.gz or raw; also looked for in
            data_dir/mnist and data_dir/MNIST/raw). None: $RAM_DATA_DIR, else ./data/mnist.
        source: "mnist" (real MNIST, loaded or downloaded, else an error), "rendered"
            (synthetic digits, offline), or "auto" (real MNIST if found or downloadable, else
            rendered digits with a warning).
        download: download missing MNIST files (md5-checked) from the mirrors.
        canvas_size: canvas side in pixels, or (H, W).
        scale_range: (low, high) range of the random digit resize factor, or None for none.
        num_distractors: random clutter crops of other digits per image (0 for none).
        distractor_size: side in pixels of each clutter crop.
        val_size: training digits held out for validation (seed-fixed permutation).
        train_size: use only this many training digits (quick runs); None for all.
        test_size: use only this many test digits (quick runs); None for all 10000.
        batch_size: images per batch.
        num_workers: DataLoader worker processes (0: load in the main process).
        seed: fixes the validation split and the validation and test images.
        predict_dir: a folder of PNG / JPEG files for ``ram predict`` (fitted to the canvas, see
            ``datamodules.predict_images``); None: predict on the test split.
"""


class AttentionMNIST(BaseDataModule):
    __doc__ = """MNIST digits on a bigger canvas: translated, optionally scaled and cluttered.

    Batches (the classifiers' contract, ``datamodules.base``): images float32 [B, 1, H, W] in
    [0, 1] and labels int64 [B]; the CLI links ``image_shape`` and ``num_classes`` into the model.
    Splits: train = the 60000 training digits less ``val_size`` held out by a permutation
    fixed by ``seed``; validation = those ``val_size``; test = the 10000 test digits.
    Training images are new every epoch; validation and test images are fixed by ``seed``.
    Loading happens in :meth:`setup`; :meth:`prepare_data` downloads if needed.
    """ + _ARGS_DOC

    def __init__(
        self,
        data_dir: str | None = None,
        source: str = "auto",
        download: bool = True,
        canvas_size: int | tuple[int, int] = 60,
        scale_range: tuple[float, float] | None = None,
        num_distractors: int = 0,
        distractor_size: int = 8,
        val_size: int = 5000,
        train_size: int | None = None,
        test_size: int | None = None,
        batch_size: int = 128,
        num_workers: int = 0,
        seed: int = 0,
        predict_dir: str | None = None,
    ) -> None:
        super().__init__(batch_size=batch_size, num_workers=num_workers, predict_dir=predict_dir)
        if source not in SOURCES:
            raise UserError(f"source must be one of {', '.join(SOURCES)}; got {source!r}")
        self.canvas_hw = parse_canvas_size(canvas_size)
        self.scale_range = check_geometry(self.canvas_hw, scale_range, num_distractors,
                                           distractor_size)
        self._check_sizes(val_size, train_size, test_size, MNIST_TRAIN_COUNT, MNIST_TEST_COUNT)
        self.data_dir = data_dir
        self.source = source
        self.download = download
        self.num_distractors = num_distractors
        self.distractor_size = distractor_size
        self.val_size = val_size
        self.train_size = train_size
        self.test_size = test_size
        self.seed = seed

    @staticmethod
    def _check_sizes(val_size: int, train_size: int | None, test_size: int | None,
                     train_count: int, test_count: int) -> None:
        if not 0 <= val_size < train_count:
            raise UserError(
                f"val_size must be between 0 and {train_count - 1} (it is held out of the "
                f"{train_count} training digits), got {val_size}"
            )
        if train_size is not None and not 1 <= train_size <= train_count - val_size:
            raise UserError(
                f"train_size must be None or between 1 and {train_count - val_size} "
                f"({train_count} training digits less val_size={val_size}), got {train_size}"
            )
        if test_size is not None and not 1 <= test_size <= test_count:
            raise UserError(
                f"test_size must be None or between 1 and {test_count}, got {test_size}"
            )

    # ---- properties

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of every image: ``(1, H, W)``."""
        return (1, *self.canvas_hw)

    @property
    def num_classes(self) -> int:
        return 10

    # ---- loading

    def prepare_data(self) -> None:
        """Download MNIST if the source needs it and it is missing (runs on one process)."""
        if self.source == "rendered" or not self.download:
            return
        root = resolve_data_dir(self.data_dir)
        if find_mnist(root) is not None:
            return
        try:
            download_mnist(root)
        except DataError as err:
            if self.source == "mnist":
                raise
            log.info("MNIST download into %s failed: %s", root, err)  # setup() reports it

    def _load_real(self) -> dict[str, torch.Tensor]:
        # Attached to a Trainer, prepare_data has already downloaded (on one process only).
        return load_mnist(self.data_dir, download=self.download and self.trainer is None)

    def _load_pool(self) -> tuple[dict[str, torch.Tensor], str, str | None]:
        """The digit pool, its description, and the fallback warning if ``auto`` fell back."""
        if self.source == "rendered":
            return rendered_pool(), (
                "RENDERED digits (synthetic, source='rendered'; not comparable to published "
                "MNIST results)"
            ), None
        root = resolve_data_dir(self.data_dir)
        if self.source == "mnist" or find_mnist(root) is not None:
            return self._load_real(), f"real MNIST from {root}", None
        if not self.download:
            reason = "download=False"
        elif self.trainer is not None:  # prepare_data (on one process) tried, failed and logged why
            reason = "download failed"
        else:
            try:
                return self._load_real(), f"real MNIST from {root}", None
            except DataError as err:
                log.info("MNIST download into %s failed: %s", root, err)
                reason = "download failed"
        description = "RENDERED digits (synthetic fallback, not comparable to published MNIST results)"
        return rendered_pool(), description, fallback_message(root, reason)

    def _split(
        self, pool: dict[str, torch.Tensor]
    ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """``{"train"|"val"|"test": (digits uint8 [n, 28, 28], labels int64 [n])}``."""
        train_count, test_count = len(pool["train_labels"]), len(pool["test_labels"])
        self._check_sizes(self.val_size, self.train_size, self.test_size, train_count, test_count)
        perm = torch.randperm(train_count, generator=torch.Generator().manual_seed(self.seed))
        val_idx, train_idx = perm[: self.val_size], perm[self.val_size :]
        train_idx = train_idx[: self.train_size]  # [:None] keeps all
        test_idx = torch.arange(test_count)[: self.test_size]
        images, labels = pool["train_images"], pool["train_labels"]
        return {
            "train": (images[train_idx], labels[train_idx]),
            "val": (images[val_idx], labels[val_idx]),
            "test": (pool["test_images"][test_idx], pool["test_labels"][test_idx]),
        }

    def setup(self, stage: str | None = None) -> None:
        """Load the digits (once) and build the train, validation and test datasets."""
        if self._datasets is not None:
            return
        pool, description, fallback = self._load_pool()
        fixed_seeds = {"train": None, "val": mix_seed(self.seed, 1), "test": mix_seed(self.seed, 2)}
        self._datasets = {
            name: CanvasDataset(digits, labels, self.canvas_hw, self.scale_range,
                                self.num_distractors, self.distractor_size, fixed_seeds[name])
            for name, (digits, labels) in self._split(pool).items()
        }
        self.data_description = self._describe(description)
        rank_zero_info(self.data_description)
        if fallback is not None:  # after the Data line, one line (a logged warning, no source echo)
            rank_zero_only(log.warning)(fallback)

    def _describe(self, source: str) -> str:
        sizes = " / ".join(f"{len(self._datasets[split])} {split}" for split in self._datasets)
        height, width = self.canvas_hw
        recipe = [f"{height}x{width} canvas"]
        if self.scale_range is not None:
            recipe.append(f"digit scale {self.scale_range[0]:g}-{self.scale_range[1]:g}")
        if self.num_distractors:
            size = self.distractor_size
            recipe.append(f"{self.num_distractors} distractors of {size}x{size}")
        return f"Data: {source} ({sizes}), {', '.join(recipe)}"

    # ---- what the base's loaders need

    def predict_fit(self):
        """``ram predict`` folders: grey levels, scaled down only if larger than the canvas, centred on it."""
        from datamodules.predict_images import CanvasFit

        return CanvasFit(self.canvas_hw)

    def predict_split(self) -> DataLoader:
        """Without ``predict_dir``: the test split, items ``{"images", "image": index}``."""
        from datamodules.predict_images import IndexedImages

        return make_loader(IndexedImages(self.dataset("test")), "predict", self.batch_size, self.num_workers)

    def settings(self) -> str:
        return f"source={self.source!r}, canvas={self.canvas_hw[0]}x{self.canvas_hw[1]}"


class TranslatedMNIST(AttentionMNIST):
    __doc__ = """Translated MNIST: a digit at a random position on a 60x60 canvas.

    Each 28x28 digit is placed uniformly at random, fully inside the canvas (RAM, Mnih et
    al. 2014). The defaults of :class:`AttentionMNIST` are exactly this task.
    """ + _ARGS_DOC


class TranslatedScaledMNIST(AttentionMNIST):
    __doc__ = """Translated and scaled MNIST: randomly resized digits on a 60x60 canvas.

    Each digit is resized by a factor drawn uniformly from ``scale_range`` (default 0.5 to
    1.5), then placed uniformly at random, fully inside the canvas.
    """ + _ARGS_DOC

    def __init__(self, scale_range: tuple[float, float] | None = (0.5, 1.5), **kwargs) -> None:
        super().__init__(scale_range=scale_range, **kwargs)


class ClutteredMNIST(AttentionMNIST):
    __doc__ = """Cluttered translated MNIST: a digit and 8x8 pieces of other digits.

    A digit at a random position on a 60x60 canvas with 4 random 8x8 crops of other digits
    added, clipped to [0, 1] (the DeepMind mnist-cluttered recipe). The other common setting
    is ``canvas_size=100, num_distractors=8``.
    """ + _ARGS_DOC

    def __init__(self, num_distractors: int = 4, **kwargs) -> None:
        super().__init__(num_distractors=num_distractors, **kwargs)
