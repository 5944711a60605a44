"""The JSON record a lab measurement writes with ``--json``: its figures and the command that made them."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

from ram_lightning.diagnostics.run_summary import write_json_atomically


def refuse_existing(path: Path) -> None:
    """Stop with one line before any measuring if ``path`` (the ``--json`` file) already exists: a record is never replaced."""
    if path.exists():
        print(f"ram: error: --json {path}: the file exists; give a new path or move the old record away", file=sys.stderr)
        raise SystemExit(2)


def write_record(path: Path, module: str, arguments: Sequence[object], report: dict) -> None:
    """``{"command": "python -m <module> <arguments>", **report}`` into ``path`` (indented JSON, never half-written)."""
    command = " ".join(["python", "-m", module, *map(str, arguments)])
    write_json_atomically(path, {"command": command, **report})
