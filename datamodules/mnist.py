"""MNIST in its original IDX form: reading, finding, downloading (md5-checked), and an offline
synthetic fallback (:func:`render_digits`).

Where the files are looked for (first hit wins, per file, ``NAME.gz`` before raw ``NAME``)::

    <data_dir>/                 e.g. ./data/mnist or $RAM_DATA_DIR
    <data_dir>/mnist/           so that RAM_DATA_DIR may point at a parent data folder
    <data_dir>/MNIST/raw/       the torchvision layout

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

import functools
import gzip
import hashlib
import io
import math
import os
import sys
import tempfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Sequence
from http.client import HTTPException
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ram_lightning.errors import DataError


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

#: Mirrors tried in order by :func:`download_mnist` (the original yann.lecun.com is gone).
MNIST_MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)

DATA_DIR_ENV = "RAM_DATA_DIR"
DEFAULT_DATA_DIR = "./data/mnist"

# IDX type code -> numpy dtype (big-endian on disk).
_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20

# md5 of files already hashed, keyed by (resolved path, mtime_ns, size).
_MD5_CACHE: dict[tuple[str, int, int], str] = {}


# --------------------------------------------------------------------------- IDX reading


def _read_bytes(path: Path) -> bytes:
    """All bytes of ``path``, gunzipped if it starts with the gzip magic.

    Raises:
        DataError: the file cannot be read, or its gzip stream is broken (truncated, bad CRC,
            corrupt deflate data); the message gives how many bytes decompressed before the
            break and, where the IDX header survived, how many it promises.
    """
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DataError(f"cannot read IDX file {path}: {err}") from err
    if not raw.startswith(_GZIP_MAGIC):
        return raw
    parts: list[bytes] = []
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(raw)) as f:
            while chunk := f.read(_CHUNK):
                parts.append(chunk)
    except (EOFError, OSError, zlib.error) as err:  # gzip.BadGzipFile is an OSError
        partial = b"".join(parts)
        promised = _promised_size(partial)
        expect = f"the IDX header promises {promised} bytes" if promised else "a complete IDX file"
        raise DataError(
            f"{path}: the gzip stream is truncated or corrupt ({err}); {len(partial)} bytes "
            f"decompressed before the error, expected {expect} "
            f"(compressed file size {len(raw)} bytes). Delete it and download again."
        ) from err
    return b"".join(parts)


def _parse_header(data: bytes) -> tuple[np.dtype, tuple[int, ...], int] | None:
    """``(dtype, dims, header_bytes)`` from the start of an IDX file, or None if too short.

    Raises:
        ValueError: bad magic number, unknown type code or zero dimensions (the caller adds
            the file name).
    """
    if len(data) < 4:
        return None
    if data[0] != 0 or data[1] != 0:
        raise ValueError(f"bad magic number {data[:4].hex()}: the first two bytes must be 00 00")
    code, ndim = data[2], data[3]
    if code not in _IDX_DTYPES:
        known = ", ".join(f"0x{c:02x}" for c in _IDX_DTYPES)
        raise ValueError(f"unknown IDX type code 0x{code:02x}; expected one of {known}")
    if ndim == 0:
        raise ValueError("the IDX header declares 0 dimensions; expected at least 1")
    header_bytes = 4 + 4 * ndim
    if len(data) < header_bytes:
        return None
    dims = tuple(int.from_bytes(data[4 + 4 * k : 8 + 4 * k], "big") for k in range(ndim))
    return _IDX_DTYPES[code], dims, header_bytes


def _promised_size(data: bytes) -> int | None:
    """Total file size the IDX header at the start of ``data`` promises, if readable."""
    try:
        parsed = _parse_header(data)
    except ValueError:
        return None
    if parsed is None:
        return None
    dtype, dims, header_bytes = parsed
    return header_bytes + math.prod(dims) * dtype.itemsize


def read_idx(path: str | os.PathLike) -> torch.Tensor:
    """Read one IDX file (gzipped or raw; detected from the content, not the name).

    Checks the magic number (``00 00 <type> <ndim>``), that the dimension header is complete,
    and that the payload holds exactly ``prod(dims)`` items: a truncated, padded or corrupt
    file raises instead of loading.

    Args:
        path: the file, e.g. ``train-images-idx3-ubyte.gz`` or ``train-images-idx3-ubyte``.

    Returns:
        A tensor of shape ``dims`` (e.g. ``[60000, 28, 28]``) with the file's dtype
        (``torch.uint8`` for MNIST; int8/int16/int32/float32/float64 for the other IDX codes).

    Raises:
        DataError: naming the file, what was wrong, and the expected vs found size.
    """
    path = Path(path)
    data = _read_bytes(path)
    try:
        parsed = _parse_header(data)
    except ValueError as err:
        raise DataError(f"{path} is not an IDX file: {err}") from err
    if parsed is None:
        raise DataError(
            f"{path} is truncated: {len(data)} bytes (after decompression), too short for "
            f"the IDX magic number and dimension header"
        )
    dtype, dims, header_bytes = parsed
    expected = header_bytes + math.prod(dims) * dtype.itemsize
    if len(data) != expected:
        shape = "x".join(str(d) for d in dims)
        what = "truncated" if len(data) < expected else "longer than its header says"
        raise DataError(
            f"{path} is {what}: found {len(data)} bytes (after decompression), expected "
            f"{expected} ({header_bytes}-byte header + {shape} items of {dtype.itemsize} byte(s))"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header_bytes).reshape(dims)
    return torch.from_numpy(array.astype(dtype.newbyteorder("="), copy=True))


# --------------------------------------------------------------------------- finding, md5


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path:
    """``data_dir``, else ``$RAM_DATA_DIR``, else ``./data/mnist`` (with ``~`` expanded)."""
    chosen = data_dir if data_dir is not None else os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR
    return Path(chosen).expanduser()


def _search_dirs(data_dir: Path) -> list[Path]:
    return [data_dir, data_dir / "mnist", data_dir / "MNIST" / "raw"]


def _find_file(data_dir: Path, name: str) -> Path | None:
    for folder in _search_dirs(data_dir):
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
    found = {key: _find_file(Path(data_dir), f.name) for key, f in MNIST_FILES.items()}
    if any(path is None for path in found.values()):
        return None
    return found  # type: ignore[return-value]


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


# --------------------------------------------------------------------------- download


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


def _manual_instructions(data_dir: Path) -> str:
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
            f"cannot create the MNIST directory {data_dir}: {err}. {_manual_instructions(data_dir)}"
        ) from err
    for key, spec in MNIST_FILES.items():
        if _find_file(data_dir, spec.name) is not None:
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
                f"Tried: {tried}. {_manual_instructions(data_dir)}"
            )
    found = find_mnist(data_dir)
    assert found is not None  # every file was either present or just downloaded
    return found


# --------------------------------------------------------------------------- loading


def _missing_files_error(data_dir: Path) -> DataError:
    names = ", ".join(f"{f.name}[.gz]" for f in MNIST_FILES.values())
    where = ", ".join(str(d) for d in _search_dirs(data_dir))
    if not data_dir.is_dir():
        return DataError(
            f"MNIST directory {data_dir} does not exist; expected the four IDX files ({names}) "
            f"there; set {DATA_DIR_ENV} or data.data_dir to a folder that holds them, or allow "
            f"downloading"
        )
    missing = [
        f"{f.name}[.gz]" for f in MNIST_FILES.values() if _find_file(data_dir, f.name) is None
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


# --------------------------------------------------------------------------- rendered fallback

_FONT_VARIANTS: tuple[tuple[int, int], ...] = (  # (font size, stroke width) of the glyph bank
    (32, 0), (40, 0), (40, 1), (48, 0), (48, 1), (56, 0), (56, 1), (56, 2),
)
_BOX = 20  # MNIST digits are fitted into a 20x20 box ...
_SIZE = 28  # ... and centred by centre of mass in a 28x28 image


def _load_font(size: int):
    """PIL's built-in font at ``size`` (FreeType), or its bitmap font where FreeType is absent."""
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):
        return ImageFont.load_default()


def _render_glyph(char: str, font_size: int, stroke: int) -> torch.Tensor:
    """One digit, fitted into a 20x20 box and centred by centre of mass: float [28, 28] in [0,1]."""
    from PIL import Image, ImageDraw

    font = _load_font(font_size)
    pad = 2 * font_size
    img = Image.new("L", (pad * 2, pad * 2), 0)
    ImageDraw.Draw(img).text((pad // 2, pad // 2), char, fill=255, font=font,
                             stroke_width=stroke, stroke_fill=255)
    img = img.crop(img.getbbox())
    factor = _BOX / max(img.size)
    size = (max(1, round(img.size[0] * factor)), max(1, round(img.size[1] * factor)))
    glyph = np.asarray(img.resize(size, Image.Resampling.LANCZOS), dtype=np.float32) / 255.0
    glyph = glyph.clip(0.0, 1.0)
    rows, cols = np.indices(glyph.shape)
    mass = glyph.sum()
    cy, cx = (rows * glyph).sum() / mass, (cols * glyph).sum() / mass
    top = int(np.clip(round(_SIZE / 2 - 0.5 - cy), 0, _SIZE - glyph.shape[0]))
    left = int(np.clip(round(_SIZE / 2 - 0.5 - cx), 0, _SIZE - glyph.shape[1]))
    canvas = np.zeros((_SIZE, _SIZE), dtype=np.float32)
    canvas[top : top + glyph.shape[0], left : left + glyph.shape[1]] = glyph
    return torch.from_numpy(canvas)


@functools.lru_cache(maxsize=1)
def _glyph_bank() -> torch.Tensor:
    """float [10, V, 28, 28]: every digit in every (font size, stroke width) variant.
    Cached: treat as read-only."""
    return torch.stack([
        torch.stack([_render_glyph(str(d), size, stroke) for size, stroke in _FONT_VARIANTS])
        for d in range(10)
    ])


def _random_affine(n: int, gen: torch.Generator) -> torch.Tensor:
    """[n, 2, 3] ``affine_grid`` matrices (output -> input coordinates) of random forward maps:
    rotation +-15 deg, shear +-0.25, scale 0.8..1.1 (x and y slightly apart), shift +-0.1."""
    def uniform(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, generator=gen)

    angle = uniform(-15.0, 15.0) * math.pi / 180.0
    shear = uniform(-0.25, 0.25)
    scale = uniform(0.8, 1.1)
    sx, sy = scale * uniform(0.92, 1.08), scale
    cos, sin = torch.cos(angle), torch.sin(angle)
    rot = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)  # (n,2,2)
    shear_scale = torch.zeros(n, 2, 2)
    shear_scale[:, 0, 0], shear_scale[:, 0, 1], shear_scale[:, 1, 1] = sx, shear * sy, sy
    forward = rot @ shear_scale  # (n, 2, 2)
    shift = torch.stack([uniform(-0.1, 0.1), uniform(-0.1, 0.1)], -1)  # (n, 2)
    inverse = torch.linalg.inv(forward)  # (n, 2, 2)
    return torch.cat([inverse, -(inverse @ shift.unsqueeze(-1))], dim=-1)  # (n, 2, 3)


def _blur3(x: torch.Tensor) -> torch.Tensor:
    """3x3 binomial blur of images [..., h, w] (zero outside)."""
    padded = F.pad(x, (1, 1, 1, 1))
    rows = 0.25 * padded[..., :-2] + 0.5 * padded[..., 1:-1] + 0.25 * padded[..., 2:]
    return 0.25 * rows[..., :-2, :] + 0.5 * rows[..., 1:-1, :] + 0.25 * rows[..., 2:, :]


def _sampling_grid(theta: torch.Tensor, size: int) -> torch.Tensor:
    """``F.affine_grid(theta, [n, 1, size, size], align_corners=False)`` by broadcasting,
    several times faster on CPU: theta [n, 2, 3] -> grid [n, size, size, 2]."""
    coords = (torch.arange(size, dtype=theta.dtype) * 2 + 1) / size - 1  # pixel centres
    n = theta.shape[0]
    per_x = coords.view(1, 1, size, 1) * theta[:, :, 0].reshape(n, 1, 1, 2)  # (n, 1, size, 2)
    per_y = coords.view(1, size, 1, 1) * theta[:, :, 1].reshape(n, 1, 1, 2)  # (n, size, 1, 2)
    return per_x + (per_y + theta[:, :, 2].reshape(n, 1, 1, 2))  # (n, size, size, 2)


def render_digits(num_per_class: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Synthetic MNIST-like digits, for when the real files cannot be had (offline fallback).

    A small bank of glyphs (PIL's built-in font at a few sizes and stroke widths, fitted in a
    20x20 box and centred by centre of mass in 28x28, as MNIST was made) is varied per sample,
    batched in torch: random affine map (rotation +-15 deg, shear, scale 0.8-1.1, a shift of
    about +-1.4 px), light blur and a random ink gain. Deterministic given ``seed``
    (and the Pillow/FreeType version). Not comparable to published MNIST results.

    Args:
        num_per_class: how many images of each digit 0..9.
        seed: seeds every random choice.

    Returns:
        ``(images, labels)``: uint8 ``[10 * num_per_class, 28, 28]`` and int64
        ``[10 * num_per_class]``, classes shuffled together.
    """
    if num_per_class < 0:
        raise ValueError(f"num_per_class must be >= 0, got {num_per_class}")
    gen = torch.Generator().manual_seed(seed)
    bank = _glyph_bank()  # (10, V, 28, 28)
    bank_blurred = _blur3(bank)  # blurring before the (linear) warp = blurring after it
    n = 10 * num_per_class
    labels = torch.arange(10).repeat_interleave(num_per_class)[torch.randperm(n, generator=gen)]
    variant = torch.randint(0, bank.shape[1], (n,), generator=gen)
    blur = 0.6 * torch.rand(n, 1, 1, generator=gen)
    gain = 1.0 + 0.3 * torch.rand(n, 1, 1, generator=gen)
    theta = _random_affine(n, gen)  # (n, 2, 3)
    images = torch.empty(n, _SIZE, _SIZE, dtype=torch.uint8)
    for start in range(0, n, 4096):  # chunks that stay in cache
        sl = slice(start, start + 4096)
        sharp, soft = bank[labels[sl], variant[sl]], bank_blurred[labels[sl], variant[sl]]
        glyphs = torch.lerp(sharp, soft, blur[sl]).unsqueeze(1)  # (b, 1, 28, 28)
        grid = _sampling_grid(theta[sl], _SIZE)  # (b, 28, 28, 2)
        warped = F.grid_sample(glyphs, grid, mode="bilinear", align_corners=False)[:, 0]
        images[sl] = warped.mul_(255.0 * gain[sl]).clamp_(0, 255).round_().to(torch.uint8)
    return images, labels
