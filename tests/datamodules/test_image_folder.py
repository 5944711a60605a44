"""A folder of images (datamodules/image_folder.py): JpegLoader; check_image is exercised on a
Flickr8k layout in test_flickr8k.py."""
import pytest
import torch
from PIL import Image

from datamodules.image_folder import JpegLoader
from ram_lightning.errors import DataError


def test_jpeg_loader_resizes_to_float_rgb(tmp_path):
    Image.new("L", (40, 30), 128).save(tmp_path / "grey.jpg")
    image = JpegLoader(tmp_path, (12, 20))("grey.jpg")
    assert image.shape == (3, 12, 20) and image.dtype == torch.float32
    assert torch.allclose(image, torch.full_like(image, 128 / 255), atol=2 / 255)
    with pytest.raises(DataError, match="cannot read image"):
        JpegLoader(tmp_path, (12, 20))("absent.jpg")
