"""The sensor's bilinear sampling operator is F.grid_sample, values and gradients, and a well-formed custom op."""
import torch
import torch.nn.functional as F

from ram_lightning.core.bilinear import bilinear_sample


def inputs():
    torch.manual_seed(0)
    images = torch.rand(2, 3, 9, 7, dtype=torch.float64, requires_grad=True)
    grid = (torch.rand(2, 4, 5, 2, dtype=torch.float64) * 2.4 - 1.2).requires_grad_(True)  # some outside the image
    return images, grid


def test_it_is_grid_sample_in_values_and_both_gradients():
    images, grid = inputs()
    ours = bilinear_sample(images, grid)
    theirs = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
    weights = torch.randn_like(ours)
    for a, b in zip(torch.autograd.grad((ours * weights).sum(), (images, grid)),
                    torch.autograd.grad((theirs * weights).sum(), (images, grid))):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert torch.autograd.gradcheck(bilinear_sample, inputs())


def test_the_custom_op_is_well_formed_for_the_compiler():
    images, grid = inputs()
    torch.library.opcheck(bilinear_sample, (images.detach(), grid.detach()))
    torch.library.opcheck(bilinear_sample, inputs())
