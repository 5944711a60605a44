"""The optimizer and learning-rate schedule of a model trained by an estimator.

    model:
      init_args:
        optimizer: {class_path: torch.optim.Adam, init_args: {lr: 0.001}}
        lr_scheduler: {class_path: torch.optim.lr_scheduler.ReduceLROnPlateau, init_args: {mode: min, patience: 10}}
        inference_lr: 0.0003         # q's own learning rate (its parameters in a group of their own)

jsonargparse gives the factories (a callable over the parameters, and one over the optimizer);
:func:`configure_optimizers` builds both, with the inference network q's parameters in their own
group when ``inference_lr`` is set; a value torch refuses (a negative learning rate) is a UserError
naming the option and the class. A plateau scheduler needs validation: with none at all
(``trainer.limit_val_batches: 0``) it is a UserError before the first update, not Lightning's
traceback after the first epoch; an epoch that ends before the first validation (validation every
N updates) skips its step with Lightning's warning instead of stopping the run.
"""
from __future__ import annotations

from typing import Any, Callable, List, Optional

import torch
from torch import nn

from ram_lightning.errors import UserError


def default_optimizer(params) -> torch.optim.Optimizer:
    """Adam with learning rate 1e-3 (the models' default ``optimizer``)."""
    return torch.optim.Adam(params, lr=1e-3)


def factory_name(factory: Any) -> str:
    """The class an optimizer / scheduler factory builds (jsonargparse gives a functools.partial
    whose first class argument is it)."""
    args = getattr(factory, "args", ())
    target = next((a for a in args if isinstance(a, type)), None) or getattr(factory, "func", factory)
    return f"{getattr(target, '__module__', '')}.{getattr(target, '__qualname__', type(target).__qualname__)}".lstrip(".")


def configure_optimizers(parameters: List[nn.Parameter], q_parameters: List[nn.Parameter], optimizer: Callable,
                         lr_scheduler: Optional[Callable], inference_lr: Optional[float], monitor: str,
                         validates: bool = True) -> Any:
    """What ``LightningModule.configure_optimizers`` returns: the optimizer, or with a scheduler
    ``{"optimizer", "lr_scheduler": {"scheduler", "monitor"}}``.

    Args:
        parameters: every parameter of the model.
        q_parameters: those of the inference network q (and what it alone reads), possibly none.
        optimizer: the optimizer factory over parameters or parameter groups.
        lr_scheduler: the scheduler factory over the optimizer, or None.
        inference_lr: q's learning rate (None: the optimizer's own, one group).
        monitor: the metric a plateau scheduler watches.
        validates: whether the trainer runs validation at all (a plateau scheduler needs it).
    """
    params: Any = parameters
    if inference_lr is not None and q_parameters:
        q_ids = {id(p) for p in q_parameters}
        params = [{"params": [p for p in parameters if id(p) not in q_ids]}, {"params": q_parameters, "lr": inference_lr}]
    try:
        built = optimizer(params)
    except ValueError as error:  # torch.optim's checks: "Invalid learning rate: -0.001", ...
        raise UserError(f"model.optimizer ({factory_name(optimizer)}): {error}") from None
    if lr_scheduler is None:
        return built
    try:
        scheduler = lr_scheduler(built)
    except ValueError as error:
        raise UserError(f"model.lr_scheduler ({factory_name(lr_scheduler)}): {error}") from None
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau) and not validates:
        raise UserError(f"model.lr_scheduler ({factory_name(lr_scheduler)}) watches {monitor}, but trainer.limit_val_batches "
                        "is 0, so validation never runs: give it batches, or choose a scheduler that watches no metric")
    return {"optimizer": built, "lr_scheduler": {"scheduler": scheduler, "monitor": monitor, "strict": False}}
