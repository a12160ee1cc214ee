"""``mlnb.Registry``: the Python API every adapter (magics, CLI, server) calls.

A :class:`Registry` is a client: metadata goes to the registry server (or an
in-process database for ``:memory:``), bytes go straight to the artifact store.
A registration is all-or-nothing: the object is serialised to files, each file
is hashed while it is copied into the store under a hold that keeps ``gc``
away, and only then does the server add the version, its metrics, params,
tags, lineage and audit row in one transaction.  A crash before that commit
leaves at most unreferenced blobs, which ``fsck`` reports and ``gc`` removes.
"""

from __future__ import annotations

import contextlib
import json
import numbers
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from mlnb import config
from mlnb.errors import Conflict, InvalidArgument
from mlnb.refs import check_alias, check_name, parse_ref
from mlnb.registry.records import (
    AuditEntry,
    AuditLog,
    Diff,
    EvaluationList,
    EvaluationRecord,
    Lineage,
    LineageEdge,
    ModelInfo,
    ModelList,
    Version,
    VersionList,
    paused_gc,
)

if TYPE_CHECKING:
    import pandas as pd

    from mlnb.registry.records import FsckReport, GcReport
    from mlnb.storage import BlobStore

__all__ = ["Registry"]

_MAX_KEY = 250
_MAX_TEXT = 10_000


def _check_key(kind: str, key: object) -> str:
    if not isinstance(key, str) or not key or len(key) > _MAX_KEY or not key.isprintable():
        raise InvalidArgument(
            f"invalid {kind} name {key!r}: use 1-{_MAX_KEY} printable characters"
        )
    return key


def _check_metrics(metrics: Mapping[str, Any] | None) -> dict[str, float]:
    out = {}
    for key, value in (metrics or {}).items():
        _check_key("metric", key)
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise InvalidArgument(
                f"metric {key!r} must be a number, not {type(value).__name__} {value!r}"
            )
        # Non-finite values are stored (a diverged loss is a fact worth keeping)
        # but never ranked: best() only considers finite values.
        out[key] = float(value)
    return out


def _check_params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    out = {}
    for key, value in (params or {}).items():
        _check_key("param", key)
        try:
            text = json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as err:
            raise InvalidArgument(
                f"param {key!r} must be JSON-like (str, finite number, bool, None, list, "
                f"dict), not {type(value).__name__}: {err}"
            ) from err
        out[key] = json.loads(text)
    return out


def _check_tags(tags: Mapping[str, Any] | None) -> dict[str, str]:
    out = {}
    for key, value in (tags or {}).items():
        _check_key("tag", key)
        if not isinstance(value, (str, int, float, bool)):
            raise InvalidArgument(f"tag {key!r} must be a string, not {type(value).__name__}")
        out[key] = str(value)
        if len(out[key]) > _MAX_TEXT:
            raise InvalidArgument(f"tag {key!r} is longer than {_MAX_TEXT} characters")
    return out


def _plain_number(x: Any) -> Any:
    """A numpy or other real scalar as a Python float (bools and the rest untouched)."""
    if isinstance(x, numbers.Real) and not isinstance(x, (bool, int)):
        return float(x)
    return x


def _wire_estimates(metrics: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Estimates (objects with ``value``/``lower``/``upper``, mappings or numbers) as JSON."""
    if not isinstance(metrics, Mapping):
        raise InvalidArgument(f"metrics must map metric names to estimates, not "
                              f"{type(metrics).__name__}")
    out = {}
    for key, est in metrics.items():
        _check_key("metric", key)
        if isinstance(est, Mapping):
            fields = dict(est)
        elif isinstance(est, numbers.Real) and not isinstance(est, bool):
            fields = {"value": est}
        elif hasattr(est, "value"):
            fields = {"value": est.value, "lower": getattr(est, "lower", None),
                      "upper": getattr(est, "upper", None), "note": getattr(est, "note", "")}
        else:
            raise InvalidArgument(f"metric {key!r} must be an estimate (value, lower, upper) "
                                  f"or a number, not {type(est).__name__} {est!r}")
        out[key] = {k: _plain_number(v) for k, v in fields.items()}
    return out


def _wire_details(details: Mapping[str, Any] | None) -> dict[str, Any]:
    """*details* as plain JSON values (numpy scalars and arrays become numbers and lists)."""
    if details is None:
        return {}
    if not isinstance(details, Mapping):
        raise InvalidArgument(f"details must be a mapping, not {type(details).__name__}")

    def plain(obj: Any) -> Any:
        if hasattr(obj, "tolist"):  # numpy scalars and arrays, without importing numpy
            return obj.tolist()
        if hasattr(obj, "to_dict") and callable(obj.to_dict):
            return obj.to_dict()
        raise TypeError(f"{type(obj).__name__} is not JSON-like")

    try:
        return json.loads(json.dumps(dict(details), default=plain))
    except (TypeError, ValueError) as err:
        raise InvalidArgument(f"evaluation details must be JSON-like: {err}") from err


def _media_type(path: str) -> str:
    import mimetypes

    if path.endswith(".safetensors"):
        return "application/vnd.safetensors"
    return mimetypes.guess_type(path)[0] or "application/octet-stream"


class Registry:
    """A model registry: a DuckDB file behind a registry server, plus an artifact store.

    Parameters
    ----------
    home:
        Folder for the registry file, socket and default artifact store
        (``MLNB_HOME``, default ``~/.mlnb``).
    registry:
        Registry database file, or ``":memory:"`` for a throw-away registry in this
        process (``MLNB_REGISTRY``; default ``HOME/registry.duckdb``).
    storage:
        fsspec URL or folder for artifacts (``MLNB_STORAGE``; default
        ``HOME/artifacts``).  A registry keeps the store it was first used with.
    user:
        Name written to the audit log (``MLNB_USER``; default the OS user).
    storage_options:
        Passed to fsspec, e.g. ``{"endpoint_url": ...}`` for S3-compatible stores.
    """

    def __init__(
        self,
        home: str | os.PathLike[str] | None = None,
        *,
        registry: str | os.PathLike[str] | None = None,
        storage: str | os.PathLike[str] | None = None,
        user: str | None = None,
        storage_options: dict[str, Any] | None = None,
    ) -> None:
        self.settings = config.settings(home, registry, storage, user)
        s = self.settings
        if s.registry.startswith(("http://", "https://")):
            raise InvalidArgument(
                f"MLNB_REGISTRY={s.registry}: registry services over HTTP are not supported "
                "yet; use a registry file path"
            )
        if s.registry == ":memory:":
            from mlnb.registry.db import RegistryDB
            from mlnb.registry.transport import LocalTransport

            self._transport: Any = LocalTransport(RegistryDB(":memory:"))
        else:
            from mlnb.registry.transport import SocketTransport

            self._transport = SocketTransport(s.registry, s.idle)
        explicit = storage is not None or "MLNB_STORAGE" in os.environ
        recorded = self._call("storage_url")
        if recorded is None:
            recorded = self._call("storage_url", proposed=s.storage)
        elif explicit and recorded != s.storage:
            raise Conflict(
                f"this registry keeps its artifacts in {recorded}, not {s.storage}; "
                f"drop the storage setting or use a registry of its own for {s.storage}"
            )
        if recorded.startswith("memory://") and s.registry != ":memory:":
            raise InvalidArgument(
                "memory:// storage lives inside one process; use it only with "
                "registry=':memory:'"
            )
        self.storage_url: str = recorded
        self._storage_options = dict(storage_options or {})
        self._store: BlobStore | None = None
        self._listings: dict[str, tuple[str | None, int, dict[int, Version]]] = {}

    # -- plumbing ------------------------------------------------------------

    def _call(self, op: str, **args: Any) -> Any:
        return self._transport.call(op, **args)

    @property
    def store(self) -> BlobStore:
        """The artifact store (opened on first use)."""
        if self._store is None:
            from mlnb.storage import BlobStore

            self._store = BlobStore(self.storage_url, **self._storage_options)
        return self._store

    @property
    def user(self) -> str:
        """Who this client writes into the audit log."""
        return self.settings.user

    def close(self) -> None:
        """Close the connection to the registry server."""
        self._transport.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Registry {self.settings.registry} storage={self.storage_url}>"

    # -- reading ---------------------------------------------------------------

    def get(self, ref: str) -> Version:
        """The version *ref* names: ``name`` (latest active), ``name:3`` or ``name@alias``."""
        return Version.from_wire(self._call("get", ref=str(parse_ref(ref))))

    def models(self) -> ModelList:
        """Every model, by name."""
        return ModelList(ModelInfo.from_wire(m) for m in self._call("models"))

    def versions(self, name: str) -> VersionList:
        """A model's versions, oldest first (summaries: no files or metadata).

        The client keeps the last listing of each model and asks the server only
        for versions changed since, so listing again is cheap however many there are.
        """
        check_name(name)
        epoch, gen, cached = self._listings.get(name, (None, 0, {}))
        data = self._call("versions", name=name, since=gen, epoch=epoch)
        if data["epoch"] != epoch:
            cached = {}
        else:
            cached = dict(cached)
        with paused_gc():
            for row in data["rows"]:
                cached[row["version"]] = Version.from_wire(row)
        if len(cached) != data["count"]:  # cannot happen; never trust a merge blindly
            cached = {r["version"]: Version.from_wire(r)
                      for r in self._call("versions", name=name)["rows"]}
        self._listings[name] = (data["epoch"], data["gen"], cached)
        return VersionList(cached[v] for v in sorted(cached))

    def best(self, name: str, metric: str, mode: str = "max") -> Version:
        """The active version with the highest (``mode="min"``: lowest) finite *metric*."""
        return Version.from_wire(
            self._call("best", name=check_name(name), metric=_check_key("metric", metric), mode=mode)
        )

    def lineage(self, ref: str) -> Lineage:
        """The lineage graph around *ref*: what it came from and what came from it."""
        data = self._call("lineage", ref=str(parse_ref(ref)))
        return Lineage(data["root"], tuple(LineageEdge(**e) for e in data["edges"]))

    def audit(self, name: str | None = None, limit: int = 200) -> AuditLog:
        """The audit log, newest first, for one model or all."""
        if name is not None:
            check_name(name)
        return AuditLog(
            AuditEntry.from_wire(a) for a in self._call("audit", name=name, limit=int(limit))
        )

    def changes(self) -> str:
        """An opaque token that changes whenever anything in the registry changes.

        Cheap (nothing is read from disk): a panel polls it and reloads only when
        it differs from the token it holds.  A restarted registry server gives a
        new token too.
        """
        data = self._call("changes")
        return f"{data['epoch']}.{data['seq']}"

    def diff(self, a: str, b: str) -> Diff:
        """What differs between two versions: metrics (with deltas), params, tags, files, ..."""
        from mlnb.registry.diff import diff_versions

        return diff_versions(self.get(a), self.get(b))

    def sql(self, query: str, limit: int = 100_000) -> pd.DataFrame:
        """Run one read-only SELECT over the registry's views and return a DataFrame.

        Views: ``models``, ``versions``, ``metrics``, ``params``, ``tags``, ``files``,
        ``aliases``, ``lineage``, ``audit``.  Writes, file access and several
        statements are refused with :class:`~mlnb.errors.InvalidArgument`.
        """
        import pandas as pd

        data = self._call("sql", query=query, limit=int(limit))
        df = pd.DataFrame(data["rows"], columns=data["columns"])
        for col, kind in zip(data["columns"], data["types"]):
            if kind.startswith("TIMESTAMP") or kind == "DATE":
                df[col] = pd.to_datetime(df[col])
        df.attrs["truncated"] = data["truncated"]
        return df

    # -- evaluations and quality gates ---------------------------------------

    def record_evaluation(self, ref: str, *, data_fingerprint: str, task: str,
                          metrics: Mapping[str, Any],
                          details: Mapping[str, Any] | None = None) -> EvaluationRecord:
        """Store an evaluation of the version *ref* on the data *data_fingerprint*.

        ``mlnb.evaluate`` calls this; a version keeps every evaluation, and the
        newest is the one :meth:`promote` checks the gates against.

        Parameters
        ----------
        metrics:
            Metric name -> estimate: an object with ``value``, ``lower``,
            ``upper`` (and ``note``), a mapping with those keys, or a number.
        details:
            JSON-like facts about the run (examples, device, batch size, seed,
            resamples, data description, gate report).

        Returns
        -------
        EvaluationRecord
            The stored record, with its id.
        """
        return EvaluationRecord.from_wire(self._call(
            "record_evaluation", ref=str(parse_ref(ref)), data_fingerprint=data_fingerprint,
            task=task, metrics=_wire_estimates(metrics), details=_wire_details(details),
            user=self.user, request_id=uuid.uuid4().hex,
        ))

    def evaluations(self, ref: str | None = None, *, name: str | None = None,
                    data_fingerprint: str | None = None) -> EvaluationList:
        """Stored evaluations, newest first: of the version *ref*, of the model *name*, or all.

        *data_fingerprint* keeps only those on that data.
        """
        return EvaluationList(EvaluationRecord.from_wire(e) for e in self._call(
            "evaluations", ref=str(parse_ref(ref)) if ref is not None else None,
            name=check_name(name) if name is not None else None,
            data_fingerprint=data_fingerprint,
        ))

    def set_gates(self, name: str, gates: list[str], *, reason: str | None = None
                  ) -> tuple[str, ...]:
        """Make *gates* the quality gates of the model *name*; ``[]`` clears them.

        Gates such as ``"accuracy >= 0.95"`` or ``"accuracy >= @production - 0.005"``
        are parsed strictly now (see :mod:`mlnb.evaluation.gates`); from then on
        ``promote(ref, "production")`` needs the version's newest evaluation to
        pass them.  Returns the gates' canonical texts.

        Raises
        ------
        InvalidArgument
            A gate does not parse, names an unknown metric or repeats another.
        """
        if isinstance(gates, (list, tuple)):  # parsed Gate objects travel as their text
            gates = [getattr(g, "text", g) for g in gates]
        return tuple(self._call("set_gates", name=check_name(name), gates=gates,
                                user=self.user, reason=reason))

    def gates(self, name: str) -> tuple[str, ...]:
        """The canonical texts of the quality gates of *name* (empty when it has none)."""
        return tuple(self._call("gates", name=check_name(name)))

    # -- changing aliases and status ------------------------------------------

    def promote(self, ref: str, alias: str = "production", *, force: bool = False,
                reason: str | None = None) -> Version:
        """Move *alias* (``production`` by default) to *ref*; written to the audit log.

        When the model has quality gates, moving ``production`` needs the
        version's newest evaluation to pass them, checked in the same transaction
        as the move.  ``force=True`` promotes anyway and needs a *reason*; the
        audit log records that the gates were overridden and why.

        Raises
        ------
        Conflict
            The version has no evaluation, or its gates fail or cannot be decided.
        InvalidArgument
            ``force=True`` without a reason.
        """
        # Sent only when set, so a server started by an mlnb before gates still
        # answers a plain promote.
        extra = {} if force is False else {"force": force}
        return Version.from_wire(self._call(
            "promote", ref=str(parse_ref(ref)), alias=check_alias(alias), user=self.user,
            reason=reason, **extra,
        ))

    def rollback(self, name: str, alias: str = "production", *, reason: str | None = None) -> Version:
        """Move *alias* back to the version that held it before the current one."""
        return Version.from_wire(self._call(
            "rollback", name=check_name(name), alias=check_alias(alias), user=self.user,
            reason=reason,
        ))

    def set_alias(self, ref: str, alias: str, *, reason: str | None = None) -> Version:
        """Point a free alias (``champion``, ``candidate``...) at *ref*."""
        return Version.from_wire(self._call(
            "set_alias", ref=str(parse_ref(ref)), alias=check_alias(alias), user=self.user,
            reason=reason,
        ))

    def remove_alias(self, name: str, alias: str, *, reason: str | None = None) -> None:
        """Take a free alias off the model *name*."""
        self._call("remove_alias", name=check_name(name), alias=check_alias(alias),
                   user=self.user, reason=reason)

    def retire(self, ref: str, *, reason: str | None = None) -> Version:
        """Retire a version: it stays loadable but holds no alias and is never ``best``."""
        return Version.from_wire(
            self._call("retire", ref=str(parse_ref(ref)), user=self.user, reason=reason)
        )

    # -- registering -------------------------------------------------------------

    def _put_files(self, request_id: str, files: list[tuple[str, Path]]) -> list[dict[str, Any]]:
        """Store *files* under a hold for *request_id*; return the manifest entries."""
        import time

        def hold(sha: str) -> None:
            while not self._call("hold", request_id=request_id, shas=[sha]):
                time.sleep(0.05)  # a gc is deleting this blob: wait, then re-upload

        entries = []
        for rel, path in files:
            blob = self.store.put_file(path, hold=hold)
            entries.append({"path": rel, "sha256": blob.sha256, "size": blob.size,
                            "media_type": _media_type(rel)})
        return entries

    def _commit(self, request_id: str, files: list[tuple[str, Path]], entries: list[dict],
                **record: Any) -> Version:
        """Send the registration; if its holds were lost, take them again and resend."""
        from mlnb.errors import HoldExpired, RegistryUnavailable

        for attempt in range(3):
            try:
                return Version.from_wire(self._call(
                    "register", request_id=request_id, files=entries, user=self.user, **record
                ))
            except (HoldExpired, RegistryUnavailable):
                if attempt == 2:
                    raise
                # A new server holds nothing: take the holds again, and put back any
                # blob a gc removed meanwhile, before asking again with the same id.
                self._put_files(request_id, files)
        raise AssertionError("unreachable")

    def register(
        self,
        name: str,
        obj: Any,
        *,
        metrics: Mapping[str, float] | None = None,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
        description: str | None = None,
        parent: str | None = None,
        init_kwargs: Mapping[str, Any] | None = None,
    ) -> Version:
        """Register *obj* as the next version of *name*.

        *obj* is a ``torch.nn.Module`` (stored as safetensors weights plus how to
        rebuild it), a path to a file or directory (stored as it is), or any other
        picklable object (loaded back only with ``trust=True``).

        Parameters
        ----------
        metrics, params, tags:
            Numbers; JSON-like values; strings.  NaN and infinite metrics are stored
            as they are and never chosen by :meth:`best`.
        parent:
            A reference to the version this one derives from (lineage edge ``parent``).
        init_kwargs:
            Keyword arguments that rebuild a torch module of a custom class.

        Raises
        ------
        InvalidName, InvalidArgument, NotFound
            Bad name, metric, param or tag, or an unknown parent; nothing is stored.
        """
        from mlnb import serialize

        check_name(name)
        if description is not None and (
            not isinstance(description, str) or len(description) > _MAX_TEXT
        ):
            raise InvalidArgument(f"description must be a string of at most {_MAX_TEXT} characters")
        record = {
            "name": name,
            "metrics": _check_metrics(metrics),
            "params": _check_params(params),
            "tags": _check_tags(tags),
            "description": description,
            "parent": str(parse_ref(parent)) if parent is not None else None,
        }
        if parent is not None:
            self.get(parent)  # fail before storing anything
        request_id = uuid.uuid4().hex
        with contextlib.ExitStack() as stack:
            # A path is stored as it is; only objects to serialise need a work folder.
            work = None
            if serialize.describe(obj) != "files":
                work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mlnb-stage-")))
            staged = serialize.stage(obj, work,
                                     init_kwargs=dict(init_kwargs) if init_kwargs else None)
            try:
                entries = self._put_files(request_id, staged.files)
                return self._commit(request_id, staged.files, entries, format=staged.format,
                                    metadata=staged.metadata, **record)
            except BaseException:
                try:
                    self._call("release", request_id=request_id)
                except Exception:  # the original error matters more
                    pass
                raise

    # -- loading -------------------------------------------------------------

    def checkout(self, ref: str, dest: str | os.PathLike[str] | None = None) -> Path:
        """Copy a version's files to a local folder, verifying every byte; return it.

        Without *dest*, the folder is ``HOME/checkouts/NAME/VERSION``, replaced whole.
        """
        v = self.get(ref)
        final = Path(dest) if dest else self.settings.home / "checkouts" / v.name / str(v.version)
        final.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
        try:
            for f in v.files:
                target = work / f.path
                target.parent.mkdir(parents=True, exist_ok=True)
                self.store.get_file(f.sha256, target, size=f.size, label=f"{v.ref} file {f.path}")
            if final.exists():
                old = final.with_name(f".{final.name}-old-{uuid.uuid4().hex[:8]}")
                final.rename(old)
                shutil.rmtree(old, ignore_errors=True)
            work.rename(final)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        return final

    def load(self, ref: str, *, device: str | None = None, trust: bool = False,
             model_class: type | None = None, into: Any = None) -> Any:
        """Load a version: an ``nn.Module`` on *device*, a local path, or an unpickled object.

        Every byte is checked against its hash first (:class:`~mlnb.errors.IntegrityError`
        otherwise).  Pickled objects load only with ``trust=True``.
        """
        from mlnb import serialize

        v = self.get(ref)
        if v.format == "files":
            root = self.checkout(v.ref)
            return serialize.load(v.format, root, dict(v.metadata))
        with tempfile.TemporaryDirectory(prefix="mlnb-load-") as work:
            root = self.checkout(v.ref, Path(work) / "v")
            return serialize.load(v.format, root, dict(v.metadata), device=device, trust=trust,
                                  model_class=model_class, into=into)

    # -- maintenance and bundles ---------------------------------------------

    def fsck(self, *, deep: bool = True) -> FsckReport:
        """Check that every file of every version is in the store, whole and unaltered.

        With ``deep=False`` only presence and size are checked (no hashing).
        """
        from mlnb.registry import maintenance

        return maintenance.fsck(self, deep=deep)

    def gc(self, *, dry_run: bool = False, grace: float = 3600.0) -> GcReport:
        """Delete blobs no version references, and temporary uploads older than *grace* s."""
        from mlnb.registry import maintenance

        return maintenance.gc(self, dry_run=dry_run, grace=grace)

    def export(self, ref: str, path: str | os.PathLike[str]) -> Path:
        """Write one version, with its metadata, to a ``.tar.gz`` bundle."""
        from mlnb.registry import bundles

        return bundles.export(self, ref, Path(path))

    def import_bundle(self, path: str | os.PathLike[str], *, name: str | None = None) -> Version:
        """Register the version in bundle *path* as the next version of its model (or *name*)."""
        from mlnb.registry import bundles

        return bundles.import_bundle(self, Path(path), name=name)
