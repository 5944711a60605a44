"""An estimator as data: ``{"class_path": ..., "init_args": {...}}``, so checkpoints rebuild it.

The LightningModules save this spec in their hyperparameters (not the instance), so
``AttentionClassifier.load_from_checkpoint(path)`` builds the same estimator class with the
same options, for built-ins and for plug-ins from other packages alike:

    spec = estimator_spec(get_estimator("reinforce", num_samples=5))
    # {"class_path": "estimators.reinforce.Reinforce", "init_args": {"num_samples": 5, ...}}
    build_estimator(spec)   # a new Reinforce(num_samples=5, ...)

The options are those the constructor received (recorded by ``Estimator.__new__``), with the
constructor's defaults filled in.
"""
from __future__ import annotations

import importlib
import inspect
from typing import Any, Dict, Mapping

from ram_lightning.errors import UserError

from .base import Estimator


def class_path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _plain(value: Any) -> Any:
    """``value`` as YAML-safe data (nested estimators as specs)."""
    if isinstance(value, Estimator):
        return estimator_spec(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def estimator_spec(estimator: Estimator) -> Dict[str, Any]:
    """``{"class_path": "module.Class", "init_args": {...}}`` of an estimator instance."""
    init_args = getattr(estimator, "_init_args", None) or {}
    return {"class_path": class_path(type(estimator)), "init_args": {k: _plain(v) for k, v in init_args.items()}}


def is_spec(value: Any) -> bool:
    return isinstance(value, Mapping) and "class_path" in value


def import_class(path: str) -> type:
    """The class at ``path`` (``package.module.Class``); a UserError naming it if it cannot be imported."""
    module_name, _, name = str(path).rpartition(".")
    try:
        obj: Any = importlib.import_module(module_name) if module_name else None
        for part in name.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError, TypeError) as error:
        raise UserError(
            f"estimator class_path {path!r} cannot be imported ({type(error).__name__}: {error}); "
            f"install the package that defines it"
        ) from None
    return obj


def build_estimator(spec: Mapping[str, Any]) -> Estimator:
    """A new estimator from ``{"class_path", "init_args"}`` (nested specs in init_args too)."""
    cls = import_class(spec["class_path"])
    if not (isinstance(cls, type) and issubclass(cls, Estimator)):
        raise UserError(f"estimator class_path {spec['class_path']!r} is not an Estimator subclass")
    init_args = {k: build_estimator(v) if is_spec(v) else v for k, v in dict(spec.get("init_args") or {}).items()}
    try:
        inspect.signature(cls).bind(**init_args)
    except TypeError as error:
        raise UserError(f"estimator {spec['class_path']!r}: {error}; accepted: {inspect.signature(cls)}") from None
    return cls(**init_args)
