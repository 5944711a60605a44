"""Pictures of where the model looks: the glimpses of validation images, drawn every epoch.

    trainer:
      callbacks:
        - class_path: ram_lightning.viz.glimpses.GlimpsePictures
          init_args: {num_images: 8, every_n_epochs: 1}

Each glimpse is drawn as its P nested boxes (patch p is ``g * 2^p * scale`` pixels wide,
centred at the location; (-1, -1) is the image's top-left corner), one colour per glimpse in
order from red (the first, drawn thicker) through yellow and green to blue, numbered from 1
(where the number fits in the finest box); the wider patches are drawn dimmer;
a line joins successive centres. Under the image: the predicted and the true class (green
when they agree, red when not).
"""
from __future__ import annotations

import colorsys
from typing import List, Optional, Sequence, Tuple

import pytorch_lightning as pl
import torch
from PIL import Image, ImageDraw
from pytorch_lightning.utilities import rank_zero_warn
from torch import Tensor

from ram_lightning.viz.drawing import image_to_pil, label_font, picture_grid, save_and_log_picture

Colour = Tuple[int, int, int]


def glimpse_colours(count: int) -> List[Colour]:
    """``count`` colours in glimpse order: hues from red (first) to blue (last)."""
    return [tuple(round(255 * c) for c in colorsys.hsv_to_rgb(0.67 * n / max(count - 1, 1), 1.0, 1.0)) for n in range(count)]


def _dim(colour: Colour, factor: float) -> Colour:
    return tuple(round(factor * c) for c in colour)


def patch_box(location: Sequence[float], width: float, image_hw: Tuple[int, int], zoom: int = 1) -> Tuple[int, int, int, int]:
    """Pixel box (left, top, right, bottom, inclusive) of a patch ``width`` image pixels wide
    centred at ``location`` (x, y) in [-1, 1], in an image of ``image_hw`` drawn ``zoom`` times larger."""
    height, width_px = image_hw
    centre_x, centre_y = (location[0] + 1) / 2 * width_px * zoom, (location[1] + 1) / 2 * height * zoom
    half = width * zoom / 2
    return round(centre_x - half), round(centre_y - half), round(centre_x + half) - 1, round(centre_y + half) - 1


def clip_box(box: Tuple[int, int, int, int], size: Tuple[int, int]) -> Optional[Tuple[int, int, int, int]]:
    """``box`` (left, top, right, bottom, inclusive) cut to a panel of ``size`` (width, height),
    so that its outline stays inside the panel; None when nothing of it is inside."""
    left, top, right, bottom = max(box[0], 0), max(box[1], 0), min(box[2], size[0] - 1), min(box[3], size[1] - 1)
    return (left, top, right, bottom) if left <= right and top <= bottom else None


def label_font_size(zoom: int) -> int:
    """Pixel size of the glimpse numbers and of the class line (legible at 100%: 14 px at zoom 3)."""
    return max(12, 4 * zoom + 2)


def draw_glimpses(
    image: Tensor,
    locations: Tensor,
    scales: Optional[Tensor],
    glimpse_size: int,
    num_patches: int,
    predicted: Optional[int] = None,
    target: Optional[int] = None,
    zoom: int = 3,
) -> Image.Image:
    """One image with its glimpse sequence drawn on it.

    Args:
        image: [C, H, W] in [0, 1].
        locations: [N, 2] glimpse centres (x, y) in [-1, 1], in the order they were taken.
        scales: [N] width factors of the glimpses (not indices), or None for 1.
        glimpse_size, num_patches: g and P of the sensor.
        predicted, target: classes written under the image (omitted when both are None).
        zoom: the image is enlarged this many times (nearest neighbour) before drawing.

    Returns:
        An RGB PIL image [H*zoom (+ a caption strip), W*zoom].
    """
    height, width = image.shape[-2:]
    picture = image_to_pil(image, zoom)
    draw = ImageDraw.Draw(picture)
    locations = locations.detach().float().cpu().tolist()
    factors = [1.0] * len(locations) if scales is None else scales.detach().float().cpu().tolist()
    colours = glimpse_colours(len(locations))
    font = label_font(label_font_size(zoom))
    centres = [((x + 1) / 2 * width * zoom, (y + 1) / 2 * height * zoom) for x, y in locations]
    if len(centres) > 1:
        for n in range(1, len(centres)):
            draw.line([centres[n - 1], centres[n]], fill=colours[n], width=1)
    for n in reversed(range(len(locations))):  # the first glimpse ends on top
        for p in reversed(range(num_patches)):  # the finest patch thicker, the wider ones dimmer
            line = (max(3, zoom) if n == 0 else 2) if p == 0 else 1
            colour = colours[n] if p == 0 else _dim(colours[n], 0.65)
            box = clip_box(patch_box(locations[n], glimpse_size * 2**p * factors[n], (height, width), zoom), picture.size)
            if box is not None:
                draw.rectangle(box, outline=colour, width=line)
    for n in reversed(range(len(locations))):  # numbers on top: inside the finest box, else just above or below it
        box = clip_box(patch_box(locations[n], glimpse_size * factors[n], (height, width), zoom), picture.size)
        if box is None:
            continue
        label = draw.textbbox((0, 0), str(n + 1), font=font)
        label_w, label_h = label[2] - label[0] + 2, label[3] - label[1] + 2
        inside = box[2] - box[0] >= label_w + 3 and box[3] - box[1] >= label_h + 3
        places = ([(box[0] + 2, box[1] + 2)] if inside else []) + [(box[0], box[1] - label_h - 1), (box[0], box[3] + 2)]
        for x, y in places:
            if 0 <= x and 0 <= y and x + label_w <= picture.width and y + label_h <= picture.height:
                draw.rectangle((x, y, x + label_w - 1, y + label_h - 1), fill=(0, 0, 0))
                draw.text((x + 1 - label[0], y + 1 - label[1]), str(n + 1), fill=colours[n], font=font)
                break
    if predicted is None and target is None:
        return picture
    font = label_font(label_font_size(zoom) + 2)
    text = f"pred {predicted}  true {target}"
    text_box = ImageDraw.Draw(picture).textbbox((0, 0), text, font=font)
    strip = text_box[3] - text_box[1] + 8
    captioned = Image.new("RGB", (picture.width, picture.height + strip), (0, 0, 0))
    captioned.paste(picture, (0, 0))  # the boxes were clipped to the image: none runs into the strip
    colour = (80, 220, 80) if predicted == target else (255, 80, 80)
    ImageDraw.Draw(captioned).text((3, picture.height + 4 - text_box[1]), text, fill=colour, font=font)
    return captioned


def render_glimpse_grid(pl_module: pl.LightningModule, images: Tensor, targets: Tensor, zoom: int = 3, columns: int = 4,
                        seed: int = 0) -> Image.Image:
    """One glimpse sequence per image [B, C, H, W] from ``pl_module.core`` (eval mode, no grad,
    a private random stream seeded with ``seed``), the class from ``pl_module.head``; drawn in a grid."""
    core = pl_module.core
    device = pl_module.device
    was_training = pl_module.training
    pl_module.eval()
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            rollout = core.rollout(images.to(device), 1)
            predicted = pl_module.head(rollout.hidden[:, 0]).argmax(-1).cpu()
    finally:
        pl_module.train(was_training)
    locations = rollout.locations[:, 0].cpu()  # [B, N, 2]
    scales = None if rollout.scales is None else core.scale_values[rollout.scales[:, 0]].cpu()  # [B, N] factors
    pictures = [
        draw_glimpses(images[b], locations[b], None if scales is None else scales[b], core.sensor.glimpse_size,
                      core.sensor.num_patches, int(predicted[b]), int(targets[b]), zoom)
        for b in range(images.shape[0])
    ]
    return picture_grid(pictures, columns)


class GlimpsePictures(pl.Callback):
    """At the end of every ``every_n_epochs``-th validation epoch (not the sanity check), draws the
    glimpses of the first ``num_images`` validation images (the same images every time, taken
    from the first validation batches) and saves ``<log dir>/glimpses/epoch_{epoch:03d}.png``
    (``trainer.log_dir``, else ``default_root_dir``); with a WandbLogger attached, also logs it
    as ``val/glimpses``. Needs a module with ``core`` (AttentionCore) and ``head``; others are
    skipped with one warning. Training is unchanged: the rollout uses a private random stream.

    Args:
        num_images: images in the picture.
        every_n_epochs: draw when ``(epoch + 1) % every_n_epochs == 0``.
        zoom: enlargement of each image.
        columns: images per row.
    """

    def __init__(self, num_images: int = 8, every_n_epochs: int = 1, zoom: int = 3, columns: int = 4) -> None:
        if num_images < 1 or every_n_epochs < 1 or zoom < 1 or columns < 1:
            raise ValueError(f"GlimpsePictures: num_images, every_n_epochs, zoom and columns must be >= 1, "
                             f"got {num_images}, {every_n_epochs}, {zoom}, {columns}")
        self.num_images = num_images
        self.every_n_epochs = every_n_epochs
        self.zoom = zoom
        self.columns = columns
        self._images: List[Tensor] = []
        self._targets: List[Tensor] = []
        self._disabled = False
        self.last_path: Optional[str] = None

    def _skip(self, reason: str) -> None:
        if not self._disabled:
            rank_zero_warn(f"GlimpsePictures: {reason}; no glimpse pictures will be drawn")
        self._disabled = True

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        cached = sum(len(images) for images in self._images)
        if self._disabled or dataloader_idx != 0 or cached >= self.num_images:
            return
        if not (isinstance(batch, (tuple, list)) and len(batch) >= 2 and torch.is_tensor(batch[0]) and batch[0].dim() == 4):
            return self._skip("validation batches are not (images [B, C, H, W], targets) pairs")
        keep = self.num_images - cached
        self._images.append(batch[0][:keep].detach().cpu())
        self._targets.append(batch[1][:keep].detach().cpu())

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or self._disabled or (trainer.current_epoch + 1) % self.every_n_epochs:
            return
        if not (hasattr(pl_module, "core") and hasattr(pl_module.core, "rollout") and hasattr(pl_module, "head")):
            return self._skip(f"{type(pl_module).__name__} has no attention `core` and `head`")
        if not trainer.is_global_zero or not self._images:
            return
        picture = render_glimpse_grid(pl_module, torch.cat(self._images), torch.cat(self._targets), self.zoom, self.columns)
        self.last_path = save_and_log_picture(trainer, picture, "glimpses", "val/glimpses")
