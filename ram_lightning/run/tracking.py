"""Weights & Biases: online when it can be, offline (said once, in one line) when not; never a
login prompt, never a 90-second hang; every file of a run in the run's folder.

The configs log through Lightning's own ``WandbLogger``; this module decides the mode before
the logger's first ``wandb.init`` and records where the run's files are:

    configure_wandb(config.trainer.logger)   # in the CLI, before the classes are instantiated
    ensure_wandb_mode("runs/quickstart")     # the same decision without a config

Decision (``ensure_wandb_mode``):
    - ``WANDB_MODE`` already set (by the user): respected (``online`` without an API key, or
      with a W&B server that does not answer within 2 s, is a UserError rather than a login
      prompt or wandb's 90 s of retries ending in a ``CommError`` traceback);
    - no API key (``WANDB_API_KEY``, ``WANDB_IDENTITY_TOKEN_FILE``, or an entry for the W&B host
      in ``$NETRC`` / ``~/.netrc``): offline;
    - the W&B host (``WANDB_BASE_URL``, default api.wandb.ai:443) does not answer in 2 s
      (``ram_lightning.run.wandb_server``): offline;
    - otherwise online.
The decision is written to ``os.environ["WANDB_MODE"]``, so processes launched later (DDP
workers) inherit it silently.

``configure_wandb`` (the ``ram`` command) also, unless the user set them:
    - points ``WANDB_DATA_DIR`` at the run's W&B folder (``<save_dir>/wandb``) and
      ``WANDB_CACHE_DIR`` at ``<save_dir>/wandb/cache`` (:func:`keep_wandb_files_in`), so that
      the staged copies of checkpoint artifacts (``<save_dir>/wandb/artifacts/staging``) and
      wandb-core's logs live in the run folder, not in ``~/.local/share/wandb`` / ``~/.cache/wandb``;
    - sets ``WANDB_SHOW_INFO=false``: wandb's own start and end lines (version, "syncing is set to
      offline", "Run data is saved locally in", "You can sync this run", the summary) go; its
      warnings and errors stay. ``ram`` says instead, once: the offline line above, or for an
      online run its URL (``ram_lightning.run.wandb_run.WandbRunLine``).

What happens while a run lives (the estimator and checkpoint folder in its config, its URL said
once, finishing it) is in :mod:`ram_lightning.run.wandb_run`.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Callable, Dict, Optional
from urllib.parse import urlsplit

from pytorch_lightning.loggers import WandbLogger
from pytorch_lightning.utilities import rank_zero_only

from estimators.registry import import_class
from ram_lightning.errors import UserError
from ram_lightning.run.wandb_server import DEFAULT_BASE_URL, TIMEOUT, wandb_host, why_unreachable

MODES = {"online": "online", "run": "online", "offline": "offline", "dryrun": "offline", "disabled": "disabled"}
ANSWER_TIMEOUT = TIMEOUT  # seconds for the W&B server to answer: else offline, or with WANDB_MODE=online an error
_announced = False  # the offline line is printed once per process
_set_by_ram: Dict[str, str] = {}  # the W&B variables this process set (a later run may change them)


def has_api_key(host: str) -> bool:
    """True if wandb would find credentials for ``host`` without asking: ``WANDB_API_KEY``,
    ``WANDB_IDENTITY_TOKEN_FILE``, or the netrc entry wandb itself reads (wandb's own
    ``read_netrc_auth``: ``$NETRC``, else ``~/.netrc`` / ``~/_netrc``; a file read, no network).

    Raises:
        UserError: the netrc entry for ``host`` holds a malformed key (wandb would refuse it).
    """
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    from wandb.errors import AuthenticationError
    from wandb.sdk.lib.wbauth import read_netrc_auth

    url = os.environ.get("WANDB_BASE_URL") or DEFAULT_BASE_URL
    if urlsplit(url).hostname != host:
        url = f"https://{host}"
    try:
        return read_netrc_auth(host=url) is not None
    except AuthenticationError as error:
        raise UserError(f"the W&B API key for {host} in the netrc file is not valid ({error}); "
                        f"run `wandb login --relogin`, or set WANDB_MODE=offline") from None


def offline_dir(save_dir: Optional[str] = None) -> str:
    """Where wandb writes offline runs for a logger with ``save_dir`` (its ``wandb/`` folder)."""
    root = save_dir or os.environ.get("WANDB_DIR") or "."
    return os.path.join(root, "wandb")


def _set_unless_users(name: str, value: str) -> bool:
    """Set ``$name`` to ``value`` unless the user set it (a value this process set earlier is not
    the user's); True if set."""
    current = os.environ.get(name)
    if current and current != _set_by_ram.get(name):
        return False
    os.environ[name] = _set_by_ram[name] = value
    return True


def keep_wandb_files_in(folder: str) -> None:
    """Keep the files wandb writes for a run beside the run, in ``folder`` (the run's W&B
    folder, ``<save_dir>/wandb``), made absolute: ``WANDB_DATA_DIR`` = ``folder`` (wandb stages a
    copy of every file added to an artifact in ``$WANDB_DATA_DIR/artifacts/staging``, by default
    ``~/.local/share/wandb/...``) and ``WANDB_CACHE_DIR`` = ``folder/cache`` (wandb-core's debug
    logs, and online the artifact cache; by default ``~/.cache/wandb``). A value the user set is
    kept. Set before the first ``wandb.init`` of the process: wandb-core reads its cache folder
    when it starts.

    An offline run's records name the staged files by these absolute paths (wandb makes them
    absolute): ``wandb sync`` of a copy finds its artifacts only at the same absolute path.
    """
    folder = os.path.abspath(folder)
    _set_unless_users("WANDB_DATA_DIR", folder)
    _set_unless_users("WANDB_CACHE_DIR", os.path.join(folder, "cache"))


def quiet_wandb() -> None:
    """``WANDB_SHOW_INFO=false`` unless the user set it: wandb's informational lines go, its
    warnings and errors stay (``ram`` says where the run is itself)."""
    _set_unless_users("WANDB_SHOW_INFO", "false")


def _announce_offline(reason: str, save_dir: Optional[str], announce: Optional[Callable[[str], None]]) -> None:
    """The one offline line, once per process, on rank 0."""
    global _announced
    if not _announced and rank_zero_only.rank == 0:
        folder = offline_dir(save_dir)
        (announce or _print_stderr)(f"W&B: {reason}; logging offline to {folder} (upload later with: wandb sync {folder})")
        _announced = True


def ensure_wandb_mode(save_dir: Optional[str] = None, announce: Optional[Callable[[str], None]] = None) -> str:
    """Decide online / offline / disabled (see the module docstring), set ``WANDB_MODE``, return it.

    Args:
        save_dir: the WandbLogger's ``save_dir``, only to name the offline folder in the messages.
        announce: prints the one offline line (default: ``print`` to stderr on rank 0, once per process).

    Raises:
        UserError: ``WANDB_MODE`` is not a wandb mode, or is ``online`` with no API key or no answer.
    """
    if os.environ.get("WANDB_MODE"):
        return explicit_mode(os.environ["WANDB_MODE"], "WANDB_MODE", save_dir)
    host, port = wandb_host()
    if not has_api_key(host):
        reason = "no API key found"
    else:
        problem = why_unreachable(host, port, ANSWER_TIMEOUT)
        if problem is None:
            os.environ["WANDB_MODE"] = "online"
            return "online"
        reason = f"{host}:{port} not reachable ({problem})"
    os.environ["WANDB_MODE"] = "offline"
    _announce_offline(reason, save_dir, announce)
    return "offline"


def explicit_mode(value: str, where: str, save_dir: Optional[str] = None) -> str:
    """The W&B mode the user asked for (``value``, set in ``where``), checked.

    Raises:
        UserError: not a W&B mode, or ``online`` with no API key (wandb would prompt for one),
            or ``online`` with a W&B server that does not answer within ``ANSWER_TIMEOUT`` s
            (wandb would retry for 90 s, then fail with a traceback).
    """
    mode = MODES.get(str(value).strip().lower())
    if mode is None:
        raise UserError(f"{where}={value!r} is not a W&B mode; use one of online, offline, disabled")
    if mode != "online":
        return mode
    host, port = wandb_host()
    if not has_api_key(host):
        raise UserError(
            f"{where}=online but no W&B API key for {host} (WANDB_API_KEY or ~/.netrc): run `wandb login`, "
            f"or unset {where} to log offline"
        )
    problem = why_unreachable(host, port, ANSWER_TIMEOUT)
    if problem is not None:
        folder = offline_dir(save_dir)
        raise UserError(
            f"W&B is unreachable at {host}:{port} ({problem}) and {where}=online asks for it; nothing was run. "
            f"Log offline with {where}=offline (or unset it: ram then goes offline by itself) and upload later with: wandb sync {folder}"
        )
    return mode


def _print_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _get(node: Any, key: str) -> Any:
    return node.get(key) if isinstance(node, dict) else getattr(node, key, None)


def _is_wandb_logger(class_path: Any) -> bool:
    if not isinstance(class_path, str) or "." not in class_path:
        return False
    try:
        cls = import_class(class_path, what="logger")
    except UserError:
        return class_path.rsplit(".", 1)[1] == "WandbLogger"
    return isinstance(cls, type) and issubclass(cls, WandbLogger)


def configure_wandb(logger_config: Any, announce: Optional[Callable[[str], None]] = None) -> Optional[str]:
    """For the WandbLogger in a ``trainer.logger`` config, if there is one: keep its files in
    its folder (:func:`keep_wandb_files_in`), quiet wandb's own lines (:func:`quiet_wandb`) and
    decide the mode (:func:`ensure_wandb_mode`). Since wandb no longer says so itself, an offline
    mode the user chose is said in the one offline line too.

    Args:
        logger_config: ``trainer.logger`` as parsed (a ``{class_path, init_args}`` Namespace or
            dict, a list of them, or True/False/None).
        announce: prints the one offline line (see :func:`ensure_wandb_mode`).

    Returns:
        The W&B mode, or None when no WandbLogger is configured (nothing is checked then). A
        logger with ``offline: true`` or a ``mode`` of its own is left to that setting.
    """
    entries = logger_config if isinstance(logger_config, (list, tuple)) else [logger_config]
    for entry in entries:
        if entry is None or isinstance(entry, bool) or not _is_wandb_logger(_get(entry, "class_path")):
            continue
        init_args = _get(entry, "init_args") or {}
        save_dir = _get(init_args, "save_dir") or _get(init_args, "dir")
        if save_dir:  # wandb looks for the git root from here, and warns when it does not exist yet
            Path(save_dir).mkdir(parents=True, exist_ok=True)
        keep_wandb_files_in(offline_dir(save_dir))
        quiet_wandb()
        if _get(init_args, "offline"):
            mode, where = "offline", "trainer.logger.init_args.offline=true"
        elif _get(init_args, "mode"):
            value = _get(init_args, "mode")
            mode, where = explicit_mode(value, "trainer.logger.init_args.mode", save_dir), f"trainer.logger.init_args.mode={value}"
        elif os.environ.get("WANDB_MODE"):
            value = os.environ["WANDB_MODE"]
            mode, where = explicit_mode(value, "WANDB_MODE", save_dir), f"WANDB_MODE={value}"
        else:
            return ensure_wandb_mode(save_dir, announce)
        if mode == "offline":
            _announce_offline(where, save_dir, announce)
        return mode
    return None
