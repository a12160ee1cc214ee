"""Read an offline W&B run back from its ``.wandb`` file, the way ``wandb sync`` would.

The file is W&B's transaction log: a 7-byte header (``:W&B``, magic 0xBEE1,
version 0), then 32 KiB blocks of chunks, each ``crc32 (4) | length (2) |
type (1) | data``, where type 1 is a whole record and 2/3/4 the first, middle
and last pieces of one; each record is a ``wandb_internal_pb2.Record``.
wandb 0.31 has no Python reader of its own (its Go core writes the file).
"""

from __future__ import annotations

import json
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_BLOCK = 32768
_HEADER = struct.Struct("<4sHB")
_CHUNK = struct.Struct("<IHB")


def records(path: Path) -> list[Any]:
    """Every record of the ``.wandb`` file at *path*, in order."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(path).read_bytes()
    ident, magic, version = _HEADER.unpack_from(data)
    assert (ident, magic, version) == (b":W&B", 0xBEE1, 0), (ident, magic, version)
    out, pos, pending = [], _HEADER.size, b""
    while pos + _CHUNK.size <= len(data):
        left = _BLOCK - pos % _BLOCK
        if left < _CHUNK.size:  # block trailer: padding
            pos += left
            continue
        _crc, length, kind = _CHUNK.unpack_from(data, pos)
        if kind == 0:
            pos += left
            continue
        chunk = data[pos + _CHUNK.size: pos + _CHUNK.size + length]
        pos += _CHUNK.size + length
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(pending)
            out.append(record)
    return out


def _key(item: Any) -> str:
    return item.key or "/".join(item.nested_key)


@dataclass
class OfflineRun:
    """What one offline run holds: config, history rows, summary, artifacts, exit code."""

    path: Path
    run_id: str = ""
    project: str = ""
    display_name: str = ""
    tags: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, str] = field(default_factory=dict)  # define_metric: name -> step metric
    artifacts: list[Any] = field(default_factory=list)
    exit_code: int | None = None

    def series(self, key: str, axis: str) -> list[tuple[int, float]]:
        """``(axis value, value)`` for each history row holding *key*."""
        return [(row[axis], row[key]) for row in self.history if key in row]


def read_run(path: Path) -> OfflineRun:
    """Parse the ``run-*.wandb`` file at *path* into an :class:`OfflineRun`."""
    run = OfflineRun(path=Path(path))
    for record in records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run.run_id, run.project = record.run.run_id, record.run.project
            run.display_name, run.tags = record.run.display_name, list(record.run.tags)
            for item in record.run.config.update:
                run.config[_key(item)] = json.loads(item.value_json)
        elif kind == "config":
            for item in record.config.update:
                run.config[_key(item)] = json.loads(item.value_json)
        elif kind == "history":
            row = {_key(i): json.loads(i.value_json) for i in record.history.item}
            run.history.append({k: v for k, v in row.items() if not k.startswith("_")})
        elif kind == "summary":
            for item in record.summary.update:
                run.summary[_key(item)] = json.loads(item.value_json)
        elif kind == "metric":
            run.metrics[record.metric.name] = record.metric.step_metric
        elif kind == "artifact":
            run.artifacts.append(record.artifact)
        elif kind == "exit":
            run.exit_code = record.exit.exit_code
    return run


def offline_runs(wandb_dir: Path) -> list[Path]:
    """The ``.wandb`` files under ``<wandb_dir>/wandb/offline-run-*``, oldest first."""
    return sorted(Path(wandb_dir).glob("wandb/offline-run-*/run-*.wandb"))


def finished_runs(wandb_dir: Path, timeout: float = 20.0) -> list[OfflineRun]:
    """Every offline run under *wandb_dir*, read once each holds its exit record.

    ``run.finish()`` returns before W&B's service process has written the
    whole file, so this polls until every run's exit record is on disk.
    """
    deadline = time.monotonic() + timeout
    while True:
        runs = [read_run(p) for p in offline_runs(wandb_dir)]
        if runs and all(r.exit_code is not None for r in runs):
            return runs
        if time.monotonic() > deadline:
            raise AssertionError(f"no finished W&B run under {wandb_dir} after {timeout}s")
        time.sleep(0.05)
