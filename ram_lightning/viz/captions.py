"""Where a captioner looks for each word: one small panel per generated word.

Each validation image gets a row of panels: the first is the plain image (labelled "image"),
then per generated word the image with the grid cell attended for that word outlined (and the
rest dimmed), the word underneath; under the row, the image's first reference caption.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import pytorch_lightning as pl
import torch
from PIL import Image, ImageDraw
from pytorch_lightning.utilities import rank_zero_warn
from torch import Tensor

from ram_lightning.viz.drawing import image_to_pil, label_font, picture_grid, save_and_log_picture

HIGHLIGHT = (255, 64, 32)


def draw_caption_attention(image: Tensor, words: Sequence[str], cells: Sequence[Tuple[int, int]],
                           grid_hw: Tuple[int, int], zoom: int = 2, max_words: int = 12,
                           reference: Optional[Sequence[str]] = None) -> Image.Image:
    """One row: image [C, H, W] in [0, 1] (labelled "image"), then per word the attended cell
    (row, col) of a ``grid_hw`` grid outlined on the image with the word below; under the row,
    ``reference`` (tokens of a reference caption) when given. Returns an RGB image."""
    base = image_to_pil(image, zoom)
    width, height = base.size
    font = label_font(14)
    label_h = 20
    reference_h = label_h if reference is not None else 0
    words, cells = list(words)[:max_words], list(cells)[:max_words]
    row = Image.new("RGB", ((len(words) + 1) * (width + 2), height + label_h + reference_h), (255, 255, 255))
    row.paste(base, (0, 0))
    ImageDraw.Draw(row).text((2, height + 2), "image", fill=(96, 96, 96), font=font)
    if reference is not None:
        ImageDraw.Draw(row).text((2, height + label_h + 2), "reference: " + " ".join(reference), fill=(0, 0, 160), font=font)
    cell_h, cell_w = height / grid_hw[0], width / grid_hw[1]
    for index, (word, (r, c)) in enumerate(zip(words, cells), start=1):
        panel = Image.blend(base, Image.new("RGB", base.size, (0, 0, 0)), 0.5)
        box = (round(c * cell_w), round(r * cell_h), round((c + 1) * cell_w) - 1, round((r + 1) * cell_h) - 1)
        panel.paste(base.crop((box[0], box[1], box[2] + 1, box[3] + 1)), box[:2])  # the attended cell at full brightness
        ImageDraw.Draw(panel).rectangle(box, outline=HIGHLIGHT, width=2)
        x = index * (width + 2)
        row.paste(panel, (x, 0))
        ImageDraw.Draw(row).text((x + 2, height + 2), word, fill=(0, 0, 0), font=font)
    return row


class CaptionAttentionPictures(pl.Callback):
    """Every ``every_n_epochs``-th validation epoch, decodes the first ``num_images`` validation
    images with the captioner (``pl_module.decode``: beam search, the most probable cell per
    word) and saves ``<log dir>/caption_attention/epoch_{epoch:03d}.png``; logged to W&B as
    ``val/caption_attention`` when a WandbLogger is attached. Modules without ``decode`` are
    skipped with one warning. Decoding is deterministic, so training is unchanged.

    Args:
        num_images: images (rows) in the picture.
        every_n_epochs: draw when ``(epoch + 1) % every_n_epochs == 0``.
        zoom: enlargement of each panel.
    """

    def __init__(self, num_images: int = 4, every_n_epochs: int = 1, zoom: int = 2) -> None:
        if num_images < 1 or every_n_epochs < 1 or zoom < 1:
            raise ValueError(f"CaptionAttentionPictures: num_images, every_n_epochs and zoom must be >= 1, "
                             f"got {num_images}, {every_n_epochs}, {zoom}")
        self.num_images, self.every_n_epochs, self.zoom = num_images, every_n_epochs, zoom
        self._images: List[Tensor] = []
        self._references: List[Optional[List[str]]] = []  # the first reference caption of each cached image
        self._disabled = False
        self.last_path: Optional[str] = None

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        cached = sum(len(images) for images in self._images)
        if self._disabled or cached >= self.num_images or not isinstance(batch, dict) or "images" not in batch:
            return
        images = batch["images"][: self.num_images - cached].detach().cpu()
        self._images.append(images)
        references = batch.get("references") or [None] * len(images)
        self._references.extend(refs[0] if refs else None for refs in references[: len(images)])

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or self._disabled or (trainer.current_epoch + 1) % self.every_n_epochs:
            return
        if not hasattr(pl_module, "decode"):
            rank_zero_warn(f"CaptionAttentionPictures: {type(pl_module).__name__} has no `decode`; no pictures will be drawn")
            self._disabled = True
            return
        if not trainer.is_global_zero or not self._images:
            return
        images = torch.cat(self._images)
        with torch.no_grad():
            decoded = pl_module.decode(images.to(pl_module.device))
        grid_hw = pl_module.encoder.grid_shape(*images.shape[-2:])
        rows = [draw_caption_attention(image, words, cells, grid_hw, self.zoom, reference=reference)
                for image, words, cells, reference in zip(images, decoded["tokens"], decoded["locations"], self._references)]
        width = max(row.width for row in rows)
        padded = []
        for row in rows:
            canvas = Image.new("RGB", (width, row.height), (255, 255, 255))
            canvas.paste(row, (0, 0))
            padded.append(canvas)
        picture = picture_grid(padded, columns=1)
        self.last_path = save_and_log_picture(trainer, picture, "caption_attention", "val/caption_attention")
