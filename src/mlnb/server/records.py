"""What the REST API sends: registry records as JSON-able dicts (see docs/rest-api.md).

Pure functions from core records to plain data, kept apart from the tornado
handlers so they can be tested (and reused) without a Jupyter server.  Every
rule the sidebar shows (which metric is the model's main one, which values are
the best, the snippet text) is decided here; the TypeScript only draws.

Non-finite metric values travel as the strings ``"nan"``, ``"inf"`` and
``"-inf"`` (JSON has no such numbers), as in the notebook panel.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any, Sequence

from mlnb.display.text import fmt_metric
from mlnb.widgets._views import _json_number, version_rows

if TYPE_CHECKING:
    from mlnb.registry.records import (
        AuditEntry,
        EvaluationRecord,
        Lineage,
        ModelInfo,
        Version,
    )

__all__ = [
    "audit_record",
    "detail_record",
    "dumps",
    "evaluation_record",
    "main_metric",
    "main_version",
    "model_record",
    "versions_record",
]


def _iso(when: Any) -> str | None:
    return when.isoformat() if when is not None else None


def _finite(value: Any) -> Any:
    """*value* with every non-finite float replaced by its string form, at any depth."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def dumps(payload: Any) -> str:
    """*payload* as strict JSON: never ``NaN`` or ``Infinity`` tokens, whatever it holds."""
    try:
        return json.dumps(payload, allow_nan=False, separators=(",", ":"))
    except ValueError:  # a non-finite float somewhere (metric details, say): encode it
        return json.dumps(_finite(payload), allow_nan=False, separators=(",", ":"))


def main_version(versions: Sequence[Version]) -> Version | None:
    """The version a model is summed up by: the holder of ``production``, else the latest active."""
    for v in versions:
        if "production" in v.aliases:
            return v
    active = [v for v in versions if v.status != "retired"]
    return max(active or versions, key=lambda v: v.version, default=None)


def main_metric(version: Version | None) -> str | None:
    """A model's main metric: the first metric its main version recorded (None without any)."""
    if version is None or not version.metrics:
        return None
    return next(iter(version.metrics))


def _main(version: Version | None, metric: str | None) -> tuple[Any, str]:
    if version is None or metric is None or metric not in version.metrics:
        return None, ""
    x = version.metrics[metric]
    return _json_number(x), fmt_metric(x)


def model_record(model: ModelInfo, main: Version | None) -> dict[str, Any]:
    """One model for the sidebar's list, with its main metric read off *main*."""
    metric = main_metric(main)
    value, text = _main(main, metric)
    return {
        "name": model.name,
        "description": model.description,
        "versions": model.versions,
        "latest": model.latest,
        "aliases": dict(sorted(model.aliases.items())),
        "created_at": _iso(model.created_at),
        "created_by": model.created_by,
        "updated_at": _iso(model.updated_at),
        "main_metric": metric,
        "main_ref": main.ref if main is not None else None,
        "main_value": value,
        "main_text": text,
    }


def _metric_names(versions: Sequence[Version]) -> list[str]:
    return sorted({k for v in versions for k in v.metrics})


def _rows(versions: Sequence[Version], shown: Sequence[Version],
          metric: str | None) -> list[dict[str, Any]]:
    rows = version_rows(versions, shown, _metric_names(versions))
    for row, v in zip(rows, shown):
        value, text = _main(v, metric)
        row.update(
            name=v.name, format=v.format, description=v.description, parent=v.parent,
            main_value=value, main_text=text,
            snippets={"load": f"m = %mlnb load {v.ref}", "show": f"%mlnb show {v.ref}"},
        )
    return rows


def versions_record(name: str, versions: Sequence[Version]) -> dict[str, Any]:
    """A model's versions, newest first, each with its metrics and which are the best."""
    metric = main_metric(main_version(versions))
    shown = sorted(versions, key=lambda v: v.version, reverse=True)
    return {
        "model": name,
        "main_metric": metric,
        "metrics": _metric_names(versions),
        "versions": _rows(versions, shown, metric),
    }


def version_row(version: Version, versions: Sequence[Version]) -> dict[str, Any]:
    """One version's row, its best marks taken among *versions* (its model's)."""
    metric = main_metric(main_version(versions))
    return _rows(versions, [version], metric)[0]


def audit_record(entry: AuditEntry) -> dict[str, Any]:
    """One audit row."""
    return {
        "id": entry.id, "at": _iso(entry.at), "user": entry.user, "action": entry.action,
        "model": entry.model, "version": entry.version, "alias": entry.alias,
        "from_version": entry.from_version, "to_version": entry.to_version,
        "reason": entry.reason, "details": entry.details,
    }


def _bound(value: float | None) -> float | str | None:
    return None if value is None else _json_number(value)


def evaluation_record(e: EvaluationRecord) -> dict[str, Any]:
    """One stored evaluation: its data label, details, metrics with intervals, and when.

    Non-finite numbers in ``metrics`` travel as ``"nan"``/``"inf"``/``"-inf"``.
    """
    return {
        "id": e.id, "data": e.data, "data_fingerprint": e.data_fingerprint, "task": e.task,
        "metrics": {k: {"value": _json_number(m.value), "lower": _bound(m.lower),
                        "upper": _bound(m.upper), "note": m.note}
                    for k, m in e.metrics.items()},
        "details": _finite(dict(e.details)), "created_at": _iso(e.created_at),
        "created_by": e.created_by,
    }


def detail_record(version: Version, versions: Sequence[Version], lineage: Lineage,
                  audit: Sequence[AuditEntry],
                  evaluations: Sequence[EvaluationRecord] = ()) -> dict[str, Any]:
    """One version in full: its row plus params, tags and files; lineage, evaluations, audit.

    *audit* is the model's log; only the entries about this version are kept.
    *evaluations* are the version's stored evaluations, newest first.
    """
    row = version_row(version, versions)
    row.update(
        params=dict(version.params),
        tags=dict(version.tags),
        files=[{"path": f.path, "sha256": f.sha256, "size": f.size, "media_type": f.media_type}
               for f in version.files],
    )
    edges = [{"source": e.source, "kind": e.kind, "target": e.target, "details": e.details}
             for e in lineage.edges]
    mine = [e for e in audit if e.model == version.name
            and version.version in (e.version, e.from_version, e.to_version)]
    return {
        "version": row,
        "lineage": edges,
        "evaluations": [evaluation_record(e) for e in evaluations
                        if e.ref == version.ref],
        "audit": [audit_record(e) for e in mine],
    }
