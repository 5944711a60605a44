"""What every picture here shares: tensors to images, the label font, grids, and saving a picture
beside the run (and to W&B)."""
from __future__ import annotations

import os
from typing import Sequence

import pytorch_lightning as pl
import torch
from PIL import Image, ImageFont
from pytorch_lightning.loggers import WandbLogger
from torch import Tensor


def label_font(size: int) -> ImageFont.ImageFont:
    """Pillow's default font at ``size`` pixels (the fixed bitmap font where Pillow has no FreeType)."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def image_to_pil(image: Tensor, zoom: int = 3) -> Image.Image:
    """image [C, H, W] in [0, 1] (C = 1 or 3; other C are averaged) -> RGB image [H*zoom, W*zoom]."""
    if image.dim() != 3:
        raise ValueError(f"expected an image [C, H, W], got shape {tuple(image.shape)}")
    if image.shape[0] not in (1, 3):
        image = image.mean(0, keepdim=True)
    pixels = (image.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8)
    picture = Image.fromarray(pixels[0].numpy(), "L") if pixels.shape[0] == 1 else Image.fromarray(pixels.permute(1, 2, 0).numpy(), "RGB")
    return picture.convert("RGB").resize((picture.width * zoom, picture.height * zoom), Image.Resampling.NEAREST)


def picture_grid(pictures: Sequence[Image.Image], columns: int = 4, gap: int = 4) -> Image.Image:
    """Tile pictures (same size) in rows of ``columns`` on a grey background."""
    if not pictures:
        raise ValueError("picture_grid needs at least one picture")
    columns = max(1, min(columns, len(pictures)))
    rows = -(-len(pictures) // columns)
    cell_w, cell_h = pictures[0].size
    grid = Image.new("RGB", (columns * cell_w + (columns + 1) * gap, rows * cell_h + (rows + 1) * gap), (96, 96, 96))
    for index, picture in enumerate(pictures):
        row, column = divmod(index, columns)
        grid.paste(picture, (gap + column * (cell_w + gap), gap + row * (cell_h + gap)))
    return grid


def save_and_log_picture(trainer: pl.Trainer, picture: Image.Image, folder: str, key: str) -> str:
    """Save ``picture`` as ``<log dir>/<folder>/epoch_{epoch:03d}.png`` and log it as ``key`` to
    every attached WandbLogger; returns the path. Call on global rank zero only."""
    directory = os.path.join(trainer.log_dir or trainer.default_root_dir, folder)
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, f"epoch_{trainer.current_epoch:03d}.png")
    picture.save(path)
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            logger.log_image(key=key, images=[picture], step=trainer.global_step, caption=[f"epoch {trainer.current_epoch}"])
    return path
