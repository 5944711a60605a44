"""The offline fallback (datamodules/rendered_digits.py): MNIST-like digits, deterministic by seed."""
import time

import pytest
import torch

from datamodules import render_digits


def test_render_digits_shapes_and_determinism():
    images, labels = render_digits(20, seed=3)
    assert images.shape == (200, 28, 28) and images.dtype == torch.uint8
    assert labels.shape == (200,) and labels.dtype == torch.int64
    assert torch.bincount(labels, minlength=10).tolist() == [20] * 10
    again_images, again_labels = render_digits(20, seed=3)
    assert torch.equal(images, again_images) and torch.equal(labels, again_labels)
    other, _ = render_digits(20, seed=4)
    assert not torch.equal(images, other)


def test_rendered_digits_look_like_mnist():
    images, _ = render_digits(30, seed=0)
    ink = images.float()
    assert int(images.max()) == 255
    assert (ink.flatten(1).amax(1) > 128).all()  # no blank images
    rows = torch.arange(28.0)
    mass = ink.sum((1, 2))
    centre_y = (ink.sum(2) * rows).sum(1) / mass
    centre_x = (ink.sum(1) * rows).sum(1) / mass
    assert (centre_y - 13.5).abs().max() < 3 and (centre_x - 13.5).abs().max() < 3
    assert ink[:, :2].sum() < 0.01 * ink.sum()  # a margin, as in MNIST's 20x20 box in 28x28


@pytest.mark.slow
def test_render_digits_full_size_is_fast():
    start = time.perf_counter()
    images, labels = render_digits(7000, seed=0)
    assert images.shape == (70000, 28, 28)
    assert time.perf_counter() - start < 15
