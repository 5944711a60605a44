"""What ``ram compare`` compares: estimator variants written ``name[:option=value,...]``.

    reinforce                               a registered name with the config's K
    wake_sleep_cv:prior_coefficient=0       the same estimator with one option changed
    wake_sleep:num_samples=20               ... or another K
    my_package.MyEstimator                  a plug-in by class path (or registered name)

Values are read as YAML scalars (``0``, ``true``, ``online``, ``3e-3``).
"""
from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, Optional

import yaml

from estimators import Estimator
from estimators.registry import construct, estimator_class
from estimators.spec import class_path
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


def _options(cls: type, variant: Variant, num_samples: Optional[int]) -> Dict[str, Any]:
    """The variant's options, with K = ``num_samples`` (the config's) where the class takes one
    and the variant does not set it."""
    options = dict(variant.options)
    if num_samples is not None and "num_samples" in inspect.signature(cls).parameters:
        options.setdefault("num_samples", num_samples)
    return options


def make_estimator(variant: Variant, num_samples: Optional[int]) -> Estimator:
    """The variant's estimator (its options checked against its signature: UserError naming the
    variant), with K = ``num_samples`` (the config's) unless its options set ``num_samples``."""
    cls = estimator_class(variant.estimator)
    return construct(cls, _options(cls, variant, num_samples), f"--estimators {variant.label!r}")


def estimator_spec(variant: Variant, num_samples: Optional[int]) -> Dict[str, Any]:
    """``{"class_path", "init_args"}`` of the variant for ``--model.init_args.estimator``: the
    class resolved (a registered name or plug-in class path), K as in :func:`make_estimator`.
    On the config's own estimator class jsonargparse keeps the config's other options."""
    cls = type(make_estimator(variant, num_samples))  # checks the options now, before any run
    return {"class_path": class_path(cls), "init_args": _options(cls, variant, num_samples)}


def folder_name(label: str) -> str:
    """A variant's folder under ``--out``: the label with anything but letters, digits, ``._=-``
    replaced by ``_`` (``wake_sleep_cv:prior_coefficient=0`` -> ``wake_sleep_cv_prior_coefficient=0``)."""
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", label).strip("._") or "variant"
