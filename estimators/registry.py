"""The one resolver of estimator names and class paths.

    register("my_estimator")(MyEstimator)           # a class decorator; sets MyEstimator.name
    estimator_class("wake_sleep_cv")                # a registered name -> its class
    estimator_class("my_package.MyEstimator")       # a dotted class path -> the class (imported)
    get_estimator("reinforce", num_samples=5)       # a name, a class path, a spec or an instance -> an instance
    build_estimator({"class_path": ..., "init_args": {...}})   # a spec (as checkpoints save it) -> an instance
    import_class("ram_lightning.AttentionClassifier")          # any dotted class path (models, loggers too)

The built-in estimators register themselves with ``@register`` when :mod:`estimators` is
imported. Other installed packages add estimators through the entry-point group
``ram_lightning.estimators`` (``name = package.module:Class``); they are loaded the first time a
name is not found among the registered ones.

:func:`import_class` is the only place in the project that imports a class named by a dotted
path (the CLI, the checkpoint loader, the run record, W&B tracking and the lab all come here),
and :func:`construct` the only "check the keywords against the signature, then build".
"""
from __future__ import annotations

import difflib
import importlib
import inspect
from importlib.metadata import entry_points
from typing import Any, Callable, Dict, Mapping, Optional, Type, TypeVar, Union

from ram_lightning.errors import UserError

from .base import Estimator
from .spec import class_path, is_spec

ENTRY_POINT_GROUP = "ram_lightning.estimators"
# The packages of ram-lightning itself: their classes may be named by a file (a checkpoint).
PROJECT_PACKAGES = ("ram_lightning", "estimators", "datamodules")

_REGISTRY: Dict[str, Type[Estimator]] = {}
E = TypeVar("E", bound=Type[Estimator])


def import_class(path: str, what: str = "class") -> Any:
    """The object at the dotted ``path`` (``package.module.Class``, or ``package.Class`` where the
    package exports it); nested names (``module.Outer.Inner``) too.

    Raises:
        UserError: ``"<what> class path '<path>' cannot be imported (<error>); ..."``.
    """
    module_name, _, name = str(path).rpartition(".")
    try:
        obj: Any = importlib.import_module(module_name) if module_name else None
        for part in name.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError, TypeError, ValueError) as error:
        raise UserError(f"{what} class path {path!r} cannot be imported ({type(error).__name__}: {error}); "
                        f"install the package that defines it") from None
    return obj


def register(name: str) -> Callable[[E], E]:
    """Class decorator: make an ``Estimator`` subclass available under ``name`` and set its
    ``name`` (what messages call it). A class keeps its first name if registered twice."""

    def decorator(cls: E) -> E:
        if not (isinstance(cls, type) and issubclass(cls, Estimator)):
            raise TypeError(f"register({name!r}) expects an Estimator subclass, got {cls!r}")
        existing = _REGISTRY.get(name)
        if existing is not None and existing is not cls:
            raise ValueError(f"estimator name {name!r} is already registered to {class_path(existing)}")
        if cls not in _REGISTRY.values():
            cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorator


def _load_entry_points() -> None:
    """Register the plug-ins of the entry-point group (names registered already are skipped)."""
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


def estimator_class(name: str) -> Type[Estimator]:
    """The class registered as ``name`` (entry points included), else the class at the dotted path ``name``.

    Raises:
        UserError: an unknown name (the registered ones listed, the closest suggested), a class
            path that cannot be imported, or one that is not an ``Estimator`` subclass.
    """
    if name not in _REGISTRY and "." not in name:
        _load_entry_points()
    if name in _REGISTRY:
        return _REGISTRY[name]
    if "." not in name:
        raise UserError(
            f"unknown estimator {name!r}; registered: {', '.join(sorted(_REGISTRY))}{did_you_mean(name) or '.'} "
            f"Give a registered name, or a class path (my_package.MyEstimator) to an Estimator subclass."
        )
    cls = import_class(name, what="estimator")
    if not (isinstance(cls, type) and issubclass(cls, Estimator)):
        raise UserError(f"estimator {name!r} is not an Estimator subclass (it is {cls!r})")
    return cls


def construct(cls: Type[Estimator], options: Mapping[str, Any], label: str) -> Estimator:
    """``cls(**options)``, after checking the keywords against its signature (``label`` names it in the error)."""
    try:
        inspect.signature(cls).bind(**options)
    except TypeError as error:
        raise UserError(f"{label} ({cls.__qualname__}): {error}; accepted: {inspect.signature(cls)}") from None
    return cls(**options)


def build_estimator(spec: Mapping[str, Any]) -> Estimator:
    """A new estimator from ``{"class_path", "init_args"}`` (nested specs in init_args too)."""
    cls = estimator_class(str(spec["class_path"]))
    init_args = {k: build_estimator(v) if is_spec(v) else v for k, v in dict(spec.get("init_args") or {}).items()}
    return construct(cls, init_args, f"estimator {spec['class_path']!r}")


def get_estimator(name: Union[str, Estimator, Mapping[str, Any]], **kwargs) -> Estimator:
    """An estimator from a registered name or dotted class path with ``kwargs``; an instance passes
    through, and a ``{"class_path", "init_args"}`` spec (as checkpoints save it) is built."""
    if is_spec(name) and not kwargs:
        return build_estimator(name)
    if isinstance(name, Estimator):
        if kwargs:
            raise UserError("get_estimator: keyword arguments given with an estimator instance")
        return name
    return construct(estimator_class(name), kwargs, f"estimator {name!r}")

