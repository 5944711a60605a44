"""Synthetic MNIST-like digits for when the real files cannot be had (the offline fallback):
:func:`render_digits` and the fixed 60000 / 10000 pool the data modules use,
:func:`rendered_pool`. Not comparable to published MNIST results.
"""
from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F

MNIST_TRAIN_COUNT = 60000
MNIST_TEST_COUNT = 10000

_FONT_VARIANTS: tuple[tuple[int, int], ...] = (  # (font size, stroke width) of the glyph bank
    (32, 0), (40, 0), (40, 1), (48, 0), (48, 1), (56, 0), (56, 1), (56, 2),
)
_BOX = 20  # MNIST digits are fitted into a 20x20 box ...
_SIZE = 28  # ... and centred by centre of mass in a 28x28 image


def _load_font(size: int):
    """PIL's built-in font at ``size`` (FreeType), or its bitmap font where FreeType is absent."""
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):
        return ImageFont.load_default()


def _render_glyph(char: str, font_size: int, stroke: int) -> torch.Tensor:
    """One digit, fitted into a 20x20 box and centred by centre of mass: float [28, 28] in [0,1]."""
    from PIL import Image, ImageDraw

    font = _load_font(font_size)
    pad = 2 * font_size
    img = Image.new("L", (pad * 2, pad * 2), 0)
    ImageDraw.Draw(img).text((pad // 2, pad // 2), char, fill=255, font=font,
                             stroke_width=stroke, stroke_fill=255)
    img = img.crop(img.getbbox())
    factor = _BOX / max(img.size)
    size = (max(1, round(img.size[0] * factor)), max(1, round(img.size[1] * factor)))
    glyph = np.asarray(img.resize(size, Image.Resampling.LANCZOS), dtype=np.float32) / 255.0
    glyph = glyph.clip(0.0, 1.0)
    rows, cols = np.indices(glyph.shape)
    mass = glyph.sum()
    cy, cx = (rows * glyph).sum() / mass, (cols * glyph).sum() / mass
    top = int(np.clip(round(_SIZE / 2 - 0.5 - cy), 0, _SIZE - glyph.shape[0]))
    left = int(np.clip(round(_SIZE / 2 - 0.5 - cx), 0, _SIZE - glyph.shape[1]))
    canvas = np.zeros((_SIZE, _SIZE), dtype=np.float32)
    canvas[top : top + glyph.shape[0], left : left + glyph.shape[1]] = glyph
    return torch.from_numpy(canvas)


@functools.lru_cache(maxsize=1)
def _glyph_bank() -> torch.Tensor:
    """float [10, V, 28, 28]: every digit in every (font size, stroke width) variant.
    Cached: treat as read-only."""
    return torch.stack([
        torch.stack([_render_glyph(str(d), size, stroke) for size, stroke in _FONT_VARIANTS])
        for d in range(10)
    ])


def _random_affine(n: int, gen: torch.Generator) -> torch.Tensor:
    """[n, 2, 3] ``affine_grid`` matrices (output -> input coordinates) of random forward maps:
    rotation +-15 deg, shear +-0.25, scale 0.8..1.1 (x and y slightly apart), shift +-0.1."""
    def uniform(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, generator=gen)

    angle = uniform(-15.0, 15.0) * math.pi / 180.0
    shear = uniform(-0.25, 0.25)
    scale = uniform(0.8, 1.1)
    sx, sy = scale * uniform(0.92, 1.08), scale
    cos, sin = torch.cos(angle), torch.sin(angle)
    rot = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)  # (n,2,2)
    shear_scale = torch.zeros(n, 2, 2)
    shear_scale[:, 0, 0], shear_scale[:, 0, 1], shear_scale[:, 1, 1] = sx, shear * sy, sy
    forward = rot @ shear_scale  # (n, 2, 2)
    shift = torch.stack([uniform(-0.1, 0.1), uniform(-0.1, 0.1)], -1)  # (n, 2)
    inverse = torch.linalg.inv(forward)  # (n, 2, 2)
    return torch.cat([inverse, -(inverse @ shift.unsqueeze(-1))], dim=-1)  # (n, 2, 3)


def _blur3(x: torch.Tensor) -> torch.Tensor:
    """3x3 binomial blur of images [..., h, w] (zero outside)."""
    padded = F.pad(x, (1, 1, 1, 1))
    rows = 0.25 * padded[..., :-2] + 0.5 * padded[..., 1:-1] + 0.25 * padded[..., 2:]
    return 0.25 * rows[..., :-2, :] + 0.5 * rows[..., 1:-1, :] + 0.25 * rows[..., 2:, :]


def _sampling_grid(theta: torch.Tensor, size: int) -> torch.Tensor:
    """``F.affine_grid(theta, [n, 1, size, size], align_corners=False)`` by broadcasting,
    several times faster on CPU: theta [n, 2, 3] -> grid [n, size, size, 2]."""
    coords = (torch.arange(size, dtype=theta.dtype) * 2 + 1) / size - 1  # pixel centres
    n = theta.shape[0]
    per_x = coords.view(1, 1, size, 1) * theta[:, :, 0].reshape(n, 1, 1, 2)  # (n, 1, size, 2)
    per_y = coords.view(1, size, 1, 1) * theta[:, :, 1].reshape(n, 1, 1, 2)  # (n, size, 1, 2)
    return per_x + (per_y + theta[:, :, 2].reshape(n, 1, 1, 2))  # (n, size, size, 2)


def render_digits(num_per_class: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Synthetic MNIST-like digits, for when the real files cannot be had (offline fallback).

    A small bank of glyphs (PIL's built-in font at a few sizes and stroke widths, fitted in a
    20x20 box and centred by centre of mass in 28x28, as MNIST was made) is varied per sample,
    batched in torch: random affine map (rotation +-15 deg, shear, scale 0.8-1.1, a shift of
    about +-1.4 px), light blur and a random ink gain. Deterministic given ``seed``
    (and the Pillow/FreeType version). Not comparable to published MNIST results.

    Args:
        num_per_class: how many images of each digit 0..9.
        seed: seeds every random choice.

    Returns:
        ``(images, labels)``: uint8 ``[10 * num_per_class, 28, 28]`` and int64
        ``[10 * num_per_class]``, classes shuffled together.
    """
    if num_per_class < 0:
        raise ValueError(f"num_per_class must be >= 0, got {num_per_class}")
    gen = torch.Generator().manual_seed(seed)
    bank = _glyph_bank()  # (10, V, 28, 28)
    bank_blurred = _blur3(bank)  # blurring before the (linear) warp = blurring after it
    n = 10 * num_per_class
    labels = torch.arange(10).repeat_interleave(num_per_class)[torch.randperm(n, generator=gen)]
    variant = torch.randint(0, bank.shape[1], (n,), generator=gen)
    blur = 0.6 * torch.rand(n, 1, 1, generator=gen)
    gain = 1.0 + 0.3 * torch.rand(n, 1, 1, generator=gen)
    theta = _random_affine(n, gen)  # (n, 2, 3)
    images = torch.empty(n, _SIZE, _SIZE, dtype=torch.uint8)
    for start in range(0, n, 4096):  # chunks that stay in cache
        sl = slice(start, start + 4096)
        sharp, soft = bank[labels[sl], variant[sl]], bank_blurred[labels[sl], variant[sl]]
        glyphs = torch.lerp(sharp, soft, blur[sl]).unsqueeze(1)  # (b, 1, 28, 28)
        grid = _sampling_grid(theta[sl], _SIZE)  # (b, 28, 28, 2)
        warped = F.grid_sample(glyphs, grid, mode="bilinear", align_corners=False)[:, 0]
        images[sl] = warped.mul_(255.0 * gain[sl]).clamp_(0, 255).round_().to(torch.uint8)
    return images, labels


@functools.lru_cache(maxsize=1)
def rendered_pool() -> dict[str, torch.Tensor]:
    """Synthetic stand-in for MNIST: 60000 train and 10000 test rendered digits (fixed seeds,
    independent of the run's seed, so the fallback "data set" is the same for every run)."""
    train_images, train_labels = render_digits(MNIST_TRAIN_COUNT // 10, seed=1)
    test_images, test_labels = render_digits(MNIST_TEST_COUNT // 10, seed=2)
    return {"train_images": train_images, "train_labels": train_labels,
            "test_images": test_images, "test_labels": test_labels}
