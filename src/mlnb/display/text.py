"""Plain-text rendering: aligned tables, metric values, sizes, relative times, diffs."""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    from mlnb.registry.records import Diff, Version

__all__ = ["ago", "diff_text", "fmt_delta", "fmt_metric", "fmt_value", "human_size", "table",
           "versions_text"]


def fmt_metric(value: Any) -> str:
    """A metric as a person reads it: 4 significant digits, ``nan``/``inf`` spelled out."""
    if value is None:
        return ""
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.4g}"
    return str(value)


def ago(when: datetime | None, now: datetime | None = None) -> str:
    """``"3 min ago"``-style relative time."""
    if when is None:
        return ""
    now = now or datetime.now(timezone.utc)
    secs = max(0.0, (now - when).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if secs >= size:
            return f"{int(secs // size)} {unit} ago"
    return "just now" if secs < 5 else f"{int(secs)} s ago"


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    """Rows as left-aligned columns under a header line; numbers aligned right."""
    cells = [[fmt_metric(c) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, c in enumerate(row):
            widths[i] = max(widths[i], len(c))
    numeric = [
        bool(rows) and all(isinstance(r[i], (int, float)) or r[i] is None for r in rows)
        for i in range(len(headers))
    ]

    def line(values: Sequence[str]) -> str:
        out = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)]
        return "  ".join(out).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in cells])


def fmt_delta(value: float | None) -> str:
    """A signed difference, ``+0.0123`` or ``-4``; empty when there is none to show."""
    if value is None:
        return ""
    if not math.isfinite(value):
        return str(value)
    return f"{value:+.4g}"


def human_size(n: int | None) -> str:
    """Bytes as a person reads them: ``512 B``, ``1.5 KiB``, ``3.2 GiB``."""
    if n is None:
        return ""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def fmt_value(value: Any, limit: int = 0) -> str:
    """A param or tag value on one line: strings as they are, the rest as JSON.

    *limit* > 0 cuts the text to that many characters, ending in ``…``.
    """
    if value is None:
        text = "null"
    elif isinstance(value, str):
        text = value
    elif isinstance(value, float):
        text = fmt_metric(value)
    else:
        try:
            text = json.dumps(value, sort_keys=True, ensure_ascii=False)
        except (TypeError, ValueError):
            text = repr(value)
    text = " ".join(text.splitlines()) if "\n" in text else text
    if limit and len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


def _side(kind: str, value: Any) -> str:
    if value is None:
        return "(none)"
    if kind == "aliases":
        return " ".join("@" + a for a in value) or "(none)"
    if kind == "metrics":
        return fmt_metric(value)
    if kind == "files":
        return f"{value.sha256[:12]} {human_size(value.size)}"
    return fmt_value(value, 60)


def diff_text(diff: Diff) -> str:
    """``<Diff m:2 -> m:3`` then one line per difference; identical versions say so."""
    head = f"<Diff {diff.a} -> {diff.b}"
    lines = []
    for section, label in (("fields", ""), ("metrics", "metric "), ("params", "param "),
                           ("tags", "tag "), ("files", "file ")):
        for key, change in getattr(diff, section).items():
            kind = key if section == "fields" else section
            text = f"  {label}{key}: {_side(kind, change.a)} -> {_side(kind, change.b)}"
            if change.delta is not None and section == "metrics":
                text += f" ({fmt_delta(change.delta)})"
            elif change.delta is not None and section == "files":
                sign = "+" if change.delta >= 0 else "-"
                text += f" ({sign}{human_size(abs(int(change.delta)))})"
            lines.append(text)
    if not lines:
        return f"{head}: no differences>"
    return "\n".join([head, *lines]) + ">"


def versions_text(versions: Sequence[Version], edge: int = 10, max_metrics: int = 6) -> str:
    """A list of versions as an aligned table; past ``2 * edge`` rows only the ends show."""
    if not versions:
        return "no versions"
    metric_names = sorted({k for v in versions for k in v.metrics})[:max_metrics]
    shown = list(versions) if len(versions) <= 2 * edge else [*versions[:edge], *versions[-edge:]]
    rows = [
        [v.ref, v.status, " ".join("@" + a for a in v.aliases), ago(v.created_at),
         v.created_by, *[v.metrics.get(m) for m in metric_names]]
        for v in shown
    ]
    lines = table(rows, ["version", "status", "aliases", "created", "by", *metric_names])
    if len(shown) < len(versions):
        cut = lines.splitlines()
        more = f"… {len(versions) - len(shown):,} more versions …"
        lines = "\n".join([*cut[: 2 + edge], more, *cut[2 + edge:]])
    return lines
