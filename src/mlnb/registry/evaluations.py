"""Evaluations in the registry database: recording, listing, and their lineage edges.

Server side: every function takes the :class:`~mlnb.registry.db.RegistryDB` and
runs under its lock (its callers hold it); the client's view is
:meth:`mlnb.Registry.record_evaluation` and :meth:`mlnb.Registry.evaluations`.

An evaluation is one row of ``mlnb.evaluations`` (schema migration 2) plus an
``evaluate`` row of the audit log, written in one transaction.  A version may
have many (several data sets, repeated runs): all are kept, and the newest is
the one a gate check uses.  Rows are never changed or deleted.

Values travel as JSON-ready records (``record_dict``)::

    {"id", "name", "version", "data_fingerprint", "task",
     "metrics": {metric: {"value", "lower", "upper", "note"}},
     "details", "created_at" (epoch seconds), "created_by"}

Metric values may be NaN or infinite (stored as the strings the versions table
uses, read back as floats); inside ``details`` such numbers are stored, and come
back, as those strings.
"""

from __future__ import annotations

import json
import math
import numbers
from typing import TYPE_CHECKING, Any, Mapping

from mlnb.errors import InvalidArgument

if TYPE_CHECKING:
    from mlnb.registry.db import RegistryDB, _Model

__all__ = ["edges", "metric_names", "newest", "record", "rows"]

_MAX_KEY = 250
_MAX_DETAILS = 1 << 20  # bytes of JSON: a gate report and a data description fit easily
_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_COLUMNS = ("e.id, m.name, e.version, e.data_fingerprint, e.task, e.metrics, e.details,"
            " e.created_at, e.created_by")


def _text(kind: str, value: object, limit: int = _MAX_KEY) -> str:
    if not isinstance(value, str) or not value or len(value) > limit or not value.isprintable():
        raise InvalidArgument(f"invalid {kind} {value!r}: use 1-{limit} printable characters")
    return value


def _number(metric: str, part: str, value: object, *, optional: bool) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, str) and value in _NON_FINITE:
        return _NON_FINITE[value]
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidArgument(
            f"metric {metric!r}: {part} must be a number{' or None' if optional else ''}, "
            f"not {type(value).__name__} {value!r}"
        )
    return float(value)


def clean_metrics(metrics: object) -> dict[str, dict[str, Any]]:
    """Validate wire estimates: ``{name: {"value", "lower"?, "upper"?, "note"?}}``."""
    if not isinstance(metrics, Mapping):
        raise InvalidArgument(f"metrics must map metric names to estimates, not "
                              f"{type(metrics).__name__}")
    out = {}
    for name, est in metrics.items():
        _text("metric name", name)
        if not isinstance(est, Mapping) or "value" not in est:
            raise InvalidArgument(f"metric {name!r} must be an estimate with a 'value' "
                                  f"(and optionally 'lower', 'upper', 'note'), not {est!r}")
        extra = set(est) - {"value", "lower", "upper", "note"}
        if extra:
            raise InvalidArgument(f"metric {name!r} has unknown fields {sorted(extra)}; an "
                                  f"estimate has value, lower, upper and note")
        note = est.get("note") or ""
        if not isinstance(note, str):
            raise InvalidArgument(f"metric {name!r}: note must be a string, not {note!r}")
        out[name] = {
            "value": _number(name, "value", est["value"], optional=False),
            "lower": _number(name, "lower", est.get("lower"), optional=True),
            "upper": _number(name, "upper", est.get("upper"), optional=True),
            "note": note,
        }
    return out


def _encode(value: Any) -> Any:
    """*value* with non-finite floats spelled as DuckDB reads them back ("NaN", ...)."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, Mapping):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    return value


def _dumps_details(details: object) -> str:
    if details is None:
        details = {}
    if not isinstance(details, Mapping):
        raise InvalidArgument(f"details must be a mapping, not {type(details).__name__}")
    try:
        text = json.dumps(_encode(details), separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as err:
        raise InvalidArgument(f"evaluation details must be JSON-like: {err}") from err
    if len(text) > _MAX_DETAILS:
        raise InvalidArgument(f"evaluation details are {len(text):,} bytes of JSON, over the "
                              f"{_MAX_DETAILS:,} limit; keep large results out of details")
    return text


def _decode_metrics(text: str) -> dict[str, dict[str, Any]]:
    out = {}
    for name, est in json.loads(text).items():
        out[name] = {k: (_NON_FINITE.get(v, v) if k != "note" and isinstance(v, str) else v)
                     for k, v in est.items()}
    return out


def _record_dict(row: tuple) -> dict[str, Any]:
    from mlnb.registry.db import _epoch

    eid, name, ver, fp, task, metrics, details, created_at, created_by = row
    return {"id": eid, "name": name, "version": ver, "data_fingerprint": fp, "task": task,
            "metrics": _decode_metrics(metrics), "details": json.loads(details),
            "created_at": _epoch(created_at), "created_by": created_by}


def record(db: RegistryDB, model: _Model, ver: int, *, data_fingerprint: str, task: str,
           metrics: object, details: object, user: str,
           request_id: str | None = None) -> dict[str, Any]:
    """Store one evaluation of *model*:*ver* and its audit row; a seen *request_id* returns the first."""
    from mlnb.registry.db import _now, _ts

    _text("data fingerprint", data_fingerprint, 1000)
    _text("task", task, 64)
    clean = clean_metrics(metrics)
    details_json = _dumps_details(details)
    if request_id is not None:
        _text("request id", request_id, 200)
        found = db.con.execute(
            f"select {_COLUMNS} from mlnb.evaluations e join mlnb.models m on m.id = e.model_id"
            " where e.request_id = ?", [request_id]).fetchone()
        if found:
            return _record_dict(found)
    now = _now()
    with db._transaction():
        row = db.con.execute("select coalesce(max(id), 0) + 1 from mlnb.evaluations").fetchone()
        eid = int(row[0]) if row else 1
        db._audit(user, "evaluate", model.name, ver, at=now,
                  details={"evaluation_id": eid, "data_fingerprint": data_fingerprint,
                           "task": task})
        db.con.execute(
            "insert into mlnb.evaluations values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [eid, model.id, ver, data_fingerprint, task,
             json.dumps(_encode(clean), separators=(",", ":"), allow_nan=False), details_json,
             _ts(now), user, request_id, db._audit_id],
        )
    found = db.con.execute(
        f"select {_COLUMNS} from mlnb.evaluations e join mlnb.models m on m.id = e.model_id"
        " where e.id = ?", [eid]).fetchone()
    return _record_dict(found)


def rows(db: RegistryDB, *, model_id: int | None = None, version: int | None = None,
         data_fingerprint: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """Evaluations matching every filter given, newest first."""
    where, args = [], []
    for column, value in (("e.model_id", model_id), ("e.version", version),
                          ("e.data_fingerprint", data_fingerprint)):
        if value is not None:
            where.append(f"{column} = ?")
            args.append(value)
    query = (f"select {_COLUMNS} from mlnb.evaluations e join mlnb.models m on m.id = e.model_id"
             + (" where " + " and ".join(where) if where else "") + " order by e.id desc")
    if limit is not None:
        query += " limit ?"
        args.append(int(limit))
    return [_record_dict(r) for r in db.con.execute(query, args).fetchall()]


def newest(db: RegistryDB, model_id: int, version: int,
           data_fingerprint: str | None = None) -> dict[str, Any] | None:
    """The newest evaluation of one version (on *data_fingerprint*, when given)."""
    found = rows(db, model_id=model_id, version=version, data_fingerprint=data_fingerprint,
                 limit=1)
    return found[0] if found else None


def metric_names(db: RegistryDB, model_id: int) -> set[str]:
    """Every metric name some evaluation of the model recorded."""
    return {name for (text,) in db.con.execute(
        "select metrics from mlnb.evaluations where model_id = ?", [model_id]).fetchall()
        for name in json.loads(text)}


def edges(db: RegistryDB) -> list[dict[str, Any]]:
    """Lineage edges ``m:3 --evaluated_on--> data:<fingerprint[:12]>``, one per version and data.

    Read off the evaluations table rather than stored as lineage rows: the edge
    is a view of facts recorded once, so it cannot disagree with them.
    """
    found = db.con.execute(
        "select m.name, e.version, e.data_fingerprint, max(e.id), count(*),"
        " arg_max(e.task, e.id) from mlnb.evaluations e join mlnb.models m on m.id = e.model_id"
        " group by all order by max(e.id)"
    ).fetchall()
    return [{"source": f"{name}:{ver}", "kind": "evaluated_on", "target": f"data:{fp[:12]}",
             "details": {"data_fingerprint": fp, "evaluation_id": eid, "evaluations": n,
                         "task": task}}
            for name, ver, fp, eid, n, task in found]
