"""Loading MNIST: :func:`load_mnist` finds the four IDX files (:mod:`datamodules.mnist_files`),
downloads the missing ones if allowed (:mod:`datamodules.mnist_download`), checks ``.gz`` files
against the official md5s, reads them (:mod:`datamodules.idx`) and checks shapes and labels.

Example (runs as written when the files are in ``$RAM_DATA_DIR`` or can be downloaded)::

    >>> from datamodules import load_mnist                      # doctest: +SKIP
    >>> data = load_mnist()                                     # doctest: +SKIP
    >>> data["train_images"].shape, data["test_labels"].dtype   # doctest: +SKIP
    (torch.Size([60000, 28, 28]), torch.int64)

Every problem with the files raises :class:`ram_lightning.errors.DataError`, whose message names
the file or directory, what was wrong and what was expected; nothing is ever loaded silently
from a damaged file.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from datamodules.idx import read_idx
from datamodules.mnist_download import download_mnist, verify_mnist_file
from datamodules.mnist_files import (
    DATA_DIR_ENV,
    MNIST_FILES,
    find_file,
    find_mnist,
    resolve_data_dir,
    search_dirs,
)
from ram_lightning.errors import DataError


def _missing_files_error(data_dir: Path) -> DataError:
    names = ", ".join(f"{f.name}[.gz]" for f in MNIST_FILES.values())
    where = ", ".join(str(d) for d in search_dirs(data_dir))
    if not data_dir.is_dir():
        return DataError(
            f"MNIST directory {data_dir} does not exist; expected the four IDX files ({names}) "
            f"there; set {DATA_DIR_ENV} or data.data_dir to a folder that holds them, or allow "
            f"downloading"
        )
    missing = [
        f"{f.name}[.gz]" for f in MNIST_FILES.values() if find_file(data_dir, f.name) is None
    ]
    return DataError(
        f"MNIST directory {data_dir} lacks {', '.join(missing)} (looked in {where}); expected "
        f"the four IDX files ({names}); set {DATA_DIR_ENV} or data.data_dir to a folder that "
        f"holds them, or allow downloading"
    )


def _check_split(images: torch.Tensor, labels: torch.Tensor, paths: tuple[Path, Path]) -> None:
    """Structural checks on one split: uint8 [N, 28, 28] images, N labels in 0..9."""
    if images.dtype != torch.uint8 or images.dim() != 3 or tuple(images.shape[1:]) != (28, 28):
        raise DataError(
            f"{paths[0]}: found {images.dtype} images of shape {list(images.shape)}, "
            f"expected uint8 of shape [N, 28, 28]"
        )
    if labels.dim() != 1 or labels.shape[0] != images.shape[0]:
        raise DataError(
            f"{paths[1]}: found labels of shape {list(labels.shape)}, expected [{images.shape[0]}]"
            f" to match the {images.shape[0]} images in {paths[0]}"
        )
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) > 9):
        raise DataError(
            f"{paths[1]}: labels range over {int(labels.min())}..{int(labels.max())}, "
            f"expected 0..9"
        )


def load_mnist(data_dir: str | os.PathLike | None = None, download: bool = True) -> dict:
    """Load (downloading if allowed and needed) and verify the four MNIST files.

    ``.gz`` files are md5-checked against the official checksums; raw files are checked
    structurally only (IDX header, exact size, shapes, label range).

    Args:
        data_dir: the folder with the files; None means ``$RAM_DATA_DIR``, else ``./data/mnist``.
        download: fetch missing files from the mirrors (md5-checked) instead of failing.

    Returns:
        ``{"train_images": uint8 [60000, 28, 28], "train_labels": int64 [60000],
        "test_images": uint8 [10000, 28, 28], "test_labels": int64 [10000], "data_dir": Path}``.

    Raises:
        DataError: missing directory or files (with download off), failed download, md5
            mismatch, truncated or malformed files.
    """
    root = resolve_data_dir(data_dir)
    paths = find_mnist(root)
    if paths is None:
        if not download:
            raise _missing_files_error(root)
        paths = download_mnist(root)
    out: dict = {"data_dir": root}
    for key, path in paths.items():
        verify_mnist_file(path, key)
        tensor = read_idx(path)
        out[key] = tensor.long() if key.endswith("labels") else tensor
    for split in ("train", "test"):
        _check_split(
            out[f"{split}_images"],
            out[f"{split}_labels"],
            (paths[f"{split}_images"], paths[f"{split}_labels"]),
        )
    return out


