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
import math
import os
import re
import secrets
import socket
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mlnb.errors import Conflict, IntegrityError, InvalidArgument, NotFound
from mlnb.refs import check_name
from mlnb.training.checkpoint import _write_file, read_checkpoint

__all__ = [
    "CheckpointInfo", "Keep", "RunHandle", "RunListing", "RunRecord", "RunStore", "SkippedRun",
    "parse_keep",
]

STATUSES = ("running", "finished", "stopped_early", "stopped", "interrupted", "diverged",
            "failed")
MANIFEST, FORMAT, FORMAT_VERSION = "run.json", "mlnb.run", 1
_RUN_ID = re.compile(r"\d{8}-\d{6}-[0-9a-f]{6}")
_KEEP_PART = re.compile(r"(best|last):(\d+)")
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
class Keep:
    """Which checkpoints a run keeps: the *best* K by the monitor, the *last* N, or all."""

    best: int = 0
    last: int = 0
    all: bool = False

    def __str__(self) -> str:
        return "all" if self.all else f"best:{self.best},last:{self.last}"


def parse_keep(text: str | Keep) -> Keep:
    """Parse ``"best:2,last:1"``, ``"last:3"``, ``"best:1"`` or ``"all"`` into a :class:`Keep`.

    The newest checkpoint is always kept besides these (resuming needs it).

    Raises
    ------
    InvalidArgument
        The text is not in that form.
    """
    if isinstance(text, Keep):
        return text
    if not isinstance(text, str):
        raise InvalidArgument(f"keep must be a string like 'best:2,last:1', not {text!r}")
    if text.strip() == "all":
        return Keep(all=True)
    counts: dict[str, int] = {}
    for part in text.replace(" ", "").split(","):
        match = _KEEP_PART.fullmatch(part)
        if match is None or match[1] in counts:
            raise InvalidArgument(
                f"invalid keep policy {text!r}: write 'best:K,last:N' (e.g. 'best:2,last:1'), "
                "'last:3', 'best:1' or 'all'"
            )
        counts[match[1]] = int(match[2])
    return Keep(best=counts.get("best", 0), last=counts.get("last", 0))


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


def _by_step(cps: Sequence[CheckpointInfo]) -> list[int]:
    return sorted(range(len(cps)), key=lambda i: (cps[i].step, i))


def _ranked(cps: Sequence[CheckpointInfo], mode: str | None) -> list[int]:
    sign = -1.0 if mode == "max" else 1.0
    usable = [i for i, c in enumerate(cps)
              if c.kind == "epoch" and c.value is not None and math.isfinite(c.value)]
    return sorted(usable, key=lambda i: (sign * cps[i].value, cps[i].step, i))  # type: ignore[operator]


def _best(cps: Sequence[CheckpointInfo], mode: str | None) -> CheckpointInfo | None:
    ranked = _ranked(cps, mode)
    return cps[ranked[0]] if ranked else None


def _last(cps: Sequence[CheckpointInfo]) -> CheckpointInfo | None:
    order = _by_step(cps)
    return cps[order[-1]] if order else None


def _retained(cps: list[CheckpointInfo], keep: Keep, mode: str | None) -> list[CheckpointInfo]:
    """The checkpoints *keep* retains, in their order (the newest always)."""
    if keep.all or not cps:
        return cps
    order = _by_step(cps)
    kept = {order[-1], *order[len(order) - keep.last:]} if keep.last else {order[-1]}
    kept.update(_ranked(cps, mode)[:keep.best])
    return [c for i, c in enumerate(cps) if i in kept]


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
