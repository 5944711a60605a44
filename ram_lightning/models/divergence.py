"""Divergence checks: training stops at the first non-finite term, loss, metric or gradient, and no
checkpoint with non-finite state is ever written.

:class:`DivergenceChecks` (a mixin of ``EstimatorModule``) raises a ``NonFiniteError`` naming the
step, the estimator and the quantity: for non-finite ``SampleTerms`` (``check_terms``, after the
possibly compiled step), loss or estimator metrics (``check_finite_output``), gradients (before the
optimizer step, so no checkpoint is written from that state) and weights or buffers about to be
saved. Under DDP the processes agree first, so that none is left waiting in the gradient all-reduce
while another stops. :func:`first_non_finite` needs one device synchronisation for all its tensors.
"""
from __future__ import annotations

from typing import Any, Dict, Iterable, Optional, Tuple

import torch
from torch import Tensor

from estimators import Estimator, EstimatorOutput, SampleTerms
from estimators.base import check_finite_terms
from ram_lightning.errors import NonFiniteError


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


class DivergenceChecks:
    """Mixin of :class:`~ram_lightning.models.module.EstimatorModule`: see the module docstring."""

    estimator: Estimator

    def _stop(self, what: str, value: float) -> NonFiniteError:
        return NonFiniteError(
            f"training stopped at step {self.global_step}: estimator {self.estimator.name} produced "
            f"a non-finite {what} ({value}); no checkpoint was written from this state"
        )

    def check_terms(self, terms: SampleTerms, finite: Tensor) -> None:
        """Raise the estimator's NonFiniteError if a term was not finite (``finite``: [] bool; one host
        synchronisation); under DDP the processes first agree whether any was."""
        error: Optional[NonFiniteError] = None
        if not bool(finite):
            try:
                check_finite_terms(self.estimator, terms)
            except NonFiniteError as raised:
                error = raised
        if self._trainer is not None and self.trainer.world_size > 1:
            if self.trainer.strategy.reduce_boolean_decision(error is not None, all=False) and error is None:
                raise NonFiniteError(f"training stopped at step {self.global_step}: estimator "
                                     f"{self.estimator.name} was given non-finite terms on another process")
        if error is not None:
            raise error

    def check_finite_output(self, output: EstimatorOutput) -> None:
        """Raise NonFiniteError if the loss or an estimator metric is NaN or infinite (any process's
        bad value stops every process)."""
        bad = first_non_finite([("train/loss", output.loss)] + [(f"train/{k}", v) for k, v in output.metrics.items()])
        anywhere = bad is not None
        if self._trainer is not None:
            anywhere = self.trainer.strategy.reduce_boolean_decision(anywhere, all=False)
        if bad is not None:
            raise self._stop(*bad)
        if anywhere:
            raise self._stop("loss or metric on another process", float("nan"))

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Raise NonFiniteError, naming the first parameter, if a gradient is NaN or infinite.

        Skipped under 16-bit mixed precision, whose gradient scaler expects occasional
        infinite gradients and skips those steps itself. Gradients are all-reduced already,
        so every DDP process decides alike.
        """
        if getattr(self.trainer.precision_plugin, "scaler", None) is not None:
            return
        bad = first_non_finite((name, p.grad) for name, p in self.named_parameters())
        if bad is not None:
            raise self._stop(f"gradient of {bad[0]}", bad[1])

    def on_save_checkpoint(self, checkpoint: Dict[str, Any]) -> None:
        """Refuse to write a checkpoint whose weights or buffers (estimator state) are not finite."""
        bad = first_non_finite(checkpoint.get("state_dict", {}).items())
        if bad is not None:
            raise NonFiniteError(
                f"refusing to write a checkpoint at step {self.global_step}: {bad[0]} is non-finite ({bad[1]}) "
                f"(estimator {self.estimator.name})"
            )
