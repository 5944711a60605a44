"""An estimator as data: ``{"class_path": ..., "init_args": {...}}``, so checkpoints rebuild it.

The LightningModules save this spec in their hyperparameters (not the instance), so
``AttentionClassifier.load_from_checkpoint(path)`` builds the same estimator class with the
same options, for built-ins and for plug-ins from other packages alike:

    spec = estimator_spec(get_estimator("reinforce", num_samples=5))
    # {"class_path": "estimators.reinforce.Reinforce", "init_args": {"num_samples": 5, ...}}
    build_estimator(spec)   # a new Reinforce(num_samples=5, ...)   (estimators.registry)

The options are those the constructor received (recorded by ``Estimator.__new__``), with the
constructor's defaults filled in. This module only turns estimators into data; turning a
class path back into a class is the registry's job (:mod:`estimators.registry`).
"""
from __future__ import annotations

from typing import Any, Dict, Mapping

from .base import Estimator


def class_path(cls: type) -> str:
    """``"module.Class"`` of ``cls`` (what a spec, a checkpoint and the run record write)."""
    return f"{cls.__module__}.{cls.__qualname__}"


def plain(value: Any) -> Any:
    """``value`` as YAML-safe data (nested estimators as specs, tuples as lists, keys as strings)."""
    if isinstance(value, Estimator):
        return estimator_spec(value)
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    return value


def estimator_spec(estimator: Estimator) -> Dict[str, Any]:
    """``{"class_path": "module.Class", "init_args": {...}}`` of an estimator instance."""
    init_args = getattr(estimator, "_init_args", None) or {}
    return {"class_path": class_path(type(estimator)), "init_args": {k: plain(v) for k, v in init_args.items()}}


def is_spec(value: Any) -> bool:
    """Whether ``value`` is a ``{"class_path", ...}`` mapping."""
    return isinstance(value, Mapping) and "class_path" in value
