"""Where the four MNIST IDX files live: their official names and md5s, the data directory
(``data_dir``, else ``$RAM_DATA_DIR``, else ``./data/mnist``) and the folders searched in it.

Where the files are looked for (first hit wins, per file, ``NAME.gz`` before raw ``NAME``)::

    <data_dir>/                 e.g. ./data/mnist or $RAM_DATA_DIR
    <data_dir>/mnist/           so that RAM_DATA_DIR may point at a parent data folder
    <data_dir>/MNIST/raw/       the torchvision layout
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

class MnistFile(NamedTuple):
    """One official MNIST file: its name without ``.gz`` and the md5 of the ``.gz`` file."""

    name: str
    md5: str


#: The four official files, keyed as in the dictionary :func:`load_mnist` returns.
MNIST_FILES: dict[str, MnistFile] = {
    "train_images": MnistFile("train-images-idx3-ubyte", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
    "train_labels": MnistFile("train-labels-idx1-ubyte", "d53e105ee54ea40749a09fcbcd1e9432"),
    "test_images": MnistFile("t10k-images-idx3-ubyte", "9fb629c4189551a2d022fa330f9573f3"),
    "test_labels": MnistFile("t10k-labels-idx1-ubyte", "ec29112dd5afa0611ce80d1b7f02629c"),
}

DATA_DIR_ENV = "RAM_DATA_DIR"
DEFAULT_DATA_DIR = "./data/mnist"


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path:
    """``data_dir``, else ``$RAM_DATA_DIR``, else ``./data/mnist`` (with ``~`` expanded)."""
    chosen = data_dir if data_dir is not None else os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR
    return Path(chosen).expanduser()


def search_dirs(data_dir: Path) -> list[Path]:
    """The folders searched for the files, in order."""
    return [data_dir, data_dir / "mnist", data_dir / "MNIST" / "raw"]


def find_file(data_dir: Path, name: str) -> Path | None:
    """The first of ``NAME.gz``, ``NAME`` in :func:`search_dirs`, or None."""
    for folder in search_dirs(data_dir):
        for candidate in (folder / f"{name}.gz", folder / name):
            if candidate.is_file():
                return candidate
    return None


def find_mnist(data_dir: str | os.PathLike) -> dict[str, Path] | None:
    """Locate the four MNIST files under ``data_dir``.

    Each file is looked for as ``NAME.gz`` then raw ``NAME`` in ``data_dir``,
    ``data_dir/mnist`` and ``data_dir/MNIST/raw`` (torchvision's layout). Nothing is verified.

    Returns:
        ``{"train_images": Path, "train_labels": ..., "test_images": ..., "test_labels": ...}``,
        or None if any of the four is missing.
    """
    found = {key: find_file(Path(data_dir), f.name) for key, f in MNIST_FILES.items()}
    if any(path is None for path in found.values()):
        return None
    return found  # type: ignore[return-value]

