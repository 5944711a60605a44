"""Finding the first non-finite value among named tensors, for the classifier's divergence checks.

One device synchronisation for all the tensors together; the offending value is looked up
only when there is one.
"""
from __future__ import annotations

from typing import Iterable, Optional, Tuple

import torch
from torch import Tensor


def first_non_finite(named: Iterable[Tuple[str, Optional[Tensor]]]) -> Optional[Tuple[str, float]]:
    """``(name, value)`` of the first tensor holding a NaN or infinity, or None if all are finite.

    Python numbers count as tensors; None and integer values are skipped. ``value`` is one of
    the non-finite entries (nan, inf or -inf).
    """
    tensors = [(name, torch.as_tensor(value).detach()) for name, value in named if isinstance(value, (Tensor, float))]
    tensors = [(name, value) for name, value in tensors if value.is_floating_point()]
    if not tensors:
        return None
    finite = torch.stack([torch.isfinite(value).all() for _, value in tensors])
    if bool(finite.all()):
        return None
    name, value = tensors[int((~finite).nonzero()[0, 0])]
    return name, value[~torch.isfinite(value)].flatten()[0].item()
