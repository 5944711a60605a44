"""The one way this project derives seeds: :func:`mix_seed` (splitmix64), a well-spread seed for
the item or stream named by some integers within a set fixed by ``seed``. It fixes the validation
and test images, the synthetic caption splits, each DDP rank's random stream and the private
evaluation streams (``ram_lightning.models.streams.stream_seed``)."""
from __future__ import annotations

_MASK64 = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def mix_seed(seed: int, *words: int) -> int:
    """A well-spread 63-bit seed for the item or stream named by ``words`` (an index; or e.g.
    rank, stage, step) of a set fixed by ``seed``; each word is mixed in turn.

    >>> mix_seed(0, 1) == mix_seed(0, 1) != mix_seed(0, 2)
    True
    >>> mix_seed(0, 1, 2) == mix_seed(mix_seed(0, 1), 2)
    True
    """
    for word in words:
        seed = _splitmix64(_splitmix64(seed & _MASK64) ^ (word & _MASK64)) >> 1
    return seed
