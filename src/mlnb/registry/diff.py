"""Compare two versions: what differs between them, and by how much.

:func:`diff_versions` is pure: it reads two :class:`~mlnb.registry.records.Version`
snapshots and returns a :class:`~mlnb.registry.records.Diff` holding only the
keys whose values differ.  Two NaN metrics count as equal (both "diverged"), so
a diff of a version with itself is always empty.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from mlnb.registry.records import Change, Diff, FileEntry, Version

__all__ = ["diff_versions"]


def _same(x: Any, y: Any) -> bool:
    if isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y):
        return True
    if isinstance(x, bool) != isinstance(y, bool):  # True == 1 in Python, not in a param
        return False
    return x == y


def _metric_delta(x: float | None, y: float | None) -> float | None:
    if x is None or y is None or not (math.isfinite(x) and math.isfinite(y)):
        return None
    return y - x


def _mapping(a: Mapping[str, Any], b: Mapping[str, Any], metrics: bool = False) -> dict[str, Change]:
    out = {}
    for key in sorted(a.keys() | b.keys()):
        x, y = a.get(key), b.get(key)
        if _same(x, y):  # a param set to null reads as absent: None stands for both
            continue
        out[key] = Change(x, y, _metric_delta(x, y) if metrics else None)
    return out


def _files(a: tuple[FileEntry, ...], b: tuple[FileEntry, ...]) -> dict[str, Change]:
    fa, fb = {f.path: f for f in a}, {f.path: f for f in b}
    out = {}
    for path in sorted(fa.keys() | fb.keys()):
        x, y = fa.get(path), fb.get(path)
        if x is not None and y is not None and x.sha256 == y.sha256:
            continue
        delta = y.size - x.size if x is not None and y is not None else None
        out[path] = Change(x, y, delta)
    return out


def diff_versions(a: Version, b: Version) -> Diff:
    """What changed from version *a* to version *b*; equal keys are left out.

    Parameters
    ----------
    a, b:
        The "before" and "after" versions, of the same model or not.  Summaries
        from a listing carry no files, so compare versions from ``Registry.get``
        to see file changes.

    Returns
    -------
    Diff
        ``fields`` (format, status, aliases, description, parent), ``metrics``
        (with ``delta = b - a`` when both are finite), ``params``, ``tags`` and
        ``files`` (by path; changed means a different sha256).  ``None`` on one
        side means that version lacks the key (a param set to ``null`` counts
        as absent).
    """
    fields = {}
    for name in ("format", "status", "aliases", "description", "parent"):
        x, y = getattr(a, name), getattr(b, name)
        if name == "aliases":
            x, y = tuple(sorted(x)), tuple(sorted(y))
        if x != y:
            fields[name] = Change(x, y)
    return Diff(
        a=a.ref,
        b=b.ref,
        fields=fields,
        metrics=_mapping(a.metrics, b.metrics, metrics=True),
        params=_mapping(a.params, b.params),
        tags=_mapping(a.tags, b.tags),
        files=_files(a.files, b.files),
    )
