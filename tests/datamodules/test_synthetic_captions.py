"""SyntheticCaptions: scenes, captions, rendering, seeds and the batch interface."""
import numpy as np
import pytest
import torch

import datamodules.captions as captions_module
from datamodules import SyntheticCaptions, Vocabulary
from datamodules.synthetic_captions import (
    COLOURS,
    SceneRenderer,
    Shape,
    position_name,
    random_scene,
    scene_captions,
)
from ram_lightning.errors import UserError


def _shape(row, col, shape="circle", colour="red", size=0.8, dy=0.0, dx=0.0):
    return Shape(row, col, shape, colour, size, dy, dx, (0, 0, 0))


def test_captions_name_every_shape_and_position():
    scene = (_shape(1, 1, "square", "blue"), _shape(0, 0))
    assert scene_captions(scene, grid=2) == [
        "a red circle at the top left and a blue square at the bottom right",
        "there is a red circle in the top left and a blue square in the bottom right",
        "a blue square is at the bottom right and a red circle is at the top left",
        "the top left has a red circle and the bottom right has a blue square",
        "a picture of a red circle in the top left and a blue square in the bottom right",
    ]
    single = scene_captions((_shape(0, 1, "triangle", "green"),), grid=2)
    assert len(set(single)) == 5  # five different references even for one shape
    assert [position_name(r, c, 3) for r in range(3) for c in range(3)] == [
        "top left", "top center", "top right", "middle left", "center", "middle right",
        "bottom left", "bottom center", "bottom right"]


def test_random_scene_distinct_cells():
    rng = np.random.default_rng(0)
    for _ in range(50):
        scene = random_scene(rng, grid=3, num_objects=(2, 4))
        cells = [(s.row, s.col) for s in scene]
        assert 2 <= len(scene) <= 4 and len(set(cells)) == len(cells) and cells == sorted(cells)


def test_renderer_draws_each_shape_in_its_cell():
    render = SceneRenderer((64, 64), grid=2)
    image = render((_shape(0, 0, "circle", "red"), _shape(1, 1, "square", "blue")))
    assert image.shape == (3, 64, 64) and image.dtype == torch.float32
    assert 0 <= image.min() and image.max() <= 1
    top_left, bottom_right = image[:, :32, :32], image[:, 32:, 32:]
    assert image[:, :32, 32:].sum() == 0 and image[:, 32:, :32].sum() == 0  # empty cells
    assert top_left[0].sum() > 5 * top_left[2].sum()  # red
    assert bottom_right[2].sum() > 3 * bottom_right[0].sum()  # blue
    # a square fills its box, a circle about pi/4 of it, a triangle half
    areas = {kind: (render((_shape(0, 0, kind),)).sum(0) > 0).float().sum().item()
             for kind in ("square", "circle", "triangle")}
    assert areas["square"] > areas["circle"] > areas["triangle"] > 0.3 * areas["square"]
    assert set(COLOURS) == {"red", "green", "blue"}


@pytest.fixture
def announced(monkeypatch):
    messages = []
    monkeypatch.setattr(captions_module, "rank_zero_info", messages.append)
    return messages


def test_batches_match_the_caption_interface(announced):
    dm = SyntheticCaptions(train_size=40, val_size=8, test_size=6, batch_size=16, seed=3)
    dm.setup()
    assert [len(dm.dataset(s)) for s in dm.splits] == [200, 8, 6]  # train: 5 captions per image
    assert dm.image_shape == (3, 64, 64) and dm.batch_size == 16 and dm.num_workers == 0
    (info,) = announced
    assert info.startswith("Data: synthetic captions (40 train / 8 val / 6 test images")
    assert "vocabulary of" in info
    batch = next(iter(dm.train_dataloader()))
    assert set(batch) == {"images", "captions", "lengths", "references", "image_ids"}
    assert batch["images"].shape == (16, 3, 64, 64) and batch["images"].dtype == torch.float32
    assert batch["captions"].dtype == torch.long and batch["lengths"].dtype == torch.long
    assert batch["captions"].shape == (16, int(batch["lengths"].max()))
    assert (batch["captions"][:, 0] == dm.vocab.bos_id).all()
    assert len(batch["references"]) == 16 and all(len(r) == 5 for r in batch["references"])
    for row, refs in zip(batch["captions"], batch["references"]):
        assert dm.vocab.decode(row) in refs
    assert all(i.startswith("train-") for i in batch["image_ids"])
    val = next(iter(dm.val_dataloader()))
    assert val["image_ids"] == [f"val-{i:05d}" for i in range(8)]
    assert int(batch["lengths"].max()) <= dm.max_caption_length == 20  # 2 shapes, longest phrasing


def test_vocabulary_is_small_and_complete():
    dm = SyntheticCaptions(train_size=200, val_size=4, test_size=4)
    words = set(dm.vocabulary[4:])
    assert {"red", "green", "blue", "circle", "square", "triangle", "top", "bottom", "left", "right"} <= words
    assert len(dm.vocabulary) == 24
    assert dm.vocab_size == 24
    three = SyntheticCaptions(train_size=200, val_size=4, test_size=4, grid=3, num_objects=(1, 3))
    assert {"middle", "center"} <= set(three.vocabulary)


def test_splits_fixed_by_seed_and_distinct():
    def ids_and_captions(seed):
        dm = SyntheticCaptions(train_size=20, val_size=10, test_size=10, seed=seed)
        return {s: [caps for _, _, caps in dm.samples(s)] for s in dm.splits}

    first, again, other = ids_and_captions(0), ids_and_captions(0), ids_and_captions(1)
    assert first == again and first != other
    assert first["val"] != first["test"] != first["train"][:10]
    dm = SyntheticCaptions(train_size=4, val_size=2, test_size=2)
    dm.setup()
    assert torch.equal(dm.dataset("val")[1]["image"], dm.dataset("val")[1]["image"])


def test_vocab_path_round_trip(tmp_path):
    path = tmp_path / "vocab.json"
    dm = SyntheticCaptions(train_size=20, val_size=2, test_size=2, vocab_path=str(path))
    dm.setup()
    assert Vocabulary.load(path) == dm.vocab


def test_argument_checks():
    with pytest.raises(UserError, match="grid"):
        SyntheticCaptions(grid=4)
    with pytest.raises(UserError, match="num_objects"):
        SyntheticCaptions(num_objects=(1, 5))
    with pytest.raises(UserError, match="train_size"):
        SyntheticCaptions(train_size=0)
    with pytest.raises(UserError, match="too small"):
        SyntheticCaptions(image_size=6)
