"""Multi-resolution glimpse sensor (the retina) and the glimpse network.

The sensor extracts, for every row of B*K sampled locations at once, P square patches
centred at l in [-1, 1]^2 ((-1, -1) the top-left corner of the image, (0, 0) its centre):
the first ``g * s`` pixels wide, each next one twice as wide, all resampled to g x g, zero
outside the image. ``s`` is an optional per-row scale factor (the scale action).

Patch p is read from level p of an average-pooled image pyramid with bilinear interpolation,
so a wide patch is an area average of the pixels it covers (as RAM's retina), not a sparse
subsample, and each patch costs g*g reads whatever its width. At pixel-aligned positions the
first patch is exactly the crop of the image, and patch p the 2^p x 2^p average of its crop.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .bilinear import bilinear_sample


def image_pyramid(images: Tensor, levels: int) -> List[Tensor]:
    """Average-pooled copies of ``images`` [B, C, H, W]; level j is [B, C, H'/2^j, W'/2^j].

    The image is zero-padded on the right and bottom to H' x W', multiples of 2^(levels-1),
    so that level-j pixel u is exactly the mean of level-0 pixels [u*2^j, (u+1)*2^j). Each
    level is the mean of the four strided sub-grids of the last (faster than avg_pool2d on CPU).
    """
    factor = 2 ** (levels - 1)
    height, width = images.shape[-2:]
    pad_h, pad_w = (-height) % factor, (-width) % factor
    level = F.pad(images, (0, pad_w, 0, pad_h)) if pad_h or pad_w else images
    pyramid = [level]
    for _ in range(levels - 1):
        level = 0.25 * (level[..., 0::2, 0::2] + level[..., 1::2, 0::2] + level[..., 0::2, 1::2] + level[..., 1::2, 1::2])
        pyramid.append(level)
    return pyramid


class GlimpseSensor(nn.Module):
    """Batched multi-resolution retina.

    ``forward(images, locations, scales)`` extracts glimpses; a rollout that reads the same
    images N times builds the pyramid once (``pyramid``) and calls ``extract`` per glimpse.

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
        offsets = torch.arange(glimpse_size, dtype=torch.float32) - (glimpse_size - 1) / 2  # [g] sample centres
        widths = 2.0 ** torch.arange(num_patches, dtype=torch.float32)  # [P] pixels between samples at scale 1
        self.register_buffer("offsets", widths[:, None] * offsets, persistent=False)  # [P, g]

    @property
    def output_size(self) -> int:
        """Features per channel: P * g * g."""
        return self.num_patches * self.glimpse_size**2

    def pyramid(self, images: Tensor) -> List[Tensor]:
        """The P levels the patches are read from (see ``image_pyramid``)."""
        return image_pyramid(images, self.num_patches)

    def extract(self, pyramid: List[Tensor], image_size: Tuple[int, int], locations: Tensor, scales: Optional[Tensor] = None) -> Tensor:
        """Glimpses from a prebuilt pyramid.

        Args:
            pyramid: ``self.pyramid(images)``, level 0 [B, C, H', W'] (padded).
            image_size: (H, W) of the unpadded images.
            locations: [B, K, 2] as (x, y) in [-1, 1] (values outside read zeros).
            scales: [B, K] positive width factors, or None for 1.

        Returns:
            [B, K, P, C, g, g] patches, patch 0 the finest.
        """
        batch, channels, padded_h, padded_w = pyramid[0].shape
        height, width = image_size
        samples, g = locations.shape[1], self.glimpse_size
        offsets = self.offsets.to(locations.dtype)  # [P, g]
        if scales is not None:
            offsets = offsets * scales[..., None, None]  # [B, K, P, g]
        # In coordinates normalised to the padded image (align_corners=False), a level-0 pixel
        # position maps to the same value at every pyramid level: one grid serves all levels.
        centre_x = (locations[..., 0] + 1) * (width / padded_w) - 1  # [B, K]
        centre_y = (locations[..., 1] + 1) * (height / padded_h) - 1
        xs = (centre_x[..., None, None] + offsets * (2 / padded_w)).expand(batch, samples, self.num_patches, g)
        ys = (centre_y[..., None, None] + offsets * (2 / padded_h)).expand(batch, samples, self.num_patches, g)
        grid = torch.stack(torch.broadcast_tensors(xs[..., None, :], ys[..., :, None]), dim=-1)  # [B, K, P, g, g, 2]
        grid = grid.permute(2, 0, 1, 3, 4, 5)  # [P, B, K, g, g, 2]
        patches = [  # F.grid_sample(bilinear, zeros, align_corners=False), opaque to torch.compile
            bilinear_sample(level, grid[index].reshape(batch, samples * g, g, 2)) for index, level in enumerate(pyramid)
        ]  # each [B, C, K*g, g]
        return torch.stack(patches, dim=1).view(batch, self.num_patches, channels, samples, g, g).permute(0, 3, 1, 2, 4, 5)

    def forward(self, images: Tensor, locations: Tensor, scales: Optional[Tensor] = None) -> Tensor:
        """images [B, C, H, W], locations [B, K, 2], scales [B, K] or None -> [B, K, P, C, g, g]."""
        return self.extract(self.pyramid(images), images.shape[-2:], locations, scales)


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
