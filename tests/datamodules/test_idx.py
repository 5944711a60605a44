"""The IDX format (datamodules/idx.py): malformed files are refused, other dtypes read big-endian."""
import gzip

import numpy as np
import pytest
import torch

from datamodules import read_idx
from ram_lightning.errors import DataError


def _idx_bytes(code: int, dims: tuple[int, ...], payload: bytes) -> bytes:
    header = bytes([0, 0, code, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)
    return header + payload


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"", "too short"),
        (b"\x00\x00", "too short"),
        (b"\x01\x02\x08\x01" + (3).to_bytes(4, "big") + b"abc", "magic"),
        (b"\x00\x00\x07\x01" + (3).to_bytes(4, "big") + b"abc", "type code"),
        (b"\x00\x00\x08\x03" + (3).to_bytes(4, "big"), "too short"),
        (_idx_bytes(0x08, (2, 3), b"12345"), "expected 18"),
        (_idx_bytes(0x08, (2, 3), b"1234567"), "longer"),
        (_idx_bytes(0x0C, (2,), b"\x00" * 7), "expected 16"),
    ],
)
def test_read_idx_rejects_malformed_raw_files(tmp_path, content, expected):
    path = tmp_path / "bad-idx"
    path.write_bytes(content)
    with pytest.raises(DataError) as info:
        read_idx(path)
    assert str(path) in str(info.value)
    assert expected in str(info.value)


def test_read_idx_other_dtypes_big_endian(tmp_path):
    values = np.arange(-3, 3, dtype=">i4").reshape(2, 3)
    path = tmp_path / "ints"
    path.write_bytes(_idx_bytes(0x0C, (2, 3), values.tobytes()))
    out = read_idx(path)
    assert out.dtype == torch.int32
    assert out.tolist() == values.tolist()
    floats = np.array([0.5, -2.0], dtype=">f4")
    (tmp_path / "floats.gz").write_bytes(gzip.compress(_idx_bytes(0x0D, (2,), floats.tobytes())))
    assert read_idx(tmp_path / "floats.gz").tolist() == [0.5, -2.0]
