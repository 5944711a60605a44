"""A folder of images: :class:`JpegLoader` (``name -> float32 [3, H, W]`` in [0, 1], picklable
for DataLoader workers) and :func:`check_image` (does the file exist and decode completely)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ram_lightning.errors import DataError


class JpegLoader:
    """``name -> float32 [3, H, W]`` in [0, 1]: the JPEG ``image_dir/name``, RGB, resized
    (bilinear, antialiased) to ``(H, W)``. A picklable class, for DataLoader workers."""

    def __init__(self, image_dir: str | os.PathLike, size_hw: tuple[int, int]) -> None:
        self.image_dir = Path(image_dir)
        self.size_hw = tuple(size_hw)

    def __call__(self, name: str) -> torch.Tensor:
        path = self.image_dir / name
        height, width = self.size_hw
        try:
            with Image.open(path) as image:
                image.draft("RGB", (width, height))  # JPEG: decode at a reduced scale if big
                image = image.convert("RGB").resize((width, height), Image.Resampling.BILINEAR)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
            raise DataError(
                f"cannot read image {path}: {err} (setup checks every image when "
                f"check_images=True; was the file changed since?)"
            ) from err
        array = np.asarray(image, dtype=np.uint8)  # (H, W, 3)
        return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div_(255.0)


def check_image(path: Path) -> str | None:
    """None if ``path`` is a readable image, else why not ("missing", or the decoder error).

    The whole JPEG stream is decoded, at 1/8 scale where possible (fast), so truncated files
    are caught."""
    if not path.is_file():
        return "missing"
    try:
        with Image.open(path) as image:
            image.draft("RGB", (max(1, image.width // 8), max(1, image.height // 8)))
            image.load()
    except Exception as err:  # noqa: BLE001 - any failure to decode means unreadable
        return f"unreadable ({type(err).__name__}: {err})"
    return None
