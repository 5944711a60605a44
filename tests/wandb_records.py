"""Read what an offline W&B run wrote, for tests.

wandb 0.31 writes no ``files/wandb-summary.json`` or ``files/config.yaml`` offline: everything
(config, history rows, summary, media references) is in ``run-<id>.wandb``, a LevelDB-style
log (7-byte header ``:W&B`` + 0xBEE1 + version; then 32 KiB blocks of records, each a 7-byte
header: crc32c, length, type 1 full / 2 first / 3 middle / 4 last) of ``Record`` protobufs.
Logged images are also written to ``files/media/images/<key>_<step>_<hash>.png``.

``wandb.finish()`` can return before wandb-core has written the records (the file may still
hold only its 7-byte header), so ``read_offline_run`` waits for the run's ``exit`` record.
"""
from __future__ import annotations

import json
import struct
import time
from pathlib import Path
from typing import Dict, Iterator, List

from wandb.proto import wandb_internal_pb2

BLOCK = 32768
HEADER = 7


def records(path: Path) -> Iterator["wandb_internal_pb2.Record"]:
    """Every Record in a ``run-<id>.wandb`` file, in order."""
    data = Path(path).read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{path} is not a W&B run file (header {data[:7]!r})")
    position, pending = HEADER, b""
    while position + HEADER <= len(data):
        left = BLOCK - position % BLOCK
        if left < HEADER:  # block trailer: padding
            position += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[position : position + HEADER])
        if length == 0 and kind == 0:  # zero padding to the end of the block
            position += left
            continue
        pending += data[position + HEADER : position + HEADER + length]
        position += HEADER + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def _key(item) -> str:
    return item.key or "/".join(item.nested_key)


def finished_records(run_file: Path, timeout: float = 20.0) -> List["wandb_internal_pb2.Record"]:
    """The records of a run file once its ``exit`` record is there (polled for up to ``timeout`` s)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = list(records(run_file))
        except Exception:  # a record half written
            found = []
        if any(record.WhichOneof("record_type") == "exit" for record in found):
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(f"{run_file} has no exit record after {timeout} s: the run was not finished")
        time.sleep(0.1)


def read_offline_run(run_dir: Path) -> Dict[str, object]:
    """``{"config": {key: value}, "history": [row dicts], "summary": {key: value}, "run": Record.run}``
    of a finished offline run folder (``.../wandb/offline-run-<time>-<id>``)."""
    (run_file,) = Path(run_dir).glob("run-*.wandb")
    config: Dict[str, object] = {}
    summary: Dict[str, object] = {}
    history: List[Dict[str, object]] = []
    run = None
    for record in finished_records(run_file):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run = record.run
            config.update({item.key: json.loads(item.value_json) for item in record.run.config.update})
        elif kind == "config":
            config.update({item.key: json.loads(item.value_json) for item in record.config.update})
        elif kind == "history":
            history.append({_key(item): json.loads(item.value_json) for item in record.history.item})
        elif kind == "summary":
            summary.update({_key(item): json.loads(item.value_json) for item in record.summary.update})
    return {"config": config, "history": history, "summary": summary, "run": run}
