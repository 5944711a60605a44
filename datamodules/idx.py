"""The IDX file format (the one MNIST ships in): :func:`read_idx` reads a gzipped or raw file,
checking its magic number, dimension header and exact payload size.

Every problem raises :class:`ram_lightning.errors.DataError` naming the file, what was wrong and
the expected vs found size; nothing is loaded silently from a damaged file.
"""
from __future__ import annotations

import gzip
import io
import math
import os
import zlib
from pathlib import Path

import numpy as np
import torch

from ram_lightning.errors import DataError

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

