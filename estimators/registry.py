"""Estimator registry: ``register(name)`` and ``get_estimator(name, **kwargs)``.

Other installed packages add estimators through the entry-point group
``ram_lightning.estimators`` (``name = package.module:Class``); they are loaded the first time
a name is not found among the registered ones.
"""
from __future__ import annotations

import difflib
import importlib
import inspect
from importlib.metadata import entry_points
from typing import Any, Callable, Dict, Mapping, Optional, Type, TypeVar, Union

from ram_lightning.errors import UserError

from .base import Estimator
from .spec import build_estimator, class_path, is_spec

ENTRY_POINT_GROUP = "ram_lightning.estimators"
# The packages of ram-lightning itself: their classes may be named by a file (a checkpoint).
PROJECT_PACKAGES = ("ram_lightning", "estimators", "datamodules")

_REGISTRY: Dict[str, Type[Estimator]] = {}
E = TypeVar("E", bound=Type[Estimator])


def register(name: str) -> Callable[[E], E]:
    """Class decorator: make an ``Estimator`` subclass available under ``name``."""

    def decorator(cls: E) -> E:
        if not (isinstance(cls, type) and issubclass(cls, Estimator)):
            raise TypeError(f"register({name!r}) expects an Estimator subclass, got {cls!r}")
        existing = _REGISTRY.get(name)
        if existing is not None and existing is not cls:
            raise ValueError(f"estimator name {name!r} is already registered to {existing.__module__}.{existing.__qualname__}")
        _REGISTRY[name] = cls
        return cls

    return decorator


def _load_entry_points() -> None:
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        if entry_point.name in _REGISTRY:
            continue
        try:
            cls = entry_point.load()
        except Exception as error:  # a broken plug-in must not hide the others
            raise UserError(
                f"estimator plug-in {entry_point.name!r} ({entry_point.value}) from entry-point group "
                f"{ENTRY_POINT_GROUP!r} failed to import: {error}"
            ) from error
        register(entry_point.name)(cls)


def _import_estimator(path: str) -> Type[Estimator]:
    """The Estimator subclass at the dotted ``path`` (``package.module.Class``)."""
    module, _, attribute = path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError, ValueError) as error:
        raise UserError(f"estimator {path!r}: cannot import it ({error}); expected a registered name or "
                        f"the class path of an Estimator subclass") from None
    if not (isinstance(cls, type) and issubclass(cls, Estimator)):
        raise UserError(f"estimator {path!r} is {cls!r}, not an Estimator subclass")
    return cls


def trusted_packages() -> set:
    """The top-level packages whose classes a file may name: ram-lightning's own, and those of
    the plug-ins installed under the entry-point group (read from their metadata: nothing is
    imported)."""
    plugins = {entry_point.value.split(":", 1)[0].split(".", 1)[0].strip()
               for entry_point in entry_points(group=ENTRY_POINT_GROUP)}
    return set(PROJECT_PACKAGES) | plugins


def is_trusted_class_path(path: Any) -> bool:
    """Whether importing the dotted ``path`` runs only code of ram-lightning or of an installed
    plug-in (see :func:`trusted_packages`), or names an estimator this process has registered
    already (imported: nothing new runs); decided from the name alone, before any import."""
    if not isinstance(path, str):
        return False
    return path.split(".", 1)[0] in trusted_packages() or any(path == class_path(cls) for cls in _REGISTRY.values())


def available_estimators() -> list:
    """Sorted names of every registered or entry-point estimator."""
    _load_entry_points()
    return sorted(_REGISTRY)


def closest_name(name: str) -> Optional[str]:
    """The registered (or entry-point) estimator name closest to a misspelt ``name`` (case ignored), if one is close."""
    by_lower = {known.lower(): known for known in available_estimators()}
    matches = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[matches[0]] if matches else None


def did_you_mean(name: str) -> str:
    """``"; did you mean 'wake_sleep_cv'?"`` for a misspelt estimator name, else ``""``."""
    closest = closest_name(name)
    return f"; did you mean {closest!r}?" if closest else ""


def get_estimator(name: Union[str, Estimator, Mapping[str, Any]], **kwargs) -> Estimator:
    """Instantiate the estimator registered as ``name`` with ``kwargs``; an instance passes
    through, and a ``{"class_path", "init_args"}`` spec (as checkpoints save it) is built."""
    if is_spec(name) and not kwargs:
        return build_estimator(name)
    if isinstance(name, Estimator):
        if kwargs:
            raise UserError("get_estimator: keyword arguments given with an estimator instance")
        return name
    if name not in _REGISTRY and "." not in name:
        _load_entry_points()
    if name in _REGISTRY:
        cls = _REGISTRY[name]
    elif "." in name:  # a dotted class path given as a plain value: my_package.MyEstimator
        cls = _import_estimator(name)
    else:
        raise UserError(
            f"unknown estimator {name!r}; registered: {', '.join(sorted(_REGISTRY))}{did_you_mean(name) or '.'} "
            f"Give a registered name, or a class path (my_package.MyEstimator) to an Estimator subclass."
        )
    try:
        inspect.signature(cls).bind(**kwargs)
    except TypeError as error:
        raise UserError(f"estimator {name!r} ({cls.__qualname__}): {error}; accepted: {inspect.signature(cls)}") from None
    return cls(**kwargs)


def estimator_name(estimator: Estimator) -> str:
    """The name ``estimator``'s class is registered under, else its class name (for messages)."""
    for name, cls in _REGISTRY.items():
        if type(estimator) is cls:
            return name
    return type(estimator).__qualname__
