"""Static HTML for mlnb's result objects: versions, lists, models, audit, reports, diffs.

Pure functions from a result to a string; the objects' ``_repr_html_`` call them,
and so can any adapter.  The output is static (no JavaScript), carries its own
scoped style (:mod:`mlnb.display.markup`) and so survives a saved notebook,
``nbconvert --to html`` and GitHub's viewer.  Long lists keep their first and
last rows and say how many were left out, so 10,000 versions render in a few
milliseconds.  Lineage graphs live in :mod:`mlnb.display.graph`, diffs in
:mod:`mlnb.display.diff`.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from mlnb.display.markup import (
    badges,
    block,
    esc,
    lower_is_better,
    metric,
    more_row,
    short,
    table,
    when,
)
from mlnb.display.text import fmt_value, human_size

if TYPE_CHECKING:
    from mlnb.registry.records import (
        AuditEntry,
        EvaluationRecord,
        FileEntry,
        FsckReport,
        GcReport,
        ModelInfo,
        Version,
    )

__all__ = [
    "audit_html",
    "evaluations_html",
    "fsck_html",
    "gc_html",
    "model_html",
    "models_html",
    "to_html",
    "version_html",
    "versions_html",
]


def _ends(items: Sequence[Any], edge: int) -> tuple[list[Any], list[Any]]:
    """The first and last *edge* items, or everything and nothing when it is short."""
    if len(items) <= 2 * edge:
        return list(items), []
    return list(items[:edge]), list(items[-edge:])


# -- one version ---------------------------------------------------------------------

def _kv(title: str, data: Mapping[str, Any], numeric: bool = False) -> str:
    """A two-column table of *data*: metrics as numbers, anything else as one-line text."""
    rows = (
        f'<tr><td class="mlnb-code">{esc(k)}</td>'
        + (f'<td class="mlnb-num">{metric(v)}</td>' if numeric
           else f'<td class="mlnb-wrap">{short(fmt_value(v), 300)}</td>')
        + "</tr>"
        for k, v in data.items()
    )
    return table([title, ""], rows, [False, numeric])


def _file_row(f: FileEntry) -> str:
    return (f'<tr><td class="mlnb-code">{esc(f.path)}</td>'
            f'<td class="mlnb-num">{esc(human_size(f.size))}</td>'
            f'<td class="mlnb-code" title="{esc(f.sha256)}">{esc(f.sha256[:12])}</td>'
            f'<td class="mlnb-muted">{esc(f.media_type)}</td></tr>')


def version_html(v: Version, now: datetime | None = None, max_files: int = 100) -> str:
    """One version: ref, status, aliases, who and when, then metrics, params, tags, files."""
    status = f'<span class="mlnb-status-{esc(v.status)}">{esc(v.status)}</span>'
    meta = [esc(v.format), f"created {when(v.created_at, now, absolute=True)}",
            f"by {esc(v.created_by)}"]
    if v.parent:
        meta.append(f'parent <span class="mlnb-ref">{esc(v.parent)}</span>')
    if v.files:
        meta.append(f"{len(v.files)} file{'s' * (len(v.files) != 1)}, {esc(human_size(v.size))}")
    parts = [
        f'<div class="mlnb-head"><span class="mlnb-ref">{esc(v.ref)}</span> {status} '
        f"{badges(v.aliases)}</div>",
        f'<div class="mlnb-muted">{" · ".join(meta)}</div>',
    ]
    if v.description:
        parts.append(f'<div class="mlnb-desc">{esc(v.description)}</div>')
    sections = [_kv(title, data, title == "metrics")
                for title, data in (("metrics", v.metrics), ("params", v.params), ("tags", v.tags))
                if data]
    if sections:
        parts.append(f'<div class="mlnb-sections">{"".join(sections)}</div>')
    if v.files:
        first, last = _ends(v.files, max_files // 2)
        rows = [_file_row(f) for f in first]
        if last:
            rows += [more_row(len(v.files) - len(first) - len(last), 4, "files")]
            rows += [_file_row(f) for f in last]
        parts.append(table(["file", "size", "sha256", "type"], rows, [False, True]))
    return block("version", "".join(parts))


# -- lists of versions -------------------------------------------------------------

def _bests(versions: Sequence[Version], names: Sequence[str]) -> dict[str, float | None]:
    """Per metric, the best finite value among active versions, if any value differs.

    One pass with plain lookups: a read-only mapping is slow to probe, and
    10,000 versions by 8 metric columns must stay in the milliseconds.
    """
    low: dict[str, float] = {}
    high: dict[str, float] = {}
    for v in versions:
        if v.status == "retired":  # as Registry.best: a retired version is never the best
            continue
        get = v.metrics.get
        for name in names:
            x = get(name)
            if x is None or x - x != 0:  # absent, NaN or infinite
                continue
            if name not in low:
                low[name] = high[name] = x
            elif x < low[name]:
                low[name] = x
            elif x > high[name]:
                high[name] = x
    return {n: None if n not in low or low[n] == high[n]  # all equal: nothing to single out
            else low[n] if lower_is_better(n) else high[n] for n in names}


def _version_row(v: Version, metrics: Sequence[str], best: Mapping[str, float | None],
                 now: datetime | None) -> str:
    cells = [
        f'<td class="mlnb-ref">{esc(v.ref)}</td>',
        f'<td class="mlnb-status-{esc(v.status)}">{esc(v.status)}</td>',
        f"<td>{badges(v.aliases)}</td>",
        f"<td>{when(v.created_at, now)}</td>",
        f"<td>{esc(v.created_by)}</td>",
    ]
    for name in metrics:
        value = v.metrics.get(name)
        if value is not None and value == best[name] and v.status != "retired":
            cells.append(f'<td class="mlnb-num mlnb-best"><strong>{metric(value)}</strong></td>')
        else:
            cells.append(f'<td class="mlnb-num">{metric(value)}</td>')
    css = ' class="mlnb-retired"' if v.status == "retired" else ""
    return f"<tr{css}>{''.join(cells)}</tr>"


def versions_html(versions: Sequence[Version], now: datetime | None = None, edge: int = 50,
                  max_metrics: int = 8) -> str:
    """A table of versions, one column per metric; the best value per metric in bold.

    Parameters
    ----------
    versions:
        In the order to show them.
    edge:
        Past ``2 * edge`` versions, only the first and last *edge* are shown,
        with a row counting the rest.  Best values are found over all of them.
    max_metrics:
        At most this many metric columns (the names sorted); the rest are named
        above the table.
    """
    if not versions:
        return block("versions", '<div class="mlnb-muted">no versions</div>')
    names = sorted(set().union(*(v.metrics.keys() for v in versions)))
    metrics, extra = names[:max_metrics], names[max_metrics:]
    best = _bests(versions, metrics)
    models = {v.name for v in versions}
    head = f"{len(versions):,} version{'s' * (len(versions) != 1)}"
    if len(models) == 1:
        head = f'<span class="mlnb-ref">{esc(versions[0].name)}</span> · {head}'
    first, last = _ends(versions, edge)
    if last:
        head += f" · showing the first {len(first)} and last {len(last)}"
    if extra:
        head += f' · <span title="{esc(", ".join(extra))}">{len(extra)} more metrics</span>'
    columns = ["version", "status", "aliases", "created", "by", *metrics]
    rows = [_version_row(v, metrics, best, now) for v in first]
    if last:
        rows.append(more_row(len(versions) - len(first) - len(last), len(columns), "versions"))
        rows += [_version_row(v, metrics, best, now) for v in last]
    numeric = [False] * 5 + [True] * len(metrics)
    return block("versions", f'<div class="mlnb-head">{head}</div>'
                 + table(columns, rows, numeric))


# -- models ----------------------------------------------------------------------

def _model_row(m: ModelInfo, now: datetime | None) -> str:
    latest = f"{m.name}:{m.latest}" if m.latest is not None else ""
    return (f'<tr><td class="mlnb-ref">{esc(m.name)}</td>'
            f'<td class="mlnb-num">{m.versions:,}</td>'
            f'<td class="mlnb-ref">{esc(latest)}</td>'
            f"<td>{badges(sorted(m.aliases), m.aliases)}</td>"
            f"<td>{when(m.updated_at, now)}</td>"
            f"<td>{short(m.description or '', 80)}</td></tr>")


def model_html(m: ModelInfo, now: datetime | None = None) -> str:
    """One model: name, description, how many versions, the latest, its aliases."""
    meta = [f"{m.versions:,} version{'s' * (m.versions != 1)}"]
    if m.latest is not None:
        meta.append(f'latest <span class="mlnb-ref">{esc(f"{m.name}:{m.latest}")}</span>')
    meta += [f"created {when(m.created_at, now)} by {esc(m.created_by)}",
             f"updated {when(m.updated_at, now, absolute=True)}"]
    parts = [f'<div class="mlnb-head"><span class="mlnb-ref">{esc(m.name)}</span> '
             f"{badges(sorted(m.aliases), m.aliases)}</div>",
             f'<div class="mlnb-muted">{" · ".join(meta)}</div>']
    if m.description:
        parts.append(f'<div class="mlnb-desc">{esc(m.description)}</div>')
    return block("model", "".join(parts))


def models_html(models: Sequence[ModelInfo], now: datetime | None = None,
                edge: int = 100) -> str:
    """A table of models: name, versions, latest, aliases (with their versions), updated."""
    if not models:
        return block("models", '<div class="mlnb-muted">no models</div>')
    columns = ["model", "versions", "latest", "aliases", "updated", "description"]
    first, last = _ends(models, edge)
    rows = [_model_row(m, now) for m in first]
    if last:
        rows.append(more_row(len(models) - len(first) - len(last), len(columns), "models"))
        rows += [_model_row(m, now) for m in last]
    return block("models", table(columns, rows, [False, True]))


# -- audit log -------------------------------------------------------------------

def _audit_row(e: AuditEntry, now: datetime | None) -> str:
    what = f"{e.model}:{e.version}" if e.version else e.model
    move = ""
    if e.alias:
        move = (f"{badges([e.alias])} {esc(e.from_version or '–')} → "
                f"{esc(e.to_version or '–')}")
    details = fmt_value(e.details) if e.details else ""
    return (f'<tr><td class="mlnb-num">{e.id}</td><td>{when(e.at, now)}</td>'
            f"<td>{esc(e.user)}</td><td>{esc(e.action)}</td>"
            f'<td class="mlnb-ref">{esc(what)}</td><td>{move}</td>'
            f"<td>{short(e.reason or '', 80)}</td>"
            f'<td class="mlnb-code">{short(details, 60)}</td></tr>')


def audit_html(entries: Sequence[AuditEntry], now: datetime | None = None,
               edge: int = 100) -> str:
    """The audit log as a table: when, who, what, which alias moved where, why."""
    if not entries:
        return block("audit", '<div class="mlnb-muted">no audit entries</div>')
    columns = ["#", "when", "user", "action", "version", "alias", "reason", "details"]
    first, last = _ends(entries, edge)
    rows = [_audit_row(e, now) for e in first]
    if last:
        rows.append(more_row(len(entries) - len(first) - len(last), len(columns), "entries"))
        rows += [_audit_row(e, now) for e in last]
    return block("audit", table(columns, rows, [True]))


# -- stored evaluations ------------------------------------------------------------

def _evaluation_row(e: EvaluationRecord, now: datetime | None) -> str:
    shown = "; ".join(f"{k} {v}" for k, v in e.metrics.items())
    return (f'<tr><td class="mlnb-num">{e.id}</td><td class="mlnb-ref">{esc(e.ref)}</td>'
            f'<td class="mlnb-code">{short(e.data, 20)}</td><td>{esc(e.task)}</td>'
            f"<td>{short(shown, 160)}</td><td>{when(e.created_at, now)}</td>"
            f"<td>{esc(e.created_by)}</td></tr>")


def evaluations_html(records: Sequence[EvaluationRecord], now: datetime | None = None,
                     edge: int = 100) -> str:
    """Stored evaluations as a table: which version, on which data, metrics with intervals."""
    if not records:
        return block("evaluations", '<div class="mlnb-muted">no evaluations</div>')
    columns = ["#", "version", "data", "task", "metrics [95% interval]", "when", "user"]
    first, last = _ends(records, edge)
    rows = [_evaluation_row(e, now) for e in first]
    if last:
        rows.append(more_row(len(records) - len(first) - len(last), len(columns), "evaluations"))
        rows += [_evaluation_row(e, now) for e in last]
    return block("evaluations", table(columns, rows, [True]))


# -- maintenance reports -------------------------------------------------------------

def _listing(title: str, items: Sequence[str], limit: int = 50) -> str:
    if not items:
        return ""
    shown = "".join(f'<li class="mlnb-code">{esc(i)}</li>' for i in items[:limit])
    if len(items) > limit:
        shown += f'<li class="mlnb-muted">… {len(items) - limit:,} more</li>'
    return f"<div>{esc(title)} ({len(items):,}):<ul>{shown}</ul></div>"


def fsck_html(report: FsckReport) -> str:
    """``fsck``'s verdict on one line, then the missing and corrupt files by name."""
    if report.ok:
        state = '<strong class="mlnb-ok">✔ ok</strong>'
    else:
        state = '<strong class="mlnb-bad">✘ problems</strong>'
    line = (f"{state}: {report.checked:,} files checked, {len(report.missing):,} missing, "
            f"{len(report.corrupt):,} corrupt, {len(report.orphans):,} orphaned blobs, "
            f"{len(report.temp):,} temporary uploads")
    parts = [f'<div class="mlnb-head">{line}</div>',
             _listing("missing", report.missing), _listing("corrupt", report.corrupt)]
    if report.orphans:
        parts.append(f'<div class="mlnb-muted">{len(report.orphans):,} orphaned blobs only '
                     "waste space: remove them with <code>mlnb gc</code>"
                     + (f" ({len(report.held):,} held by a registration in progress)"
                        if report.held else "") + "</div>")
    return block("fsck", "".join(parts))


def gc_html(report: GcReport) -> str:
    """What ``gc`` removed (or, dry run, would remove): counts and bytes, then the blobs."""
    verb = "would remove" if report.dry_run else "removed"
    line = (f"{verb} {len(report.blobs):,} blobs ({esc(human_size(report.bytes))}) and "
            f"{len(report.temp):,} temporary uploads")
    return block("gc", f'<div class="mlnb-head">{line}</div>'
                 + _listing("blobs", [b[:12] for b in report.blobs], 20))


# -- any result ------------------------------------------------------------------

def to_html(obj: Any) -> str:
    """The HTML for any mlnb result, or a list of versions, models or audit entries.

    Raises
    ------
    TypeError
        *obj* is not something mlnb renders.
    """
    from mlnb.display.diff import diff_html
    from mlnb.display.graph import lineage_html
    from mlnb.registry import records as r

    single = {r.Version: version_html, r.ModelInfo: model_html, r.Lineage: lineage_html,
              r.FsckReport: fsck_html, r.GcReport: gc_html, r.Diff: diff_html}
    if type(obj) in single:
        return single[type(obj)](obj)
    if isinstance(obj, r.AuditEntry):
        return audit_html([obj])
    if isinstance(obj, r.EvaluationRecord):
        return evaluations_html([obj])
    if isinstance(obj, (list, tuple)):
        for kind, render in ((r.Version, versions_html), (r.ModelInfo, models_html),
                             (r.AuditEntry, audit_html), (r.EvaluationRecord, evaluations_html)):
            if all(isinstance(x, kind) for x in obj):
                return render(obj)
    raise TypeError(f"mlnb has no HTML view of {type(obj).__name__}")
