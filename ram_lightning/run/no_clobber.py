"""Outputs that exist are never replaced: a second file gets the next free name, and says so.

    unused_name(Path("runs/x/version_0/predictions.jsonl"))   # .../predictions-2.jsonl if the first exists
    place(temporary, path)   # moves a finished temporary file to the first free name from ``path`` on
"""
from __future__ import annotations

import os
from pathlib import Path


def numbered(path: Path, number: int) -> Path:
    """``path`` with ``-<number>`` before its suffix (number 1: ``path`` itself)."""
    return path if number == 1 else path.with_name(f"{path.stem}-{number}{path.suffix}")


def unused_name(path: Path) -> Path:
    """``path`` if nothing is there, else the first of ``<stem>-2<suffix>``, ``-3``, ... that is free."""
    number = 1
    while numbered(path, number).exists():
        number += 1
    return numbered(path, number)


def place(temporary: Path, path: Path) -> Path:
    """Move the finished file ``temporary`` to ``path``, or to the first free numbered name if
    ``path`` exists (a hard link claims the name atomically, so a file that appears meanwhile is
    never replaced either); returns where it went."""
    number = 1
    while True:
        target = numbered(path, number)
        try:
            os.link(temporary, target)
        except FileExistsError:
            number += 1
            continue
        except OSError:  # a file system without hard links: claim the name by an exclusive create
            try:
                os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                number += 1
                continue
            os.replace(temporary, target)
            return target
        os.unlink(temporary)
        return target
