"""MNIST files: finding, md5 checks, downloading (never over the network here) and loading; the
IDX format and the rendered fallback have their own test files."""
import gzip
import io
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch

from datamodules import load_mnist, read_idx
from datamodules.mnist_download import MNIST_MIRRORS, download_mnist, file_md5, verify_mnist_file
from datamodules.mnist_files import MNIST_FILES, find_mnist, resolve_data_dir
from ram_lightning.errors import DataError


# --------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def real_mnist(mnist_dir):
    return load_mnist(mnist_dir, download=False)


def _gz(mnist_dir: Path, key: str) -> Path:
    """Path of the official .gz file for ``key``; skips if only a raw copy is available."""
    path = find_mnist(mnist_dir)[key]
    if path.suffix != ".gz":
        pytest.skip(f"{path} is not gzipped")
    return path


def _link_all(mnist_dir: Path, dest: Path, skip: str | None = None) -> None:
    """Symlink the real files into ``dest`` (except ``skip``)."""
    dest.mkdir(parents=True, exist_ok=True)
    for key, path in find_mnist(mnist_dir).items():
        if key != skip:
            (dest / path.name).symlink_to(path.resolve())


class _FakeResponse(io.BytesIO):
    """What urlopen returns, enough for download_mnist: read(n) and a context manager."""


# --------------------------------------------------------------------------- real files


def test_real_mnist_shapes_dtypes_and_labels(real_mnist):
    assert real_mnist["train_images"].shape == (60000, 28, 28)
    assert real_mnist["test_images"].shape == (10000, 28, 28)
    assert real_mnist["train_images"].dtype == torch.uint8
    assert real_mnist["train_labels"].shape == (60000,)
    assert real_mnist["test_labels"].shape == (10000,)
    for split in ("train", "test"):
        labels = real_mnist[f"{split}_labels"]
        assert labels.dtype == torch.int64
        assert set(labels.unique().tolist()) == set(range(10))
        assert int(real_mnist[f"{split}_images"].max()) == 255


def test_raw_copy_loads_identically(mnist_dir, real_mnist, tmp_path):
    for key, path in find_mnist(mnist_dir).items():
        target = tmp_path / MNIST_FILES[key].name
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst)
    assert all(p.suffix == "" for p in find_mnist(tmp_path).values())
    raw = load_mnist(tmp_path, download=False)
    for key in MNIST_FILES:
        assert torch.equal(raw[key], real_mnist[key])


def test_torchvision_layout_is_found(mnist_dir, tmp_path):
    _link_all(mnist_dir, tmp_path / "MNIST" / "raw")
    found = find_mnist(tmp_path)
    assert found is not None
    assert all(path.parent == tmp_path / "MNIST" / "raw" for path in found.values())
    assert find_mnist(tmp_path / "elsewhere") is None


# --------------------------------------------------------------------------- damaged files


def test_truncated_gz_raises_naming_file_and_sizes(mnist_dir, tmp_path):
    source = _gz(mnist_dir, "test_images")
    broken = tmp_path / source.name
    broken.write_bytes(source.read_bytes()[:500_000])
    with pytest.raises(DataError) as info:
        read_idx(broken)
    message = str(info.value)
    assert str(broken) in message
    assert "truncated" in message
    assert "7840016" in message  # 16-byte header + 10000 x 28 x 28, from the surviving header


def test_truncated_gz_in_data_dir_fails_its_md5(mnist_dir, tmp_path):
    _link_all(mnist_dir, tmp_path, skip="train_labels")
    source = _gz(mnist_dir, "train_labels")
    (tmp_path / source.name).write_bytes(source.read_bytes()[:10_000])
    with pytest.raises(DataError) as info:
        load_mnist(tmp_path, download=False)
    assert source.name in str(info.value)
    assert MNIST_FILES["train_labels"].md5 in str(info.value)


def test_corrupted_byte_fails_md5_naming_expected_and_found(mnist_dir, tmp_path):
    _link_all(mnist_dir, tmp_path, skip="test_labels")
    data = bytearray(_gz(mnist_dir, "test_labels").read_bytes())
    data[len(data) // 2] ^= 0xFF
    corrupt = tmp_path / "t10k-labels-idx1-ubyte.gz"
    corrupt.write_bytes(bytes(data))
    with pytest.raises(DataError) as info:
        load_mnist(tmp_path, download=False)
    message = str(info.value)
    assert str(corrupt) in message
    assert MNIST_FILES["test_labels"].md5 in message
    assert file_md5(corrupt) in message
    # read_idx alone (no md5) still refuses the broken stream: deflate error or bad CRC.
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz"):
        read_idx(corrupt)


def test_md5_cache_notices_a_changed_file(mnist_dir, tmp_path):
    copy = tmp_path / "t10k-labels-idx1-ubyte.gz"
    shutil.copyfile(_gz(mnist_dir, "test_labels"), copy)
    verify_mnist_file(copy, "test_labels")  # cached now
    stat = copy.stat()
    data = bytearray(copy.read_bytes())
    data[100] ^= 0x01
    copy.write_bytes(bytes(data))  # same size
    os.utime(copy, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    with pytest.raises(DataError, match="md5"):
        verify_mnist_file(copy, "test_labels")


# --------------------------------------------------------------------------- missing data


def test_missing_directory_error(tmp_path):
    missing = tmp_path / "no-such-dir"
    with pytest.raises(DataError) as info:
        load_mnist(missing, download=False)
    message = str(info.value)
    assert f"MNIST directory {missing} does not exist" in message
    assert "train-images-idx3-ubyte" in message
    assert "RAM_DATA_DIR" in message and "data.data_dir" in message


def test_missing_file_error_lists_the_missing_file(mnist_dir, tmp_path):
    _link_all(mnist_dir, tmp_path, skip="test_images")
    with pytest.raises(DataError) as info:
        load_mnist(tmp_path, download=False)
    message = str(info.value)
    assert "t10k-images-idx3-ubyte" in message.split("(looked in")[0]
    assert "train-images" not in message.split("(looked in")[0]


def test_data_dir_resolution(monkeypatch, tmp_path):
    monkeypatch.setenv("RAM_DATA_DIR", str(tmp_path))
    assert resolve_data_dir(None) == tmp_path
    assert resolve_data_dir("elsewhere") == Path("elsewhere")
    monkeypatch.delenv("RAM_DATA_DIR")
    assert resolve_data_dir(None) == Path("./data/mnist")


# --------------------------------------------------------------------------- download


def _no_network(url, timeout=None):
    raise urllib.error.URLError("no network in tests")


def test_download_failure_explains_everything(monkeypatch, tmp_path):
    monkeypatch.setattr(urllib.request, "urlopen", _no_network)
    with pytest.raises(DataError) as info:
        download_mnist(tmp_path)
    message = str(info.value)
    spec = MNIST_FILES["train_images"]
    assert f"{spec.name}.gz" in message
    assert str(tmp_path) in message
    assert spec.md5 in message
    for mirror in MNIST_MIRRORS:
        assert mirror + f"{spec.name}.gz" in message
    assert "no network in tests" in message
    assert "RAM_DATA_DIR" in message and "by hand" in message
    assert list(tmp_path.iterdir()) == []  # no temporary files left behind


def test_load_mnist_download_failure_is_a_data_error(monkeypatch, tmp_path):
    monkeypatch.setattr(urllib.request, "urlopen", _no_network)
    with pytest.raises(DataError, match="could not download"):
        load_mnist(tmp_path / "new", download=True)


def test_download_fetches_only_missing_files_and_checks_md5(monkeypatch, mnist_dir, tmp_path):
    _link_all(mnist_dir, tmp_path, skip="test_labels")
    good = _gz(mnist_dir, "test_labels").read_bytes()
    requested = []

    def fake_urlopen(url, timeout=None):
        requested.append(url)
        # the first mirror serves damaged bytes, the second the real file
        return _FakeResponse(b"garbage" if url.startswith(MNIST_MIRRORS[0]) else good)

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    found = download_mnist(tmp_path)
    assert [url.rsplit("/", 1)[1] for url in requested] == ["t10k-labels-idx1-ubyte.gz"] * 2
    assert found["test_labels"] == tmp_path / "t10k-labels-idx1-ubyte.gz"
    assert found["test_labels"].read_bytes() == good
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


def test_download_with_wrong_md5_everywhere_fails(monkeypatch, tmp_path):
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout=None: _FakeResponse(b"x"))
    with pytest.raises(DataError) as info:
        download_mnist(tmp_path)
    assert "md5" in str(info.value) and MNIST_FILES["train_images"].md5 in str(info.value)
    assert list(tmp_path.iterdir()) == []
