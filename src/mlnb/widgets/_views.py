"""What the registry panel shows, as plain data: rows for models and versions, and HTML.

Pure functions from registry records to JSON-able dicts and escaped HTML, kept
apart from the widget so they can be tested (and reused) without anywidget.
Metric values that JSON cannot carry (NaN, ±inf) travel as the strings
``"nan"``, ``"inf"`` and ``"-inf"``; a missing metric is a missing key.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from mlnb.display.markup import lower_is_better
from mlnb.display.text import fmt_metric

if TYPE_CHECKING:
    from mlnb.registry.client import Registry
    from mlnb.registry.records import ModelInfo, Version

__all__ = [
    "ORDER_KEYS",
    "default_desc",
    "detail_html",
    "filter_models",
    "model_row",
    "version_rows",
]

# Columns the version table can sort by besides the metrics.
ORDER_KEYS = ("version", "created_at")


def _json_number(value: float) -> float | str:
    """*value* as JSON can carry it: a finite float, or ``"nan"``/``"inf"``/``"-inf"``."""
    return value if math.isfinite(value) else str(value)


def model_row(m: ModelInfo) -> dict[str, Any]:
    """One model for the panel's list: name, version count, latest, aliases, last change."""
    return {
        "name": m.name,
        "versions": m.versions,
        "latest": m.latest,
        "aliases": dict(sorted(m.aliases.items())),
        "updated_at": m.updated_at.isoformat() if m.updated_at else None,
    }


def filter_models(rows: Iterable[dict[str, Any]], text: str) -> list[dict[str, Any]]:
    """The rows whose name contains every word of *text*, ignoring case."""
    words = text.lower().split()
    if not words:
        return list(rows)
    return [r for r in rows if all(w in r["name"].lower() for w in words)]


def default_desc(key: str) -> bool:
    """Which way a column sorts first: newest first, and the better metric values first."""
    return key in ORDER_KEYS or not lower_is_better(key)


def _bests(versions: Sequence[Version], names: Sequence[str]) -> dict[str, float]:
    """Per metric, the best finite value among active versions, when the values differ."""
    best: dict[str, float] = {}
    for name in names:
        values = [x for v in versions if v.status != "retired"
                  for x in (v.metrics.get(name),) if x is not None and math.isfinite(x)]
        if values and min(values) != max(values):
            best[name] = min(values) if lower_is_better(name) else max(values)
    return best


def version_rows(versions: Sequence[Version], shown: Sequence[Version],
                 names: Sequence[str]) -> list[dict[str, Any]]:
    """The table rows for *shown*, with each metric's best value (over *versions*) marked."""
    best = _bests(versions, names)
    rows = []
    for v in shown:
        rows.append({
            "version": v.version,
            "ref": v.ref,
            "status": v.status,
            "aliases": list(v.aliases),
            "created_at": v.created_at.isoformat(),
            "created_by": v.created_by,
            "metrics": {k: _json_number(x) for k, x in v.metrics.items()},
            "metrics_text": {k: fmt_metric(x) for k, x in v.metrics.items()},
            "best": sorted(k for k, x in v.metrics.items()
                           if k in best and x == best[k] and v.status != "retired"),
        })
    return rows


def _section(title: str, body: str) -> str:
    return (f'<section class="mlnb-panel-section"><h4 class="mlnb-panel-h">{title}</h4>'
            f"{body}</section>")


def detail_html(reg: Registry, ref: str, audit_limit: int = 200) -> str:
    """One version in full: the version (metrics, params, tags, files), lineage, evaluations, audit.

    Every part comes from :mod:`mlnb.display`, which escapes all user text.
    """
    from mlnb.display import audit_html, evaluations_html, lineage_html, version_html

    v = reg.get(ref)
    lineage = reg.lineage(v.ref)
    entries = [e for e in reg.audit(v.name, limit=audit_limit)
               if v.version in (e.version, e.from_version, e.to_version)]
    return (version_html(v)
            + _section("Lineage", lineage_html(lineage))
            + _section("Evaluations", evaluations_html(reg.evaluations(v.ref)))
            + _section("Audit", audit_html(entries)))
