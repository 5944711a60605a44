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

import functools

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.utilities import rank_zero_info, rank_zero_warn
from torch.utils.data import DataLoader, Dataset

from datamodules.loading import make_loader
from datamodules.mnist import (
    download_mnist,
    find_mnist,
    load_mnist,
    render_digits,
    resolve_data_dir,
)
from ram_lightning.errors import DataError, UserError

MNIST_TRAIN_COUNT = 60000
MNIST_TEST_COUNT = 10000
DIGIT_SIZE = 28
SOURCES = ("auto", "mnist", "rendered")
_MASK64 = (1 << 64) - 1


# --------------------------------------------------------------------------- helpers


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def mix_seed(seed: int, index: int) -> int:
    """A well-spread 63-bit seed for item ``index`` of a set fixed by ``seed``."""
    return _splitmix64(_splitmix64(seed & _MASK64) ^ (index & _MASK64)) >> 1


def scaled_size(size: int, scale: float) -> int:
    """Side in pixels of a ``size`` side resized by ``scale`` (at least 1)."""
    return max(1, round(size * scale))


def resize_digit(digit: torch.Tensor, scale: float) -> torch.Tensor:
    """Resize a digit [h, w] (float) by ``scale``, bilinear with antialiasing.

    Returns:
        float [scaled_size(h, scale), scaled_size(w, scale)], within the input's value range
        (the antialiased bilinear filter has non-negative weights that sum to one).
    """
    size = (scaled_size(digit.shape[0], scale), scaled_size(digit.shape[1], scale))
    if size == tuple(digit.shape):
        return digit
    resized = F.interpolate(digit[None, None], size=size, mode="bilinear", antialias=True,
                            align_corners=False)
    return resized[0, 0]


class _Draws:
    """A fixed number of uniform draws made in one call (per-call overhead dominates here),
    handed out as floats or integers."""

    def __init__(self, count: int, gen: torch.Generator | None) -> None:
        self._values = iter(torch.rand(count, generator=gen, dtype=torch.float64).tolist())

    def uniform(self, low: float, high: float) -> float:
        return low + (high - low) * next(self._values)

    def integer(self, high: int) -> int:
        """Uniform integer in [0, high)."""
        return min(int(next(self._values) * high), high - 1)


def _canvas_hw(canvas_size: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    """``canvas_size`` as ``(H, W)``; an int means a square canvas."""
    if isinstance(canvas_size, int) and not isinstance(canvas_size, bool):
        return canvas_size, canvas_size
    if (isinstance(canvas_size, (tuple, list)) and len(canvas_size) == 2
            and all(isinstance(s, int) and not isinstance(s, bool) for s in canvas_size)):
        return int(canvas_size[0]), int(canvas_size[1])
    raise UserError(f"canvas_size must be an int or a pair of ints (H, W), got {canvas_size!r}")


def _check_geometry(
    canvas_hw: tuple[int, int],
    scale_range: tuple[float, float] | None,
    num_distractors: int,
    distractor_size: int,
    digit_hw: tuple[int, int] = (DIGIT_SIZE, DIGIT_SIZE),
) -> tuple[float, float] | None:
    """Validate the canvas recipe; returns ``scale_range`` as a float pair (or None).

    Raises:
        UserError: naming the argument and what was expected.
    """
    height, width = canvas_hw
    if min(height, width) < max(digit_hw):
        raise UserError(
            f"canvas_size {height}x{width} is smaller than a {digit_hw[0]}x{digit_hw[1]} digit; "
            f"expected at least {max(digit_hw)} on each side"
        )
    if scale_range is not None:
        if len(scale_range) != 2 or not 0 < float(scale_range[0]) <= float(scale_range[1]):
            raise UserError(
                f"scale_range must be (low, high) with 0 < low <= high, got {scale_range!r}"
            )
        scale_range = (float(scale_range[0]), float(scale_range[1]))
        high = scale_range[1]
        biggest = (scaled_size(digit_hw[0], high), scaled_size(digit_hw[1], high))
        if biggest[0] > height or biggest[1] > width:
            raise UserError(
                f"canvas_size {height}x{width} is smaller than the biggest scaled digit "
                f"{biggest[0]}x{biggest[1]} (scale_range upper bound {scale_range[1]}); "
                f"expected a bigger canvas_size or a smaller scale_range"
            )
    if num_distractors < 0:
        raise UserError(f"num_distractors must be >= 0, got {num_distractors}")
    if not 1 <= distractor_size <= min(min(digit_hw), height, width):
        raise UserError(
            f"distractor_size must be between 1 and {min(digit_hw)} (crops are cut from "
            f"{digit_hw[0]}x{digit_hw[1]} digits), got {distractor_size}"
        )
    return scale_range


# --------------------------------------------------------------------------- dataset


class CanvasDataset(Dataset):
    """Digits placed at random on a blank canvas, optionally resized and cluttered.

    Item ``i``: digit ``i`` (resized by a factor drawn uniformly from ``scale_range`` if given)
    at a uniformly random position fully inside the canvas; then ``num_distractors`` random
    ``distractor_size`` squares cut from random *other* digits of the same pool, each added at a
    uniformly random position inside the canvas; the sum is clipped to [0, 1].

    Randomness: with ``fixed_seed=None`` every draw uses torch's global generator, so each
    access (each epoch) gives a new image, and DataLoader workers (which torch seeds
    differently) draw distinct streams. With an int ``fixed_seed``, item ``i`` uses its own
    generator seeded by ``mix_seed(fixed_seed, i)``: the same image on every access, whatever
    the number of workers.

    Args:
        digits: uint8 [N, h, w] digit images (MNIST: h = w = 28).
        labels: [N] integer class labels.
        canvas_size: ``(H, W)`` or an int for a square canvas.
        scale_range: ``(low, high)`` resize factors, or None for no resizing.
        num_distractors: clutter pieces per image (0 for none).
        distractor_size: side of each square clutter piece.
        fixed_seed: None for fresh randomness per access, or a seed fixing every item.

    Items are ``(image, label)``: float32 [1, H, W] in [0, 1] and an int64 scalar tensor.
    """

    def __init__(
        self,
        digits: torch.Tensor,
        labels: torch.Tensor,
        canvas_size: int | tuple[int, int],
        scale_range: tuple[float, float] | None = None,
        num_distractors: int = 0,
        distractor_size: int = 8,
        fixed_seed: int | None = None,
    ) -> None:
        if digits.dtype != torch.uint8 or digits.dim() != 3:
            raise UserError(
                f"digits must be uint8 [N, h, w], got {digits.dtype} {list(digits.shape)}"
            )
        labels = torch.as_tensor(labels, dtype=torch.int64)
        if labels.shape != digits.shape[:1]:
            raise UserError(f"labels must have shape [{digits.shape[0]}], got {list(labels.shape)}")
        self.canvas_hw = _canvas_hw(canvas_size)
        self.scale_range = _check_geometry(self.canvas_hw, scale_range, num_distractors,
                                           distractor_size, tuple(digits.shape[1:]))
        if num_distractors > 0 and digits.shape[0] == 1:
            raise UserError(
                "num_distractors > 0 needs at least 2 digits in the pool (distractors are cut "
                "from other digits)"
            )
        self.digits = digits  # (N, h, w) uint8
        self.labels = labels  # (N,) int64
        self.num_distractors = num_distractors
        self.distractor_size = distractor_size
        self.fixed_seed = fixed_seed

    def __len__(self) -> int:
        return self.digits.shape[0]

    def _draws(self, index: int) -> _Draws:
        """All random numbers item ``index`` needs: from torch's global generator, or from a
        generator seeded by (fixed_seed, index)."""
        count = 1 + 2 + 5 * self.num_distractors  # scale, position, 5 per distractor
        if self.fixed_seed is None:
            return _Draws(count, None)
        return _Draws(count, torch.Generator().manual_seed(mix_seed(self.fixed_seed, index)))

    def _digit(self, index: int, draws: _Draws) -> np.ndarray:
        """Digit ``index`` as [h', w'] with values in [0, 255], resized if a scale range is set."""
        digit = self.digits[index]  # (h, w) uint8
        if self.scale_range is None:
            return digit.numpy()
        return resize_digit(digit.float(), draws.uniform(*self.scale_range)).numpy()

    def _add_clutter(self, canvas: np.ndarray, index: int, draws: _Draws) -> None:
        """Add ``num_distractors`` crops of other digits to ``canvas`` [H, W] in place."""
        digits = self.digits.numpy()  # (N, h, w) uint8, shares memory
        n, h, w = digits.shape
        size = self.distractor_size
        height, width = self.canvas_hw
        for _ in range(self.num_distractors):
            other = draws.integer(n - 1)
            other += other >= index  # uniform over the other n - 1 digits
            top, left = draws.integer(h - size + 1), draws.integer(w - size + 1)
            y, x = draws.integer(height - size + 1), draws.integer(width - size + 1)
            crop = digits[other, top : top + size, left : left + size]  # (size, size) uint8
            canvas[y : y + size, x : x + size] += crop

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        index = int(index)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        # Composed in numpy, in 0..255 units: a few times faster than torch for small arrays.
        draws = self._draws(index)
        digit = self._digit(index, draws)  # (h', w')
        height, width = self.canvas_hw
        canvas = np.zeros((height, width), dtype=np.float32)  # (H, W)
        y = draws.integer(height - digit.shape[0] + 1)
        x = draws.integer(width - digit.shape[1] + 1)
        canvas[y : y + digit.shape[0], x : x + digit.shape[1]] = digit
        if self.num_distractors > 0:
            self._add_clutter(canvas, index, draws)
            np.minimum(canvas, 255.0, out=canvas)  # clip to [0, 1] once rescaled
        canvas *= 1.0 / 255.0
        return torch.from_numpy(canvas).unsqueeze(0), self.labels[index]  # (1, H, W), ()


# --------------------------------------------------------------------------- data module


@functools.lru_cache(maxsize=1)
def _rendered_pool() -> dict[str, torch.Tensor]:
    """Synthetic stand-in for MNIST: 60000 train and 10000 test rendered digits (fixed seeds,
    independent of the run's seed, so the fallback "data set" is the same for every run)."""
    train_images, train_labels = render_digits(MNIST_TRAIN_COUNT // 10, seed=1)
    test_images, test_labels = render_digits(MNIST_TEST_COUNT // 10, seed=2)
    return {"train_images": train_images, "train_labels": train_labels,
            "test_images": test_images, "test_labels": test_labels}


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


class AttentionMNIST(pl.LightningDataModule):
    __doc__ = """MNIST digits on a bigger canvas: translated, optionally scaled and cluttered.

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
        super().__init__()
        if source not in SOURCES:
            raise UserError(f"source must be one of {', '.join(SOURCES)}; got {source!r}")
        self.canvas_hw = _canvas_hw(canvas_size)
        self.scale_range = _check_geometry(self.canvas_hw, scale_range, num_distractors,
                                           distractor_size)
        self._check_sizes(val_size, train_size, test_size, MNIST_TRAIN_COUNT, MNIST_TEST_COUNT)
        if batch_size < 1:
            raise UserError(f"batch_size must be >= 1, got {batch_size}")
        if num_workers < 0:
            raise UserError(f"num_workers must be >= 0, got {num_workers}")
        self.data_dir = data_dir
        self.source = source
        self.download = download
        self.num_distractors = num_distractors
        self.distractor_size = distractor_size
        self.val_size = val_size
        self.train_size = train_size
        self.test_size = test_size
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.predict_dir = predict_dir
        self.data_description: str | None = None  # what setup() loaded, in words
        self._download_failure: str | None = None
        self._datasets: dict[str, CanvasDataset] | None = None

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
            self._download_failure = str(err)

    def _load_real(self) -> dict[str, torch.Tensor]:
        # Attached to a Trainer, prepare_data has already downloaded (on one process only).
        return load_mnist(self.data_dir, download=self.download and self.trainer is None)

    def _load_pool(self) -> tuple[dict[str, torch.Tensor], str]:
        """The digit pool and its description: real MNIST or rendered digits."""
        if self.source == "rendered":
            return _rendered_pool(), (
                "RENDERED digits (synthetic, source='rendered'; not comparable to published "
                "MNIST results)"
            )
        root = resolve_data_dir(self.data_dir)
        if self.source == "mnist" or find_mnist(root) is not None:
            return self._load_real(), f"real MNIST from {root}"
        if self._download_failure is not None:
            reason = f"download failed ({self._download_failure})"
        elif not self.download:
            reason = "downloading is off (download=False)"
        elif self.trainer is not None:  # prepare_data ran on another process and failed
            reason = "download failed (see the first process's log)"
        else:
            try:
                return self._load_real(), f"real MNIST from {root}"
            except DataError as err:
                reason = f"download failed ({err})"
        message = (
            f"MNIST not found in {root} and {reason}; using RENDERED digits (synthetic "
            f"fallback, not comparable to published MNIST results)"
        )
        rank_zero_warn(message)
        return _rendered_pool(), message

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
        pool, description = self._load_pool()
        fixed_seeds = {"train": None, "val": mix_seed(self.seed, 1), "test": mix_seed(self.seed, 2)}
        self._datasets = {
            name: CanvasDataset(digits, labels, self.canvas_hw, self.scale_range,
                                self.num_distractors, self.distractor_size, fixed_seeds[name])
            for name, (digits, labels) in self._split(pool).items()
        }
        self.data_description = self._describe(description)
        rank_zero_info(self.data_description)

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

    # ---- loaders

    def dataset(self, split: str) -> CanvasDataset:
        """The ``"train"``, ``"val"`` or ``"test"`` dataset (calls :meth:`setup` if needed)."""
        self.setup()
        return self._datasets[split]

    def _loader(self, split: str) -> DataLoader:
        return make_loader(self.dataset(split), split, self.batch_size, self.num_workers)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        """Items ``{"images", "image"}``: every PNG / JPEG in ``predict_dir`` fitted to the canvas
        (``image`` = its path), else the test split (``image`` = its index there)."""
        from datamodules.predict_images import CanvasFit, ImageFolder, IndexedImages

        dataset = ImageFolder(self.predict_dir, CanvasFit(self.canvas_hw)) if self.predict_dir else IndexedImages(self.dataset("test"))
        return make_loader(dataset, "predict", self.batch_size, self.num_workers)

    def __str__(self) -> str:
        """A description that reads no data (Lightning's would build every dataloader; jsonargparse
        formats the DataModule while it applies the CLI's argument links)."""
        return f"{type(self).__name__}(source={self.source!r}, canvas={self.canvas_hw[0]}x{self.canvas_hw[1]})"


class TranslatedMNIST(AttentionMNIST):
    __doc__ = """Translated MNIST: a digit at a random position on a 60x60 canvas.

    Each 28x28 digit is placed uniformly at random, fully inside the canvas (RAM, Mnih et
    al. 2014).
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
        super().__init__(data_dir, source, download, canvas_size, scale_range, num_distractors,
                         distractor_size, val_size, train_size, test_size, batch_size,
                         num_workers, seed, predict_dir)


class TranslatedScaledMNIST(AttentionMNIST):
    __doc__ = """Translated and scaled MNIST: randomly resized digits on a 60x60 canvas.

    Each digit is resized by a factor drawn uniformly from ``scale_range`` (default 0.5 to
    1.5), then placed uniformly at random, fully inside the canvas.
    """ + _ARGS_DOC

    def __init__(
        self,
        data_dir: str | None = None,
        source: str = "auto",
        download: bool = True,
        canvas_size: int | tuple[int, int] = 60,
        scale_range: tuple[float, float] | None = (0.5, 1.5),
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
        super().__init__(data_dir, source, download, canvas_size, scale_range, num_distractors,
                         distractor_size, val_size, train_size, test_size, batch_size,
                         num_workers, seed, predict_dir)


class ClutteredMNIST(AttentionMNIST):
    __doc__ = """Cluttered translated MNIST: a digit and 8x8 pieces of other digits.

    A digit at a random position on a 60x60 canvas with 4 random 8x8 crops of other digits
    added, clipped to [0, 1] (the DeepMind mnist-cluttered recipe). The other common setting
    is ``canvas_size=100, num_distractors=8``.
    """ + _ARGS_DOC

    def __init__(
        self,
        data_dir: str | None = None,
        source: str = "auto",
        download: bool = True,
        canvas_size: int | tuple[int, int] = 60,
        scale_range: tuple[float, float] | None = None,
        num_distractors: int = 4,
        distractor_size: int = 8,
        val_size: int = 5000,
        train_size: int | None = None,
        test_size: int | None = None,
        batch_size: int = 128,
        num_workers: int = 0,
        seed: int = 0,
        predict_dir: str | None = None,
    ) -> None:
        super().__init__(data_dir, source, download, canvas_size, scale_range, num_distractors,
                         distractor_size, val_size, train_size, test_size, batch_size,
                         num_workers, seed, predict_dir)
