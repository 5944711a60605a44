"""Flickr8k: the parser on the real token file (quirks counted), and the data module on a tiny
Flickr8k-layout folder with generated JPEGs (missing / corrupt images, vocabulary file,
Karpathy splits)."""
import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import datamodules.captions as captions_module
import datamodules.flickr8k as flickr8k
from datamodules import Flickr8k, Vocabulary, read_token_file
from datamodules.flickr8k import IMAGE_DIRS
from datamodules.flickr8k_text import DATA_DIR_ENV, read_karpathy_json, read_split_file, resolve_data_dir
from datamodules.image_folder import check_image
from ram_lightning.errors import DataError, UserError

# The tiny layout has a line without a tab on purpose; its warning is checked where it matters.
pytestmark = pytest.mark.filterwarnings("ignore:.*skipped line 8. no tab:UserWarning")

REPO_ROOT = Path(__file__).resolve().parents[2]
TEXT = "Flickr8k_text"
STRAY = "2258277193_586949ec62.jpg"


def _real_text_dir() -> Path | None:
    """Flickr8k_text of $RAM_FLICKR8K_DIR, else of ../shared/data/flickr8k, if it has the token file."""
    for root in (os.environ.get(DATA_DIR_ENV), REPO_ROOT.parent / "shared" / "data" / "flickr8k"):
        if root and (Path(root) / TEXT / "Flickr8k.token.txt").is_file():
            return Path(root) / TEXT
    return None


@pytest.fixture(scope="module")
def real_text_dir() -> Path:
    found = _real_text_dir()
    if found is None:
        pytest.skip(
            "real Flickr8k text release not found: set RAM_FLICKR8K_DIR to a folder with "
            "Flickr8k_text/Flickr8k.token.txt (.ci/run sets it to ../shared/data/flickr8k)"
        )
    return found


# --------------------------------------------------------------------------- real token file


@pytest.fixture(scope="module")
def real_parsed(real_text_dir):
    return read_token_file(real_text_dir / "Flickr8k.token.txt")


def test_real_token_file_counts_and_quirks(real_parsed):
    captions, report = real_parsed
    assert report.lines == 40460 and report.captions == 40460
    assert len(captions) == report.images == 8092
    assert all(len(c) == 5 for c in captions.values())
    assert report.renamed_lines == 5  # 2258277193_586949ec62.jpg.1#0..4
    assert report.renamed_images == {f"{STRAY}.1": STRAY}
    assert STRAY in captions and f"{STRAY}.1" not in captions
    assert captions[STRAY][0] == "people waiting for the subway"
    assert report.skipped == [] and report.blank_lines == 0 and report.duplicate_ids == 0
    assert captions["1000268201_693b08cb0e.jpg"][0].startswith("A child in a pink dress")
    assert "5 lines with a stray suffix" in report.summary()


def test_real_split_files_and_images_in_no_split(real_text_dir, real_parsed):
    captions, _ = real_parsed
    splits = {s: read_split_file(real_text_dir / f"Flickr_8k.{s}Images.txt") for s in ("train", "dev", "test")}
    assert {s: len(n) for s, n in splits.items()} == {"train": 6000, "dev": 1000, "test": 1000}
    listed = set().union(*map(set, splits.values()))
    assert len(listed) == 8000 and listed <= set(captions)
    unsplit = set(captions) - listed
    assert len(unsplit) == 92 and STRAY in unsplit


def test_real_text_through_the_data_module(real_text_dir, tmp_path):
    dm = Flickr8k(data_dir=str(real_text_dir.parent), vocab_path=str(tmp_path / "vocab.json"))
    assert [len(dm.samples(s)) for s in dm.splits] == [6000, 1000, 1000]
    assert len(dm.unsplit_images) == 92
    vocab = dm.vocab  # built from the 30000 training captions, no image needed
    assert 2000 < len(vocab) < 3500 and vocab.itos[4] == "a" and vocab.min_count == 5
    assert Vocabulary.load(tmp_path / "vocab.json") == vocab
    assert dm.max_caption_length == 38  # 36 words + bos + eos
    assert dm.image_shape == (3, 224, 224)
    with pytest.raises(DataError, match="Flicker8k_Dataset") as info:  # no JPEGs in the text release
        dm.setup()
    assert "forms.illinois.edu" in str(info.value)


# --------------------------------------------------------------------------- parser, made-up files


def _write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


def test_parser_skips_malformed_lines_with_line_numbers(tmp_path):
    path = _write(tmp_path / "t.txt", "\ufeffa.jpg#0\tA dog .\r\n\r\nno tab here\r\n"
                                      "b.jpg#0\t   \r\nnoid\tcaption\r\na.jpg#0\tagain\r\nc.jpg.2#1\tx\r\n")
    captions, report = read_token_file(path)
    assert captions == {"a.jpg": ["A dog .", "again"], "c.jpg": ["x"]}
    assert report.lines == 7 and report.blank_lines == 1 and report.captions == 3
    assert [n for n, _ in report.skipped] == [3, 4, 5]
    assert "no tab" in report.skipped[0][1] and "empty caption" in report.skipped[1][1]
    assert "is not '<image>.jpg#<n>'" in report.skipped[2][1]
    assert report.duplicate_ids == 1 and report.renamed_images == {"c.jpg.2": "c.jpg"}
    assert "3 malformed lines skipped (line 3, 4, 5)" in report.summary()


def test_parser_errors(tmp_path):
    too_many = _write(tmp_path / "bad.txt", "a.jpg#0\tok\n" + "junk\n" * 11)
    with pytest.raises(DataError, match=r"more than 10 malformed lines \(line 2: no tab"):
        read_token_file(too_many)
    assert read_token_file(too_many, max_malformed=11)[1].captions == 1
    with pytest.raises(DataError, match="not found"):
        read_token_file(tmp_path / "missing.txt")
    with pytest.raises(DataError, match="no caption"):
        read_token_file(_write(tmp_path / "empty.txt", "\n\n"))
    with pytest.raises(DataError, match="not UTF-8"):
        read_token_file(_write(tmp_path / "latin.txt", "a.jpg#0\tcaf\xe9\n", encoding="latin-1"))
    with pytest.raises(DataError, match="twice"):
        read_split_file(_write(tmp_path / "s.txt", "a.jpg\nb.jpg\na.jpg\n"))
    with pytest.raises(DataError, match="empty"):
        read_split_file(_write(tmp_path / "s2.txt", "\n"))


# --------------------------------------------------------------------------- tiny layout

# Real names from the three split lists (first 3 train, first dev, first test) and, when the
# real file is not around, copies of their real caption lines.
TRAIN = ["2513260012_03d33305cf.jpg", "2903617548_d3e38d7f88.jpg", "3338291921_fe7ae0c8f8.jpg"]
DEV = ["2090545563_a4e66ec76b.jpg"]
TEST = ["3385593926_d3e9c21170.jpg"]
FALLBACK_LINES = """\
2513260012_03d33305cf.jpg#0\tA black dog is running after a white dog in the snow .
2513260012_03d33305cf.jpg#1\tBlack dog chasing brown dog through snow
2513260012_03d33305cf.jpg#2\tTwo dogs chase each other across the snowy ground .
2513260012_03d33305cf.jpg#3\tTwo dogs play together in the snow .
2513260012_03d33305cf.jpg#4\tTwo dogs running through a low lying body of water .
2903617548_d3e38d7f88.jpg#0\tA little baby plays croquet .
2903617548_d3e38d7f88.jpg#1\tA little girl plays croquet next to a truck .
2903617548_d3e38d7f88.jpg#2\tThe child is playing croquette by the truck .
2903617548_d3e38d7f88.jpg#3\tThe kid is in front of a car with a put and a ball .
2903617548_d3e38d7f88.jpg#4\tThe little boy is playing with a croquet hammer and ball beside the car .
3338291921_fe7ae0c8f8.jpg#0\tA brown dog in the snow has something hot pink in its mouth .
3338291921_fe7ae0c8f8.jpg#1\tA brown dog in the snow holding a pink hat .
3338291921_fe7ae0c8f8.jpg#2\tA brown dog is holding a pink shirt in the snow .
3338291921_fe7ae0c8f8.jpg#3\tA dog is carrying something pink in its mouth while walking through the snow .
3338291921_fe7ae0c8f8.jpg#4\tA dog with something pink in its mouth is looking forward .
2090545563_a4e66ec76b.jpg#0\tthe boy laying face down on a skateboard is being pushed along the ground by another boy .
2090545563_a4e66ec76b.jpg#1\tTwo girls play on a skateboard in a courtyard .
2090545563_a4e66ec76b.jpg#2\tTwo people play on a long skateboard .
2090545563_a4e66ec76b.jpg#3\tTwo small children in red shirts playing on a skateboard .
2090545563_a4e66ec76b.jpg#4\ttwo young children on a skateboard going across a sidewalk
3385593926_d3e9c21170.jpg#0\tThe dogs are in the snow in front of a fence .
3385593926_d3e9c21170.jpg#1\tThe dogs play on the snow .
3385593926_d3e9c21170.jpg#2\tTwo brown dogs playfully fight in the snow .
3385593926_d3e9c21170.jpg#3\tTwo brown dogs wrestle in the snow .
3385593926_d3e9c21170.jpg#4\tTwo dogs playing in the snow .
2258277193_586949ec62.jpg.1#0\tpeople waiting for the subway
2258277193_586949ec62.jpg.1#1\tSome people looking out windows in a large building .
2258277193_586949ec62.jpg.1#2\tThree people are waiting on a train platform .
2258277193_586949ec62.jpg.1#3\tThree people standing at a station .
2258277193_586949ec62.jpg.1#4\ttwo woman and one man standing near train tracks .
"""


def _real_lines() -> list[str]:
    names = tuple(f"{n}#" for n in TRAIN + DEV + TEST) + (f"{STRAY}.1#",)
    text_dir = _real_text_dir()
    text = (text_dir / "Flickr8k.token.txt").read_text() if text_dir else FALLBACK_LINES
    lines = [line for line in text.splitlines() if line.startswith(names)]
    assert len(lines) == 30
    return lines


def _jpeg(path: Path, seed: int, size=(50, 40)) -> None:
    rng = np.random.default_rng(seed)
    pixels = np.repeat(np.repeat(rng.integers(0, 256, (size[1] // 10, size[0] // 10, 3)), 10, 0), 10, 1)
    Image.fromarray(pixels.astype(np.uint8)).save(path, "JPEG", quality=90)


@pytest.fixture
def tiny(tmp_path) -> Path:
    """A Flickr8k-layout folder: 5 real names with their real captions, generated JPEGs, a
    line without a tab, and the stray '.jpg.1' lines (an image in no split)."""
    root = tmp_path / "flickr8k"
    lines = _real_lines()
    lines.insert(7, "a line without a tab")
    _write(root / TEXT / "Flickr8k.token.txt", "\n".join(lines) + "\n")
    for name, names in (("train", TRAIN), ("dev", DEV), ("test", TEST)):
        _write(root / TEXT / f"Flickr_8k.{name}Images.txt", "\n".join(names) + "\n")
    images = root / "Flicker8k_Dataset"
    images.mkdir()
    for k, name in enumerate(TRAIN + DEV + TEST):
        _jpeg(images / name, k)
    return root


@pytest.fixture
def announced(monkeypatch):
    """What the data modules print via rank_zero_info / rank_zero_warn."""
    messages = {"info": [], "warn": []}
    monkeypatch.setattr(captions_module, "rank_zero_info", messages["info"].append)
    monkeypatch.setattr(flickr8k, "rank_zero_warn", lambda m, *a, **k: messages["warn"].append(m))
    return messages


def test_tiny_layout_batches(tiny, tmp_path, announced):
    dm = Flickr8k(data_dir=str(tiny), image_size=(24, 32), min_count=1, batch_size=4,
                  vocab_path=str(tmp_path / "run" / "vocab.json"))
    dm.setup()
    assert [dm.dataset(s).num_images for s in dm.splits] == [3, 1, 1]
    assert len(dm.dataset("train")) == 15 and len(dm.dataset("val")) == 1
    assert dm.unsplit_images == [STRAY]
    assert dm.token_report.renamed_lines == 5 and [n for n, _ in dm.token_report.skipped] == [8]
    assert announced["warn"] == [f"{tiny / TEXT / 'Flickr8k.token.txt'}: skipped line 8: "
                                 "no tab between '<image>.jpg#<n>' and the caption"]
    (info,) = announced["info"]
    assert info.startswith(f"Data: Flickr8k from {tiny / 'Flicker8k_Dataset'} (3 train / 1 val / 1 test images")
    assert "5 lines with a stray suffix after .jpg normalised" in info
    assert "1 malformed lines skipped (line 8)" in info
    assert f"1 captioned images in no split list, not used ({STRAY})" in info
    assert "vocabulary of" in info and "saved to" in info

    batch = next(iter(dm.train_dataloader()))
    assert set(batch) == {"images", "captions", "lengths", "references", "image_ids"}
    assert batch["images"].shape == (4, 3, 24, 32) and batch["images"].dtype == torch.float32
    assert 0 <= batch["images"].min() and batch["images"].max() <= 1
    assert batch["captions"].dtype == torch.long and batch["captions"].shape[0] == 4
    assert batch["captions"].shape[1] == int(batch["lengths"].max())
    assert all(len(refs) == 5 for refs in batch["references"])
    assert set(batch["image_ids"]) <= set(TRAIN)
    val = next(iter(dm.val_dataloader()))
    assert val["image_ids"] == DEV and val["references"][0][1] == [
        "two", "girls", "play", "on", "a", "skateboard", "in", "a", "courtyard"]
    # the vocabulary comes from the training captions only: "laying" is a validation word
    assert dm.vocab.decode(val["captions"][0])[:3] == ["the", "boy", "<unk>"]
    assert dm.image_shape == (3, 24, 32) and dm.batch_size == 4 and dm.num_workers == 0
    assert pickle.loads(pickle.dumps(dm.dataset("test")))[0]["image"].shape == (3, 24, 32)


def test_vocab_file_is_loaded_not_rebuilt(tiny, tmp_path, announced):
    path = tmp_path / "vocab.json"
    first = Flickr8k(data_dir=str(tiny), min_count=1, vocab_path=str(path))
    words = first.vocabulary
    assert words[:4] == ["<pad>", "<bos>", "<eos>", "<unk>"] and path.is_file()
    Vocabulary(["snow", "dog"]).save(path)  # a different vocabulary in the file wins
    second = Flickr8k(data_dir=str(tiny), min_count=1, vocab_path=str(path), image_size=16)
    second.setup()
    assert second.vocabulary == ["<pad>", "<bos>", "<eos>", "<unk>", "snow", "dog"]
    assert "vocabulary of 6 tokens loaded from" in announced["info"][-1]
    path.write_text("{broken")
    with pytest.raises(DataError, match="not valid JSON"):
        Flickr8k(data_dir=str(tiny), vocab_path=str(path)).vocab


def test_vocab_saved_beside_the_run(tiny, tmp_path, announced):
    class FakeTrainer:
        log_dir = str(tmp_path / "logs" / "version_0")
        is_global_zero = True
        loggers = [object()]

    dm = Flickr8k(data_dir=str(tiny), min_count=1, image_size=16)
    dm.trainer = FakeTrainer()
    dm.setup()
    assert Vocabulary.load(tmp_path / "logs" / "version_0" / "vocab.json") == dm.vocab
    assert "saved beside the run to" in announced["info"][-1]
    FakeTrainer.loggers = []  # no logger: log_dir would be the working directory; not saved
    FakeTrainer.log_dir = str(tmp_path / "cwd")
    dm = Flickr8k(data_dir=str(tiny), min_count=1, image_size=16)
    dm.trainer = FakeTrainer()
    dm.setup()
    assert not (tmp_path / "cwd").exists() and "not saved" in announced["info"][-1]


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_missing_and_corrupt_images_error_up_front(tiny):
    images = tiny / "Flicker8k_Dataset"
    (images / TRAIN[1]).unlink()
    _truncate(images / DEV[0])
    (images / TEST[0]).write_bytes(b"not a jpeg at all")
    assert check_image(images / TRAIN[1]) == "missing"
    assert "truncated" in check_image(images / DEV[0])
    assert check_image(images / TRAIN[0]) is None
    dm = Flickr8k(data_dir=str(tiny), min_count=1, image_size=16)
    with pytest.raises(DataError) as info:
        dm.setup()
    message = str(info.value)
    assert f"3 of 5 Flickr8k images in {images}" in message
    assert f"1 missing ({TRAIN[1]})" in message
    assert f"2 unreadable ({DEV[0]}: unreadable" in message and TEST[0] in message
    assert "on_bad_image='skip'" in message
    # without the full decode, missing files are still caught
    with pytest.raises(DataError, match=r"1 of 5 .* 1 missing"):
        Flickr8k(data_dir=str(tiny), min_count=1, image_size=16, check_images=False).setup()


def test_bad_images_skipped_when_asked(tiny, announced):
    images = tiny / "Flicker8k_Dataset"
    (images / TRAIN[1]).unlink()
    _truncate(images / TRAIN[2])
    dm = Flickr8k(data_dir=str(tiny), min_count=1, image_size=16, on_bad_image="skip")
    dm.setup()
    assert dm.dataset("train").image_ids == [TRAIN[0]] and len(dm.dataset("train")) == 5
    assert set(dm.bad_images) == {TRAIN[1], TRAIN[2]}
    (warning,) = [w for w in announced["warn"] if w.startswith("skipping")]
    assert f"skipping 2 of 5 Flickr8k images in {images}: 1 missing ({TRAIN[1]}), 1 unreadable" in warning
    assert "2 missing or unreadable images skipped" in announced["info"][-1]
    assert len(list(dm.train_dataloader())) == 1  # the rest loads fine
    for name in (DEV[0], TEST[0]):
        (images / name).unlink()
    with pytest.raises(DataError, match="no image left in the val, test split"):
        Flickr8k(data_dir=str(tiny), min_count=1, image_size=16, on_bad_image="skip").setup()


def test_no_image_folder_says_where_and_how(tiny):
    (tiny / "Flicker8k_Dataset").rename(tiny / "elsewhere")
    with pytest.raises(DataError) as info:
        Flickr8k(data_dir=str(tiny), min_count=1).setup()
    message = str(info.value)
    for name in IMAGE_DIRS:
        assert str(tiny / name) in message
    assert "forms.illinois.edu" in message and TRAIN[0] in message
    dm = Flickr8k(data_dir=str(tiny), image_dir=str(tiny / "elsewhere"), min_count=1, image_size=16)
    dm.setup()  # an explicit image_dir works
    assert dm.dataset("train").num_images == 3


def test_missing_text_and_bad_splits(tiny, tmp_path, monkeypatch):
    with pytest.raises(DataError, match="Flickr8k.token.txt not found"):
        Flickr8k(data_dir=str(tmp_path / "nothing")).vocab
    split = tiny / TEXT / "Flickr_8k.testImages.txt"
    split.write_text(TEST[0] + "\nnot_captioned.jpg\n")
    with pytest.raises(DataError, match=r"1 of 2 images have no caption .*not_captioned.jpg"):
        Flickr8k(data_dir=str(tiny)).vocab
    split.write_text(TRAIN[0] + "\n")
    with pytest.raises(DataError, match="also in the train split"):
        Flickr8k(data_dir=str(tiny)).vocab
    monkeypatch.setenv(DATA_DIR_ENV, str(tiny))
    assert resolve_data_dir(None) == tiny
    monkeypatch.delenv(DATA_DIR_ENV)
    assert resolve_data_dir(None) == Path("./data/flickr8k")


def test_text_files_directly_in_data_dir(tiny):
    for f in (tiny / TEXT).iterdir():
        f.rename(tiny / f.name)
    dm = Flickr8k(data_dir=str(tiny), min_count=1, image_size=16)
    dm.setup()
    assert dm.dataset("test").image_ids == TEST


def test_karpathy_splits(tiny, tmp_path):
    entries = [
        {"filename": TRAIN[0], "split": "train", "sentences": [{"raw": "A dog .", "tokens": ["a", "dog"]}]},
        {"filename": TRAIN[1], "split": "restval", "sentences": [{"tokens": ["a", "child"]}]},
        {"filename": DEV[0], "split": "val", "sentences": [{"raw": "Kids on a skateboard ."}]},
        {"filename": TEST[0], "split": "test", "sentences": [{"raw": "Dogs ."}, {"raw": "Two dogs"}]},
    ]
    _write(tiny / "dataset_flickr8k.json", json.dumps({"images": entries, "dataset": "flickr8k"}))
    dm = Flickr8k(data_dir=str(tiny), split_source="karpathy", min_count=1, image_size=16)
    dm.setup()
    assert dm.dataset("train").image_ids == TRAIN[:2]
    assert dm.dataset("train").references[1] == [["a", "child"]]
    assert dm.dataset("test").references[0] == [["dogs"], ["two", "dogs"]]
    assert "Karpathy splits" in dm.data_description
    bad = _write(tmp_path / "bad.json", json.dumps({"images": [{"filename": "x.jpg", "split": "dev", "sentences": []}]}))
    with pytest.raises(DataError, match=r"images\[0\]: field 'split' is 'dev'"):
        read_karpathy_json(bad)
    with pytest.raises(DataError, match="caption_datasets.zip"):
        Flickr8k(data_dir=str(tmp_path), split_source="karpathy").vocab


def test_argument_checks():
    with pytest.raises(UserError, match="split_source"):
        Flickr8k(split_source="coco")
    with pytest.raises(UserError, match="on_bad_image"):
        Flickr8k(on_bad_image="ignore")
    with pytest.raises(UserError, match="batch_size"):
        Flickr8k(batch_size=0)
