"""The run store: every training run's manifest and checkpoints, in the artifact store.

Runs live beside the registry's blobs, under the same root URL (a local folder,
``memory://`` or ``s3://``)::

    objects/...                                  content-addressed blobs (the registry's)
    runs/<name>/<run_id>/run.json                the run's manifest
    runs/<name>/<run_id>/ckpt-e0003-s00000120-epoch.safetensors   its checkpoints

``mlnb gc`` walks only ``objects/`` and ``tmp/``, so it never touches ``runs/``.
A ``run_id`` (``20261125-101502-3fa9c1``: UTC time and 24 random bits) sorts by
time and is unique: :meth:`RunStore.create` always makes a new folder, and a
handle writes only into its own run.  A handle from :meth:`RunStore.open` or
:meth:`RunStore.find_resumable` is read-only until :meth:`RunHandle.resume`
claims the run for this process.

This module owns the store: creating, listing, opening and finding runs, and
the file operations (atomic writes, removal, listing) its handles use.  The
rest lives beside it and is re-exported here: :class:`RunHandle` (writing a
run, crash-safely; resuming) in :mod:`mlnb.training.run_handle`, the manifest
and :class:`RunRecord` in :mod:`mlnb.training.run_manifest`, the keep policy in
:mod:`mlnb.training.retention`.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import uuid
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mlnb.errors import Conflict, IntegrityError, InvalidArgument, NotFound
from mlnb.refs import check_name
from mlnb.training.retention import Keep, parse_keep
from mlnb.training.run_handle import RunHandle
from mlnb.training.run_manifest import (
    _RUN_ID,
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    CheckpointInfo,
    RunRecord,
    _json,
    _now,
    _proc_stat,
    _record,
)

__all__ = [
    "CheckpointInfo", "Keep", "RunHandle", "RunListing", "RunRecord", "RunStore", "SkippedRun",
    "parse_keep",
]


@dataclass(frozen=True)
class SkippedRun:
    """A run folder whose manifest could not be read, and why."""

    path: str
    reason: str


@dataclass(frozen=True)
class RunListing:
    """What :meth:`RunStore.scan` found: readable runs newest first, and the skipped ones."""

    runs: tuple[RunRecord, ...]
    skipped: tuple[SkippedRun, ...]


class RunStore:
    """The training runs under ``<artifact store root>/runs/``.

    Parameters
    ----------
    url
        The artifact store: a local path or fsspec URL (``s3://bucket/prefix``,
        ``memory://x``), the same one the registry uses.
    **storage_options
        Passed to fsspec (``key``, ``secret``, ``endpoint_url``, ...).
    """

    def __init__(self, url: str | os.PathLike[str], **storage_options: Any) -> None:
        from mlnb.storage.blobs import BlobStore

        store = BlobStore(url, **storage_options)
        self._setup(store.fs, store.root)

    def _setup(self, fs: Any, root: str) -> None:
        from fsspec.implementations.local import LocalFileSystem

        self.fs = fs
        self.root = f"{root.rstrip('/')}/runs"
        self.url: str = fs.unstrip_protocol(self.root)
        self._local = isinstance(fs, LocalFileSystem)

    @classmethod
    def from_registry(cls, reg: Any) -> RunStore:
        """The run store in the artifact store of the registry *reg*."""
        self = cls.__new__(cls)
        self._setup(reg.store.fs, reg.store.root)
        return self

    @classmethod
    def default(cls) -> RunStore:
        """The run store in the configured artifact store (``MLNB_STORAGE``)."""
        from mlnb.config import settings

        return cls(settings().storage)

    def __repr__(self) -> str:
        return f"RunStore({self.url!r})"

    def _path(self, *parts: str) -> str:
        return "/".join((self.root, *parts))

    # -- files --------------------------------------------------------------

    def _read(self, path: str) -> bytes:
        if self._local:
            return Path(path).read_bytes()
        return self.fs.cat_file(path)

    def _write_atomic(self, path: str, data: bytes) -> None:
        if not self._local:
            try:
                self.fs.pipe_file(path, data)  # one PUT: atomic on object stores
            except FileNotFoundError as err:  # s3fs: the bucket does not exist
                raise NotFound(f"cannot write to {self.url}: {err}; create the bucket or fix "
                               "the storage URL") from err
            return
        temp = f"{path}.{uuid.uuid4().hex}.tmp"
        try:
            with open(temp, "xb") as f:
                f.write(data)
            os.replace(temp, path)
        except BaseException:
            with suppress(FileNotFoundError):
                os.unlink(temp)
            raise

    def _remove(self, paths: list[str]) -> None:
        if self._local:
            for path in paths:
                with suppress(FileNotFoundError):
                    os.unlink(path)
        elif paths:
            with suppress(FileNotFoundError):
                self.fs.rm(paths)

    def _list(self, folder: str) -> list[str]:
        """Names in *folder* (empty if it does not exist)."""
        if self._local:
            with suppress(FileNotFoundError, NotADirectoryError):
                return sorted(os.listdir(folder))
            return []
        self.fs.invalidate_cache(folder)
        with suppress(FileNotFoundError):
            return sorted(p.rstrip("/").rpartition("/")[2] for p in self.fs.ls(folder, detail=False))
        return []

    # -- runs ---------------------------------------------------------------

    def create(self, name: str, *, signature: str, monitor: str | None = None,
               mode: str | None = None, params: dict[str, Any] | None = None,
               extra: dict[str, Any] | None = None) -> RunHandle:
        """Start a new run of *name* in its own folder; return its (owning) handle.

        Parameters
        ----------
        signature
            Identifies the model (architecture, shapes): :meth:`find_resumable`
            resumes only runs with the same one.
        monitor, mode
            The metric that ranks checkpoints and ``"min"`` or ``"max"``.

        Raises
        ------
        InvalidName
            *name* breaks the naming rules.
        InvalidArgument
            A bad *mode*, or *params*/*extra* that are not JSON data.
        """
        from mlnb.config import settings

        check_name(name)
        if mode not in (None, "min", "max"):
            raise InvalidArgument(f"mode must be 'min' or 'max', not {mode!r}")
        if not isinstance(signature, str):
            raise InvalidArgument(f"signature must be a string, not {type(signature).__name__}")
        now, pid = _now(), os.getpid()
        stat = _proc_stat(pid)
        doc = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "name": name, "run_id": "",
            "status": "running", "signature": signature, "monitor": monitor, "mode": mode,
            "created": now, "updated": now, "host": socket.gethostname(), "pid": pid,
            "pid_start": stat[1] if stat else None, "user": settings().user,
            "params": _json(params or {}, "params"), "history": [], "steps": [],
            "best_epoch": None, "best_value": None, "checkpoints": [], "resumes": [],
            "extra": _json(extra or {}, "extra"),
        }
        for _ in range(20):
            run_id = f"{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"
            folder = self._path(name, run_id)
            if self._local:
                os.makedirs(self._path(name), exist_ok=True)
                try:
                    os.mkdir(folder)  # exclusive: two creators never share a folder
                except FileExistsError:
                    continue
            elif self.fs.exists(f"{folder}/{MANIFEST}"):
                continue
            doc["run_id"] = run_id
            handle = RunHandle(self, doc, owner=True)
            handle._write()
            return handle
        raise Conflict(f"could not find a free run id for {name!r} in {self.url}; try again")

    def scan(self, name: str | None = None) -> RunListing:
        """Every run (of *name*, or all), newest first, and the folders with unreadable manifests."""
        names = [check_name(name)] if name is not None else self._list(self.root)
        paths = [self._path(n, r, MANIFEST) for n in names for r in self._list(self._path(n))
                 if _RUN_ID.fullmatch(r)]
        if self._local:
            blobs: dict[str, Any] = {}
            for p in paths:
                try:
                    blobs[p] = self._read(p)
                except OSError as err:
                    blobs[p] = err
        else:
            blobs = self.fs.cat(paths, on_error="return") if paths else {}
        runs, skipped = [], []
        for path in paths:
            data = blobs.get(path) or blobs.get(self.fs._strip_protocol(path))
            folder = path.rpartition("/")[0]
            try:
                if isinstance(data, BaseException):
                    raise data
                runs.append(_record(json.loads(data), self.fs.unstrip_protocol(folder)))
            except FileNotFoundError:
                continue  # a run being created, or deleted while listing
            except (OSError, ValueError, TypeError, KeyError, RecursionError) as err:
                skipped.append(SkippedRun(self.fs.unstrip_protocol(path),
                                          f"{type(err).__name__}: {str(err)[:200]}"))
        runs.sort(key=lambda r: (r.created, r.run_id), reverse=True)
        return RunListing(tuple(runs), tuple(skipped))

    def runs(self, name: str | None = None) -> list[RunRecord]:
        """The readable runs (of *name*, or all), newest first; see :meth:`scan` for the rest."""
        return list(self.scan(name).runs)

    def open(self, name: str, run_id: str) -> RunHandle:
        """A read-only handle on an existing run (:meth:`RunHandle.resume` to continue it).

        Raises
        ------
        NotFound
            No such run.
        IntegrityError
            Its manifest cannot be read.
        """
        check_name(name)
        if not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id):
            raise InvalidArgument(f"not a run id: {run_id!r}; expected e.g. 20261125-101502-3fa9c1")
        path = self._path(name, run_id, MANIFEST)
        try:
            doc = json.loads(self._read(path))
            _record(doc, self.fs.unstrip_protocol(self._path(name, run_id)))
        except FileNotFoundError as err:
            raise NotFound(f"no run {name}/{run_id} in {self.url}; list them with "
                           "RunStore.runs()") from err
        except (OSError, ValueError, TypeError, KeyError, RecursionError) as err:
            raise IntegrityError(f"the manifest of run {name}/{run_id} in {self.url} cannot be "
                                 f"read: {str(err)[:200]}; start a new run") from err
        return RunHandle(self, doc, owner=False)

    def find_resumable(self, name: str, *, signature: str,
                       stale_after: float = 900.0) -> RunHandle | None:
        """The run of *name* that ``resume=True`` should continue, or ``None``.

        Runs of *name* with this *signature* are looked at newest first (other
        signatures, another model under the same name, and unreadable manifests
        are skipped).  Runs with no checkpoint and no live process are passed
        over; the first other one decides: ``None`` if it ended normally
        (``"finished"``, ``"stopped_early"``), else it is returned, read-only,
        whether ``"stopped"``, ``"interrupted"``, ``"diverged"``, or
        ``"running"`` with its process gone (a killed kernel; see
        :meth:`RunRecord.is_alive`).  Call :meth:`RunHandle.resume` on it.

        Raises
        ------
        Conflict
            A run met on the way is still training in another live process.
        """
        me = (socket.gethostname(), os.getpid())
        for rec in self.runs(name):
            if rec.signature != signature:
                continue
            if (rec.host, rec.pid) != me and rec.is_alive(stale_after):
                where = f"process {rec.pid} on {rec.host}"
                if rec.host != me[0]:
                    where += f" (last update {rec.updated})"
                raise Conflict(f"run {rec.name}/{rec.run_id} is still training in {where}; "
                               "stop it or resume after it ends")
            if rec.status in ("finished", "stopped_early"):
                return None
            if rec.checkpoints:
                return self.open(rec.name, rec.run_id)
        return None
