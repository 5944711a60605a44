"""Synthetic captioning: coloured shapes in the cells of a grid, described in words.

Each image (default 64x64, black background) has 1 or 2 (``num_objects``) shapes -- circle,
square, triangle -- in red, green or blue, each in its own cell of a 2x2 (or 3x3) grid, with
a random size and offset inside the cell and a little colour jitter. Its five reference
captions name every shape with its position, in five phrasings::

    a red circle at the top left and a blue square at the bottom right
    there is a red circle in the top left and a blue square in the bottom right
    a blue square is at the bottom right and a red circle is at the top left
    the top left has a red circle and the bottom right has a blue square
    a picture of a red circle in the top left and a blue square in the bottom right

(shapes in reading order; the third phrasing reversed, so the five always differ). Every word
depends on one cell, so a hard-attention decoder that looks at the right cell per word can
learn it ("learnable in minutes on a CPU" is the design goal; not yet measured here).
Batches match :class:`~datamodules.flickr8k.Flickr8k`.

All three splits are fixed by ``seed`` (a different stream per split): the training set is a
fixed set of ``train_size`` images, not regenerated per epoch, so epochs are comparable and the
set behaves like a real data set. Images are drawn with Pillow on access (nothing stored).

    ram fit --data SyntheticCaptions --data.train_size 4000

    >>> dm = SyntheticCaptions(train_size=64)                      # doctest: +SKIP
    >>> batch = next(iter(dm.train_dataloader()))                  # doctest: +SKIP
    >>> batch["images"].shape, batch["captions"].dtype             # doctest: +SKIP
    (torch.Size([32, 3, 64, 64]), torch.int64)
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from PIL import Image, ImageDraw

from ram_lightning.seeds import mix_seed
from datamodules.captions import CaptionDataModule
from ram_lightning.errors import UserError

SHAPES = ("circle", "square", "triangle")
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 190, 60),
    "blue": (50, 90, 235),
}
ROW_NAMES = {2: ("top", "bottom"), 3: ("top", "middle", "bottom")}
COL_NAMES = {2: ("left", "right"), 3: ("left", "center", "right")}
_SPLIT_STREAMS = {"train": 1, "val": 2, "test": 3}


class Shape(NamedTuple):
    """One shape of a scene: its cell, kind, colour and how it is drawn (fractions of the
    cell: ``size`` of the side, offsets of the centre within the free margin)."""

    row: int
    col: int
    shape: str
    colour: str
    size: float  # side / cell side, in [0.55, 0.85]
    dy: float  # centre offset in [-1, 1] of the free margin
    dx: float
    jitter: tuple[int, int, int]  # added to the colour's RGB


def position_name(row: int, col: int, grid: int) -> str:
    """``"top left"``, ``"bottom right"``, ...; on a 3x3 grid also ``"top center"``,
    ``"middle left"`` and ``"center"`` for the middle cell."""
    if grid == 3 and (row, col) == (1, 1):
        return "center"
    return f"{ROW_NAMES[grid][row]} {COL_NAMES[grid][col]}"


def scene_captions(scene: Sequence[Shape], grid: int) -> list[str]:
    """The five reference captions of a scene (shapes in reading order)."""
    items = [(f"a {s.colour} {s.shape}", f"the {position_name(s.row, s.col, grid)}")
             for s in sorted(scene, key=lambda s: (s.row, s.col))]
    return [
        " and ".join(f"{what} at {where}" for what, where in items),
        "there is " + " and ".join(f"{what} in {where}" for what, where in items),
        " and ".join(f"{what} is at {where}" for what, where in reversed(items)),
        " and ".join(f"{where} has {what}" for what, where in items),
        "a picture of " + " and ".join(f"{what} in {where}" for what, where in items),
    ]


def random_scene(rng: np.random.Generator, grid: int, num_objects: tuple[int, int],
                 shapes: Sequence[str] = SHAPES, colours: Sequence[str] = tuple(COLOURS)) -> tuple[Shape, ...]:
    """A scene of ``num_objects[0]..num_objects[1]`` shapes in distinct cells."""
    count = int(rng.integers(num_objects[0], num_objects[1] + 1))
    cells = rng.choice(grid * grid, size=count, replace=False)
    scene = []
    for cell in sorted(int(c) for c in cells):
        scene.append(Shape(
            row=cell // grid, col=cell % grid,
            shape=shapes[int(rng.integers(len(shapes)))],
            colour=colours[int(rng.integers(len(colours)))],
            size=float(rng.uniform(0.55, 0.85)),
            dy=float(rng.uniform(-1, 1)), dx=float(rng.uniform(-1, 1)),
            jitter=tuple(int(v) for v in rng.integers(-25, 26, size=3)),
        ))
    return tuple(scene)


class SceneRenderer:
    """``scene -> float32 [3, H, W]`` in [0, 1], drawn with Pillow (picklable, for workers)."""

    def __init__(self, size_hw: tuple[int, int], grid: int) -> None:
        self.size_hw = tuple(size_hw)
        self.grid = grid

    def __call__(self, scene: Sequence[Shape]) -> torch.Tensor:
        height, width = self.size_hw
        image = Image.new("RGB", (width, height))
        draw = ImageDraw.Draw(image)
        cell_h, cell_w = height / self.grid, width / self.grid
        for s in scene:
            side = s.size * min(cell_h, cell_w)
            cy = (s.row + 0.5) * cell_h + s.dy * (cell_h - side) / 2
            cx = (s.col + 0.5) * cell_w + s.dx * (cell_w - side) / 2
            box = (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)
            colour = tuple(int(np.clip(c + j, 0, 255)) for c, j in zip(COLOURS[s.colour], s.jitter))
            if s.shape == "circle":
                draw.ellipse(box, fill=colour)
            elif s.shape == "square":
                draw.rectangle(box, fill=colour)
            else:  # triangle, point up
                draw.polygon([(cx, box[1]), (box[2], box[3]), (box[0], box[3])], fill=colour)
        array = np.asarray(image, dtype=np.uint8)  # (H, W, 3)
        return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div_(255.0)


class SyntheticCaptions(CaptionDataModule):
    """Coloured shapes on a grid with five captions each (see the module docstring).

    Args:
        train_size: training images (training items are (image, caption) pairs, so an epoch
            has ``5 * train_size`` of them).
        val_size: validation images.
        test_size: test images.
        grid: cells per side of the scene grid: 2 (2x2 cells) or 3 (3x3).
        num_objects: ``(low, high)`` shapes per image, each in its own cell.
        image_size: side of the images, or ``(H, W)`` (default 64).
        min_count: words seen fewer times in the training captions become ``<unk>``.
        seed: fixes the three splits (independent streams per split).
        **kwargs: ``vocab_path``, ``batch_size``, ``num_workers``, ``cache_features``,
            ``feature_cache_dir``, ``feature_encoder``, ``predict_dir``: see
            :class:`~datamodules.captions.CaptionDataModule`.
    """

    def __init__(
        self,
        train_size: int = 2000,
        val_size: int = 200,
        test_size: int = 200,
        grid: int = 2,
        num_objects: tuple[int, int] = (1, 2),
        image_size: int | tuple[int, int] = 64,
        min_count: int = 1,
        seed: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(image_size=image_size, min_count=min_count, **kwargs)
        for name, size in (("train_size", train_size), ("val_size", val_size), ("test_size", test_size)):
            if not isinstance(size, int) or size < 1:
                raise UserError(f"{name} must be an integer >= 1, got {size!r}")
        if grid not in ROW_NAMES:
            raise UserError(f"grid must be 2 or 3 (cells per side), got {grid!r}")
        if (len(num_objects) != 2 or not 1 <= int(num_objects[0]) <= int(num_objects[1]) <= grid * grid):
            raise UserError(
                f"num_objects must be (low, high) with 1 <= low <= high <= {grid * grid} "
                f"(one shape per cell of the {grid}x{grid} grid), got {num_objects!r}"
            )
        if min(self.image_hw) < 4 * grid:
            raise UserError(f"image_size {self.image_hw} is too small for a {grid}x{grid} grid; expected at least {4 * grid}")
        self.sizes = {"train": train_size, "val": val_size, "test": test_size}
        self.grid = grid
        self.num_objects = (int(num_objects[0]), int(num_objects[1]))
        self.seed = seed

    def _caption_splits(self) -> dict[str, list[tuple[str, Any, list[str]]]]:
        splits = {}
        for split, size in self.sizes.items():
            rng = np.random.default_rng(mix_seed(self.seed, _SPLIT_STREAMS[split]))
            scenes = [random_scene(rng, self.grid, self.num_objects) for _ in range(size)]
            splits[split] = [(f"{split}-{i:05d}", scene, scene_captions(scene, self.grid))
                             for i, scene in enumerate(scenes)]
        return splits

    def _image_loader(self) -> SceneRenderer:
        return SceneRenderer(self.image_hw, self.grid)

    def _describe(self) -> str:
        sizes = " / ".join(f"{self.sizes[s]} {s}" for s in self.splits)
        low, high = self.num_objects
        count = f"{low}" if low == high else f"{low}-{high}"
        height, width = self.image_hw
        return (f"Data: synthetic captions ({sizes} images, 5 captions each; {count} shapes "
                f"({'/'.join(SHAPES)} in {'/'.join(COLOURS)}) on a {self.grid}x{self.grid} grid, "
                f"{height}x{width} images, seed {self.seed}; all splits fixed by the seed)")
