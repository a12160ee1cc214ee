"""Static HTML for a :class:`~mlnb.registry.records.Diff`: what differs, with ▲/▼ deltas.

One table, a group of rows per section (version fields, metrics, params, tags,
files), a row per difference: the value in each version and the change.  A
metric's change is ▲ or ▼ with the signed delta and percent, in green when it
looks better and red when worse; which way is better is guessed from the name
(:func:`~mlnb.display.markup.lower_is_better`), and the arrow alone reads the
same where colour is stripped.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from mlnb.display.markup import badges, block, esc, lower_is_better, metric, short
from mlnb.display.text import fmt_delta, fmt_value, human_size

if TYPE_CHECKING:
    from mlnb.registry.records import Change, Diff

__all__ = ["diff_html"]

_DASH = '<span class="mlnb-muted">—</span>'


def _arrow(name: str, change: Change) -> str:
    """▲/▼ with the signed delta (and percent), coloured by whether it looks better."""
    if change.a is None or change.b is None:
        return "added" if change.a is None else "removed"
    if change.delta is None:
        return _DASH
    up = change.delta > 0
    better = up != lower_is_better(name)
    text = f"{'▲' if up else '▼'} {fmt_delta(change.delta)}"
    if isinstance(change.a, (int, float)) and math.isfinite(change.a) and change.a != 0:
        text += f" ({change.delta / abs(change.a):+.1%})"
    hint = "lower is better" if lower_is_better(name) else "higher is better"
    css = "mlnb-better" if better else "mlnb-worse"
    return f'<span class="{css}" title="{hint} (guessed from the name)">{esc(text)}</span>'


def _side(section: str, key: str, value: Any) -> str:
    if value is None:
        return _DASH
    if section == "metrics":
        return metric(value)
    if section == "files":
        return (f'<span class="mlnb-code" title="{esc(value.sha256)}">{esc(value.sha256[:12])}'
                f"</span> {esc(human_size(value.size))}")
    if key == "aliases":
        return badges(value) or _DASH
    if key == "parent":
        return f'<span class="mlnb-ref">{esc(value)}</span>'
    return short(fmt_value(value), 120)


def _what(section: str, key: str, change: Change) -> str:
    if section == "metrics":
        return _arrow(key, change)
    if change.a is None or change.b is None:
        return "added" if change.a is None else "removed"
    if section == "files" and change.delta is not None:
        sign = "+" if change.delta >= 0 else "-"
        return esc(f"changed ({sign}{human_size(abs(int(change.delta)))})")
    return "changed"


def diff_html(diff: Diff) -> str:
    """A table of what differs between two versions, by section, with ▲/▼ deltas for metrics."""
    head = (f'<span class="mlnb-ref">{esc(diff.a)}</span> → '
            f'<span class="mlnb-ref">{esc(diff.b)}</span>')
    if not diff:
        return block("diff", f'<div class="mlnb-head">{head} · no differences</div>')
    count = len(diff)
    head += f" · {count} difference{'s' * (count != 1)}"
    groups = []
    for section in ("fields", "metrics", "params", "tags", "files"):
        changes = getattr(diff, section)
        if not changes:
            continue
        title = "version" if section == "fields" else section
        rows = [f'<tr><th colspan="4" scope="rowgroup">{esc(title)}</th></tr>']
        rows += [
            f'<tr><td class="mlnb-code">{esc(key)}</td>'
            f'<td class="{"mlnb-num" if section == "metrics" else "mlnb-wrap"}">'
            f"{_side(section, key, c.a)}</td>"
            f'<td class="{"mlnb-num" if section == "metrics" else "mlnb-wrap"}">'
            f"{_side(section, key, c.b)}</td>"
            f"<td>{_what(section, key, c)}</td></tr>"
            for key, c in changes.items()
        ]
        groups.append(f"<tbody>{''.join(rows)}</tbody>")
    columns = "".join(f"<th>{esc(c)}</th>" for c in ("", diff.a, diff.b, "change"))
    body = (f'<table class="mlnb-t"><thead><tr>{columns}</tr></thead>'
            f'{"".join(groups)}</table>')
    return block("diff", f'<div class="mlnb-head">{head}</div>{body}')
