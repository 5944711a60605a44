"""The peer approach to the glimpse sensor: the per-row crop loops of popular RAM
implementations, and the check that ``GlimpseSensor`` returns the same patches."""
from __future__ import annotations

from typing import List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ram_lightning.core import GlimpseSensor


def pixel_centres(locations: Tensor, height: int, width: int) -> Tuple[List[int], List[int]]:
    """Glimpse centres as integer pixel boundaries (x, y), locations clamped to [-1, 1]."""
    locations = locations.reshape(-1, 2).clamp(-1, 1)
    xs = torch.round((locations[:, 0] + 1) * (width / 2)).long().tolist()
    ys = torch.round((locations[:, 1] + 1) * (height / 2)).long().tolist()
    return xs, ys


def peer_loop_glimpses(images: Tensor, locations: Tensor, glimpse_size: int, num_patches: int) -> Tensor:
    """Per-row crop loop of popular RAM implementations: [B, C, H, W], [B, K, 2] -> [B, K, P, C, g, g].

    For each row and each patch size g*2^p: integer crop bounds around the location, zero
    padding only when the crop leaves the image, a slice, and avg_pool2d down to g x g.
    """
    batch, channels, height, width = images.shape
    samples = locations.shape[1]
    xs, ys = pixel_centres(locations, height, width)
    rows = []
    for row in range(batch * samples):
        image = images[row // samples]
        patches = []
        for level in range(num_patches):
            factor = 2**level
            size = glimpse_size * factor
            half = size // 2
            left, top = xs[row] - half, ys[row] - half
            if left < 0 or top < 0 or left + size > width or top + size > height:
                crop = F.pad(image, (half, half, half, half))[:, top + half : top + half + size, left + half : left + half + size]
            else:
                crop = image[:, top : top + size, left : left + size]
            patches.append(F.avg_pool2d(crop, factor) if factor > 1 else crop)
        rows.append(torch.stack(patches))
    return torch.stack(rows).view(batch, samples, num_patches, channels, glimpse_size, glimpse_size)


def peer_batched_pool_glimpses(images: Tensor, locations: Tensor, glimpse_size: int, num_patches: int) -> Tensor:
    """Stronger peer: pad the batch once per patch size, loop only over slicing, pool per size."""
    batch, channels, height, width = images.shape
    samples = locations.shape[1]
    xs, ys = pixel_centres(locations, height, width)
    per_level = []
    for level in range(num_patches):
        factor = 2**level
        size = glimpse_size * factor
        half = size // 2
        padded = F.pad(images, (half, half, half, half))
        crops = torch.stack(
            [padded[row // samples, :, ys[row] : ys[row] + size, xs[row] : xs[row] + size] for row in range(batch * samples)]
        )  # [R, C, size, size]
        per_level.append(F.avg_pool2d(crops, factor) if factor > 1 else crops)
    return torch.stack(per_level, 1).view(batch, samples, num_patches, channels, glimpse_size, glimpse_size)


def aligned_locations(batch: int, samples: int, height: int, width: int, num_patches: int, device: torch.device) -> Tensor:
    """Random [B, K, 2] locations whose every patch lies on the pixel grid of its pyramid level.

    The centre must be a pixel boundary that is a multiple of 2^(P-1) (then patch p starts at
    a multiple of 2^p and each output pixel is exactly the mean of a 2^p x 2^p block).
    """
    step = 2 ** (num_patches - 1)
    cx = torch.randint(0, width // step + 1, (batch, samples), device=device) * step
    cy = torch.randint(0, height // step + 1, (batch, samples), device=device) * step
    return torch.stack([2 * cx / width - 1, 2 * cy / height - 1], dim=-1).float()


def check_sensor_matches_peer(sensor: GlimpseSensor, batch: int, samples: int, image_shape: Sequence[int],
                              device: torch.device) -> float:
    """Assert sensor == peer loop (and its batched variant) at pixel-aligned locations of images
    [B, *image_shape]; max abs diff."""
    glimpse_size, num_patches = sensor.glimpse_size, sensor.num_patches
    images = torch.rand(batch, *image_shape, device=device)
    locations = aligned_locations(batch, samples, image_shape[1], image_shape[2], num_patches, device)
    with torch.no_grad():
        ours = sensor(images, locations)
        peer = peer_loop_glimpses(images, locations, glimpse_size, num_patches)
        batched = peer_batched_pool_glimpses(images, locations, glimpse_size, num_patches)
    torch.testing.assert_close(ours, peer, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(batched, peer, rtol=0, atol=1e-6)
    return (ours - peer).abs().max().item()
