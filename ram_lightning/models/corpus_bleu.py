"""``CorpusBLEU``: coco-caption corpus BLEU as a torchmetrics ``Metric`` (summed statistics, right
under DDP); the arithmetic is in :mod:`ram_lightning.models.bleu`."""
from __future__ import annotations

from typing import Any, Dict, Sequence

import torch
from torch import Tensor
from torchmetrics import Metric

from ram_lightning.models.bleu import bleu_from_statistics, check_max_n, corpus_statistics


class CorpusBLEU(Metric):
    """coco-caption corpus BLEU-1..``max_n`` as a torchmetrics ``Metric``, correct under DDP.

    The states are the summed :func:`ram_lightning.models.bleu.bleu_statistics` of every hypothesis seen — clipped matches
    and totals per order, total hypothesis length, total closest-reference length — as int64
    tensors with ``dist_reduce_fx="sum"``. Summing them across ranks (what torchmetrics does on
    ``compute()`` under DDP) gives exactly the statistics of the whole corpus, so the result is
    the same as one process scoring everything (note DDP samplers may pad the last batch by
    repeating samples; those duplicates are counted like any other hypothesis).

    Args:
        max_n: the largest n-gram order (4 gives ``bleu1``..``bleu4``).
        coco_epsilons: see :func:`ram_lightning.models.bleu.bleu_from_statistics`; default reproduces coco exactly.
        **kwargs: passed on to ``torchmetrics.Metric`` (e.g. ``dist_sync_fn``).

    Example:
        >>> metric = CorpusBLEU(max_n=2)
        >>> metric.update([["a", "dog", "runs"]], [[["a", "dog", "runs", "fast"]]])
        >>> metric.update([["the", "cat"]], [[["the", "cat"], ["a", "black", "cat"]]])
        >>> {name: round(value.item(), 4) for name, value in metric.compute().items()}
        {'bleu1': 81.8731, 'bleu2': 81.8731}

        Every n-gram matches; corpus ``c = 3 + 2 = 5``, ``r = 4 + 2 = 6``, ``BP = exp(1 - 6/5)``.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    matches: Tensor
    totals: Tensor
    hyp_length: Tensor
    ref_length: Tensor

    def __init__(self, max_n: int = 4, coco_epsilons: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        check_max_n(max_n)
        self.max_n = max_n
        self.coco_epsilons = coco_epsilons
        self.add_state("matches", default=torch.zeros(max_n, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("totals", default=torch.zeros(max_n, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("hyp_length", default=torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("ref_length", default=torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, hypotheses: Sequence[Sequence[str]], references: Sequence[Sequence[Sequence[str]]]) -> None:
        """Add a batch of captions.

        Args:
            hypotheses: one token list per image (special tokens already stripped).
            references: for each hypothesis, a non-empty list of reference token lists.

        Raises:
            ValueError: the two lists differ in length, or some hypothesis has no references.
            TypeError: a sentence is given as a plain string instead of a token list.
        """
        stats = corpus_statistics(hypotheses, references, self.max_n).to(self.matches.device)
        n = self.max_n
        self.matches += stats[:n]
        self.totals += stats[n:2 * n]
        self.hyp_length += stats[2 * n]
        self.ref_length += stats[2 * n + 1]

    def statistics(self) -> Tensor:
        """The current (local, unsynced) states as one ``[2 * max_n + 2]`` statistics tensor."""
        return torch.cat([self.matches, self.totals, self.hyp_length.reshape(1), self.ref_length.reshape(1)])

    def compute(self) -> Dict[str, Tensor]:
        """BLEU of everything seen so far (all ranks): ``{"bleu1": ..., "bleu{max_n}": ...}``, 0-100
        scalar tensors (float64)."""
        scores = bleu_from_statistics(self.statistics(), self.max_n, coco_epsilons=self.coco_epsilons)
        return {f"bleu{n}": scores[n - 1] for n in range(1, self.max_n + 1)}
