"""A folder of PNG / JPEG files to predict on (``data.predict_dir``), and the test split
indexed for prediction.

Items are dicts ``{"images": float [C, H, W] in [0, 1], "image": <path or index>}``, so the
default collate gives ``{"images": [B, C, H, W], "image": [paths] or [B] indices}``.

How images are fitted:
- ``CanvasFit`` (MNIST tasks): grey levels; an image larger than the canvas is scaled down,
  aspect ratio kept, to fit it; then it is centred on a black canvas. As in MNIST, digits
  should be light on a dark background (nothing is inverted).
- ``ResizeRGB`` (captions): RGB, resized (bilinear) to the model's (H, W), as the caption
  DataModules load their images.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, List

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ram_lightning.errors import DataError, UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def list_images(folder: str | os.PathLike) -> List[Path]:
    """The PNG / JPEG files directly in ``folder``, sorted by name.

    Raises:
        UserError: ``folder`` is missing, not a folder, unreadable, or holds no such file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"predict_dir {folder}: no such folder")
    try:
        paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    except PermissionError:
        raise UserError(f"predict_dir {folder}: permission denied (cannot list the folder)") from None
    if not paths:
        raise UserError(f"predict_dir {folder}: no PNG or JPEG files ({', '.join(IMAGE_SUFFIXES)})")
    return paths


def _open(path: Path, mode: str) -> Image.Image:
    try:
        with Image.open(path) as image:
            return image.convert(mode)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise DataError(f"cannot read image {path}: {error}") from None


def _to_tensor(image: Image.Image) -> torch.Tensor:
    array = np.asarray(image, dtype=np.uint8)
    array = array[:, :, None] if array.ndim == 2 else array
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div_(255.0)


class CanvasFit:
    """``path -> float [1, H, W]``: grey levels, scaled down to fit if larger, centred on black."""

    def __init__(self, canvas_hw: tuple[int, int]) -> None:
        self.canvas_hw = tuple(canvas_hw)

    def __call__(self, path: Path) -> torch.Tensor:
        image = _open(path, "L")
        height, width = self.canvas_hw
        factor = min(1.0, height / image.height, width / image.width)
        if factor < 1.0:
            size = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
            image = image.resize(size, Image.Resampling.LANCZOS)
        canvas = Image.new("L", (width, height), 0)
        canvas.paste(image, ((width - image.width) // 2, (height - image.height) // 2))
        return _to_tensor(canvas)


class ResizeRGB:
    """``path -> float [3, H, W]``: RGB, resized (bilinear) to ``(H, W)``."""

    def __init__(self, size_hw: tuple[int, int]) -> None:
        self.size_hw = tuple(size_hw)

    def __call__(self, path: Path) -> torch.Tensor:
        height, width = self.size_hw
        return _to_tensor(_open(path, "RGB").resize((width, height), Image.Resampling.BILINEAR))


class ImageFolder(Dataset):
    """Every PNG / JPEG in ``folder``, loaded by ``load`` (``CanvasFit`` or ``ResizeRGB``)."""

    def __init__(self, folder: str | os.PathLike, load: Callable[[Path], torch.Tensor]) -> None:
        self.paths = list_images(folder)
        self.load = load

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"images": self.load(self.paths[index]), "image": str(self.paths[index])}


class IndexedImages(Dataset):
    """A labelled ``(image, label)`` dataset as prediction items, named by their index in it."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        image, label = self.dataset[index]
        return {"images": image, "image": index, "target": label}
