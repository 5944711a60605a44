"""The retina: exact crops, zeros outside, no dependence on batch position, any shape."""
import torch
import torch.nn.functional as F

from ram_lightning.core import GlimpseNetwork, GlimpseSensor


def location_of_crop(top: int, left: int, size: int, height: int, width: int) -> torch.Tensor:
    """(x, y) in [-1, 1] whose size x size patch starts at pixel (top, left)."""
    centre_x, centre_y = left + (size - 1) / 2, top + (size - 1) / 2
    return torch.tensor([(2 * centre_x + 1) / width - 1, (2 * centre_y + 1) / height - 1])


def test_first_patch_is_the_plain_crop_at_pixel_aligned_positions():
    torch.manual_seed(0)
    images = torch.rand(3, 2, 30, 41)  # two channels, not square
    sensor = GlimpseSensor(glimpse_size=6, num_patches=3)
    corners = [(0, 0), (7, 13), (24, 35)]
    locations = torch.stack([location_of_crop(t, l, 6, 30, 41) for t, l in corners]).view(3, 1, 2)
    patches = sensor(images, locations)  # [3, 1, 3, 2, 6, 6]
    for row, (top, left) in enumerate(corners):
        torch.testing.assert_close(patches[row, 0, 0], images[row, :, top:top + 6, left:left + 6])


def test_wider_patches_are_area_averages_of_the_crop():
    torch.manual_seed(1)
    images = torch.rand(1, 1, 32, 32)
    sensor = GlimpseSensor(glimpse_size=4, num_patches=3)
    location = location_of_crop(8, 8, 16, 32, 32).view(1, 1, 2)  # centre of a 16x16 crop at (8, 8)
    patches = sensor(images, location)
    expected_second = F.avg_pool2d(images[:, :, 12:20, 12:20], 2)[0]
    expected_third = F.avg_pool2d(images[:, :, 8:24, 8:24], 4)[0]
    torch.testing.assert_close(patches[0, 0, 1], expected_second)
    torch.testing.assert_close(patches[0, 0, 2], expected_third)


def test_patch_half_outside_the_image_reads_zeros_there():
    images = torch.ones(1, 1, 20, 20)
    sensor = GlimpseSensor(glimpse_size=8, num_patches=1)
    location = location_of_crop(0, -4, 8, 20, 20).view(1, 1, 2)  # left half outside
    patch = sensor(images, location)[0, 0, 0, 0]
    torch.testing.assert_close(patch[:, :4], torch.zeros(8, 4), atol=1e-5, rtol=0)
    torch.testing.assert_close(patch[:, 4:], torch.ones(8, 4))


def test_result_does_not_depend_on_the_row_position_in_the_batch():
    torch.manual_seed(2)
    images = torch.rand(5, 3, 28, 36)
    locations = torch.rand(5, 4, 2) * 2.4 - 1.2
    scales = torch.rand(5, 4) + 0.5
    sensor = GlimpseSensor(glimpse_size=5, num_patches=2)
    full = sensor(images, locations, scales)
    perm = torch.tensor([3, 0, 4, 1, 2])
    permuted = sensor(images[perm], locations[perm], scales[perm])
    torch.testing.assert_close(permuted, full[perm])
    alone = sensor(images[2:3], locations[2:3, 1:2], scales[2:3, 1:2])
    torch.testing.assert_close(alone[0, 0], full[2, 1])


def test_scale_factor_widens_the_patch():
    images = torch.arange(64.0).view(1, 1, 8, 8)
    sensor = GlimpseSensor(glimpse_size=2, num_patches=1)
    centre = torch.zeros(1, 1, 2)
    narrow = sensor(images, centre, torch.ones(1, 1))[0, 0, 0, 0]
    wide = sensor(images, centre, torch.full((1, 1), 2.0))[0, 0, 0, 0]
    torch.testing.assert_close(narrow, images[0, 0, 3:5, 3:5])
    # samples 2 pixels apart, at pixel coordinates 2.5 and 4.5; the image is linear: value = 8 * y + x
    torch.testing.assert_close(wide, torch.tensor([[22.5, 24.5], [38.5, 40.5]]))


def test_glimpse_network_output_shape():
    network = GlimpseNetwork(patch_features=2 * 3 * 25, where_features=2, what_hidden=16, where_hidden=16, output_size=32)
    out = network(torch.rand(7, 150), torch.rand(7, 2))
    assert out.shape == (7, 32) and torch.all(out >= 0)


def smooth_images(batch: int, channels: int, height: int, width: int) -> torch.Tensor:
    """float64 images that are sums of wide Gaussian blobs (smooth, so that a bilinear sensor's
    derivative barely changes across pixel boundaries)."""
    generator = torch.Generator().manual_seed(5)
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64), indexing="ij")
    images = torch.zeros(batch, channels, height, width, dtype=torch.float64)
    for _ in range(4):
        size = torch.tensor([height, width], dtype=torch.float64).view(2, 1, 1)
        centre = torch.rand(batch, channels, 2, 1, 1, generator=generator, dtype=torch.float64) * size
        width_px = 3 + 4 * torch.rand(batch, channels, 1, 1, generator=generator, dtype=torch.float64)
        images += torch.exp(-((ys - centre[:, :, 0]) ** 2 + (xs - centre[:, :, 1]) ** 2) / (2 * width_px ** 2))
    return images


def test_the_location_gradient_of_the_log_likelihood_matches_finite_differences():
    """d log p(y | a, I) / d a through the sensor (bilinear, zero padding, the pyramid, scales),
    including locations partly outside the image: no detach or rounding blocks it."""
    torch.manual_seed(7)
    images = smooth_images(3, 2, 30, 26)
    sensor = GlimpseSensor(glimpse_size=5, num_patches=3)
    readout = torch.randn(4, sensor.output_size * 2, dtype=torch.float64) / 10  # patches -> 4 class logits
    locations = torch.rand(3, 2, 2, dtype=torch.float64) * 2 - 1  # [B, K, 2]
    locations[0, 0] = torch.tensor([1.1, -1.05])  # centred beyond the corner: the patch is partly outside
    scales = torch.tensor([[0.5, 1.0], [1.0, 2.0], [2.0, 0.5]], dtype=torch.float64)
    targets = torch.tensor([0, 3, 1])

    def log_likelihood(locations):
        patches = sensor(images, locations, scales).flatten(2)  # [B, K, P*C*g*g]
        return (patches @ readout.T).log_softmax(-1).gather(-1, targets[:, None, None].expand(-1, 2, 1)).sum()

    locations.requires_grad_(True)
    (gradient,) = torch.autograd.grad(log_likelihood(locations), locations)
    step = 1e-6
    numeric = torch.zeros_like(gradient)
    with torch.no_grad():
        for index in range(locations.numel()):
            shift = torch.zeros(locations.numel(), dtype=torch.float64)
            shift[index] = step
            shift = shift.view_as(locations)
            numeric.view(-1)[index] = (log_likelihood(locations + shift) - log_likelihood(locations - shift)) / (2 * step)
    assert numeric.abs().min() > 1e-4  # every location moves the likelihood
    torch.testing.assert_close(gradient, numeric, rtol=1e-5, atol=1e-8)
