"""Tokenising and the vocabulary (datamodules/vocabulary.py): build, encode, decode, files."""
import json

import pytest
import torch

from datamodules import Vocabulary, tokenize
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
