"""The DataModule base: both families share its checks, loaders and __str__, answer the CLI's links
before setup, and get a feature encoder handed to them instead of importing the models."""
import inspect

import pytest
import torch

import datamodules
from datamodules import ClutteredMNIST, Flickr8k, SyntheticCaptions, TranslatedMNIST, TranslatedScaledMNIST
from datamodules.base import BaseDataModule
from ram_lightning.errors import UserError
from ram_lightning.run.cli import hand_over_feature_encoder

FAMILIES = [TranslatedMNIST, TranslatedScaledMNIST, ClutteredMNIST, SyntheticCaptions, Flickr8k]


@pytest.mark.parametrize("cls", FAMILIES)
@pytest.mark.parametrize("option, value, message", [("batch_size", 0, "batch_size must be >= 1"),
                                                     ("num_workers", -1, "num_workers must be >= 0")])
def test_every_datamodule_checks_the_shared_arguments_in_the_base(cls, option, value, message):
    assert issubclass(cls, BaseDataModule)
    with pytest.raises(UserError, match=message):
        cls(**{option: value})


def test_the_shared_arguments_are_declared_once_for_the_caption_family():
    for cls in (Flickr8k, SyntheticCaptions):
        own = inspect.signature(cls.__init__).parameters
        assert "batch_size" not in own and "vocab_path" not in own and "kwargs" in own
        assert "batch_size:" not in cls.__doc__ and "batch_size:" in datamodules.CaptionDataModule.__doc__


def test_the_links_are_answered_before_setup_and_str_reads_no_data():
    mnist = ClutteredMNIST(source="rendered")
    assert (mnist.image_shape, mnist.num_classes) == ((1, 60, 60), 10) and mnist._datasets is None
    assert str(mnist) == "ClutteredMNIST(source='rendered', canvas=60x60)"
    captions = SyntheticCaptions(train_size=4, val_size=2, test_size=2, image_size=32)
    assert captions.image_shape == (3, 32, 32) and captions.vocabulary[:4] == ["<pad>", "<bos>", "<eos>", "<unk>"]
    assert captions._datasets is None and str(captions) == "SyntheticCaptions(image_size=32x32)"


def test_both_families_batch_as_the_base_docstring_says():
    images, labels = next(iter(TranslatedMNIST(source="rendered", train_size=8, val_size=4, test_size=4,
                                               canvas_size=36, batch_size=4).train_dataloader()))
    assert images.shape == (4, 1, 36, 36) and images.dtype == torch.float32 and labels.dtype == torch.int64
    batch = next(iter(SyntheticCaptions(train_size=4, val_size=2, test_size=2, image_size=32, batch_size=2).val_dataloader()))
    assert set(batch) == {"images", "captions", "lengths", "references", "image_ids"}
    assert batch["images"].shape == (2, 3, 32, 32) and batch["captions"].dtype == torch.int64
    for word in ("image_shape", "num_classes", "vocabulary", "AttentionClassifier", "AttentionCaptioner", "features"):
        assert word in datamodules.base.__doc__


def test_the_feature_cache_gets_its_encoder_handed_over(tmp_path):
    data = SyntheticCaptions(train_size=2, val_size=1, test_size=1, cache_features="cnn", feature_cache_dir=str(tmp_path))
    with pytest.raises(UserError, match="cache_features='cnn' needs the encoder"):
        data.setup()
    hand_over_feature_encoder(data)  # what the ram command does from the model side
    from ram_lightning.core.image_encoder import build_grid_encoder

    assert data.feature_encoder is build_grid_encoder
    chosen = SyntheticCaptions(cache_features="cnn", feature_encoder=len)
    hand_over_feature_encoder(chosen)  # a config's own encoder is kept
    assert chosen.feature_encoder is len
