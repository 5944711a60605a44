"""A checkpoint's saved hyperparameters against the config: which value is used, said in one line.

``ram test/validate/predict/fit --ckpt_path X`` builds the model from X's hyperparameters
(Lightning's LightningCLI merges them over the config). Here that merge is made visible:

- a checkpoint of another model class than the config's is a ``UserError`` (one line), and
  so is one whose DataModule-linked values (image shape, classes, vocabulary) differ from
  what the config's DataModule gives (``check_linked_hparams``, once the classes are built);
- where the config or the command line gives a value explicitly (a key under ``model`` in a
  ``--config`` file, or a ``--model...`` option; see ``explicit_model_keys``) that differs from
  the checkpoint's, one line ``ram: warning: ...`` names the key, both values and the one used.
  The checkpoint's value is used, since the saved weights were built with it,
  except for the keys a module lists in ``CHECKPOINT_OVERRIDABLE`` (evaluation settings such
  as ``eval_samples`` or ``beam_size``), where the explicit value is used.
"""
from __future__ import annotations

import inspect
import sys
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Set

import yaml

from estimators import get_estimator
from estimators.registry import import_class
from estimators.spec import estimator_spec, plain
from ram_lightning.errors import UserError

# Filled from the DataModule by the CLI's argument links: never taken from the checkpoint here.
LINKED = ("image_shape", "num_classes", "vocabulary")
PRIVATE = ("_instantiator", "_class_path")


def _as_dict(value: Any) -> Any:
    return value.as_dict() if hasattr(value, "as_dict") else value


def _normalise(key: str, value: Any, strict: bool = False) -> Any:
    """``value`` comparable across forms (an estimator by name or spec -> its full spec).

    With ``strict``, an estimator that cannot be built (say, a plug-in that is not installed)
    raises its UserError; otherwise it is compared as given."""
    value = _as_dict(value)
    if key == "estimator" and value is not None:
        try:
            return estimator_spec(get_estimator(value))
        except UserError:
            if strict:
                raise
            return plain(value)
    return plain(value)


def _class_defaults(cls: type) -> Dict[str, Any]:
    return {name: p.default for name, p in inspect.signature(cls.__init__).parameters.items()
            if p.default is not inspect.Parameter.empty}


def _import_model_class(path: str, where: str) -> type:
    try:
        return import_class(path, what="model")
    except UserError:
        raise UserError(f"{where}: model class {path!r} cannot be imported") from None


def _model_keys(node: Any) -> Set[str]:
    """The init-arg names a ``model`` value sets: ``{class_path, init_args: {...}}`` or ``{key: ...}``."""
    if not isinstance(node, Mapping):
        return set()
    keys = set((node.get("init_args") or {}) if isinstance(node.get("init_args"), Mapping) else ())
    return keys | {k for k in node if k not in ("class_path", "init_args", "dict_kwargs")}


def _yaml(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return None


def explicit_model_keys(args: Sequence[str]) -> Set[str]:
    """The model options a command line sets explicitly: keys under ``model`` in its
    ``--config`` files (read as YAML) and ``--model.KEY`` / ``--model.init_args.KEY`` options
    (or a ``--model`` value given as YAML or a YAML file)."""
    from ram_lightning.run.user_errors import config_paths

    keys: Set[str] = set()
    for path in config_paths(args):
        try:
            with open(path) as handle:
                config = _yaml(handle.read())
        except OSError:
            continue
        if isinstance(config, Mapping):
            keys |= _model_keys(config.get("model"))
    args = list(args)
    for index, arg in enumerate(args):
        name, _, inline = arg.partition("=")
        if name.startswith("--model.") and name not in ("--model.help",):
            key = name[len("--model."):]
            key = key[len("init_args."):] if key.startswith("init_args.") else key
            if key and key != "class_path":
                keys.add(key.split(".", 1)[0])
        elif name == "--model":
            value = inline or (args[index + 1] if index + 1 < len(args) else "")
            parsed = _yaml(value)
            if isinstance(parsed, str) and parsed.endswith((".yaml", ".yml")):
                try:
                    with open(parsed) as handle:
                        parsed = _yaml(handle.read())
                except OSError:
                    parsed = None
            keys |= _model_keys(parsed)
    return keys


def merge_checkpoint_hparams(
    saved: Mapping[str, Any],
    model_config: Any,
    ckpt_path: str,
    warn: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
    explicit_keys: Optional[Set[str]] = None,
) -> Optional[Dict[str, Any]]:
    """The ``model`` section to merge over the config: ``{"class_path", "init_args"}``, or None.

    Args:
        saved: the checkpoint's ``hyper_parameters``.
        model_config: the config's ``model`` (a ``{class_path, init_args}`` Namespace or dict).
        ckpt_path: for messages.
        warn: prints one conflict line.
        explicit_keys: the model options the user gave (``explicit_model_keys``); None: those
            whose config value is not the class default.

    Raises:
        UserError: the checkpoint was saved from another model class than the config's.
    """
    saved = dict(saved or {})
    model_config = _as_dict(model_config) or {}
    config_path = model_config.get("class_path")
    saved_path = saved.get("_class_path")
    if not config_path:
        return None
    config_class = _import_model_class(config_path, "config")
    if saved_path is not None and _import_model_class(saved_path, f"checkpoint {ckpt_path}") is not config_class:
        raise UserError(
            f"checkpoint {ckpt_path} holds a {saved_path} model, but the config's model is {config_path}; "
            f"use the config the checkpoint was trained with (or set model.class_path: {saved_path})"
        )
    explicit = dict(model_config.get("init_args") or {})
    defaults = _class_defaults(config_class)
    overridable = tuple(getattr(config_class, "CHECKPOINT_OVERRIDABLE", ()))
    merged: Dict[str, Any] = {}
    for key, value in saved.items():
        if key in PRIVATE or key in LINKED or key not in defaults and key not in explicit:
            continue
        ours, theirs = _normalise(key, explicit.get(key, defaults.get(key))), _normalise(key, value, strict=True)
        if explicit_keys is not None:
            given = key in explicit_keys
        else:
            given = key in explicit and ours != _normalise(key, defaults.get(key, inspect.Parameter.empty))
        if ours == theirs or not given:
            merged[key] = value
            continue
        use_explicit = key in overridable
        warn(
            f"ram: warning: {ckpt_path} was saved with model.{key}={theirs!r}, the config or command line gives "
            f"{ours!r}; using the {'explicit' if use_explicit else 'checkpoint'} value "
            f"{ours if use_explicit else theirs!r}"
            + ("" if use_explicit else " (the saved weights were built with it)")
        )
        if not use_explicit:
            merged[key] = value
    return {"class_path": config_path, "init_args": merged}


def _describe(key: str, value: Any) -> str:
    if key == "vocabulary" and isinstance(value, (list, tuple)):
        return f"a vocabulary of {len(value)} tokens"
    return repr(tuple(value) if isinstance(value, list) else value)


def check_linked_hparams(ckpt_path: str, saved: Mapping[str, Any], built: Mapping[str, Any]) -> None:
    """Raise a UserError if the model built from the DataModule's linked values (``built``, its
    hparams) differs from the checkpoint's (``saved``) in one of them: the weights would not fit."""
    for key in LINKED:
        if key in saved and key in built and plain(saved[key]) != plain(built[key]):
            raise UserError(
                f"checkpoint {ckpt_path} was trained with model.{key} = {_describe(key, saved[key])}, but the "
                f"config's data gives {_describe(key, built[key])}; use the data settings it was trained with"
            )
