"""Plain-text rendering: aligned tables, metric values and relative times."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any, Sequence

__all__ = ["ago", "fmt_metric", "table"]


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
