"""Downloading the MNIST files with md5 checks, and checking found ``.gz`` files against the
official md5s (:func:`verify_mnist_file`).

Each file is written to a temporary file beside its target, its md5 checked, and only then
renamed into place; mirrors are tried in order.
"""
from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import urllib.request
from collections.abc import Sequence
from http.client import HTTPException
from pathlib import Path

from tqdm import tqdm

from datamodules.mnist_files import DATA_DIR_ENV, MNIST_FILES, find_file, find_mnist
from ram_lightning.errors import DataError

#: Mirrors tried in order by :func:`download_mnist` (the original yann.lecun.com is gone).
MNIST_MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)

_CHUNK = 1 << 20

# md5 of files already hashed, keyed by (resolved path, mtime_ns, size).
_MD5_CACHE: dict[tuple[str, int, int], str] = {}


def file_md5(path: str | os.PathLike) -> str:
    """md5 hex digest of a file, cached per (path, mtime, size) so a second call is free."""
    path = Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    if key not in _MD5_CACHE:
        digest = hashlib.md5(usedforsecurity=False)
        with open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
        _MD5_CACHE[key] = digest.hexdigest()
    return _MD5_CACHE[key]


def verify_mnist_file(path: str | os.PathLike, key: str) -> None:
    """Check one found MNIST file: ``.gz`` files against the official md5.

    Raw (gunzipped) files have no official checksum: they are checked structurally only, by
    :func:`read_idx` (header and exact size) and :func:`load_mnist` (shapes and label range).

    Raises:
        DataError: md5 mismatch, naming the file and the expected and found md5.
    """
    path = Path(path)
    if path.suffix != ".gz":
        return
    expected = MNIST_FILES[key].md5
    found = file_md5(path)
    if found != expected:
        raise DataError(
            f"{path} is corrupt or not the official MNIST file: md5 {found}, expected "
            f"{expected} (size {path.stat().st_size} bytes). Delete it and download it again "
            f"(a gunzipped raw copy is accepted too; a re-compressed one never matches)."
        )




def _download_one(url: str, target: Path, expected_md5: str, timeout: float) -> None:
    """Fetch ``url`` into a temporary file beside ``target``, check its md5, rename it.

    Raises:
        OSError, HTTPException, ValueError: network problems (URLError is an OSError).
        DataError: the downloaded bytes have the wrong md5.
    """
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        digest = hashlib.md5(usedforsecurity=False)
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            size = (getattr(response, "headers", None) or {}).get("Content-Length")
            # a bar only on a terminal, and only once the download has taken 2 s
            with tqdm(total=int(size) if size and size.isdigit() else None, unit="B", unit_scale=True,
                      desc=target.name, leave=False, delay=2.0, disable=not sys.stderr.isatty()) as bar:
                while chunk := response.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    bar.update(len(chunk))
        if digest.hexdigest() != expected_md5:
            raise DataError(f"downloaded md5 {digest.hexdigest()}, expected {expected_md5}")
        os.replace(tmp_name, target)
    finally:
        if os.path.exists(tmp_name):
            os.remove(tmp_name)


def manual_instructions(data_dir: Path) -> str:
    names = ", ".join(f"{f.name}.gz" for f in MNIST_FILES.values())
    return (
        f"Download the four files ({names}) by hand, e.g. from {MNIST_MIRRORS[0]}, and put "
        f"them in {data_dir}, or point {DATA_DIR_ENV} (or data.data_dir) at a folder that "
        f"holds them."
    )


def download_mnist(
    data_dir: str | os.PathLike,
    mirrors: Sequence[str] = MNIST_MIRRORS,
    timeout: float = 30.0,
) -> dict[str, Path]:
    """Download whichever of the four MNIST ``.gz`` files are missing from ``data_dir``.

    Each file is written to a temporary file in ``data_dir``, its md5 checked against the
    official one, and only then renamed into place; mirrors are tried in order.

    Args:
        data_dir: destination folder (created if needed).
        mirrors: base URLs, each ending in ``/``; the file name is appended.
        timeout: seconds for each connection attempt and read.

    Returns:
        The paths of all four files, as :func:`find_mnist` returns them.

    Raises:
        DataError: a file could not be fetched from any mirror: names the file, the
            directory, the expected md5, each URL tried with its error, and how to place the
            files by hand.
    """
    data_dir = Path(data_dir)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(
            f"cannot create the MNIST directory {data_dir}: {err}. {manual_instructions(data_dir)}"
        ) from err
    for key, spec in MNIST_FILES.items():
        if find_file(data_dir, spec.name) is not None:
            continue
        target = data_dir / f"{spec.name}.gz"
        failures: list[str] = []
        for mirror in mirrors:
            url = mirror + target.name
            try:
                _download_one(url, target, spec.md5, timeout)
                break
            except (OSError, HTTPException, ValueError) as err:  # DataError is a ValueError
                failures.append(f"{url}: {err}")
        else:
            tried = "; ".join(failures) if failures else "no mirrors given"
            raise DataError(
                f"could not download {target.name} (md5 {spec.md5}) into {data_dir}. "
                f"Tried: {tried}. {manual_instructions(data_dir)}"
            )
    found = find_mnist(data_dir)
    assert found is not None  # every file was either present or just downloaded
    return found


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m datamodules.mnist_download [DIR]``: download the missing MNIST files into DIR
    (default ``$RAM_DATA_DIR``, else ``./data/mnist``), printing every error in full."""
    from datamodules.mnist_files import resolve_data_dir

    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) > 1 or any(a.startswith("-") for a in args):
        print("usage: python -m datamodules.mnist_download [DIR]", file=sys.stderr)
        return 2
    root = resolve_data_dir(args[0] if args else None)
    try:
        found = download_mnist(root)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"MNIST is in {root}: " + ", ".join(p.name for p in found.values()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
