"""Multi-resolution glimpse sensor (the retina) and the glimpse network.

The sensor extracts, for every row of B*K sampled locations at once, P square patches
centred at l in [-1, 1]^2 ((-1, -1) the top-left corner of the image, (0, 0) its centre):
the first ``g * s`` pixels wide, each next one twice as wide, all resampled to g x g, zero
outside the image. ``s`` is an optional per-row scale factor (the scale action).

Patch p is read from level p of an average-pooled image pyramid with bilinear interpolation,
so a wide patch is an area average of the pixels it covers (as RAM's retina), not a sparse
subsample, and each patch costs g*g reads whatever its width. At pixel-aligned positions the
first patch is exactly the crop of the image.
"""
from __future__ import annotations

from typing import List, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def image_pyramid(images: Tensor, levels: int) -> List[Tensor]:
    """Average-pooled copies of ``images`` [B, C, H, W]; level j is [B, C, ceil(H/2^j), ceil(W/2^j)].

    The image is zero-padded on the right and bottom to a multiple of 2^(levels-1) first,
    so that level-j pixel u is exactly the mean of level-0 pixels [u*2^j, (u+1)*2^j).
    """
    factor = 2 ** (levels - 1)
    height, width = images.shape[-2:]
    pad_h, pad_w = (-height) % factor, (-width) % factor
    level = F.pad(images, (0, pad_w, 0, pad_h)) if pad_h or pad_w else images
    pyramid = [level]
    for _ in range(levels - 1):
        level = F.avg_pool2d(level, 2)
        pyramid.append(level)
    return pyramid


class GlimpseSensor(nn.Module):
    """Batched multi-resolution retina.

    Args:
        glimpse_size: g, the side of every output patch in pixels.
        num_patches: P, the number of concentric patches (each twice as wide as the last).
    """

    def __init__(self, glimpse_size: int = 12, num_patches: int = 3) -> None:
        super().__init__()
        if glimpse_size < 1 or num_patches < 1:
            raise ValueError(f"glimpse_size and num_patches must be >= 1, got {glimpse_size}, {num_patches}")
        self.glimpse_size = glimpse_size
        self.num_patches = num_patches
        offsets = torch.arange(glimpse_size, dtype=torch.float32) - (glimpse_size - 1) / 2
        self.register_buffer("offsets", offsets, persistent=False)  # [g] pixel offsets of sample centres

    @property
    def output_size(self) -> int:
        """Features per channel: P * g * g."""
        return self.num_patches * self.glimpse_size**2

    def forward(self, images: Tensor, locations: Tensor, scales: Optional[Tensor] = None) -> Tensor:
        """Extract glimpses.

        Args:
            images: [B, C, H, W].
            locations: [B, K, 2] as (x, y) in [-1, 1] (values outside read zeros).
            scales: [B, K] positive width factors, or None for 1.

        Returns:
            [B, K, P, C, g, g] patches, patch 0 the finest.
        """
        batch, channels, height, width = images.shape
        samples = locations.shape[1]
        g = self.glimpse_size
        offsets = self.offsets.to(images.dtype)
        # Centre of the glimpse in level-0 pixel coordinates (pixel j has its centre at j).
        centre_x = ((locations[..., 0] + 1) * width - 1) / 2  # [B, K]
        centre_y = ((locations[..., 1] + 1) * height - 1) / 2
        step = scales if scales is not None else torch.ones_like(centre_x)  # [B, K] pixels between samples
        patches = []
        for level, source in enumerate(image_pyramid(images, self.num_patches)):
            factor = 2**level
            level_h, level_w = source.shape[-2:]
            spacing = (step * factor)[..., None]  # [B, K, 1]
            xs = centre_x[..., None] + offsets * spacing  # [B, K, g] level-0 pixel coordinates
            ys = centre_y[..., None] + offsets * spacing
            # level-0 pixel -> level pixel -> normalised coordinate (align_corners=False)
            xs = (2 * ((xs - (factor - 1) / 2) / factor) + 1) / level_w - 1
            ys = (2 * ((ys - (factor - 1) / 2) / factor) + 1) / level_h - 1
            grid = torch.stack(torch.broadcast_tensors(xs[:, :, None, :], ys[:, :, :, None]), dim=-1)  # [B, K, g, g, 2]
            sampled = F.grid_sample(
                source, grid.reshape(batch, samples * g, g, 2), mode="bilinear", padding_mode="zeros", align_corners=False
            )  # [B, C, K*g, g]
            patches.append(sampled.view(batch, channels, samples, g, g))
        return torch.stack(patches, dim=2).permute(0, 3, 2, 1, 4, 5)  # [B, K, P, C, g, g]


class GlimpseNetwork(nn.Module):
    """g = relu(W3 relu(W1 rho) + W4 relu(W2 l)): what (patches) and where (location, scale).

    Args:
        patch_features: P * C * g * g.
        where_features: 2 (location) + S (one-hot scale, 0 without scale choice).
        what_hidden, where_hidden: sizes of the two branches.
        output_size: size of g.
    """

    def __init__(self, patch_features: int, where_features: int, what_hidden: int, where_hidden: int, output_size: int) -> None:
        super().__init__()
        self.what = nn.Linear(patch_features, what_hidden)
        self.where = nn.Linear(where_features, where_hidden)
        self.what_out = nn.Linear(what_hidden, output_size)
        self.where_out = nn.Linear(where_hidden, output_size, bias=False)

    def forward(self, patches: Tensor, where: Tensor) -> Tensor:
        """patches [R, P*C*g*g], where [R, 2+S] -> [R, output_size]."""
        what = F.relu(self.what(patches))
        where = F.relu(self.where(where))
        return F.relu(self.what_out(what) + self.where_out(where))
