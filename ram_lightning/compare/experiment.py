"""The experiment a comparison runs: the ``ram fit`` config every run shares, resolved once.

``resolve_fit_config(fit_args)`` parses the ``ram fit`` options exactly as ``ram fit`` does (the
shared defaults, every ``--config``, every override; a user mistake is a ``UserError``), without
building anything, and returns the resolved config as plain data. Its ``fingerprint`` leaves out
what differs between the runs of one comparison (the estimator, the seed, the run's folder and
name): two commands with the same fingerprint run the same experiment, and ``differing_keys``
names what differs when they do not.
"""
from __future__ import annotations

import io
import logging
from contextlib import redirect_stdout
from typing import Any, Dict, List, Optional

import yaml

from ram_lightning.errors import UserError

# What a comparison sets per run (or what names files, not settings): left out of the fingerprint.
PER_RUN_KEYS = ("seed_everything", "model.init_args.estimator", "name", "trainer.default_root_dir", "config", "ckpt_path")


class _Parsed(Exception):
    """Raised by the parse-only CLI once the config is parsed, filled in and validated."""

    def __init__(self, config: Any, parser: Any) -> None:
        super().__init__("parsed")
        self.config, self.parser = config, parser


def resolve_fit_config(fit_args: List[str]) -> Dict[str, Any]:
    """The resolved ``ram fit`` config of ``fit_args`` as plain data (what ``--print_config``
    prints), classes left unbuilt. UserError (one line) for a user mistake in the options."""
    from ram_lightning.run.cli import RamCLI, build_cli, find_user_error

    class ParseOnly(RamCLI):
        def before_instantiate_classes(self) -> None:
            raise _Parsed(self.config, self.parser)

    seed_logger = logging.getLogger("lightning_fabric.utilities.seed")  # "Seed set to N": said by each run, not here
    level = seed_logger.level
    seed_logger.setLevel(logging.WARNING)
    try:
        with redirect_stdout(io.StringIO()):
            build_cli(["fit", *fit_args], run=True, cli_class=ParseOnly)
    except _Parsed as parsed:
        dumped = parsed.parser.dump(parsed.config, skip_validation=True)
        return yaml.safe_load(dumped)["fit"]
    except SystemExit as stop:  # --help or --print_config among the options
        raise UserError("`ram compare` takes `ram fit` options, not --help or --print_config of `ram fit`") from stop
    except Exception as error:
        user_error = find_user_error(error)
        if user_error is None:
            raise
        raise UserError(str(user_error)) from None
    finally:
        seed_logger.setLevel(level)
    raise UserError("the ram fit options could not be parsed")  # not reached: ParseOnly always raises


def get_path(config: Dict[str, Any], dotted: str) -> Any:
    """``config["a"]["b"]`` for ``"a.b"``; None where a part is missing."""
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def config_num_samples(config: Dict[str, Any]) -> Optional[int]:
    """K of the config's estimator (``model.init_args.estimator.init_args.num_samples``), or None
    (an estimator given by name uses its own default; then each variant uses its own too)."""
    value = get_path(config, "model.init_args.estimator.init_args.num_samples")
    return int(value) if isinstance(value, int) else None


def flatten(value: Any, prefix: str = "") -> Dict[str, Any]:
    """Nested dicts as ``{"a.b.c": leaf}`` (lists are leaves)."""
    if not isinstance(value, dict):
        return {prefix: value}
    flat: Dict[str, Any] = {}
    for key, item in value.items():
        flat.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def fingerprint(config: Dict[str, Any]) -> Dict[str, Any]:
    """The flattened config without :data:`PER_RUN_KEYS` (and the loggers' names and folders,
    which follow the run's folder)."""
    flat = flatten(config)
    kept = {}
    for key, value in flat.items():
        if any(key == k or key.startswith(k + ".") for k in PER_RUN_KEYS):
            continue
        kept[key] = value
    loggers = kept.pop("trainer.logger", None)
    if isinstance(loggers, list):
        kept["trainer.logger"] = [_without_folders(entry) for entry in loggers]
    elif loggers is not None:
        kept["trainer.logger"] = loggers
    return kept


def _without_folders(entry: Any) -> Any:
    if not isinstance(entry, dict):
        return entry
    init = {k: v for k, v in (entry.get("init_args") or {}).items() if k not in ("save_dir", "name", "version", "id")}
    return {**entry, "init_args": init}


def differing_keys(old: Dict[str, Any], new: Dict[str, Any]) -> List[str]:
    """The keys whose values differ between two fingerprints (sorted)."""
    return sorted(key for key in set(old) | set(new) if old.get(key, "<unset>") != new.get(key, "<unset>"))
