"""A training run as a monitor shows it: the view's data, the text line and the static HTML.

:func:`view` turns a :class:`~mlnb.display.monitor_state.MonitorState` into
plain JSON-able parts (texts formatted here, curves as ``[x, y]`` numbers),
which the live widget syncs and :func:`render_html` draws as the static view a
saved notebook keeps: a status line, the progress, current and best metrics,
the loss curves as inline SVG and the last epochs as a table, with no
JavaScript.  :func:`render_text` writes the one-line bar of the text reporter.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

from mlnb.display.markup import STYLE, esc, more_row, table
from mlnb.display.monitor_state import _LOSSES, PARTS, _metric_column, _number
from mlnb.display.text import fmt_metric, human_size

if TYPE_CHECKING:
    from mlnb.display.monitor_state import MonitorState, Series

__all__ = ["chart_svg", "fmt_duration", "render_html", "render_text", "view"]

HISTORY_ROWS = 10
_HIDDEN = ("epoch", "epoch_time_s", "samples_per_s")   # shown elsewhere, not as metrics
_COLOURS = {"train (steps)": "#90a4ae", "train_loss": "#1976d2", "val_loss": "#e65100"}
_METRIC_COLOUR = "#2e7d32"


def fmt_duration(seconds: float | None) -> str:
    """``m:ss`` or ``h:mm:ss``, as tqdm writes them; empty when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return ""
    total = int(round(max(seconds, 0.0)))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _fmt_rate(rate: float | None) -> str:
    if rate is None or not math.isfinite(rate) or rate <= 0:
        return ""
    return f"{rate:,.0f} samples/s" if rate >= 100 else f"{rate:.3g} samples/s"


def _fmt_cell(column: str, value: Any) -> str:
    if column == "epoch":
        return str(value)
    if column == "epoch_time_s":
        number = _number(value)
        return f"{number:.2f}s" if number is not None and math.isfinite(number) else "-"
    if column == "samples_per_s":
        return _fmt_rate(_number(value)).removesuffix(" samples/s") or "-"
    return fmt_metric(value) if value is not None else "-"


# -- the view: plain data for the widget and for render_html ------------------------------

def _header(s: MonitorState) -> dict[str, Any]:
    return {"name": s.name, "run_id": s.run_id, "device": s.device, "precision": s.precision,
            "monitor": s.monitor, "mode": s.mode, "resumed": s.resumed}


def _bar(s: MonitorState) -> dict[str, Any]:
    fraction = s.fraction()
    spe = s.steps_per_epoch
    completed = s._completed()
    in_epoch = s.current_epoch > completed
    epoch = max(s.current_epoch, completed, 1 if s.epochs else 0)
    batch = ""
    if in_epoch and spe:
        batch = f"batch {s.batch:,}/{spe:,}"
    elif in_epoch and s.batch:
        batch = f"batch {s.batch:,}"
    best = ""
    if s.best_value is not None and s.monitor:
        at = f" (epoch {s.best_epoch})" if s.best_epoch is not None else ""
        best = f"{s.monitor} {fmt_metric(float(s.best_value))}{at}"
    return {
        "fraction": None if fraction is None else round(fraction, 4),
        "epoch": f"epoch {epoch}/{s.epochs}" if s.epochs else "",
        "batch": batch,
        "percent": "" if fraction is None else f"{math.floor(fraction * 100):.0f}%",
        "elapsed": fmt_duration(s.elapsed_s),
        "eta": fmt_duration(s.eta_s()),
        "rate": _fmt_rate(s.samples_per_s()),
        "loss": "" if s.loss is None else fmt_metric(float(s.loss)),
        "best": best,
    }


def _metrics(s: MonitorState) -> dict[str, Any]:
    last = s.rows[-1] if s.rows else {}
    best = next((r for r in reversed(s.rows) if r.get("epoch") == s.best_epoch), {})
    names = [c for c in (s.columns or tuple(last)) if c not in _HIDDEN and c in last]
    rows = [{"name": c, "last": _fmt_cell(c, last.get(c)),
             "best": _fmt_cell(c, best.get(c)) if best else "", "monitor": c == s.monitor}
            for c in names]
    return {"epoch": last.get("epoch"), "best_epoch": s.best_epoch if best else None,
            "rows": rows}


def _history(s: MonitorState) -> dict[str, Any]:
    shown = s.rows[-HISTORY_ROWS:]
    columns = [c for c in (s.columns or (tuple(shown[0]) if shown else ())) if
               any(c in r for r in shown)]
    return {"columns": columns,
            "rows": [[_fmt_cell(c, r.get(c)) for c in columns] for r in shown],
            "epochs": [r.get("epoch") for r in shown], "best_epoch": s.best_epoch,
            "hidden": len(s.rows) - len(shown)}


def _curves(s: MonitorState, packed: bool) -> dict[str, Any]:
    def entry(name: str, colour: str, dots: bool, series: Series) -> dict[str, Any]:
        out: dict[str, Any] = {"name": name, "colour": colour, "dots": dots}
        if packed:
            out["x"], out["y"] = series.packed()
        else:
            out["points"] = series.points()
        return out

    loss = [entry("train (steps)", _COLOURS["train (steps)"], False, s.steps)] if len(s.steps) else []
    for column in _LOSSES:
        series = s.epoch_curves.get(column)
        if series is not None and len(series):
            loss.append(entry(column, _COLOURS[column], True, series))
    charts = [{"title": "loss", "series": loss}] if loss else []
    metric = _metric_column(s)
    series = s.epoch_curves.get(metric) if metric else None
    if series is not None and len(series):
        charts.append({"title": metric, "series": [entry(metric, _METRIC_COLOUR, True, series)]})
    return {"x": "step", "charts": charts}


def _gpu(s: MonitorState) -> str:
    if s.gpu_memory is None:
        return ""
    peak = f" (peak {human_size(s.gpu_memory_peak)})" if s.gpu_memory_peak is not None else ""
    return f"GPU memory {human_size(s.gpu_memory)}{peak}"


def _note(s: MonitorState) -> str:
    parts = []
    if s.status == "stopped":
        parts.append("stopped on request after an optimizer step" + (
            "; a checkpoint is kept: train(..., resume=True) continues" if s.checkpoints else ""))
    elif s.message:
        parts.append(s.message)
    if s.version:
        parts.append(f"registered {s.version}")
    return " · ".join(parts)


_VIEWS = {"status": lambda s: s.status, "header": _header, "bar": _bar, "metrics": _metrics,
          "history": _history, "gpu": _gpu, "note": _note}


def view(state: MonitorState, parts: Iterable[str] = PARTS, *,
         packed: bool = False) -> dict[str, Any]:
    """The named *parts* of what a monitor shows, as plain data (see :data:`PARTS`).

    Curves carry ``points`` (``[[x, y], ...]``), or with *packed* ``x`` and
    ``y`` as float64 bytes, which a widget sends as binary buffers: no JSON
    to write or parse for hundreds of numbers, four times a second.
    """
    return {part: _curves(state, packed) if part == "curves" else _VIEWS[part](state)
            for part in parts}


# -- text -----------------------------------------------------------------------------------

_BLOCKS = " ▏▎▍▌▋▊▉█"


def _bar_cells(fraction: float, cells: int, ascii_only: bool) -> str:
    if ascii_only:
        full = int(fraction * cells)
        return "#" * full + " " * (cells - full)
    eighths = int(fraction * cells * 8)
    full, part = divmod(eighths, 8)
    text = "█" * full + (_BLOCKS[part] if full < cells else "")
    return text + " " * (cells - len(text))


def render_text(state: MonitorState, width: int = 0, *, metrics: bool = False,
                ascii_only: bool = False) -> str:
    """One line: status (when over), epoch, %, batch, time and ETA, samples/s, loss, best.

    With *width* > 0 (a terminal) the line is tqdm's: a bar, then
    ``25/100 [0:01<0:02, 3,200 samples/s]``, cut to *width* - 1 characters so
    the terminal never wraps it.  With *metrics*, the last epoch's metrics stand
    in place of the running loss (the per-epoch lines of a log).
    """
    b = view(state, ("bar",))["bar"]
    spe = state.steps_per_epoch
    head = [state.status] if state.done else []
    head += [b["epoch"] or "epoch -", (b["percent"] or "").rjust(4)]
    last = state.rows[-1] if state.rows else {}
    if metrics and last:
        values = [f"{c}={_fmt_cell(c, last[c])}" for c in state.columns or last
                  if c not in _HIDDEN and c in last]
    else:
        values = [f"loss={b['loss']}"] if b["loss"] else []
    best = f"best {b['best']}" if b["best"] else ""
    gpu = _gpu(state).replace("GPU memory", "gpu")
    note = _note(state) if state.done else ""
    timing = b["elapsed"] + (f"<{b['eta']}" if b["eta"] else "")
    if width <= 0:
        parts = [*head, b["batch"], timing, b["rate"], *values, best, gpu, note]
        return "  ".join(p for p in parts if p)
    left = " ".join(p for p in head if p)
    count = f" {state.batch:,}/{spe:,}" if spe and state.current_epoch > state._completed() else ""
    if state.best_value is not None and state.monitor:
        best = f"best {state.monitor}={fmt_metric(float(state.best_value))}"
    right = " ".join(p for p in (f"{count.strip()} [{', '.join(p for p in (timing, b['rate']) if p)}]".strip(),
                                 *values, best, gpu, note) if p)
    cells = min(25, width // 5)   # steady from one redraw to the next; the line is cut instead
    if b["fraction"] is not None and cells >= 6:
        left += f"|{_bar_cells(b['fraction'], cells, ascii_only)}|"
    line = f"{left} {right}"
    return line if len(line) < width else line[: width - 2] + "…"


# -- static HTML ----------------------------------------------------------------------------

_W, _H, _L, _B = 360, 150, 48, 30   # chart width, height, left and bottom margins

_TRAIN_STYLE = (
    "<style>"
    ".mlnb.mlnb-train .mlnb-progress{margin:4px 0}"
    ".mlnb.mlnb-train progress{width:22em;max-width:100%;vertical-align:middle}"
    ".mlnb.mlnb-train .mlnb-status{font-weight:600}"
    ".mlnb.mlnb-train .mlnb-status-finished{color:var(--jp-success-color1,#2e7d32)}"
    ".mlnb.mlnb-train .mlnb-status-diverged,.mlnb.mlnb-train .mlnb-status-interrupted"
    "{color:var(--jp-error-color1,#c62828)}"
    ".mlnb.mlnb-train .mlnb-status-stopped,.mlnb.mlnb-train .mlnb-status-stopped_early"
    "{color:var(--jp-warn-color1,#b26a00)}"
    ".mlnb.mlnb-train .mlnb-chart{margin:4px 16px 4px 0}"
    "</style>"
)


def _scale(lo: float, hi: float, size: float, flip: bool) -> Callable[[float], float]:
    """Map [lo, hi] onto [0, size] (flipped for y); a flat range sits in the middle."""
    if hi <= lo:
        pad = abs(lo) / 2 or 1.0
        lo, hi = lo - pad, hi + pad
    k = size / (hi - lo)
    return (lambda v: size - (v - lo) * k) if flip else (lambda v: (v - lo) * k)


def _axis_label(value: float) -> str:
    return f"{value:.3g}"


def chart_svg(chart: Mapping[str, Any], x_label: str = "step") -> str:
    """One chart of :func:`view`'s ``curves`` as inline SVG: lines, dots, axis ends, legend."""
    series = [s for s in chart["series"] if s["points"]]
    xs = [p[0] for s in series for p in s["points"]]
    ys = [p[1] for s in series for p in s["points"]]
    if not xs:
        return ""
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    fx, fy = _scale(x0, x1, _W - _L - 8, False), _scale(y0, y1, _H - _B - 8, True)
    title = f"{chart['title']} by {x_label}"
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{_W}" height="{_H}" '
           f'viewBox="0 0 {_W} {_H}" font-family="sans-serif" font-size="10" '
           f'fill="currentColor" class="mlnb-chart"><title>{esc(title)}</title>',
           f'<g transform="translate({_L},4)">',
           f'<path d="M0,0 V{_H - _B - 8} H{_W - _L - 8}" fill="none" stroke="currentColor" '
           'stroke-opacity="0.4"></path>']
    for text, y in ((_axis_label(y1), 8), (_axis_label(y0), _H - _B - 8)):
        out.append(f'<text x="-4" y="{y}" text-anchor="end">{esc(text)}</text>')
    for text, x, anchor in ((_axis_label(x0), 0, "start"), (_axis_label(x1), _W - _L - 8, "end")):
        out.append(f'<text x="{x}" y="{_H - _B + 4}" text-anchor="{anchor}">{esc(text)}</text>')
    out.append(f'<text x="{(_W - _L - 8) / 2:.0f}" y="{_H - _B + 4}" text-anchor="middle" '
               f'fill-opacity="0.7">{esc(x_label)}</text>')
    legend_x = 0.0
    for s in series:
        colour = esc(s["colour"])
        pts = " ".join(f"{fx(x):.1f},{fy(y):.1f}" for x, y in s["points"])
        width = "1" if not s["dots"] else "1.6"
        out.append(f'<g><title>{esc(s["name"])}</title><polyline points="{pts}" fill="none" '
                   f'stroke="{colour}" stroke-width="{width}"></polyline>')
        if s["dots"] and len(s["points"]) <= 60:
            out += [f'<circle cx="{fx(x):.1f}" cy="{fy(y):.1f}" r="2.2" fill="{colour}"></circle>'
                    for x, y in s["points"]]
        out.append("</g>")
        out.append(f'<rect x="{legend_x:.0f}" y="{_H - 13}" width="10" height="3" '
                   f'fill="{colour}"></rect><text x="{legend_x + 13:.0f}" y="{_H - 9}">'
                   f"{esc(s['name'])}</text>")
        legend_x += 22 + 6 * len(s["name"])
    out.append("</g></svg>")
    return "".join(out)


def _history_html(h: Mapping[str, Any]) -> str:
    if not h["rows"]:
        return ""
    rows = []
    if h["hidden"]:
        rows.append(more_row(h["hidden"], len(h["columns"]), "earlier epochs"))
    for epoch, cells in zip(h["epochs"], h["rows"]):
        best = epoch is not None and epoch == h["best_epoch"]
        tds = "".join(
            f'<td class="mlnb-num">{"<strong>" if best else ""}{esc(c)}{"</strong>" if best else ""}'
            "</td>" for c in cells)
        rows.append(f"<tr>{tds}</tr>")
    return table(h["columns"], rows, numeric=[True] * len(h["columns"]))


def _metrics_html(m: Mapping[str, Any]) -> str:
    if not m["rows"]:
        return ""
    best = f"best (epoch {m['best_epoch']})" if m["best_epoch"] is not None else "best"
    rows = []
    for r in m["rows"]:
        name = f"<strong>{esc(r['name'])}</strong>" if r["monitor"] else esc(r["name"])
        rows.append(f'<tr><td>{name}</td><td class="mlnb-num">{esc(r["last"])}</td>'
                    f'<td class="mlnb-num">{esc(r["best"])}</td></tr>')
    return table(["metric", f"last (epoch {m['epoch']})", best], rows, numeric=[False, True, True])


def render_html(state: MonitorState) -> str:
    """The static view of a run: what the live monitor shows, as HTML with inline SVG."""
    v = view(state)
    h, b = v["header"], v["bar"]
    status = esc(v["status"])
    where = "/".join(p for p in (h["device"], h["precision"]) if p)
    head = (f'<div class="mlnb-head"><strong>Training</strong> '
            f'<span class="mlnb-ref">{esc(h["name"])}</span> · '
            f'<span class="mlnb-status mlnb-status-{status}">{status}</span>'
            + (" (resumed)" if h["resumed"] else "")
            + (f' · <span class="mlnb-muted">{esc(where)}</span>' if where else "") + "</div>")
    facts = [b["epoch"], b["batch"], b["percent"],
             f"elapsed {b['elapsed']}" if b["elapsed"] else "",
             f"ETA {b['eta']}" if b["eta"] else "", b["rate"],
             f"loss {b['loss']}" if b["loss"] else "",
             f"best {b['best']}" if b["best"] else ""]
    meter = ""
    if b["fraction"] is not None:
        meter = f'<progress max="1" value="{b["fraction"]}">{esc(b["percent"])}</progress> '
    progress = (f'<div class="mlnb-progress">{meter}'
                f'{esc(" · ".join(f for f in facts if f))}</div>')
    charts = "".join(chart_svg(c, v["curves"]["x"]) for c in v["curves"]["charts"])
    body = f'<div class="mlnb-sections"><div>{_metrics_html(v["metrics"])}</div>{charts}</div>'
    notes = [n for n in (v["gpu"], v["note"]) if n]
    foot = "".join(f'<div class="mlnb-muted">{esc(n)}</div>' for n in notes)
    return (f'<div class="mlnb mlnb-train">{STYLE}{_TRAIN_STYLE}{head}{progress}{body}'
            f"{_history_html(v['history'])}{foot}</div>")
