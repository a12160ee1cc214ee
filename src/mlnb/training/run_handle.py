"""A handle on one run: writing its checkpoints and manifest, claiming it to resume, loading.

A handle from :meth:`~mlnb.training.runs.RunStore.create` owns its run and
writes only into the run's own folder; one from
:meth:`~mlnb.training.runs.RunStore.open` or
:meth:`~mlnb.training.runs.RunStore.find_resumable` is read-only until
:meth:`RunHandle.resume` claims the run for this process.

Crash safety: a checkpoint file is complete before the manifest names it (a
temporary file renamed into place locally; one upload on object stores), the
manifest is replaced whole (rename locally; a single PUT on object stores, which
is atomic), and files the retention policy drops are deleted only after the
manifest that no longer names them is written.  A crash can leave a file no
manifest names, never a manifest naming a missing or partial file; such
leftovers are deleted by :meth:`RunHandle.resume`.  The manifest is JSON written
by Python's ``json`` (NaN and Infinity as its bare tokens).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlnb.errors import Conflict, IntegrityError, InvalidArgument, NotFound
from mlnb.training.checkpoint import _write_file, read_checkpoint
from mlnb.training.retention import Keep, _best, _last, _retained, parse_keep
from mlnb.training.run_manifest import (
    _UPDATABLE,
    MANIFEST,
    STATUSES,
    CheckpointInfo,
    RunRecord,
    _json,
    _now,
    _proc_stat,
    _record,
)

if TYPE_CHECKING:
    from mlnb.training.runs import RunStore

__all__ = ["RunHandle"]


class RunHandle:
    """One run: its manifest, and its checkpoints to save (when owned) and load."""

    def __init__(self, store: RunStore, doc: dict[str, Any], *, owner: bool) -> None:
        self.store, self._doc, self._owner = store, doc, owner
        self._folder = store._path(doc["name"], doc["run_id"])
        self._written = 0.0

    def __repr__(self) -> str:
        return f"<RunHandle {self.name}/{self.run_id} {self.status}>"

    @property
    def name(self) -> str:
        """The run's name."""
        return self._doc["name"]

    @property
    def run_id(self) -> str:
        """The run's id."""
        return self._doc["run_id"]

    @property
    def status(self) -> str:
        """The run's status as last written."""
        return self._doc["status"]

    @property
    def url(self) -> str:
        """The run's folder as a URL."""
        return self.store.fs.unstrip_protocol(self._folder)

    @property
    def record(self) -> RunRecord:
        """A snapshot of the manifest."""
        return _record(json.loads(json.dumps(self._doc)), self.url)

    @property
    def checkpoints(self) -> tuple[CheckpointInfo, ...]:
        """The kept checkpoints, in the order they were saved."""
        return tuple(CheckpointInfo(**c) for c in self._doc["checkpoints"])

    def best_checkpoint(self) -> CheckpointInfo | None:
        """The epoch checkpoint with the best finite monitor value by the run's mode."""
        return _best(self.checkpoints, self._doc["mode"])

    def last_checkpoint(self) -> CheckpointInfo | None:
        """The newest checkpoint (the highest step; what resuming loads)."""
        return _last(self.checkpoints)

    # -- writing (owner only) -------------------------------------------------

    def _check_owner(self) -> None:
        if not self._owner:
            raise Conflict(f"run {self.name}/{self.run_id} was opened read-only; call "
                           "resume() to continue it in this process")

    def _write(self) -> None:
        self._doc["updated"] = _now()
        data = json.dumps(self._doc, indent=1).encode()
        self.store._write_atomic(f"{self._folder}/{MANIFEST}", data)
        self._written = time.monotonic()

    def save_checkpoint(self, state: Any, *, epoch: int, step: int, batch: int = 0,
                        kind: str = "epoch", value: float | None = None,
                        keep: Keep | str = "best:1,last:1", **changes: Any) -> CheckpointInfo:
        """Write *state* as a checkpoint, apply the *keep* policy and update the manifest.

        Parameters
        ----------
        state
            The state tree (see :func:`~mlnb.training.checkpoint.write_checkpoint`).
        epoch, step, batch
            Where training is: the epoch, the global optimizer step, the batch
            within the epoch (0 at an epoch's end).
        kind
            ``"epoch"`` (end of an epoch; ranked by *value*) or ``"stop"`` (a
            stop mid-epoch; counts only among the last ones).
        value
            The monitor value; ``None`` or NaN is never the best.
        keep
            See :func:`parse_keep`.  The newest checkpoint is never pruned.
        **changes
            Manifest fields to set in the same write, as :meth:`update` takes
            (``history=``, ``best_value=``, ...).

        Raises
        ------
        Conflict
            The handle does not own the run.
        InvalidArgument
            A bad argument, or a state tree a checkpoint cannot hold.
        """
        self._check_owner()
        keep, fields_ = parse_keep(keep), self._changes(changes)
        if kind not in ("epoch", "stop"):
            raise InvalidArgument(f"kind must be 'epoch' or 'stop', not {kind!r}")
        for label, n in (("epoch", epoch), ("step", step), ("batch", batch)):
            if type(n) is not int or n < 0:
                raise InvalidArgument(f"{label} must be an int >= 0, not {n!r}")
        if value is not None:
            try:
                value = float(value)
            except (TypeError, ValueError) as err:
                raise InvalidArgument(f"value must be a number or None, not {value!r:.60}") from err
        cps = self._doc["checkpoints"]
        base, names = f"ckpt-e{epoch:04d}-s{step:08d}-{kind}", {c["file"] for c in cps}
        file, n = f"{base}.safetensors", 2
        while file in names:
            file, n = f"{base}-{n}.safetensors", n + 1
        target = f"{self._folder}/{file}"
        if self.store._local:
            sha256, size = _write_file(state, target)
        else:
            with tempfile.TemporaryDirectory(prefix="mlnb-ckpt-") as tmp:
                sha256, size = _write_file(state, Path(tmp, file))
                self.store.fs.put_file(str(Path(tmp, file)), target)
        info = CheckpointInfo(file, epoch, step, batch, kind, value, size, sha256, _now())
        before = [CheckpointInfo(**c) for c in cps] + [info]
        kept = _retained(before, keep, self._doc["mode"])
        self._apply(fields_)
        self._doc["checkpoints"] = [c.__dict__.copy() for c in kept]
        self._write()
        dropped = {c.file for c in before} - {c.file for c in kept}
        self.store._remove([f"{self._folder}/{f}" for f in sorted(dropped)])
        return info

    def update(self, **changes: Any) -> None:
        """Change manifest fields and write it: ``status``, ``history``, ``steps``,
        ``best_epoch``, ``best_value``, ``params``; ``extra`` is merged into the extra dict.

        Raises
        ------
        InvalidArgument
            An unknown field, a bad status, or a value that is not JSON data.
        """
        self._check_owner()
        self._apply(self._changes(changes))
        self._write()

    @staticmethod
    def _changes(changes: dict[str, Any]) -> dict[str, Any]:
        """*changes* checked and turned into JSON data."""
        unknown = sorted(set(changes) - _UPDATABLE)
        if unknown:
            raise InvalidArgument(f"cannot update {unknown} of a run; fields: {sorted(_UPDATABLE)}")
        if "status" in changes and changes["status"] not in STATUSES:
            raise InvalidArgument(f"status must be one of {STATUSES}, not {changes['status']!r}")
        return {key: _json(value, key) for key, value in changes.items()}

    def _apply(self, changes: dict[str, Any]) -> None:
        for key, value in changes.items():
            if key == "extra":
                self._doc["extra"].update(value)
            else:
                self._doc[key] = value

    def heartbeat(self, min_interval: float = 60.0) -> bool:
        """Rewrite the manifest's ``updated`` time if *min_interval* seconds have passed.

        Lets other hosts tell a live run from a dead one (:meth:`RunRecord.is_alive`);
        return whether it wrote.
        """
        self._check_owner()
        if time.monotonic() - self._written < min_interval:
            return False
        self._write()
        return True

    def close(self, status: str) -> None:
        """End the run with *status* (``"finished"``, ``"stopped"``, ``"interrupted"``, ...)."""
        if status == "running":
            raise InvalidArgument("close() needs a final status, not 'running'")
        self.update(status=status)

    def resume(self, stale_after: float = 900.0) -> None:
        """Claim this run for this process to continue it: status ``"running"``, this pid.

        Files a crash left that the manifest does not name are deleted.

        Raises
        ------
        Conflict
            The run is training in another live process, or another process
            claimed it at the same time.
        """
        fresh = self.store.open(self.name, self.run_id)._doc
        rec = _record(json.loads(json.dumps(fresh)), self.url)
        me = {"host": socket.gethostname(), "pid": os.getpid()}
        if (rec.host, rec.pid) != (me["host"], me["pid"]) and rec.is_alive(stale_after):
            raise Conflict(f"run {self.name}/{self.run_id} is still training in process "
                           f"{rec.pid} on {rec.host}; stop it or resume after it ends")
        stat = _proc_stat(me["pid"])
        fresh.update(status="running", **me, pid_start=stat[1] if stat else None)
        fresh["resumes"].append({"at": _now(), **me})
        self._doc, self._owner = fresh, True
        self._write()
        again = self.store.open(self.name, self.run_id)._doc
        if (again["host"], again["pid"]) != (me["host"], me["pid"]):
            self._owner = False
            raise Conflict(f"run {self.name}/{self.run_id} was claimed by process "
                           f"{again['pid']} on {again['host']} at the same time")
        named = {c["file"] for c in fresh["checkpoints"]} | {MANIFEST}
        self.store._remove([f"{self._folder}/{n}" for n in self.store._list(self._folder)
                            if n not in named])

    # -- reading ------------------------------------------------------------

    def _pick(self, info: CheckpointInfo | str | None) -> CheckpointInfo:
        if info is None or info == "last":
            found = self.last_checkpoint()
        elif info == "best":
            found = self.best_checkpoint()
        elif isinstance(info, CheckpointInfo):
            found = info
        else:
            raise InvalidArgument(f"pick a checkpoint, 'best' or 'last', not {info!r}")
        if found is None:
            raise NotFound(f"run {self.name}/{self.run_id} has no {info or 'last'} checkpoint")
        return found

    @contextmanager
    def local_file(self, info: CheckpointInfo | str | None = None) -> Iterator[Path]:
        """A local path to a checkpoint (default: the last; or ``"best"``), checked against
        its sha256 and size.

        On object stores the file is downloaded to a temporary folder that is
        removed when the ``with`` block ends.

        Raises
        ------
        NotFound
            The run has no such checkpoint, or its file is missing.
        IntegrityError
            The file's bytes do not match the sha256 and size in the manifest.
        """
        info = self._pick(info)
        if self.store._local:
            path = Path(self._folder, info.file)
            self._verify(info, path)
            yield path
            return
        with tempfile.TemporaryDirectory(prefix="mlnb-ckpt-") as tmp:
            path = Path(tmp, info.file)
            self._verify(info, path, download=True)
            yield path

    def _verify(self, info: CheckpointInfo, local: Path, download: bool = False) -> None:
        """Hash the checkpoint file (copying it to *local* on the way, if *download*)."""
        digest, size = hashlib.sha256(), 0
        try:
            src = self.store.fs.open(f"{self._folder}/{info.file}", "rb") if download \
                else open(local, "rb")
            with src, (open(local, "wb") if download else nullcontext()) as dst:
                while chunk := src.read(2**22):
                    digest.update(chunk)
                    size += len(chunk)
                    if dst is not None:
                        dst.write(chunk)
        except FileNotFoundError as err:
            raise NotFound(f"checkpoint {info.file} of run {self.name}/{self.run_id} is "
                           f"missing from {self.url}; load another one") from err
        if digest.hexdigest() != info.sha256 or size != info.size:
            raise IntegrityError(
                f"checkpoint {info.file} of run {self.name}/{self.run_id} is corrupt (expected "
                f"sha256 {info.sha256[:12]}… and {info.size} bytes, got "
                f"{digest.hexdigest()[:12]}… and {size}); load another checkpoint of the run"
            )

    def load(self, info: CheckpointInfo | str | None = None) -> dict[str, Any]:
        """Read a checkpoint's state tree (default: the last; or ``"best"``), verified."""
        with self.local_file(info) as path:
            return read_checkpoint(path)
