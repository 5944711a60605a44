"""What is compared: estimator variants written ``name[:option=value,...]``, and model settings.

    reinforce                               a registered name with the lab's K
    wake_sleep_cv:prior_coefficient=0       the same estimator with one option changed
    wake_sleep:num_samples=20               ... or another K
    my_package.MyEstimator                  a plug-in by class path (or registered name)

Values are read as YAML scalars (``0``, ``true``, ``online``, ``3e-3``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Iterable

import yaml

from estimators import Estimator
from estimators.registry import construct, estimator_class
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
    """``"name[:k=v,k=v]"`` -> Variant (the estimator is resolved later, by ``estimators.registry``)."""
    name, _, rest = spec.partition(":")
    if not name.strip():
        raise UserError(f"--estimators: empty estimator name in {spec!r}")
    options = parse_assignments([part for part in rest.split(",") if part], f"--estimators {spec!r}") if rest else {}
    return Variant(spec, name.strip(), options)


def make_estimator(variant: Variant, num_samples: int) -> Estimator:
    """The variant's estimator with K = ``num_samples`` unless its options set ``num_samples``."""
    options = {"num_samples": num_samples, **variant.options}
    return construct(estimator_class(variant.estimator), options, f"--estimators {variant.label!r}")
