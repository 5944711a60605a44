"""CaptionDataset and collate_captions (datamodules/caption_dataset.py)."""
import pickle

import pytest
import torch
from torch.utils.data import DataLoader

from datamodules import CaptionDataset, Vocabulary, collate_captions, tokenize
from ram_lightning.errors import UserError


def _solid(colour: float) -> torch.Tensor:
    return torch.full((3, 8, 6), colour)


SAMPLES = [
    ("img-a", 0.1, ["A dog runs .", "The dog runs fast"]),
    ("img-b", 0.5, ["A cat ."]),
    ("img-c", 0.9, ["A dog and a cat sit", "Two animals", "A dog"]),
]


@pytest.fixture
def sample_vocab():
    return Vocabulary.build([tokenize(c) for _, _, caps in SAMPLES for c in caps], min_count=1)


def test_dataset_per_caption_and_per_image(sample_vocab):
    train = CaptionDataset(SAMPLES, _solid, sample_vocab, per_caption=True)
    evaluation = CaptionDataset(SAMPLES, _solid, sample_vocab, per_caption=False)
    assert len(train) == 6 and train.num_images == 3
    assert len(evaluation) == 3
    assert [train[i]["image_id"] for i in range(6)] == ["img-a"] * 2 + ["img-b"] + ["img-c"] * 3
    item = train[1]
    assert item["caption"].dtype == torch.long
    assert sample_vocab.decode(item["caption"]) == ["the", "dog", "runs", "fast"]
    assert item["references"] == [["a", "dog", "runs"], ["the", "dog", "runs", "fast"]]
    assert torch.equal(item["image"], _solid(0.1))
    first = evaluation[2]  # eval: first reference as the caption, all references
    assert sample_vocab.decode(first["caption"]) == ["a", "dog", "and", "a", "cat", "sit"]
    assert len(first["references"]) == 3
    assert train.max_length() == 8  # 6 words + bos + eos
    with pytest.raises(UserError, match="no captions"):
        CaptionDataset([("x", 0, [])], _solid, sample_vocab, per_caption=True)


def test_dataset_pickles_for_workers(sample_vocab):
    dataset = CaptionDataset(SAMPLES, _solid, sample_vocab, per_caption=True)
    copy = pickle.loads(pickle.dumps(dataset))
    assert torch.equal(copy[3]["caption"], dataset[3]["caption"])


def test_collate_batch_interface(sample_vocab):
    dataset = CaptionDataset(SAMPLES, _solid, sample_vocab, per_caption=True)
    batch = collate_captions([dataset[i] for i in (2, 1, 3)])
    assert set(batch) == {"images", "captions", "lengths", "references", "image_ids"}
    assert batch["images"].shape == (3, 3, 8, 6) and batch["images"].dtype == torch.float32
    assert batch["captions"].dtype == torch.long and batch["lengths"].dtype == torch.long
    assert batch["lengths"].tolist() == [4, 6, 8]  # "a cat", "the dog runs fast", 6 words
    assert batch["captions"].shape == (3, 8)
    for row, length in zip(batch["captions"], batch["lengths"]):
        assert row[0] == sample_vocab.bos_id and row[length - 1] == sample_vocab.eos_id
        assert (row[length:] == sample_vocab.pad_id).all()
        assert (row[1 : length - 1] > sample_vocab.unk_id).all()
    assert batch["image_ids"] == ["img-b", "img-a", "img-c"]
    assert batch["references"][0] == [["a", "cat"]]
    assert len(batch["references"][2]) == 3
    with pytest.raises(UserError, match="empty batch"):
        collate_captions([])


def test_collate_in_a_dataloader(sample_vocab):
    dataset = CaptionDataset(SAMPLES, _solid, sample_vocab, per_caption=False)
    batches = list(DataLoader(dataset, batch_size=2, collate_fn=collate_captions))
    assert [b["images"].shape[0] for b in batches] == [2, 1]
    assert batches[0]["captions"].shape == (2, 5)  # "a dog runs" + bos/eos vs "a cat"
