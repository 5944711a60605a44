"""A folder of PNG / JPEG files for ``ram predict``: listing, and fitting images to the canvas."""
from pathlib import Path

import pytest

from datamodules.predict_images import CanvasFit, ImageFolder, ResizeRGB, list_images
from ram_lightning.errors import UserError
from tests.run.test_predict import write_images


def test_an_image_is_fitted_to_the_canvas_scaled_down_only_if_larger_and_centred(tmp_path):
    paths = write_images(tmp_path / "images", [(10, 10), (72, 36)])
    small, wide = (CanvasFit((36, 36))(Path(p)) for p in paths)
    assert small.shape == wide.shape == (1, 36, 36)
    assert small.sum() == 100 and small[0, 13:23, 13:23].min() == 1  # 10x10 kept, centred
    rows = wide[0].amax(1).nonzero().flatten()
    assert (rows.min(), rows.max(), wide[0].amax(0).min()) == (9, 26, 1)  # 72x36 -> 36x18, centred
    assert ResizeRGB((8, 12))(Path(paths[1])).shape == (3, 8, 12)


def test_a_folder_without_images_or_that_does_not_exist_is_one_clear_error(tmp_path):
    with pytest.raises(UserError, match="no such folder"):
        list_images(tmp_path / "missing")
    with pytest.raises(UserError, match="no PNG or JPEG files"):
        list_images(tmp_path)


def test_items_name_their_file(tmp_path):
    paths = write_images(tmp_path / "images", [(5, 5)])
    item = ImageFolder(tmp_path / "images", CanvasFit((8, 8)))[0]
    assert item["image"] == paths[0] and item["images"].shape == (1, 8, 8)
