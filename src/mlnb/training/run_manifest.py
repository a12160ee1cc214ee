"""A run's manifest (``run.json``): its format, the records read from it, and their checks.

:class:`RunRecord` is a run as its manifest describes it, with its
:class:`CheckpointInfo` entries.  A parsed manifest is checked field by field
before a record is built from it, so one that is not mlnb's, is of a newer
format, or was copied into another run's folder is never trusted.  Also here:
turning values into the JSON data a manifest holds, and telling whether the
process that wrote a ``"running"`` manifest still lives (:meth:`RunRecord.is_alive`).
"""

from __future__ import annotations

import json
import os
import re
import socket
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mlnb.errors import InvalidArgument
from mlnb.training.retention import _best, _last

__all__ = ["CheckpointInfo", "FORMAT", "FORMAT_VERSION", "MANIFEST", "RunRecord", "STATUSES"]

STATUSES = ("running", "finished", "stopped_early", "stopped", "interrupted", "diverged",
            "failed")
MANIFEST, FORMAT, FORMAT_VERSION = "run.json", "mlnb.run", 1
_RUN_ID = re.compile(r"\d{8}-\d{6}-[0-9a-f]{6}")
_CKPT_FILE = re.compile(r"ckpt-[A-Za-z0-9_-]+\.safetensors")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_CKPT_FIELDS = {"file", "epoch", "step", "batch", "kind", "value", "size", "sha256", "created"}
_FIELDS: dict[str, Any] = {
    "name": str, "run_id": str, "status": str, "signature": str, "created": str, "updated": str,
    "host": str, "pid": int, "user": str, "params": dict, "history": list, "steps": list,
    "checkpoints": list, "resumes": list, "extra": dict, "monitor": str, "mode": str,
    "best_epoch": int, "best_value": (int, float), "pid_start": int,
}
_OPTIONAL = {"monitor", "mode", "best_epoch", "best_value", "pid_start"}
_UPDATABLE = {"status", "history", "steps", "best_epoch", "best_value", "params", "extra"}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks) of a Linux process, or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
        rest = text[text.rindex(")") + 2:].split()
        return rest[0], int(rest[19])
    except (OSError, ValueError, IndexError):
        return None


def _alive(pid: int, started: int | None) -> bool:
    """Whether process *pid* of this host (started at *started*, if known) still runs."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    except (OSError, OverflowError):
        return False
    # A zombie is dead; a different start time means the pid now belongs to a newer process.
    stat = _proc_stat(pid)
    return stat is None or not (stat[0] in "ZX" or (started is not None and stat[1] != started))


@dataclass(frozen=True)
class CheckpointInfo:
    """One checkpoint file of a run, as its manifest lists it."""

    file: str
    epoch: int
    step: int
    batch: int
    kind: str
    value: float | None
    size: int
    sha256: str
    created: str


@dataclass(frozen=True)
class RunRecord:
    """A run as its manifest describes it (``created``/``updated`` are ISO-8601 UTC)."""

    name: str
    run_id: str
    status: str
    signature: str
    monitor: str | None
    mode: str | None
    created: str
    updated: str
    host: str
    pid: int
    user: str
    params: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int | None = None
    best_value: float | None = None
    checkpoints: tuple[CheckpointInfo, ...] = ()
    resumes: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    pid_start: int | None = None
    url: str = ""

    def is_alive(self, stale_after: float = 900.0) -> bool:
        """Whether a ``"running"`` run may still be training somewhere.

        On this host: its process exists (and is the same process, by start
        time, where ``/proc`` tells).  On another host: its manifest was
        updated within *stale_after* seconds (see :meth:`RunHandle.heartbeat`).
        """
        if self.status != "running":
            return False
        if self.host == socket.gethostname() and os.name != "nt":
            return _alive(self.pid, self.pid_start)
        age = datetime.now(timezone.utc) - datetime.fromisoformat(self.updated)
        return age.total_seconds() < stale_after

    def best_checkpoint(self) -> CheckpointInfo | None:
        """The kept epoch checkpoint with the best finite monitor value (ties: the earlier)."""
        return _best(self.checkpoints, self.mode)

    def last_checkpoint(self) -> CheckpointInfo | None:
        """The newest checkpoint (the highest step; what resuming loads)."""
        return _last(self.checkpoints)


def _json(value: Any, what: str) -> Any:
    """*value* as JSON data (numpy scalars become numbers), or InvalidArgument."""
    def plain(obj: Any) -> Any:
        try:
            return obj.item()  # a numpy scalar or a one-element tensor
        except Exception as err:
            raise TypeError(f"{type(obj).__name__} is not JSON data") from err

    try:
        return json.loads(json.dumps(value, default=plain))
    except (TypeError, ValueError) as err:
        raise InvalidArgument(
            f"{what} must be JSON data (str, number, bool, None, list, dict): {err}"
        ) from err


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise ValueError(what)


def _record(doc: Any, url: str) -> RunRecord:
    """Check a parsed manifest and build its :class:`RunRecord`; raise ValueError if bad."""
    _check(type(doc) is dict and doc.get("format") == FORMAT, "not an mlnb run manifest")
    version = doc.get("format_version")
    _check(type(version) is int and version <= FORMAT_VERSION,
           f"format version {version!r} is not one this mlnb reads; upgrade mlnb")
    for key, kinds in _FIELDS.items():
        value = doc.get(key)
        _check(isinstance(value, kinds) or (value is None and key in _OPTIONAL),
               f"field {key!r} is missing or a {type(value).__name__}")
    _check(doc["status"] in STATUSES and doc["mode"] in (None, "min", "max")
           and bool(_RUN_ID.fullmatch(doc["run_id"])), "bad status, mode or run_id")
    datetime.fromisoformat(doc["updated"])
    _check(url.endswith(f"/{doc['name']}/{doc['run_id']}"),  # a folder copied or moved
           f"it describes run {doc['name']}/{doc['run_id']}, not the one in {url}")
    cps = []
    for c in doc["checkpoints"]:
        _check(type(c) is dict and set(c) == _CKPT_FIELDS, f"bad checkpoint entry {c!r:.80}")
        _check(bool(_CKPT_FILE.fullmatch(c["file"])) and c["kind"] in ("epoch", "stop")
               and all(type(c[k]) is int for k in ("epoch", "step", "batch", "size"))
               and isinstance(c["value"], (int, float, type(None)))
               and bool(_SHA256.fullmatch(c["sha256"])), f"bad checkpoint entry {c!r:.80}")
        cps.append(CheckpointInfo(**c))
    kw = {f.name: doc[f.name] for f in fields(RunRecord) if f.name in doc and f.name != "url"}
    return RunRecord(**{**kw, "checkpoints": tuple(cps)}, url=url)
