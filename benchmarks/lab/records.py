"""The JSON record a lab measurement writes with ``--json``: its figures and the command that made them."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence


def write_record(path: Path, module: str, arguments: Sequence[object], report: dict) -> None:
    """``{"command": "python -m <module> <arguments>", **report}`` into ``path`` (indented JSON)."""
    command = " ".join(["python", "-m", module, *map(str, arguments)])
    path.write_text(json.dumps({"command": command, **report}, indent=1))
