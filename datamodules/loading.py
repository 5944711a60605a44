"""The one DataLoader recipe every DataModule here uses."""
from __future__ import annotations

from typing import Callable, Optional

import torch
from torch.utils.data import DataLoader, Dataset


def make_loader(dataset: Dataset, split: str, batch_size: int, num_workers: int,
                collate_fn: Optional[Callable] = None) -> DataLoader:
    """Shuffled for ``"train"`` only; workers kept alive between epochs; pinned memory with CUDA.

    Evaluation loaders get a generator of their own: every new iterator over a DataLoader draws
    a base seed from its generator, which would otherwise be torch's global one, so each
    validation would shift the training random stream.
    """
    evaluation = split != "train"
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=split == "train",
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        pin_memory=torch.cuda.is_available(),
        collate_fn=collate_fn,
        generator=torch.Generator().manual_seed(0) if evaluation else None,
    )
