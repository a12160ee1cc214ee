"""HTML building blocks shared by mlnb's renderers: escaping, the style sheet, badges, cells.

Every renderer returns one ``<div class="mlnb ...">`` that carries its own small
``<style>``, scoped by the ``mlnb`` class so that it styles nothing else in the
page.  The markup must read well where that style is stripped (GitHub's notebook
view drops ``<style>`` and ``class``): meaning lives in elements, e.g. a best
value is ``<strong>`` and a change keeps its ▲/▼ character, and colour only adds
to it.  Colours come from JupyterLab's theme variables, with fallbacks that read
on light and dark backgrounds.  No JavaScript, no external resource.

Every piece of user text goes through :func:`esc`; helpers that take text
escape it themselves, helpers that take markup say so.
"""

from __future__ import annotations

import html
import math
import re
from datetime import datetime
from typing import Any, Iterable, Sequence

from mlnb.display.text import ago, fmt_metric

__all__ = [
    "STYLE",
    "badges",
    "block",
    "esc",
    "lower_is_better",
    "metric",
    "more_row",
    "short",
    "table",
    "when",
]

_MUTED = "var(--jp-ui-font-color2,#6e7781)"
_GOOD = "var(--jp-success-color1,#2e7d32)"
_BAD = "var(--jp-error-color1,#c62828)"
_WARN = "var(--jp-warn-color1,#b26a00)"
_LINE = "var(--jp-border-color2,rgba(128,128,128,.25))"

# Selectors start with ".mlnb" twice-classed so they outrank JupyterLab's
# ".jp-RenderedHTMLCommon td" (right-aligned, fixed layout) without !important.
STYLE = (
    "<style>"
    ".mlnb{font-family:var(--jp-ui-font-family,system-ui,sans-serif);"
    "font-size:var(--jp-ui-font-size1,13px);line-height:1.45;"
    "color:var(--jp-ui-font-color1,inherit)}"
    ".mlnb .mlnb-head{margin:2px 0 4px}"
    ".mlnb .mlnb-ref,.mlnb .mlnb-code{font-family:var(--jp-code-font-family,monospace)}"
    ".mlnb .mlnb-head .mlnb-ref{font-weight:600;font-size:110%}"
    f".mlnb .mlnb-muted{{color:{_MUTED}}}"
    ".mlnb .mlnb-desc{white-space:pre-wrap;margin:2px 0 6px;max-width:60em}"
    ".mlnb .mlnb-badge{display:inline-block;margin:0 3px 0 0;padding:0 6px;"
    "border-radius:9px;font-size:85%;line-height:1.5;white-space:nowrap;"
    "border:1px solid var(--jp-border-color1,rgba(128,128,128,.55))}"
    f".mlnb .mlnb-alias-production{{border-color:{_GOOD};color:{_GOOD}}}"
    f".mlnb .mlnb-alias-staging{{border-color:{_WARN};color:{_WARN}}}"
    f".mlnb .mlnb-retired,.mlnb .mlnb-status-retired{{color:{_MUTED}}}"
    ".mlnb .mlnb-sections{display:flex;flex-wrap:wrap;align-items:flex-start;gap:0 24px}"
    ".mlnb table.mlnb-t{border-collapse:collapse;table-layout:auto;margin:4px 0 8px;"
    "font-size:inherit;width:auto}"
    ".mlnb .mlnb-t th,.mlnb .mlnb-t td{padding:2px 12px 2px 0;text-align:left;"
    f"vertical-align:top;border:none;border-bottom:1px solid {_LINE};white-space:nowrap}}"
    f".mlnb .mlnb-t th{{font-weight:600;color:{_MUTED}}}"
    ".mlnb .mlnb-t .mlnb-num{text-align:right;font-variant-numeric:tabular-nums}"
    ".mlnb .mlnb-t td.mlnb-wrap{white-space:pre-wrap;max-width:40em}"
    ".mlnb .mlnb-t td.mlnb-best{font-weight:700;background:rgba(46,160,67,.16)}"
    f".mlnb .mlnb-t tr.mlnb-more td{{text-align:center;font-style:italic;color:{_MUTED}}}"
    f".mlnb .mlnb-better,.mlnb .mlnb-ok{{color:{_GOOD}}}"
    f".mlnb .mlnb-worse,.mlnb .mlnb-bad{{color:{_BAD}}}"
    ".mlnb details{margin:4px 0}.mlnb summary{cursor:pointer}"
    ".mlnb svg{overflow:visible;max-width:100%}"
    "</style>"
)


def esc(value: Any) -> str:
    """*value* as text, safe inside an element or a quoted attribute."""
    return html.escape("" if value is None else str(value), quote=True)


def short(text: str, limit: int) -> str:
    """Escaped *text* cut to *limit* characters; when cut, the full text is its ``title``."""
    if len(text) <= limit:
        return esc(text)
    return f'<span title="{esc(text[:4000])}">{esc(text[: limit - 1])}…</span>'


def metric(value: Any) -> str:
    """A metric to 4 significant digits; when that rounds, the exact value is its title."""
    text = fmt_metric(value)
    if isinstance(value, float) and math.isfinite(value) and float(text) != value:
        return f'<span title="{esc(repr(value))}">{esc(text)}</span>'
    return esc(text)


def block(kind: str, body: str) -> str:
    """Wrap renderer *body* (markup) in the scoped ``<div class="mlnb mlnb-KIND">``."""
    return f'<div class="mlnb mlnb-{kind}">{STYLE}{body}</div>'


def badges(aliases: Iterable[str], targets: dict[str, Any] | None = None) -> str:
    """``@alias`` badges; with *targets*, each also names the version it points at."""
    out = []
    for alias in aliases:
        slug = alias if alias in ("production", "staging") else "other"
        label = f"@{alias}" if targets is None else f"@{alias} → {targets[alias]}"
        out.append(f'<span class="mlnb-badge mlnb-alias-{slug}">{esc(label)}</span>')
    return " ".join(out)


def when(moment: datetime | None, now: datetime | None = None, absolute: bool = False) -> str:
    """A relative time (``3 min ago``) whose ``title`` is the exact UTC time.

    With *absolute*, the UTC time is also written out, for output that is read
    long after it was made (a saved notebook).
    """
    if moment is None:
        return ""
    exact = f"{moment:%Y-%m-%d %H:%M:%S} UTC"
    text = esc(ago(moment, now))
    if absolute:
        text += f' <span class="mlnb-muted">({esc(exact)})</span>'
    return f'<time datetime="{esc(moment.isoformat())}" title="{esc(exact)}">{text}</time>'


def table(headers: Sequence[str], rows: Iterable[str], numeric: Sequence[bool] = ()) -> str:
    """A ``<table>`` with escaped *headers* and *rows* already rendered as ``<tr>`` markup."""
    cells = "".join(
        f'<th class="mlnb-num">{esc(h)}</th>' if i < len(numeric) and numeric[i]
        else f"<th>{esc(h)}</th>"
        for i, h in enumerate(headers)
    )
    return (f'<table class="mlnb-t"><thead><tr>{cells}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def more_row(hidden: int, columns: int, noun: str) -> str:
    """The ``… N more`` row that stands for rows left out of a long table."""
    return f'<tr class="mlnb-more"><td colspan="{columns}">… {hidden:,} more {esc(noun)} …</td></tr>'


# Name parts of metrics where a smaller value is the better one.  A guess from
# the name, used only to colour and highlight; Registry.best takes an explicit mode.
_LOWER = frozenset({
    "loss", "error", "err", "errors", "mse", "mae", "rmse", "mape", "smape", "msle", "rmsle",
    "nll", "logloss", "perplexity", "ppl", "wer", "cer", "latency", "fpr", "fnr", "eer",
    "brier", "bpc", "bpd", "ece",
})
_WORD = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")


def lower_is_better(name: str) -> bool:
    """Whether metric *name* looks like one to minimise (``val_loss``, ``rmse``, ``WER``)."""
    return any(part.lower() in _LOWER for part in _WORD.findall(name))
