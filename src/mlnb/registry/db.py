"""The registry database: the one object that reads and writes the DuckDB file.

:class:`RegistryDB` runs inside the registry server (or in-process for a
``:memory:`` registry).  Because it is the file's only owner, it keeps an index
of every model, version and alias in memory, loaded once at start and updated
right after each committed transaction; reads of those are answered from the
index and never touch DuckDB (evaluations, lineage and the audit log are read
from the database).  Every change is one short transaction that also writes its
audit row.  All operations take and return JSON-ready values (the server sends
them as they are) and hold ``self.lock`` for their whole duration, so the
server's threads see them one at a time: "read, then write" inside one
operation is safe, and two operations never interleave.

Not thread-safe without that lock; never open the database file any other way
while a ``RegistryDB`` holds it (see ARCHITECTURE.md, "Registry").
"""

from __future__ import annotations

import functools
import json
import math
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterable

from mlnb.errors import Conflict, HoldExpired, InvalidArgument, NotFound
from mlnb.refs import Ref, check_alias, check_name, parse_ref, suggest
from mlnb.registry import evaluations, gating, schema

__all__ = ["PROTECTED_ALIASES", "RegistryDB"]

PROTECTED_ALIASES = frozenset({"production", "staging"})
ACTIVE, RETIRED = "active", "retired"
HOLD_SECONDS = 3600.0
GC_SECONDS = 600.0


def _now() -> float:
    return time.time()


def _ts(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, timezone.utc).replace(tzinfo=None)


def _epoch(value: datetime) -> float:
    return value.replace(tzinfo=timezone.utc).timestamp()


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


def _finite_json(metrics: dict[str, float]) -> dict[str, float | str]:
    """JSON has no NaN or infinity: store those as the strings DuckDB casts back."""
    return {k: v if math.isfinite(v) else repr(v).replace("inf", "Infinity").replace("nan", "NaN")
            for k, v in metrics.items()}


@dataclass
class _Model:
    id: int
    name: str
    description: str | None
    created_at: float
    created_by: str
    versions: dict[int, dict[str, Any]] = field(default_factory=dict)
    aliases: dict[str, int] = field(default_factory=dict)
    # version -> cached JSON of its summary (what a listing sends)
    summaries: dict[int, bytes] = field(default_factory=dict)
    # change counter of this model, and the value it had when each version last
    # changed: a client holding a listing at generation g needs only newer ones
    gen: int = 0
    changed: dict[int, int] = field(default_factory=dict)
    # canonical texts of the model's quality gates (see mlnb.registry.gating)
    gates: tuple[str, ...] = ()

    def next_version(self) -> int:
        return max(self.versions, default=0) + 1


_SUMMARY_KEYS = (
    "name", "version", "status", "format", "description", "created_at",
    "created_by", "metrics", "params", "tags", "aliases", "parent",
)


class RegistryDB:
    """Owner of one registry database file (or ``:memory:``).

    Parameters
    ----------
    path:
        The DuckDB file, created with its folder if missing, or ``":memory:"``.
    """

    def __init__(self, path: str) -> None:
        import duckdb

        self.path = path
        self.lock = threading.RLock()
        if path != ":memory:":
            from pathlib import Path

            Path(path).parent.mkdir(parents=True, exist_ok=True)
        try:
            # One thread: registry statements are tiny, and a second thread only
            # adds scheduling cost (0.7 ms per registration measured here).
            self.con = duckdb.connect(path, config={"threads": 1})
        except duckdb.IOException as err:
            raise Conflict(
                f"cannot open the registry {path}: {err}. Another process holds it; "
                "mlnb clients reach it through its registry server, never directly"
            ) from err
        schema.migrate(self.con)
        # Registry SQL must not reach files or the network (see sqlguard); nothing
        # mlnb itself runs needs either.  Cannot be switched back on.
        self.con.execute("set enable_external_access = false")
        self._models: dict[str, _Model] = {}
        self._by_id: dict[int, _Model] = {}
        self._requests: dict[str, tuple[int, int]] = {}
        self._holds: dict[str, tuple[float, set[str]]] = {}
        # every blob some version references (versions are never deleted)
        self._blobs: set[str] = set()
        self._condemned: dict[str, tuple[float, set[str]]] = {}
        self._audit_id = 0
        self.epoch = uuid.uuid4().hex
        self._load()

    # -- loading -----------------------------------------------------------

    def _load(self) -> None:
        con = self.con
        for mid, name, desc, created_at, created_by in con.execute(
            "select id, name, description, created_at, created_by from mlnb.models"
        ).fetchall():
            model = _Model(mid, name, desc, _epoch(created_at), created_by)
            self._models[name] = model
            self._by_id[mid] = model
        rows = con.execute(
            "select model_id, version, status, format, description, created_at, created_by,"
            " request_id, metrics, params, tags, files, manifest from mlnb.versions"
        ).fetchall()
        parents = {
            (m, v): (om, ov)
            for m, v, om, ov in con.execute(
                "select model_id, version, other_model_id, other_version from mlnb.lineage"
                " where kind = 'parent'"
            ).fetchall()
        }
        for (mid, ver, status, fmt, desc, created_at, created_by, req, metrics, params,
             tags, files, manifest) in rows:
            model = self._by_id[mid]
            parent = parents.get((mid, ver))
            model.versions[ver] = self._record(
                model, ver, status, fmt, desc, _epoch(created_at), created_by,
                {k: float(v) for k, v in json.loads(metrics).items()},
                json.loads(params), json.loads(tags), json.loads(files),
                json.loads(manifest).get("metadata", {}),
                f"{self._by_id[parent[0]].name}:{parent[1]}" if parent else None,
            )
            self._requests[req] = (mid, ver)
            self._blobs.update(f["sha256"] for f in model.versions[ver]["files"])
        for mid, alias, ver in con.execute(
            "select model_id, alias, version from mlnb.aliases"
        ).fetchall():
            self._by_id[mid].aliases[alias] = ver
        for mid, texts in gating.load(self).items():
            self._by_id[mid].gates = texts
        for model in self._models.values():
            self._refresh_aliases(model, model.versions)
        row = con.execute("select coalesce(max(id), 0) from main.audit").fetchone()
        self._audit_id = int(row[0]) if row else 0

    @staticmethod
    def _record(model: _Model, version: int, status: str, fmt: str, desc: str | None,
                created_at: float, created_by: str, metrics: dict, params: dict,
                tags: dict, files: list, metadata: dict, parent: str | None) -> dict[str, Any]:
        return {
            "name": model.name,
            "version": version,
            "status": status,
            "format": fmt,
            "description": desc,
            "created_at": created_at,
            "created_by": created_by,
            "metrics": dict(metrics),
            "params": dict(params),
            "tags": dict(tags),
            "aliases": [],
            "parent": parent,
            "files": [dict(f) for f in files],
            "metadata": metadata,
        }

    def _refresh_aliases(self, model: _Model, versions: Iterable[int]) -> None:
        model.gen += 1
        for ver in set(versions):
            rec = model.versions.get(ver)
            if rec is None:
                continue
            rec["aliases"] = sorted(a for a, v in model.aliases.items() if v == ver)
            model.changed[ver] = model.gen
            model.summaries[ver] = json.dumps(
                {k: rec[k] for k in _SUMMARY_KEYS}, separators=(",", ":")
            ).encode()

    # -- lookups -----------------------------------------------------------

    def _model(self, name: str) -> _Model:
        model = self._models.get(check_name(name))
        if model is None:
            raise NotFound(
                f"no model {name!r}{suggest(name, self._models)}; "
                "list them with `mlnb models` or reg.models()"
            )
        return model

    def _resolve(self, ref: str | Ref) -> tuple[_Model, int]:
        r = parse_ref(ref)
        model = self._model(r.name)
        if r.version is not None:
            if r.version not in model.versions:
                latest = model.next_version() - 1
                raise NotFound(
                    f"{r.name} has no version {r.version}; its versions are 1..{latest}"
                    if latest else f"{r.name} has no versions"
                )
            return model, r.version
        if r.alias is not None:
            ver = model.aliases.get(r.alias)
            if ver is None:
                known = ", ".join(sorted(model.aliases)) or "none"
                raise NotFound(
                    f"{r.name} has no alias {r.alias!r}{suggest(r.alias, model.aliases)}"
                    f" (its aliases: {known})"
                )
            return model, ver
        active = [v for v, rec in model.versions.items() if rec["status"] == ACTIVE]
        if not active:
            raise NotFound(f"{r.name} has no active version; register one first")
        return model, max(active)

    # -- reads -------------------------------------------------------------

    def get(self, ref: str) -> dict[str, Any]:
        """The full record of the version *ref* points at."""
        with self.lock:
            model, ver = self._resolve(ref)
            return model.versions[ver]

    def models(self) -> list[dict[str, Any]]:
        """Every model with its version count, latest version and aliases."""
        with self.lock:
            out = []
            for model in sorted(self._models.values(), key=lambda m: m.name):
                out.append({
                    "name": model.name,
                    "description": model.description,
                    "created_at": model.created_at,
                    "created_by": model.created_by,
                    "versions": len(model.versions),
                    "latest": max(model.versions, default=None),
                    "aliases": dict(sorted(model.aliases.items())),
                    "updated_at": max(
                        (r["created_at"] for r in model.versions.values()),
                        default=model.created_at,
                    ),
                })
            return out

    def versions_json(self, name: str, since: int = 0, epoch: str | None = None) -> bytes:
        """A model's versions as JSON: ``{"epoch", "gen", "count", "rows"}``.

        ``rows`` are version summaries, oldest first: all of them, or, when the
        caller passes the *epoch* and generation *since* of a listing it holds,
        only those changed after it.  The epoch is new for every server, so a
        listing from an earlier server is always sent whole.
        """
        with self.lock:
            model = self._model(name)
            if epoch != self.epoch:
                since = 0
            rows = b",".join(
                model.summaries[v] for v in sorted(model.versions) if model.changed[v] > since
            )
            head = json.dumps({"epoch": self.epoch, "gen": model.gen,
                               "count": len(model.versions)})
            return head[:-1].encode() + b',"rows":[' + rows + b"]}"

    def best(self, name: str, metric: str, mode: str = "max") -> dict[str, Any]:
        """The active version with the highest (or lowest) finite *metric*."""
        if mode not in ("max", "min"):
            raise InvalidArgument(f"mode must be 'max' or 'min', not {mode!r}")
        with self.lock:
            model = self._model(name)
            scored = [
                (rec["metrics"][metric], ver)
                for ver, rec in model.versions.items()
                if rec["status"] == ACTIVE
                and isinstance(rec["metrics"].get(metric), float)
                and math.isfinite(rec["metrics"][metric])
            ]
            if not scored:
                known = sorted({k for r in model.versions.values() for k in r["metrics"]})
                raise NotFound(
                    f"no active version of {name} has a finite {metric!r}"
                    f"{suggest(metric, known)}; metrics recorded: {', '.join(known) or 'none'}"
                )
            pick = max(scored) if mode == "max" else min(scored)
            return model.versions[pick[1]]

    # -- writes ------------------------------------------------------------

    def _audit(self, user: str, action: str, model: str, version: int | None = None,
               alias: str | None = None, from_version: int | None = None,
               to_version: int | None = None, reason: str | None = None,
               details: dict | None = None, at: float | None = None) -> None:
        self._audit_id += 1
        self.con.execute(
            "insert into mlnb.audit values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [self._audit_id, _ts(at or _now()), user, action, model, version, alias,
             from_version, to_version, reason, json.dumps(details) if details else None],
        )

    def _transaction(self):
        return _Transaction(self)

    def register(self, *, request_id: str, name: str, format: str, files: list[dict],
                 metadata: dict, metrics: dict, params: dict, tags: dict,
                 description: str | None, parent: str | None, user: str,
                 details: dict | None = None) -> dict[str, Any]:
        """Add a new version; a repeated *request_id* returns the version it made."""
        check_name(name)
        with self.lock:
            done = self._requests.get(request_id)
            if done is not None:
                return self._by_id[done[0]].versions[done[1]]
            parent_at = self._resolve(parent) if parent else None
            self._check_held(request_id, files)
            metrics = {str(k): float(v) for k, v in metrics.items()}
            tags = {str(k): str(v) for k, v in tags.items()}
            now = _now()
            model = self._models.get(name)
            new_model = model is None
            if model is None:
                mid = max(self._by_id, default=0) + 1
                model = _Model(mid, name, None, now, user)
            ver = model.next_version()
            manifest = {"schema": 1, "format": format, "files": files, "metadata": metadata}
            with self._transaction() as tx:
                if new_model:
                    self.con.execute(
                        "insert into mlnb.models values (?, ?, ?, ?, ?)",
                        [model.id, name, None, _ts(now), user],
                    )
                self.con.execute(
                    "insert into mlnb.versions values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [model.id, ver, ACTIVE, format, description, _ts(now), user, request_id,
                     tx.next_audit_id(), _dumps(_finite_json(metrics)), _dumps(params),
                     _dumps(tags), _dumps(files), _dumps(manifest),
                     _dumps(details) if details else None],
                )
                if parent_at:
                    self.con.execute(
                        "insert into mlnb.lineage values (?, ?, 'parent', ?, ?, null, ?)",
                        [model.id, ver, parent_at[0].id, parent_at[1], _ts(now)],
                    )
            if new_model:
                self._models[name] = model
                self._by_id[model.id] = model
            model.versions[ver] = self._record(
                model, ver, ACTIVE, format, description, now, user, metrics, params, tags,
                files, metadata,
                f"{parent_at[0].name}:{parent_at[1]}" if parent_at else None,
            )
            self._refresh_aliases(model, [ver])
            self._requests[request_id] = (model.id, ver)
            self._blobs.update(f["sha256"] for f in files)
            self._holds.pop(request_id, None)
            return model.versions[ver]

    def _check_held(self, request_id: str, files: list[dict]) -> None:
        """Refuse to reference a blob that ``gc`` may have deleted since it was uploaded.

        A blob is safe when this registration holds it or a version already
        references it.  Holds live in memory and go with the connection that took
        them, so after a server restart or a lost connection the client must hold
        (and if need be upload) its blobs again; :class:`HoldExpired` tells it so.
        """
        until, held = self._holds.get(request_id, (0.0, set()))
        if until < _now():
            held = set()
        loose = {f["sha256"] for f in files} - held - self._blobs
        if loose:
            raise HoldExpired(
                f"{len(loose)} uploaded file(s) of this registration are no longer protected "
                "from gc (the registry server restarted, or more than an hour passed); "
                "upload them again"
            )

    def _move_alias(self, model: _Model, alias: str, ver: int, user: str, action: str,
                    reason: str | None,
                    check: Callable[[], dict | None] | None = None) -> dict[str, Any]:
        """Point *alias* at *ver*; *check*, run inside the same transaction, may refuse.

        Whatever *check* returns becomes the audit row's details.
        """
        if model.versions[ver]["status"] != ACTIVE:
            raise Conflict(
                f"{model.name}:{ver} is retired and cannot hold an alias; "
                "register or pick an active version"
            )
        before = model.aliases.get(alias)
        if before == ver:
            return model.versions[ver]
        now = _now()
        with self._transaction():
            details = check() if check is not None else None
            self._write_alias(model, alias, ver, user, now)
            self._audit(user, action, model.name, ver, alias=alias, from_version=before,
                        to_version=ver, reason=reason, details=details, at=now)
        model.aliases[alias] = ver
        self._refresh_aliases(model, [ver] + ([before] if before else []))
        return model.versions[ver]

    def _write_alias(self, model: _Model, alias: str, ver: int, user: str, now: float) -> None:
        # The primary key (model_id, alias) makes an alias name one row per model, so
        # two writers can never both hold it.  An UPDATE of the existing row costs
        # half of "insert or replace" (a delete plus an insert) in DuckDB.
        if alias in model.aliases:
            self.con.execute(
                "update mlnb.aliases set version = ?, set_at = ?, set_by = ?"
                " where model_id = ? and alias = ?",
                [ver, _ts(now), user, model.id, alias],
            )
        else:
            self.con.execute(
                "insert into mlnb.aliases values (?, ?, ?, ?, ?)",
                [model.id, alias, ver, _ts(now), user],
            )

    def set_alias(self, ref: str, alias: str, *, user: str, reason: str | None = None) -> dict:
        """Point *alias* at *ref*; ``production``/``staging`` need :meth:`promote`."""
        check_alias(alias)
        if alias in PROTECTED_ALIASES:
            raise Conflict(
                f"{alias!r} is a protected alias: move it with promote "
                f"(mlnb promote REF {alias}), which checks the model's quality gates"
            )
        with self.lock:
            model, ver = self._resolve(ref)
            return self._move_alias(model, alias, ver, user, "set_alias", reason)

    def promote(self, ref: str, alias: str = "production", *, user: str,
                reason: str | None = None, force: bool = False) -> dict[str, Any]:
        """Move *alias* (by default ``production``) to *ref*, if the model's gates allow it.

        For an alias in :data:`~mlnb.registry.gating.GATED_ALIASES` of a model with
        gates, the version's newest evaluation must pass them; the check and the
        move are one transaction (see :mod:`mlnb.registry.gating`).  *force* skips
        a refusal and needs a *reason*; the audit row records what was overridden.

        Raises
        ------
        Conflict
            The version is retired, or the gates refuse it (the message says why).
        InvalidArgument
            *force* without a reason.
        """
        check_alias(alias)
        if not isinstance(force, bool):
            raise InvalidArgument(f"force must be True or False, not {force!r}")
        if force and not (isinstance(reason, str) and reason.strip()):
            raise InvalidArgument(
                f"promote(..., force=True) overrides quality gates and needs a reason for the "
                f"audit log, e.g. reason='hotfix: gates re-run tomorrow'; got {reason!r}"
            )
        with self.lock:
            model, ver = self._resolve(ref)
            check = None
            if alias in gating.GATED_ALIASES and model.gates:
                check = functools.partial(gating.check_promotion, self, model, ver, alias,
                                          force=force)
            return self._move_alias(model, alias, ver, user, "promote", reason, check)

    # -- evaluations and gates ---------------------------------------------

    def record_evaluation(self, ref: str, *, data_fingerprint: str, task: str,
                          metrics: dict[str, dict], details: dict | None = None, user: str,
                          request_id: str | None = None) -> dict[str, Any]:
        """Store an evaluation of *ref* on the data *data_fingerprint*; return its record.

        See :mod:`mlnb.registry.evaluations` for the record.  A *request_id* seen
        before returns the evaluation it recorded, so a resent request is harmless.
        """
        with self.lock:
            model, ver = self._resolve(ref)
            return evaluations.record(self, model, ver, data_fingerprint=data_fingerprint,
                                      task=task, metrics=metrics, details=details, user=user,
                                      request_id=request_id)

    def evaluations(self, ref: str | None = None, *, name: str | None = None,
                    data_fingerprint: str | None = None) -> list[dict[str, Any]]:
        """Evaluations, newest first: of the version *ref*, of the model *name*, or all."""
        if ref is not None and name is not None:
            raise InvalidArgument("give a version reference or a model name, not both")
        with self.lock:
            model_id = version = None
            if ref is not None:
                model, version = self._resolve(ref)
                model_id = model.id
            elif name is not None:
                model_id = self._model(name).id
            return evaluations.rows(self, model_id=model_id, version=version,
                                    data_fingerprint=data_fingerprint)

    def set_gates(self, name: str, gates: list[str], *, user: str,
                  reason: str | None = None) -> list[str]:
        """Make *gates* the quality gates of *name* (``[]`` clears them); return their texts."""
        with self.lock:
            return list(gating.set_gates(self, self._model(name), gates, user=user,
                                         reason=reason))

    def gates(self, name: str) -> list[str]:
        """The canonical texts of *name*'s quality gates (empty when it has none)."""
        with self.lock:
            return list(self._model(name).gates)

    def remove_alias(self, name: str, alias: str, *, user: str,
                     reason: str | None = None) -> None:
        """Take *alias* off whichever version of *name* holds it."""
        check_alias(alias)
        with self.lock:
            model = self._model(name)
            if alias in PROTECTED_ALIASES:
                raise Conflict(f"{alias!r} is protected: use rollback or retire")
            ver = model.aliases.get(alias)
            if ver is None:
                raise NotFound(f"{name} has no alias {alias!r}")
            with self._transaction():
                self.con.execute(
                    "delete from mlnb.aliases where model_id = ? and alias = ?",
                    [model.id, alias],
                )
                self._audit(user, "remove_alias", name, ver, alias=alias, from_version=ver,
                            reason=reason)
            del model.aliases[alias]
            self._refresh_aliases(model, [ver])

    def _alias_stack(self, model: _Model, alias: str) -> list[int]:
        """Versions that held *alias*, oldest first, with rolled-back ones popped."""
        stack: list[int] = []
        for action, to_version in self.con.execute(
            "select action, to_version from mlnb.audit where model = ? and alias = ?"
            " and action in ('promote', 'set_alias', 'rollback', 'remove_alias', 'retire')"
            " order by id",
            [model.name, alias],
        ).fetchall():
            if action in ("rollback", "remove_alias", "retire"):
                if stack:
                    stack.pop()
            elif not stack or stack[-1] != to_version:
                stack.append(to_version)
        return stack

    def rollback(self, name: str, alias: str = "production", *, user: str,
                 reason: str | None = None) -> dict[str, Any]:
        """Move *alias* back to the version that held it before the current one."""
        with self.lock:
            model = self._model(name)
            current = model.aliases.get(alias)
            if current is None:
                raise Conflict(f"{name}@{alias} is not set, so there is nothing to roll back")
            stack = self._alias_stack(model, alias)
            previous = [v for v in stack[:-1] if v != current]
            if not previous:
                raise Conflict(
                    f"{name}@{alias} has had no other version before {name}:{current}; "
                    f"nothing to roll back to"
                )
            target = previous[-1]
            if model.versions[target]["status"] != ACTIVE:
                raise Conflict(
                    f"{name}:{target} held {alias} before, but it is retired; "
                    f"promote the version you want explicitly"
                )
            now = _now()
            with self._transaction():
                self._write_alias(model, alias, target, user, now)
                self._audit(user, "rollback", name, target, alias=alias,
                            from_version=current, to_version=target, reason=reason, at=now)
            model.aliases[alias] = target
            self._refresh_aliases(model, [target, current])
            return model.versions[target]

    def retire(self, ref: str, *, user: str, reason: str | None = None) -> dict[str, Any]:
        """Mark a version retired and take its aliases away."""
        with self.lock:
            model, ver = self._resolve(ref)
            if model.versions[ver]["status"] == RETIRED:
                raise Conflict(f"{model.name}:{ver} is already retired")
            held = sorted(a for a, v in model.aliases.items() if v == ver)
            now = _now()
            with self._transaction():
                self.con.execute(
                    "update mlnb.versions set status = ? where model_id = ? and version = ?",
                    [RETIRED, model.id, ver],
                )
                for alias in held:
                    self.con.execute(
                        "delete from mlnb.aliases where model_id = ? and alias = ?",
                        [model.id, alias],
                    )
                    self._audit(user, "retire", model.name, ver, alias=alias,
                                from_version=ver, reason=reason, at=now)
                if not held:
                    self._audit(user, "retire", model.name, ver, reason=reason, at=now)
            for alias in held:
                del model.aliases[alias]
            model.versions[ver]["status"] = RETIRED
            self._refresh_aliases(model, [ver])
            return model.versions[ver]

    def add_lineage(self, ref: str, kind: str, other: str, *, user: str,
                    details: dict | None = None) -> None:
        """Record the edge *ref* --kind--> *other* (e.g. ``converted_from``)."""
        check_alias(kind)
        with self.lock:
            model, ver = self._resolve(ref)
            omodel, over = self._resolve(other)
            with self._transaction():
                self.con.execute(
                    "insert or replace into mlnb.lineage values (?, ?, ?, ?, ?, ?, ?)",
                    [model.id, ver, kind, omodel.id, over,
                     json.dumps(details) if details else None, _ts(_now())],
                )
                self._audit(user, "lineage", model.name, ver, reason=kind,
                            details={"other": f"{omodel.name}:{over}", **(details or {})})

    def changes(self) -> dict[str, Any]:
        """The change token's parts: this server's epoch and the last audit id.

        Every change writes an audit row (a registration is one too) in its own
        transaction, so the id moves exactly when something changed.
        """
        with self.lock:
            return {"epoch": self.epoch, "seq": self._audit_id}

    # -- history -----------------------------------------------------------

    def lineage(self, ref: str) -> dict[str, Any]:
        """Edges reachable from *ref*: its ancestors and its descendants.

        Besides the stored edges, each version evaluated on some data has an edge
        ``m:3 --evaluated_on--> data:<first 12 hex of the fingerprint>`` read off
        the evaluations table (see :func:`mlnb.registry.evaluations.edges`).
        """
        with self.lock:
            model, ver = self._resolve(ref)
            rows = self.con.execute(
                "select m.name, l.version, l.kind, o.name, l.other_version, l.details"
                " from mlnb.lineage l join mlnb.models m on m.id = l.model_id"
                " join mlnb.models o on o.id = l.other_model_id"
            ).fetchall()
            edges = [
                {"source": f"{a}:{av}", "kind": k, "target": f"{b}:{bv}",
                 "details": json.loads(d) if d else None}
                for a, av, k, b, bv, d in rows
            ] + evaluations.edges(self)
            root = f"{model.name}:{ver}"
            keep: list[dict] = []
            for direction in (("source", "target"), ("target", "source")):
                frontier, seen = {root}, {root}
                while frontier:
                    step = [e for e in edges if e[direction[0]] in frontier and e not in keep]
                    keep.extend(step)
                    frontier = {e[direction[1]] for e in step} - seen
                    seen |= frontier
            return {"root": root, "edges": keep}

    def audit(self, name: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
        """Audit rows, newest first, optionally for one model."""
        if name is not None:
            with self.lock:
                self._model(name)
        query = (
            "select id, \"at\", \"user\", action, model, version, alias, from_version,"
            " to_version, reason, details from main.audit"
        )
        args: list[Any] = []
        if name is not None:
            query += " where model = ?"
            args.append(name)
        query += " order by id desc limit ?"
        args.append(int(limit))
        keys = ("id", "at", "user", "action", "model", "version", "alias", "from_version",
                "to_version", "reason", "details")
        with self.lock:
            rows = self.con.execute(query, args).fetchall()
        out = []
        for row in rows:
            item = dict(zip(keys, row))
            item["at"] = _epoch(item["at"])
            item["details"] = json.loads(item["details"]) if item["details"] else None
            out.append(item)
        return out

    # -- storage bookkeeping ----------------------------------------------

    def storage_url(self, proposed: str | None) -> str | None:
        """The artifact store this registry uses; the first caller's proposal is kept."""
        with self.lock:
            row = self.con.execute(
                "select value from mlnb.meta where key = 'storage'"
            ).fetchone()
            if row:
                return str(row[0])
            if proposed is None:
                return None
            self.con.execute("insert into mlnb.meta values ('storage', ?)", [proposed])
            return proposed

    def hold(self, request_id: str, shas: list[str]) -> bool:
        """Protect blobs from ``gc`` until *request_id* registers or an hour passes.

        Returns False, holding nothing, while a ``gc`` is deleting one of *shas*:
        the caller waits, asks again, and then re-uploads the blob if it is gone.
        """
        with self.lock:
            now = _now()
            condemned = set().union(
                *(s for until, s in self._condemned.values() if until > now)
            )
            if condemned.intersection(shas):
                return False
            entry = self._holds.get(request_id, (0.0, set()))
            entry[1].update(shas)
            self._holds[request_id] = (now + HOLD_SECONDS, entry[1])
            return True

    def release(self, request_id: str) -> None:
        """Drop the hold of a registration that gave up."""
        with self.lock:
            self._holds.pop(request_id, None)

    def gc_begin(self, token: str, candidates: list[str]) -> list[str]:
        """Of *candidates*, condemn and return those no version references or holds.

        Until :meth:`gc_end` (or ten minutes), a :meth:`hold` on a condemned blob
        waits, so a registration never counts on a blob that ``gc`` is deleting.
        """
        with self.lock:
            now = _now()
            for req in [r for r, (until, _) in self._holds.items() if until < now]:
                del self._holds[req]
            keep = self._blobs.union(*(s for _, s in self._holds.values()))
            doomed = sorted(set(candidates) - keep)
            self._condemned[token] = (now + GC_SECONDS, set(doomed))
            return doomed

    def gc_end(self, token: str) -> None:
        """Lift the condemnation set by :meth:`gc_begin`."""
        with self.lock:
            self._condemned.pop(token, None)

    def held(self) -> list[str]:
        """Blobs held by registrations in flight."""
        now = _now()
        with self.lock:
            return sorted(set().union(
                *(s for until, s in self._holds.values() if until > now)
            ))

    def referenced(self) -> dict[str, dict[str, Any]]:
        """sha256 -> ``{"size", "labels"}``: every blob a version's file points at."""
        with self.lock:
            refs: dict[str, dict[str, Any]] = {}
            for model in self._models.values():
                for ver, rec in model.versions.items():
                    for f in rec["files"]:
                        entry = refs.setdefault(f["sha256"], {"size": f["size"], "labels": []})
                        entry["labels"].append(f"{model.name}:{ver} file {f['path']}")
            return refs

    # -- ad-hoc SQL ---------------------------------------------------------

    def sql(self, query: str, limit: int = 100_000) -> dict[str, Any]:
        """Run one read-only SELECT over the registry views; see :mod:`mlnb.registry.sqlguard`."""
        from mlnb.registry import sqlguard

        with self.lock:
            return sqlguard.run(self.con, query, limit)

    def close(self) -> None:
        """Checkpoint and close the database file."""
        with self.lock:
            try:
                self.con.execute("checkpoint")
            finally:
                self.con.close()


class _Transaction:
    """``begin``/``commit``, or ``rollback`` on any exception (KeyboardInterrupt too)."""

    def __init__(self, db: RegistryDB) -> None:
        self.con = db.con
        self.db = db
        self.audit_id = db._audit_id

    def __enter__(self) -> _Transaction:
        self.con.execute("begin")
        return self

    def next_audit_id(self) -> int:
        """Take the next id of the audit log's shared sequence."""
        self.db._audit_id += 1
        return self.db._audit_id

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.con.execute("commit")
            return
        self.con.execute("rollback")
        self.db._audit_id = self.audit_id
        import duckdb

        if isinstance(exc, duckdb.ConstraintException):
            raise Conflict(f"the registry refused the change: {exc}") from exc
