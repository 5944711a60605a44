"""Turning the user's mistakes that surface as other exceptions into one-line ``UserError``s.

- ``check_config_files(args)``: every ``--config`` / ``-c`` file exists, is UTF-8, is valid
  YAML and holds a mapping of options (jsonargparse's own message names neither the file nor,
  always, the line);
- ``trainer_option_error(error, options)``: what Lightning's Trainer raised about its options
  (``max_steps: -5``), as one line naming the option;
- ``as_user_error(error)``: the UserError or NonFiniteError behind ``error`` (jsonargparse
  and Lightning wrap exceptions; jsonargparse even flattens an error raised inside a class it
  instantiates into a message string), a permission problem with a file or folder, or the
  parser's own error (an ``argparse.ArgumentError``, ``ram_lightning.run.parser_errors``) in one
  line, what W&B refused (a wrong API key, a project or entity it does not know) in one line
  saying what to check, else None.
"""
from __future__ import annotations

import argparse
import errno
import re
import sys
from pathlib import Path
from typing import Any, List, Mapping, Optional, Sequence

import yaml

from ram_lightning.errors import NonFiniteError, UserError
from ram_lightning.run.parser_errors import summarise_parser_error


def config_paths(args: Sequence[str]) -> List[str]:
    """The values of ``--config X``, ``--config=X``, ``-c X`` in a command line."""
    paths, args = [], list(args)
    for index, arg in enumerate(args):
        if arg in ("--config", "-c") and index + 1 < len(args):
            paths.append(args[index + 1])
        elif arg.startswith("--config="):
            paths.append(arg.split("=", 1)[1])
    return paths


def _what_it_holds(content) -> str:
    """How a config file that is not a mapping reads (for the message)."""
    if content is None:
        return "is empty"
    if isinstance(content, list):
        return "is a YAML list"
    return f"is a single {type(content).__name__} value"


def check_config_files(args: Sequence[str]) -> None:
    """Raise a UserError naming the file (and line) of a missing, unreadable, non-UTF-8 or
    invalid YAML config, or of one that is not a mapping of options."""
    for path in config_paths(args):
        try:
            data = Path(path).read_bytes()
        except FileNotFoundError:
            raise UserError(f"config file {path}: no such file") from None
        except IsADirectoryError:
            raise UserError(f"config file {path}: is a directory, expected a YAML file") from None
        except PermissionError:
            raise UserError(f"config file {path}: permission denied") from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as error:
            line = data.count(b"\n", 0, error.start) + 1
            raise UserError(f"config file {path}: not UTF-8 text (byte 0x{data[error.start]:02x} at offset {error.start}, "
                            f"line {line}: {error.reason}); save it as UTF-8") from None
        try:
            content = yaml.safe_load(text)
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            problem = getattr(error, "problem", None) or str(error).splitlines()[0]
            raise UserError(f"config file {path}: invalid YAML{where}: {problem}") from None
        if not isinstance(content, dict):
            raise UserError(f"config file {path}: {_what_it_holds(content)}; expected a mapping of options "
                            f"(model:, data:, trainer:, ...)")


def trainer_option_error(error: Exception, options: Mapping[str, Any]) -> UserError:
    """A UserError for ``error``, raised by ``Trainer(**options)``: Lightning's message (which says
    what it expected) on one line, after the first option it names (```max_steps```, ``devices=``)."""
    message = re.sub(r" object at 0x[0-9a-f]+", "", " ".join(str(error).split()))  # <...CSVLogger object at 0x7f..>
    named = [name for name in re.findall(r"([a-z][a-z0-9_]*)(?=`|=)", message) if name in options]
    if not named:
        return UserError(f"trainer options: {message}")
    value = options[named[0]]
    shown = f"={value!r}" if value is None or isinstance(value, (bool, int, float, str)) else ""
    return UserError(f"trainer.{named[0]}{shown}: {message}")


def as_user_error(error: Optional[BaseException]) -> Optional[Exception]:
    """See the module docstring."""
    seen, first = set(), error
    while error is not None and id(error) not in seen:
        if isinstance(error, (UserError, NonFiniteError)):
            return error
        if isinstance(error, PermissionError) or (isinstance(error, OSError) and error.errno in (errno.EACCES, errno.EPERM)):
            name = error.filename or "a file or folder"
            return UserError(f"{name}: permission denied ({error.strerror or error}); check who may read or write it")
        if _is_wandb_error(error):
            said = " ".join(str(error).split()) or type(error).__name__
            return UserError(f"W&B: {said} ({type(error).__name__}); check WANDB_API_KEY (or `wandb login`), the "
                             "logger's project and entity, or log offline with WANDB_MODE=offline")
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    last = UserError.last
    if isinstance(first, (ValueError, TypeError, argparse.ArgumentError)) and last is not None and str(last) and str(last) in str(first):
        return last  # raised inside a class jsonargparse was instantiating, then flattened into its message
    if isinstance(first, argparse.ArgumentError):  # the parser's own (exit_on_error=False): one line
        return UserError(summarise_parser_error(str(first)))
    return None


def _is_wandb_error(error: BaseException) -> bool:
    """wandb's own errors at ``wandb.init`` (AuthenticationError, CommError, UsageError): checked
    only where wandb is already imported."""
    errors = sys.modules.get("wandb.errors")
    kinds = tuple(getattr(errors, name) for name in ("AuthenticationError", "CommError", "UsageError") if hasattr(errors, name))
    return bool(kinds) and isinstance(error, kinds)
