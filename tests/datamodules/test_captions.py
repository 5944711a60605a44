"""The captioning DataModule base (datamodules/captions.py); its subclasses have their own tests."""
import pytest

from datamodules.captions import image_hw
from ram_lightning.errors import UserError


def test_image_hw():
    assert image_hw(32) == (32, 32) and image_hw((24, 40)) == (24, 40)
    for bad in (0, (1, 2, 3), "32", 2.5, True):
        with pytest.raises(UserError, match="image_size"):
            image_hw(bad)
