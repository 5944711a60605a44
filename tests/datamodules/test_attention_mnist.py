"""Translated / scaled / cluttered canvases and the AttentionMNIST data modules."""
import inspect
import logging
import urllib.error
import urllib.request

import pytest
import torch
from torch.utils.data import DataLoader, RandomSampler

import datamodules.attention_mnist as attention_mnist
from datamodules import (
    AttentionMNIST,
    CanvasDataset,
    ClutteredMNIST,
    TranslatedMNIST,
    TranslatedScaledMNIST,
    render_digits,
)
from datamodules.canvas import resize_digit
from ram_lightning.errors import DataError, UserError


# --------------------------------------------------------------------------- helpers


def _blocks(n: int, value: int = 255) -> torch.Tensor:
    """n digits that are solid 28x28 squares: uint8 [n, 28, 28]."""
    return torch.full((n, 28, 28), value, dtype=torch.uint8)


def _box(image: torch.Tensor) -> tuple[int, int, int, int]:
    """(top, left, height, width) of the non-zero pixels of image [1, H, W]."""
    rows = image[0].sum(1).nonzero().flatten()
    cols = image[0].sum(0).nonzero().flatten()
    return int(rows[0]), int(cols[0]), int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)


def _labelled(n: int) -> torch.Tensor:
    return torch.arange(n) % 10


@pytest.fixture(scope="module")
def digits():
    images, labels = render_digits(4, seed=0)  # 40 digits
    return images, labels


@pytest.fixture
def announced(monkeypatch):
    """Collects what the data module prints via rank_zero_info."""
    messages = []
    monkeypatch.setattr(attention_mnist, "rank_zero_info", messages.append)
    return messages


def _no_network(url, timeout=None):
    raise urllib.error.URLError("no network in tests")


# --------------------------------------------------------------------------- CanvasDataset


def test_translated_digit_fully_inside_at_uniform_positions():
    ds = CanvasDataset(_blocks(4), _labelled(4), canvas_size=(30, 31))
    offsets = set()
    for _ in range(200):
        image, label = ds[1]
        assert image.shape == (1, 30, 31) and image.dtype == torch.float32
        assert label.dtype == torch.int64 and label.dim() == 0 and int(label) == 1
        top, left, height, width = _box(image)
        assert (height, width) == (28, 28)  # nothing cut off at the edge
        assert float(image.sum()) == 28 * 28
        offsets.add((top, left))
    assert offsets == {(y, x) for y in range(3) for x in range(4)}  # every position occurs


def test_canvas_sum_equals_digit_sum(digits):
    images, labels = digits
    ds = CanvasDataset(images, labels, canvas_size=60)
    for i in range(len(ds)):
        image, label = ds[i]
        assert torch.allclose(image.sum(), images[i].float().sum() / 255, rtol=1e-5)
        assert int(label) == int(labels[i])
        assert 0 <= float(image.min()) and float(image.max()) <= 1


def test_scaled_canvas_sum_equals_resized_digit_sum(digits):
    images, labels = digits
    ds = CanvasDataset(images, labels, canvas_size=60, scale_range=(0.7, 0.7))
    for i in range(10):
        resized = resize_digit(images[i].float() / 255, 0.7)
        assert resized.shape == (20, 20)
        assert torch.allclose(ds[i][0].sum(), resized.sum(), rtol=1e-4)


def test_scales_vary_within_range_and_stay_inside():
    ds = CanvasDataset(_blocks(2), _labelled(2), canvas_size=42, scale_range=(0.5, 1.5))
    sizes = []
    for _ in range(100):
        image, _ = ds[0]
        top, left, height, width = _box(image)
        assert height == width and 14 <= height <= 42
        assert top + height <= 42 and left + width <= 42
        sizes.append(height)
    assert min(sizes) < 20 and max(sizes) > 36


def test_fixed_seed_items_identical_across_calls_and_worker_counts(digits):
    images, labels = digits
    ds = CanvasDataset(images[:16], labels[:16], 60, (0.8, 1.2), 2, 8, fixed_seed=7)
    assert torch.equal(ds[3][0], ds[3][0])
    assert not torch.equal(ds[3][0], ds[4][0])
    serial = torch.cat([x for x, _ in DataLoader(ds, batch_size=4)])
    parallel = torch.cat([x for x, _ in DataLoader(ds, batch_size=4, num_workers=2)])
    assert torch.equal(serial, parallel)
    other_seed = CanvasDataset(images[:16], labels[:16], 60, (0.8, 1.2), 2, 8, fixed_seed=8)
    assert not torch.equal(ds[3][0], other_seed[3][0])


def test_training_items_differ_between_epochs(digits):
    images, labels = digits
    ds = CanvasDataset(images[:8], labels[:8], canvas_size=60)
    loader = DataLoader(ds, batch_size=8)
    first, second = next(iter(loader))[0], next(iter(loader))[0]
    assert not torch.equal(first, second)
    assert sum(not torch.equal(a, b) for a, b in zip(first, second)) >= 6


def test_dataloader_workers_draw_distinct_placements():
    # One repeated digit: any difference between items comes from the placement alone.
    ds = CanvasDataset(_blocks(8), torch.zeros(8), canvas_size=60)
    loader = DataLoader(ds, batch_size=1, num_workers=2)  # worker 0: items 0,2,4,6; 1: 1,3,5,7
    boxes = [_box(x[0])[:2] for x, _ in loader]
    assert boxes[0::2] != boxes[1::2]
    assert len(set(boxes)) >= 6


def test_clutter_comes_from_other_digits_and_is_clipped():
    # Digit 0 is blank, digit 1 is solid: 0's clutter must be pieces of 1, and vice versa.
    pool = torch.stack([_blocks(1, 0)[0], _blocks(1)[0]])
    ds = CanvasDataset(pool, torch.tensor([0, 1]), 60, None, 3, 8, fixed_seed=0)
    blank_with_clutter, _ = ds[0]
    assert 64 <= int((blank_with_clutter > 0).sum()) <= 3 * 64
    assert set(blank_with_clutter.unique().tolist()) == {0.0, 1.0}  # 2 overlapping pieces: clipped
    block_with_blank_clutter, _ = ds[1]
    assert float(block_with_blank_clutter.sum()) == 28 * 28


def test_cluttered_canvas_in_unit_range_with_more_ink(digits):
    images, labels = digits
    cluttered = CanvasDataset(images, labels, 60, None, 8, 8, fixed_seed=1)
    extra = 0.0
    for i in range(len(images)):
        image, _ = cluttered[i]
        assert float(image.min()) >= 0 and float(image.max()) <= 1
        extra += float(image.sum()) - float(images[i].float().sum() / 255)
    assert extra > 0.5 * len(images)  # on average over half a digit's worth of clutter ink


def test_cluttered_keeps_the_digit_itself():
    # Solid digit + clutter: every digit pixel is still 1 after clipping.
    ds = CanvasDataset(_blocks(5), _labelled(5), 60, None, 4, 8, fixed_seed=3)
    for i in range(5):
        image, _ = ds[i]
        assert int((image == 1).sum()) >= 28 * 28
        assert float(image.max()) == 1.0


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(canvas_size=20), "canvas_size"),
        (dict(canvas_size=(60,)), "canvas_size"),
        (dict(canvas_size=40, scale_range=(0.5, 1.5)), "canvas_size"),
        (dict(scale_range=(1.5, 0.5)), "scale_range"),
        (dict(scale_range=(0.0, 1.0)), "scale_range"),
        (dict(num_distractors=-1), "num_distractors"),
        (dict(distractor_size=0), "distractor_size"),
        (dict(distractor_size=29), "distractor_size"),
    ],
)
def test_canvas_dataset_rejects_bad_geometry(kwargs, name):
    args = dict(canvas_size=60) | kwargs
    with pytest.raises(UserError, match=name):
        CanvasDataset(_blocks(2), _labelled(2), **args)


# --------------------------------------------------------------------------- data modules


def test_rendered_source_needs_no_data_dir(monkeypatch, tmp_path, announced):
    monkeypatch.setenv("RAM_DATA_DIR", str(tmp_path / "nowhere"))
    monkeypatch.setattr(urllib.request, "urlopen", _no_network)
    dm = TranslatedMNIST(source="rendered", train_size=64, test_size=32, val_size=16,
                         batch_size=16)
    dm.prepare_data()
    dm.setup("fit")
    images, labels = next(iter(dm.train_dataloader()))
    assert images.shape == (16, 1, 60, 60) and labels.shape == (16,)
    assert [len(dm.dataset(s)) for s in ("train", "val", "test")] == [64, 16, 32]
    assert len(announced) == 1 and "RENDERED" in announced[0]
    assert not (tmp_path / "nowhere").exists()


def test_real_mnist_splits(mnist_dir, announced):
    dm = TranslatedMNIST(data_dir=str(mnist_dir), source="mnist", download=False)
    dm.setup("fit")
    dm.setup("test")  # idempotent: loaded and announced once
    assert [len(dm.dataset(s)) for s in ("train", "val", "test")] == [55000, 5000, 10000]
    assert dm.image_shape == (1, 60, 60) and dm.num_classes == 10
    assert len(announced) == 1
    assert announced[0].startswith(f"Data: real MNIST from {mnist_dir} (55000 train / 5000 val")
    val_images, _ = next(iter(dm.val_dataloader()))
    again = TranslatedMNIST(data_dir=str(mnist_dir), source="mnist", download=False)
    assert torch.equal(val_images, next(iter(again.val_dataloader()))[0])  # fixed by the seed
    test_images, _ = next(iter(dm.test_dataloader()))
    assert test_images.shape == (128, 1, 60, 60)


def test_split_is_disjoint_and_fixed_by_seed(monkeypatch):
    # A fake pool whose images carry their own index in two pixels.
    index = torch.arange(60000)
    train = torch.zeros(60000, 28, 28, dtype=torch.uint8)
    train[:, 0, 0], train[:, 0, 1] = index % 256, index // 256
    pool = {"train_images": train, "train_labels": index % 10,
            "test_images": _blocks(10000), "test_labels": torch.arange(10000) % 10}

    def ids(dm, split):
        digits = dm.dataset(split).digits.long()
        return set((digits[:, 0, 0] + 256 * digits[:, 0, 1]).tolist())

    monkeypatch.setattr(attention_mnist, "rendered_pool", lambda: pool)
    monkeypatch.setattr(attention_mnist, "rank_zero_info", lambda message: None)
    dm = AttentionMNIST(source="rendered", val_size=5000)
    train, val = ids(dm, "train"), ids(dm, "val")
    assert len(val) == 5000 and len(train) == 55000 and not train & val
    assert ids(AttentionMNIST(source="rendered", val_size=5000), "val") == val
    assert ids(AttentionMNIST(source="rendered", val_size=5000, seed=1), "val") != val
    short = AttentionMNIST(source="rendered", val_size=5000, train_size=100, test_size=10)
    assert len(ids(short, "train") & train) == 100 and len(short.dataset("test")) == 10
    assert ids(short, "val") == val  # truncating train leaves validation alone


def test_auto_falls_back_to_rendered_loudly(monkeypatch, tmp_path, announced, caplog):
    monkeypatch.setattr(urllib.request, "urlopen", _no_network)
    dm = ClutteredMNIST(data_dir=str(tmp_path / "empty"), source="auto", train_size=32)
    with caplog.at_level(logging.INFO, logger="datamodules"):
        dm.prepare_data()
    assert "no network in tests" in caplog.text  # the full download errors go to the log
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="datamodules"):
        dm.setup("fit")
    (line,) = [r.getMessage() for r in caplog.records]  # said once, in one short line
    assert "\n" not in line and len(line.replace(str(tmp_path / "empty"), "./data/mnist")) <= 200
    assert line.startswith(f"MNIST not found in {tmp_path / 'empty'} (download failed); using RENDERED digits")
    assert "python -m datamodules.mnist_download" in line and "RAM_DATA_DIR" in line
    assert "no network" not in line and "no network" not in announced[0]
    assert announced[0].startswith("Data: RENDERED digits (synthetic fallback, not comparable to published MNIST results)")
    offline = TranslatedMNIST(data_dir=str(tmp_path / "empty"), download=False, train_size=32)
    caplog.clear()
    offline.setup()
    assert "(download=False); using RENDERED digits" in caplog.text


def test_the_download_command_shows_the_full_errors(monkeypatch, tmp_path, capsys):
    from datamodules.mnist_download import main

    monkeypatch.setattr(urllib.request, "urlopen", _no_network)
    assert main([str(tmp_path / "m")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: could not download") and "no network in tests" in err


def test_auto_uses_real_mnist_when_present(mnist_dir, announced):
    dm = TranslatedMNIST(data_dir=str(mnist_dir), source="auto", train_size=32, test_size=32)
    dm.setup()
    assert announced[0].startswith("Data: real MNIST")


def test_mnist_source_without_data_is_an_error(monkeypatch, tmp_path):
    dm = TranslatedMNIST(data_dir=str(tmp_path / "missing"), source="mnist", download=False)
    with pytest.raises(DataError, match="does not exist"):
        dm.setup()
    monkeypatch.setattr(urllib.request, "urlopen", _no_network)
    dm = TranslatedMNIST(data_dir=str(tmp_path / "missing"), source="mnist", download=True)
    with pytest.raises(DataError, match="could not download"):
        dm.prepare_data()


def test_dataloader_settings(monkeypatch):
    monkeypatch.setattr(attention_mnist, "rank_zero_info", lambda message: None)
    dm = TranslatedMNIST(source="rendered", train_size=64, test_size=64, num_workers=2,
                         batch_size=8)
    train, val = dm.train_dataloader(), dm.val_dataloader()
    assert isinstance(train.sampler, RandomSampler)
    assert not isinstance(val.sampler, RandomSampler)
    assert train.persistent_workers and train.num_workers == 2 and train.batch_size == 8
    assert dm.dataset("train").fixed_seed is None
    assert dm.dataset("val").fixed_seed != dm.dataset("test").fixed_seed
    assert not TranslatedMNIST(source="rendered").train_dataloader().persistent_workers


def test_subclass_defaults():
    assert TranslatedMNIST().image_shape == (1, 60, 60)
    assert TranslatedMNIST().scale_range is None and TranslatedMNIST().num_distractors == 0
    assert TranslatedScaledMNIST().scale_range == (0.5, 1.5)
    assert ClutteredMNIST().num_distractors == 4 and ClutteredMNIST().distractor_size == 8
    big = ClutteredMNIST(canvas_size=100, num_distractors=8)
    assert big.image_shape == (1, 100, 100) and big.num_distractors == 8
    assert AttentionMNIST(canvas_size=(40, 70)).image_shape == (1, 40, 70)


@pytest.mark.parametrize("cls, changed", [
    (TranslatedMNIST, {}),
    (TranslatedScaledMNIST, {"scale_range": (0.5, 1.5)}),
    (ClutteredMNIST, {"num_distractors": 4}),
])
def test_subclasses_forward_kwargs_and_the_cli_shows_every_argument(cls, changed):
    """The subclasses declare only the defaults they change; the CLI's parser (jsonargparse, which
    follows ``**kwargs`` into the base class) still lists every argument, typed, with its help."""
    from jsonargparse import ArgumentParser

    base = {n: p for n, p in inspect.signature(AttentionMNIST.__init__).parameters.items() if n != "self"}
    init = vars(cls).get("__init__")  # None: inherited unchanged
    own = [] if init is None else [n for n in inspect.signature(init).parameters if n not in ("self", "kwargs")]
    assert sorted(own) == sorted(changed)
    parser = ArgumentParser()
    parser.add_class_arguments(cls, "data")
    defaults = parser.get_defaults().data
    assert sorted(vars(defaults)) == sorted(base)
    for name, param in base.items():
        expected = changed.get(name, param.default)
        assert getattr(defaults, name) == expected, name
    help_text = parser.format_help()
    assert "num_distractors" in help_text and "clutter crops of other digits" in help_text
    assert "num_distractors:" in cls.__doc__


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(source="imagenet"), "source"),
        (dict(canvas_size=27), "canvas_size"),
        (dict(canvas_size=40, scale_range=(0.5, 1.5)), "canvas_size"),
        (dict(scale_range=(2.0, 1.0)), "scale_range"),
        (dict(num_distractors=-1), "num_distractors"),
        (dict(distractor_size=40), "distractor_size"),
        (dict(val_size=60000), "val_size"),
        (dict(val_size=-1), "val_size"),
        (dict(train_size=0), "train_size"),
        (dict(train_size=55001), "train_size"),
        (dict(test_size=10001), "test_size"),
        (dict(batch_size=0), "batch_size"),
        (dict(num_workers=-1), "num_workers"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, name):
    with pytest.raises(UserError, match=name):
        AttentionMNIST(**kwargs)
