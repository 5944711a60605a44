"""Glimpse pictures: boxes where the sensor reads, and the callback's PNG after a tiny fit."""
from pathlib import Path
from typing import List, Optional

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from PIL import Image
from pytorch_lightning.loggers import CSVLogger

from datamodules import TranslatedMNIST
from ram_lightning import AttentionClassifier
from ram_lightning.viz.glimpses import GlimpsePictures, draw_glimpses, glimpse_colours, patch_box

BLACK = (0, 0, 0)


def tiny_model(**overrides) -> AttentionClassifier:
    """The model sizes of the tiny CLI config (tests/run/test_cli.py) on a 36x36 canvas."""
    sizes = dict(image_shape=(1, 36, 36), glimpse_size=6, num_patches=2, num_glimpses=2, hidden_size=16,
                 glimpse_hidden=16, glimpse_features=16, context_size=8, eval_samples=3)
    return AttentionClassifier(**{**sizes, **overrides})


def fit_tiny(root: Path, callbacks: List[pl.Callback], loggers: Optional[list] = None, model=None, seed: int = 1) -> pl.Trainer:
    """One epoch of 3 training and 2 validation batches of 32 rendered digits (after the sanity check)."""
    pl.seed_everything(seed, verbose=False)
    data = TranslatedMNIST(source="rendered", canvas_size=36, train_size=96, val_size=64, test_size=64, batch_size=32)
    trainer = pl.Trainer(
        max_epochs=1, accelerator="cpu", devices=1, limit_train_batches=3, limit_val_batches=2,
        enable_progress_bar=False, enable_model_summary=False, log_every_n_steps=1, default_root_dir=root,
        logger=loggers if loggers is not None else [CSVLogger(root, name="tiny")], callbacks=callbacks,
        enable_checkpointing=any(isinstance(c, pl.callbacks.ModelCheckpoint) for c in callbacks),
    )
    trainer.fit(model if model is not None else tiny_model(), datamodule=data)
    return trainer


def coloured(picture: Image.Image, x: int, y: int) -> bool:
    return picture.getpixel((x, y)) != BLACK


def test_a_glimpse_at_the_centre_is_a_box_around_the_centre():
    # 20x20 image, g=4: the patch covers pixels 8..11 (centre 10 in continuous coordinates)
    assert patch_box((0.0, 0.0), 4, (20, 20)) == (8, 8, 11, 11)
    picture = draw_glimpses(torch.zeros(1, 20, 20), torch.tensor([[0.0, 0.0]]), None, glimpse_size=4, num_patches=1, zoom=1)
    assert picture.size == (20, 20)
    red = glimpse_colours(1)[0]
    for x, y in [(8, 8), (11, 8), (8, 11), (11, 11), (8, 10), (10, 8)]:  # the box's edges
        assert picture.getpixel((x, y)) == red, (x, y)
    for x, y in [(0, 0), (19, 0), (0, 19), (4, 4), (15, 4), (4, 15)]:  # far from it
        assert picture.getpixel((x, y)) == BLACK, (x, y)


def test_patches_are_nested_twice_as_wide_and_scaled_by_the_scale_factor():
    picture = draw_glimpses(torch.zeros(1, 20, 20), torch.tensor([[0.0, 0.0]]), None, glimpse_size=4, num_patches=2, zoom=1)
    assert coloured(picture, 6, 6) and coloured(picture, 13, 13)  # the second patch: 8 pixels, 6..13
    assert not coloured(picture, 5, 5) and not coloured(picture, 14, 14)
    scaled = draw_glimpses(torch.zeros(1, 20, 20), torch.tensor([[0.0, 0.0]]), torch.tensor([2.0]), 4, 1, zoom=1)
    assert coloured(scaled, 6, 6) and coloured(scaled, 13, 13) and not coloured(scaled, 5, 5)
    zoomed = draw_glimpses(torch.zeros(1, 20, 20), torch.tensor([[0.0, 0.0]]), None, 4, 1, zoom=3)
    assert zoomed.size == (60, 60) and coloured(zoomed, 24, 24) and coloured(zoomed, 35, 35) and not coloured(zoomed, 22, 22)


def test_the_top_left_corner_location_and_the_caption():
    image = torch.zeros(1, 20, 20)
    image[:, 15:, 15:] = 1.0  # a white square far from the glimpse stays white
    picture = draw_glimpses(image, torch.tensor([[-1.0, -1.0], [0.5, -0.5]]), None, 4, 1, predicted=3, target=5, zoom=1)
    assert picture.height > 20 and picture.width == 20  # a caption strip below the image
    assert picture.getpixel((1, 1)) == glimpse_colours(2)[0]  # box 0: pixels -2..1, its corner 1,1 inside
    assert picture.getpixel((19, 19)) == (255, 255, 255)


@pytest.mark.slow
def test_the_callback_writes_a_png_after_a_tiny_fit_and_leaves_training_unchanged(tmp_path):
    pictures = GlimpsePictures(num_images=4, every_n_epochs=1)
    trainer = fit_tiny(tmp_path / "with", [pictures])
    path = Path(trainer.log_dir) / "glimpses" / "epoch_000.png"
    assert path.is_file() and pictures.last_path == str(path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["epoch_000.png"]  # not drawn in the sanity check
    with Image.open(path) as image:
        assert image.width == 4 * 36 * 3 + 5 * 4  # 4 images 3x enlarged, 4-pixel gaps
        pixels = np.asarray(image.convert("RGB"))
    assert len({tuple(p) for p in pixels.reshape(-1, 3)[::7]}) > 10  # boxes in several colours, not blank
    without = fit_tiny(tmp_path / "without", [])
    for (name, a), b in zip(trainer.lightning_module.state_dict().items(), without.lightning_module.state_dict().values()):
        assert torch.equal(a, b), name  # the pictures' rollout used its own random stream


class PlainClassifier(pl.LightningModule):
    """No attention core: the callback must step aside."""

    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Linear(36 * 36, 10)

    def training_step(self, batch, batch_idx):
        images, targets = batch
        return torch.nn.functional.cross_entropy(self.net(images.flatten(1)), targets)

    def validation_step(self, batch, batch_idx):
        self.training_step(batch, batch_idx)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


@pytest.mark.slow
def test_a_module_without_an_attention_core_is_skipped_with_one_warning(tmp_path, recwarn):
    trainer = fit_tiny(tmp_path, [GlimpsePictures(num_images=2)], model=PlainClassifier())
    messages = [str(w.message) for w in recwarn if "GlimpsePictures" in str(w.message)]
    assert len(messages) == 1 and "PlainClassifier has no attention `core` and `head`" in messages[0]
    assert not (Path(trainer.log_dir) / "glimpses").exists()


def test_caption_attention_panel_outlines_the_attended_cell():
    from ram_lightning.viz.captions import HIGHLIGHT, draw_caption_attention

    image = torch.zeros(3, 8, 8)  # a 2x2 grid of 4x4 cells, drawn at zoom 1
    row = draw_caption_attention(image, ["red", "circle"], [(0, 0), (1, 1)], (2, 2), zoom=1)
    assert row.size == (3 * 10, 8 + 20)  # the word strip
    first, second = 10, 20  # panels start after the plain image (8 px + 2 px gap)
    assert row.getpixel((first + 0, 0)) == HIGHLIGHT and row.getpixel((first + 3, 3)) == HIGHLIGHT
    assert row.getpixel((first + 6, 6)) != HIGHLIGHT  # the other cells are not outlined
    assert row.getpixel((second + 4, 4)) == HIGHLIGHT and row.getpixel((second + 7, 7)) == HIGHLIGHT
    assert row.getpixel((second + 1, 1)) != HIGHLIGHT


def _ink(picture, box):
    """The colours in a region of a picture, black left out."""
    return {picture.getpixel((x, y)) for x in range(box[0], box[2]) for y in range(box[1], box[3])} - {(0, 0, 0)}


def test_caption_rows_label_the_image_and_show_the_reference():
    from ram_lightning.viz.captions import draw_caption_attention

    image = torch.zeros(3, 32, 32)
    plain = draw_caption_attention(image, ["red"], [(0, 0)], (2, 2), zoom=2)
    row = draw_caption_attention(image, ["red"], [(0, 0)], (2, 2), zoom=2, reference=["a", "red", "circle"])
    assert row.height == plain.height + 20  # one more line: the reference caption
    assert _ink(plain, (0, 64, 60, plain.height)) - {(255, 255, 255)}  # "image" under the first column
    assert (0, 0, 160) in _ink(row, (0, plain.height, row.width, row.height))  # the reference, in blue


def test_glimpse_boxes_stay_in_their_panel_and_numbers_are_legible():
    from ram_lightning.viz.glimpses import clip_box, label_font_size

    assert clip_box((-5, -5, 10, 10), (20, 20)) == (0, 0, 10, 10)
    assert clip_box((15, 15, 40, 40), (20, 20)) == (15, 15, 19, 19) and clip_box((25, 0, 30, 5), (20, 20)) is None
    assert label_font_size(3) >= 14
    # the widest patch of a glimpse at the bottom-right corner, on a 20x20 image, zoom 3
    picture = draw_glimpses(torch.zeros(1, 20, 20), torch.tensor([[1.0, 1.0]]), None, 4, 3, predicted=1, target=1, zoom=3)
    red, dim_red = glimpse_colours(1)[0], tuple(round(0.65 * c) for c in glimpse_colours(1)[0])
    assert {red, dim_red} & _ink(picture, (0, 59, 60, 60))  # the boxes are closed at the image's last row
    assert not {red, dim_red} & _ink(picture, (0, 60, 60, picture.height))  # and never run into the class line
    assert picture.getpixel((59, 0)) == (0, 0, 0) and picture.getpixel((59, 40)) == dim_red  # clipped, not wrapped
