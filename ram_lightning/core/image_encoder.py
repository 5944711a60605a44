"""Image encoders that turn an image into a grid of feature vectors for hard attention."""
from __future__ import annotations

from typing import Sequence

from torch import Tensor, nn

from ram_lightning.errors import UserError


class ConvGridEncoder(nn.Module):
    """A small CNN trained with the model: [B, 3, H, W] -> feature grid [B, L = h*w, D].

    ``len(channels)`` blocks of (3x3 conv, batch norm, ReLU, 2x2 max-pool), so the grid is
    (H / 2^n) x (W / 2^n); a 64x64 image with three blocks gives an 8x8 grid, a 224x224 one
    with four blocks a 14x14 grid (Show-Attend-Tell's grid size).

    Args:
        in_channels: C of the images.
        channels: output channels of each block; the last is D.
    """

    def __init__(self, in_channels: int = 3, channels: Sequence[int] = (32, 64, 128)) -> None:
        super().__init__()
        if not channels:
            raise UserError("ConvGridEncoder: channels must list at least one block")
        layers, previous = [], in_channels
        for width in channels:
            layers += [nn.Conv2d(previous, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2)]
            previous = width
        self.net = nn.Sequential(*layers)
        self.feature_size = previous
        self.downsampling = 2 ** len(channels)

    def grid_shape(self, height: int, width: int) -> tuple:
        """(h, w) of the grid for an input of height x width."""
        return height // self.downsampling, width // self.downsampling

    def forward(self, images: Tensor) -> Tensor:
        """images [B, C, H, W] -> [B, h*w, D], locations in row-major order."""
        grid = self.net(images)  # [B, D, h, w]
        return grid.flatten(2).transpose(1, 2)


ENCODERS = ("cnn", "efficientnet_lite0")


def build_grid_encoder(name: str, in_channels: int = 3, channels: Sequence[int] = (32, 64, 128)) -> nn.Module:
    """A grid encoder by name: ``"cnn"`` (``ConvGridEncoder``, trained with the model) or
    ``"efficientnet_lite0"`` (frozen ImageNet EfficientNet-Lite0 from the ``pretrained`` extra,
    7x7 x 1280 for 224x224 images). Each has ``feature_size`` and ``grid_shape(h, w)``."""
    if name == "cnn":
        return ConvGridEncoder(in_channels, channels)
    if name == "efficientnet_lite0":
        if in_channels != 3:
            raise UserError(f"encoder efficientnet_lite0 reads RGB images, got {in_channels} channels")
        from .efficientnet_lite import EfficientNetLiteGrid

        return EfficientNetLiteGrid(frozen=True)
    raise UserError(f"unknown encoder {name!r}; expected one of {', '.join(ENCODERS)}")
