"""Bilinear sampling with zero padding as one opaque operator, for the compiled step too.

``torch.compile`` (inductor) decomposes ``F.grid_sample`` into generated gather code, which on a
CPU runs about half as fast as ATen's own kernel (the sensor's 18 reads per step: 1.8 ms against
1.0 ms a glimpse at B=128, K=5, measured with ``benchmarks.throughput``'s sizes). Registered as a
custom operator, the compiled step calls ATen's kernels forward and backward, as eager does;
gradients reach both the image and the sampling grid (the glimpse locations), as ``grid_sample``'s.
"""
from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

BILINEAR, ZEROS = 0, 0  # ATen's codes for mode="bilinear" and padding_mode="zeros"


@torch.library.custom_op("ram_lightning::bilinear_sample", mutates_args=())
def bilinear_sample(images: Tensor, grid: Tensor) -> Tensor:
    """``F.grid_sample(images, grid, "bilinear", "zeros", align_corners=False)``: images [B, C, H, W],
    grid [B, H_out, W_out, 2] (x, y in [-1, 1]) -> [B, C, H_out, W_out]."""
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


@bilinear_sample.register_fake
def _(images: Tensor, grid: Tensor) -> Tensor:
    return images.new_empty(images.shape[0], images.shape[1], grid.shape[1], grid.shape[2])


def _setup_context(ctx, inputs: Tuple[Tensor, Tensor], output: Tensor) -> None:
    ctx.save_for_backward(*inputs)


def _backward(ctx, grad: Tensor) -> Tuple[Tensor, Tensor]:
    images, grid = ctx.saved_tensors
    mask = [ctx.needs_input_grad[0], ctx.needs_input_grad[1]]
    grad_images, grad_grid = torch.ops.aten.grid_sampler_2d_backward(grad, images, grid, BILINEAR, ZEROS, False, mask)
    return (grad_images if mask[0] else None), (grad_grid if mask[1] else None)


bilinear_sample.register_autograd(_backward, setup_context=_setup_context)
