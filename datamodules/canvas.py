"""The attention canvases: :class:`CanvasDataset` puts each 28x28 digit at a uniformly random
position on an H x W canvas, optionally resized first (translated-and-scaled) and with random
8x8 crops of other digits added and clipped to [0, 1] (cluttered, the DeepMind mnist-cluttered
recipe), plus the checks of that recipe's geometry.

Training items draw fresh randomness every time (every epoch differs); with a ``fixed_seed``
every item is fixed by a seed of its own, so every run and every worker count scores the same
images, and nothing is stored.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ram_lightning.errors import UserError
from ram_lightning.seeds import mix_seed

DIGIT_SIZE = 28


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


def parse_canvas_size(canvas_size: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    """``canvas_size`` as ``(H, W)``; an int means a square canvas."""
    if isinstance(canvas_size, int) and not isinstance(canvas_size, bool):
        return canvas_size, canvas_size
    if (isinstance(canvas_size, (tuple, list)) and len(canvas_size) == 2
            and all(isinstance(s, int) and not isinstance(s, bool) for s in canvas_size)):
        return int(canvas_size[0]), int(canvas_size[1])
    raise UserError(f"canvas_size must be an int or a pair of ints (H, W), got {canvas_size!r}")


def check_geometry(
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
        self.canvas_hw = parse_canvas_size(canvas_size)
        self.scale_range = check_geometry(self.canvas_hw, scale_range, num_distractors,
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

