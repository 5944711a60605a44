"""FeatureCache: features computed once per image, keyed by encoder and size, equal to a direct
computation; corrupt files are a DataError naming the file, or recomputed with verify=True."""
import pytest
import torch
from torch import nn

from datamodules.feature_cache import FeatureCache, weights_digest
from ram_lightning.errors import DataError, UserError


class CountingEncoder(nn.Module):
    """A 4x4-stride conv as a stand-in grid encoder: [B, 3, H, W] -> [B, (H/4)*(W/4), 5]."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.conv = nn.Conv2d(3, 5, 4, stride=4)
        self.calls = 0
        self.images_seen = 0

    def forward(self, images):
        self.calls += 1
        self.images_seen += images.shape[0]
        return self.conv(images).flatten(2).transpose(1, 2)


def image_of(image_id: str, size=(8, 12)) -> torch.Tensor:
    generator = torch.Generator().manual_seed(sum(map(ord, image_id)) * 7919)
    return torch.rand(3, *size, generator=generator)


IDS = [f"img{i}.jpg" for i in range(7)]


def test_features_match_a_direct_computation_and_are_computed_once(tmp_path):
    cache, encoder = FeatureCache(tmp_path, "conv", (8, 12)), CountingEncoder()
    assert cache.fill(IDS, image_of, encoder, batch_size=3, progress=False) == 7
    assert encoder.calls == 3 and encoder.images_seen == 7  # batches of 3, 3, 1
    with torch.no_grad():
        direct = encoder(torch.stack([image_of(i) for i in IDS]))
    for image_id, expected in zip(IDS, direct):
        features = cache.get(image_id)
        assert features.shape == (6, 5)
        torch.testing.assert_close(features, expected)
    encoder.calls = encoder.images_seen = 0
    assert cache.fill(IDS, image_of, encoder, batch_size=3, progress=False) == 0
    assert encoder.calls == 0
    # a fresh cache object on the same folder sees the files too; only the new id is computed
    again = FeatureCache(tmp_path, "conv", (8, 12))
    assert again.fill(IDS + ["new.jpg", "new.jpg"], image_of, encoder, progress=False) == 1
    assert encoder.images_seen == 1


def test_saved_rows_do_not_carry_the_whole_batch(tmp_path):
    cache = FeatureCache(tmp_path, "conv", (8, 12))
    cache.fill(IDS, image_of, CountingEncoder(), batch_size=7, progress=False)
    for image_id in IDS:  # the stored storage is the row's, not the whole [7, 6, 5] batch's
        assert cache.get(image_id).untyped_storage().nbytes() == 6 * 5 * 4


def test_keyed_by_encoder_name_and_image_size(tmp_path):
    first, second = CountingEncoder(seed=0), CountingEncoder(seed=1)
    a = FeatureCache(tmp_path, "conv-a", (8, 12))
    b = FeatureCache(tmp_path, "conv-b", (8, 12))
    a.fill(IDS[:2], image_of, first, progress=False)
    assert b.missing(IDS[:2]) == IDS[:2]
    b.fill(IDS[:2], image_of, second, progress=False)
    assert not torch.allclose(a.get(IDS[0]), b.get(IDS[0]))

    bigger = FeatureCache(tmp_path, "conv-a", (16, 16))
    assert bigger.missing(IDS[:2]) == IDS[:2]
    bigger.fill(IDS[:2], lambda i: image_of(i, (16, 16)), first, progress=False)
    assert bigger.get(IDS[0]).shape == (16, 5)
    assert a.get(IDS[0]).shape == (6, 5)
    assert {p.name for p in tmp_path.iterdir()} == {"conv-a_8x12", "conv-b_8x12", "conv-a_16x16"}


def test_keyed_by_a_digest_of_the_encoders_weights(tmp_path):
    first, retrained = CountingEncoder(seed=0), CountingEncoder(seed=0)
    assert weights_digest(first) == weights_digest(retrained)  # same weights, same key
    cache = FeatureCache(tmp_path, "conv", (8, 12), weights_digest(first))
    assert cache.folder.name == f"conv_8x12_{weights_digest(first)}"
    cache.fill(IDS[:2], image_of, first, progress=False)
    with torch.no_grad():
        next(retrained.parameters()).add_(1.0)  # the same encoder name, other weights
    assert weights_digest(retrained) != weights_digest(first)
    other = FeatureCache(tmp_path, "conv", (8, 12), weights_digest(retrained))
    assert other.folder != cache.folder and other.missing(IDS[:2]) == IDS[:2]  # never mixed
    with pytest.raises(UserError, match="not the ones this cache is keyed by"):
        cache.fill(IDS[2:3], image_of, retrained, progress=False)
    with pytest.raises(UserError, match="12 hex digits"):
        FeatureCache(tmp_path, "conv", (8, 12), "../x")


def test_wrong_image_size_is_refused(tmp_path):
    cache = FeatureCache(tmp_path, "conv", (8, 8))
    with pytest.raises(UserError, match="expected"):
        cache.fill(IDS[:1], image_of, CountingEncoder(), progress=False)


def test_ids_that_are_not_file_names_get_hashed_names(tmp_path):
    cache = FeatureCache(tmp_path, "conv", (8, 12))
    ids = ["a/b.jpg", "../up.jpg", "a b.jpg"]
    cache.fill(ids, image_of, CountingEncoder(), progress=False)
    paths = [cache.path(i) for i in ids]
    assert len(set(paths)) == 3 and all(p.parent == cache.folder for p in paths)
    assert all(cache.get(i).shape == (6, 5) for i in ids)


def test_bad_encoder_name_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="encoder_name"):
        FeatureCache(tmp_path, "../escape")


def test_missing_entry_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="fill"):
        FeatureCache(tmp_path, "conv", (8, 12)).get("nothing.jpg")


@pytest.mark.parametrize("damage", ["truncate", "garbage", "not_a_grid"])
def test_corrupt_file_is_a_data_error_naming_it_and_verify_recomputes_it(tmp_path, damage):
    cache, encoder = FeatureCache(tmp_path, "conv", (8, 12)), CountingEncoder()
    cache.fill(IDS[:3], image_of, encoder, progress=False)
    expected = cache.get(IDS[1])
    path = cache.path(IDS[1])
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:40])
    elif damage == "garbage":
        path.write_bytes(b"not a torch file")
    else:
        torch.save(torch.zeros(3), path)
    with pytest.raises(DataError, match=f"corrupt feature cache file {path}"):
        cache.get(IDS[1])
    # a plain fill only checks existence; verify=True recomputes exactly the damaged file
    assert cache.fill(IDS[:3], image_of, encoder, progress=False) == 0
    encoder.images_seen = 0
    assert cache.fill(IDS[:3], image_of, encoder, progress=False, verify=True) == 1
    assert encoder.images_seen == 1
    torch.testing.assert_close(cache.get(IDS[1]), expected)


def test_encoder_training_flag_is_restored_and_no_graph_is_kept(tmp_path):
    cache, encoder = FeatureCache(tmp_path, "conv", (8, 12)), CountingEncoder()
    encoder.train()
    cache.fill(IDS[:2], image_of, encoder, progress=False)
    assert encoder.training
    assert not cache.get(IDS[0]).requires_grad
    assert not list(cache.folder.glob(".*.tmp"))
