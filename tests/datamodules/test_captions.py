"""Tokenising, the vocabulary (build, encode, decode, files), CaptionDataset and the collate."""
import json
import pickle

import pytest
import torch
from torch.utils.data import DataLoader

from datamodules import CaptionDataset, Vocabulary, collate_captions, tokenize
from datamodules.captions import image_hw
from datamodules.vocabulary import SPECIAL_TOKENS
from ram_lightning.errors import DataError, UserError


# --------------------------------------------------------------------------- tokenize


def test_tokenize_lowercases_and_drops_punctuation():
    assert tokenize("A child in a pink dress is climbing up a set of stairs in an entry way .") == [
        "a", "child", "in", "a", "pink", "dress", "is", "climbing", "up", "a", "set", "of",
        "stairs", "in", "an", "entry", "way"]
    assert tokenize('Two "dogs" ; (playing) ! Really ? & more') == [
        "two", "dogs", "playing", "really", "more"]
    assert tokenize("  ... ") == []


def test_tokenize_keeps_hyphens_apostrophes_and_ptb_clitics():
    # Flickr8k writes clitics apart (Penn Treebank style): they stay tokens of their own.
    assert tokenize("A man 's T-shirt , do n't ; o'clock") == [
        "a", "man", "'s", "t-shirt", "do", "n't", "o'clock"]
    # Written together, a word with an inner apostrophe stays one token.
    assert tokenize("The man's dog isn't here") == ["the", "man's", "dog", "isn't", "here"]
    assert tokenize("3.5 kids' toys_x café") == ["3", "5", "kids", "toys", "x", "café"]


# --------------------------------------------------------------------------- vocabulary


@pytest.fixture
def vocab():
    captions = [["a", "dog", "runs"], ["a", "dog", "sits"], ["a", "cat"], ["the", "dog"]]
    return Vocabulary.build(captions, min_count=2)


def test_build_specials_first_then_by_frequency(vocab):
    assert vocab.itos == [*SPECIAL_TOKENS, "a", "dog"]  # dog 3, a 3: ties alphabetical
    assert (vocab.pad_id, vocab.bos_id, vocab.eos_id, vocab.unk_id) == (0, 1, 2, 3)
    assert vocab.stoi["<pad>"] == 0 and len(vocab) == 6 and "dog" in vocab and "cat" not in vocab
    everything = Vocabulary.build([["b", "a", "b"], ["c"]], min_count=1)
    assert everything.itos[4:] == ["b", "a", "c"]
    with pytest.raises(UserError, match="min_count"):
        Vocabulary.build([], min_count=0)


def test_build_ignores_special_tokens_in_text():
    vocab = Vocabulary.build([["<unk>", "<pad>", "x"]], min_count=1)
    assert vocab.itos == [*SPECIAL_TOKENS, "x"]


def test_encode_and_decode(vocab):
    assert vocab.encode(["a", "dog", "flies"]) == [1, 4, 5, 3, 2]
    assert vocab.encode([]) == [1, 2]
    assert vocab.decode([1, 4, 5, 3, 2, 4, 0]) == ["a", "dog", "<unk>"]  # stops at eos
    assert vocab.decode([1, 4, 5, 3, 2], keep_unk=False) == ["a", "dog"]
    assert vocab.decode(torch.tensor([1, 5, 0, 0])) == ["dog"]  # pads dropped, no eos needed
    assert vocab.decode([]) == []


def test_save_load_round_trip(vocab, tmp_path):
    path = vocab.save(tmp_path / "sub" / "vocab.json")
    assert path.is_file()
    data = json.loads(path.read_text())
    assert data["tokens"] == vocab.itos and data["min_count"] == 2
    loaded = Vocabulary.load(path)
    assert loaded == vocab and loaded.min_count == 2
    assert not list((tmp_path / "sub").glob(".*tmp"))  # temporary file renamed away


@pytest.mark.parametrize(
    "content, match",
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"words": []}', "field 'tokens'"),
        ('{"tokens": ["a", "<pad>", "<bos>", "<eos>"]}', "must start with"),
        ('{"tokens": ["<pad>", "<bos>", "<eos>", "<unk>", "a", "a"]}', "duplicates"),
        ('{"tokens": ["<pad>", "<bos>", "<eos>", "<unk>", 3]}', "non-empty strings"),
        ('{"format": "other", "tokens": []}', "field 'format'"),
        ('{"tokens": ["<pad>", "<bos>", "<eos>", "<unk>"], "min_count": "5"}', "min_count"),
    ],
)
def test_load_malformed_file_names_file_and_field(tmp_path, content, match):
    path = tmp_path / "vocab.json"
    path.write_text(content)
    with pytest.raises(DataError, match=match) as info:
        Vocabulary.load(path)
    assert str(path) in str(info.value)


def test_load_missing_file(tmp_path):
    with pytest.raises(DataError, match="not found"):
        Vocabulary.load(tmp_path / "nope.json")


# --------------------------------------------------------------------------- dataset + collate


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


def test_image_hw():
    assert image_hw(32) == (32, 32) and image_hw((24, 40)) == (24, 40)
    for bad in (0, (1, 2, 3), "32", 2.5, True):
        with pytest.raises(UserError, match="image_size"):
            image_hw(bad)
