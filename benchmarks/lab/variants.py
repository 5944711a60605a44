"""What is compared: estimator variants written ``name[:option=value,...]``, and model settings.

    reinforce                               a registered name with the lab's K
    wake_sleep_cv:prior_coefficient=0       the same estimator with one option changed
    wake_sleep:num_samples=20               ... or another K
    my_package.MyEstimator                  a plug-in by class path (or registered name)

Values are read as YAML scalars (``0``, ``true``, ``online``, ``3e-3``).
"""
from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, Type

import yaml

from estimators import Estimator
from estimators.registry import _REGISTRY, available_estimators, did_you_mean
from ram_lightning.errors import UserError


@dataclass(frozen=True)
class Variant:
    """One estimator setting: ``label`` (the spec as written), ``estimator`` (a registered name
    or a dotted class path) and its ``options`` (constructor keywords)."""

    label: str
    estimator: str
    options: Dict[str, Any] = field(default_factory=dict)


def parse_assignments(items: Iterable[str], what: str) -> Dict[str, Any]:
    """``["key=value", ...]`` -> dict, values parsed as YAML scalars; UserError on a malformed item."""
    options: Dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"{what}: expected key=value, got {item!r}")
        options[key.strip()] = yaml.safe_load(value) if value.strip() else None
    return options


def parse_variant(spec: str) -> Variant:
    """``"name[:k=v,k=v]"`` -> Variant (the estimator is resolved later, by ``estimator_class``)."""
    name, _, rest = spec.partition(":")
    if not name.strip():
        raise UserError(f"--estimators: empty estimator name in {spec!r}")
    options = parse_assignments([part for part in rest.split(",") if part], f"--estimators {spec!r}") if rest else {}
    return Variant(spec, name.strip(), options)


def estimator_class(name: str) -> Type[Estimator]:
    """The class registered as ``name`` (entry points included), else the class at the dotted path ``name``."""
    if name in available_estimators():
        return _REGISTRY[name]
    module_name, _, attribute = name.rpartition(".")
    cls = None
    if module_name:
        try:
            cls = getattr(importlib.import_module(module_name), attribute, None)
        except ImportError:
            cls = None
    if not (inspect.isclass(cls) and issubclass(cls, Estimator)):
        raise UserError(f"unknown estimator {name!r}: not a registered name ({', '.join(available_estimators())}) "
                        f"nor the class path of an Estimator subclass{did_you_mean(name)}")
    return cls


def make_estimator(variant: Variant, num_samples: int) -> Estimator:
    """The variant's estimator with K = ``num_samples`` unless its options set ``num_samples``."""
    cls = estimator_class(variant.estimator)
    options = {"num_samples": num_samples, **variant.options}
    try:
        inspect.signature(cls).bind(**options)
    except TypeError as error:
        raise UserError(f"--estimators {variant.label!r}: {error}; {cls.__qualname__} accepts {inspect.signature(cls)}") from None
    return cls(**options)
