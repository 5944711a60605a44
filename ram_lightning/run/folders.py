"""Each run its own version folder, even when two runs of one config start at the same moment.

Lightning's folder loggers (CSVLogger, TensorBoardLogger) pick ``version_N`` by listing the
folders that exist and taking the next number, and create it later: two ``ram fit`` of one
config started together both take ``version_0``, and then overwrite each other's
``last.ckpt`` and interleave their ``metrics.csv``. :func:`claim_version_folders` instead
claims the folder before the loggers are built, with ``mkdir`` (atomic: exactly one process
creates a given folder; the other takes the next number), and gives the logger that version.

Only the process of rank 0 claims (the processes a DDP launcher starts write no logs, and
take the checkpoint folder from rank 0). A claimed folder that is still empty when the
command fails is removed again (:func:`release_empty`), so a mistyped option leaves no litter.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, List

from pytorch_lightning.utilities import rank_zero_only

FOLDER_LOGGERS = ("CSVLogger", "TensorBoardLogger")
_VERSION = re.compile(r"version_(\d+)")


def claim_version(root: Path) -> Path:
    """Create and return ``root/version_N`` for the first N above every existing version that no
    other process has created first (``root`` is created if missing)."""
    root.mkdir(parents=True, exist_ok=True)
    numbers = [int(m.group(1)) for entry in os.listdir(root) if (m := _VERSION.fullmatch(entry))]
    number = max(numbers, default=-1) + 1
    while True:
        folder = root / f"version_{number}"
        try:
            folder.mkdir()
            return folder
        except FileExistsError:  # another run took it between the listing and now
            number += 1


def _get(node: Any, key: str) -> Any:
    return node.get(key) if isinstance(node, dict) else getattr(node, key, None)


def claim_version_folders(logger_config: Any) -> List[Path]:
    """Give every folder logger in the ``trainer.logger`` config whose ``version`` is unset a
    freshly claimed version (in place); returns the folders claimed (none on ranks other than 0)."""
    if rank_zero_only.rank != 0:
        return []
    entries = logger_config if isinstance(logger_config, (list, tuple)) else [logger_config]
    claimed = []
    for entry in entries:
        if entry is None or isinstance(entry, bool):
            continue
        class_path, init_args = _get(entry, "class_path"), _get(entry, "init_args")
        if not class_path or str(class_path).rpartition(".")[2] not in FOLDER_LOGGERS or init_args is None:
            continue
        if _get(init_args, "version") is not None:
            continue
        root = Path(str(_get(init_args, "save_dir") or ".")) / str(_get(init_args, "name") or "")
        folder = claim_version(root)
        version = int(folder.name.split("_")[1])
        if isinstance(init_args, dict):
            init_args["version"] = version
        else:
            init_args.version = version
        claimed.append(folder)
    return claimed


def release_empty(folders: List[Path]) -> None:
    """Remove the claimed folders that nothing was written into (the command failed early)."""
    for folder in folders:
        try:
            folder.rmdir()  # only succeeds on an empty folder
        except OSError:
            pass
