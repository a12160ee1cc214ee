"""Static HTML and inline SVG for evaluations and comparisons.

:func:`evaluation_html` shows one evaluation: the metrics with their 95%
intervals, the gates' results, the confusion matrix as an SVG heat map with
its counts, and the reliability diagram as SVG.  :func:`comparison_html`
shows a comparison: the verdict line and one row per metric (A, B, the
difference with its paired interval, the Holm-adjusted p-value and the
outcome).  Pure functions of the result objects, no JavaScript, no external
resource; every piece of user text (references, metric names, notes, gate
texts) is escaped, and meaning is carried by text and elements, colour only
adds to it (:mod:`mlnb.display.markup`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from mlnb.display.markup import block, esc, lower_is_better, metric, table
from mlnb.display.text import fmt_metric

if TYPE_CHECKING:
    from mlnb.evaluation.gates import GateReport
    from mlnb.evaluation.metrics import Estimate
    from mlnb.evaluation.report import Comparison, Evaluation

__all__ = ["comparison_html", "confusion_svg", "estimates_html", "evaluation_html",
           "gates_html", "reliability_svg"]

#: Past this many classes the confusion matrix is not drawn (a table would not be read either).
CONFUSION_MAX_CLASSES = 40
_HEAT = "#1f6feb"  # one hue; the share of the row sets its opacity
_SVG = 'xmlns="http://www.w3.org/2000/svg" role="img" font-family="sans-serif" font-size="10"'


def _direction(name: str) -> str:
    from mlnb.evaluation.metrics import LOWER_IS_BETTER

    lower = name in LOWER_IS_BETTER or lower_is_better(name)
    title = "lower is better" if lower else "higher is better"
    return f' <span class="mlnb-muted" title="{title}">{"↓" if lower else "↑"}</span>'


def _interval(est: Estimate) -> str:
    if est.lower is None or est.upper is None:
        return ""
    return f"[{metric(est.lower)}, {metric(est.upper)}]"


def estimates_html(estimates: Mapping[str, Estimate]) -> str:
    """The metrics table: name (with its direction), value, 95% interval, note."""
    rows = [f'<tr><td class="mlnb-code">{esc(name)}{_direction(name)}</td>'
            f'<td class="mlnb-num">{metric(float(e.value))}</td>'
            f'<td class="mlnb-num mlnb-muted">{_interval(e)}</td>'
            f'<td class="mlnb-wrap mlnb-muted">{esc(e.note)}</td></tr>'
            for name, e in estimates.items()]
    return table(["metric", "value", "95% interval", "note"], rows, [False, True, True, False])


def gates_html(report: GateReport) -> str:
    """The gates' results: gate, outcome, actual, required, reason."""
    marks = {True: ("mlnb-ok", "✔ passed"), False: ("mlnb-bad", "✘ failed"),
             None: ("mlnb-muted", "? not decided")}
    rows = []
    for r in report:
        cls, mark = marks[r.passed]
        rows.append(f'<tr><td class="mlnb-code">{esc(r.gate)}</td><td class="{cls}">{mark}</td>'
                    f'<td class="mlnb-num">{metric(r.actual)}</td>'
                    f'<td class="mlnb-num">{metric(r.required)}</td>'
                    f'<td class="mlnb-wrap">{esc(r.reason)}</td></tr>')
    state = ('<strong class="mlnb-ok">passed</strong>' if report.passed
             else '<strong class="mlnb-bad">not passed</strong>')
    head = (f'<div class="mlnb-head">Gates: {state} '
            f'<span class="mlnb-muted">{esc(report.summary())}</span></div>')
    return head + (table(["gate", "result", "actual", "required", "reason"], rows,
                         [False, False, True, True, False]) if rows else "")


def confusion_svg(matrix: Any, labels: Sequence[str] | None = None) -> str:
    """The confusion matrix as an SVG heat map: rows true class, columns predicted, counts in cells.

    A cell's shade is its share of its row (the recall view); the count is
    written in the cell when it fits and is always in the cell's tooltip.
    Empty string past :data:`CONFUSION_MAX_CLASSES` classes.
    """
    counts = [[int(c) for c in row] for row in matrix]
    k = len(counts)
    if not k or k > CONFUSION_MAX_CLASSES:
        return ""
    names = [str(x) for x in (labels if labels is not None else range(k))]
    cell = max(12, min(40, 400 // k))
    left, top = 18 + 7 * min(max(len(n) for n in names), 12), 30
    size = cell * k
    width, height = left + size + 4, top + size + 4
    out = [f'<svg {_SVG} width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
           'fill="currentColor" class="mlnb-confusion"><title>Confusion matrix: rows are true '
           'classes, columns predicted classes</title>',
           f'<text x="{left + size / 2:.0f}" y="10" text-anchor="middle">predicted</text>',
           f'<text transform="translate(8,{top + size / 2:.0f}) rotate(-90)" '
           'text-anchor="middle">true</text>']
    show_labels = cell >= 14
    for i, name in enumerate(names):
        if show_labels:
            centre = top + i * cell + cell / 2 + 3
            out.append(f'<text x="{left - 4}" y="{centre:.0f}" text-anchor="end">'
                       f"{esc(name[:12])}</text>")
            out.append(f'<text x="{left + i * cell + cell / 2:.0f}" y="{top - 4}" '
                       f'text-anchor="middle">{esc(name[:4])}</text>')
    for i, row in enumerate(counts):
        total = sum(row)
        for j, count in enumerate(row):
            share = count / total if total else 0.0
            x, y = left + j * cell, top + i * cell
            tip = f"true {names[i]}, predicted {names[j]}: {count:,}" + (
                f" ({100 * share:.1f}% of row)" if total else "")
            out.append(f'<g><title>{esc(tip)}</title><rect x="{x}" y="{y}" width="{cell}" '
                       f'height="{cell}" fill="{_HEAT}" fill-opacity="{0.06 + 0.94 * share:.3f}" '
                       'stroke="currentColor" stroke-opacity="0.15"></rect>')
            if cell >= 18:
                ink = ' fill="#ffffff"' if share > 0.5 else ""
                text = f"{count:,}" if count < 10_000 or cell >= 36 else f"{count / 1000:.0f}k"
                out.append(f'<text x="{x + cell / 2:.0f}" y="{y + cell / 2 + 3:.0f}" '
                           f'text-anchor="middle"{ink}>{esc(text)}</text>')
            out.append("</g>")
    out.append("</svg>")
    return "".join(out)


def reliability_svg(rel: Mapping[str, Any]) -> str:
    """The reliability diagram as SVG: accuracy per confidence bin against the diagonal.

    Bars are each bin's accuracy over its confidence range; a dot marks its
    mean confidence; the dashed diagonal is perfect calibration.  Empty bins
    are left blank.  Counts are in the bars' tooltips.
    """
    edges, count = rel["edges"], rel["count"]
    accuracy, confidence = rel["accuracy"], rel["confidence"]
    side, left, top, bottom = 200, 34, 16, 30
    width, height = left + side + 10, top + side + bottom

    def sx(v: float) -> float:
        return left + v * side

    def sy(v: float) -> float:
        return top + (1.0 - v) * side

    ece = rel.get("ece")
    title = "Reliability diagram" + (f", ECE {fmt_metric(float(ece))}"
                                     if isinstance(ece, (int, float)) else "")
    out = [f'<svg {_SVG} width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
           f'fill="currentColor" class="mlnb-reliability"><title>{esc(title)}</title>',
           f'<text x="{left}" y="10">{esc(title)}</text>',
           f'<path d="M{sx(0)},{sy(0)} V{sy(1)} M{sx(0)},{sy(0)} H{sx(1)}" fill="none" '
           'stroke="currentColor" stroke-opacity="0.5"></path>',
           f'<path d="M{sx(0)},{sy(0)} L{sx(1)},{sy(1)}" fill="none" stroke="currentColor" '
           'stroke-opacity="0.5" stroke-dasharray="4 3"></path>']
    for lo, hi, k, acc, conf in zip(edges[:-1], edges[1:], count, accuracy, confidence):
        if not k or acc is None:
            continue
        tip = (f"confidence ({lo:.2f}, {hi:.2f}]: {k:,} examples, accuracy {acc:.3f}, "
               f"mean confidence {conf:.3f}")
        out.append(f'<g><title>{esc(tip)}</title><rect x="{sx(lo) + 1:.1f}" y="{sy(acc):.1f}" '
                   f'width="{max(sx(hi) - sx(lo) - 2, 1):.1f}" height="{sy(0) - sy(acc):.1f}" '
                   f'fill="{_HEAT}" fill-opacity="0.7"></rect>'
                   f'<circle cx="{sx(conf):.1f}" cy="{sy(conf):.1f}" r="2" '
                   'fill="currentColor"></circle></g>')
    for v in (0.0, 0.5, 1.0):
        out.append(f'<text x="{left - 4}" y="{sy(v) + 3:.0f}" text-anchor="end">{v:g}</text>')
        out.append(f'<text x="{sx(v):.0f}" y="{top + side + 12}" text-anchor="middle">{v:g}</text>')
    out.append(f'<text x="{sx(0.5):.0f}" y="{top + side + 25}" text-anchor="middle">'
               "confidence</text>"
               f'<text transform="translate(10,{sy(0.5):.0f}) rotate(-90)" '
               'text-anchor="middle">accuracy</text></svg>')
    return "".join(out)


def _figure(caption: str, svg: str) -> str:
    if not svg:
        return ""
    return f"<figure><figcaption>{esc(caption)}</figcaption>{svg}</figure>" if caption \
        else f"<figure>{svg}</figure>"


def evaluation_html(ev: Evaluation) -> str:
    """One evaluation: header, metrics with intervals, gates, confusion matrix, reliability."""
    facts = [ev.task, f"{ev.n:,} examples", f"on {ev.device}"]
    if ev.data_fingerprint:
        facts.append(f"data {ev.data_fingerprint[:12]}")
    if ev.record_id is not None:
        facts.append(f"stored as evaluation #{ev.record_id}")
    gate = ""
    if ev.gates is not None:
        gate = (' <strong class="mlnb-ok">gates passed</strong>' if ev.gates.passed
                else ' <strong class="mlnb-bad">gates not passed</strong>')
    head = (f'<div class="mlnb-head">Evaluation of <span class="mlnb-ref">{esc(ev.ref)}</span>'
            f'{gate} <span class="mlnb-muted">{esc(" · ".join(facts))}</span></div>')
    parts = [head, estimates_html(ev.estimates)]
    if ev.gates is not None:
        parts.append(gates_html(ev.gates))
    figures = ""
    if ev.confusion is not None:
        k = len(ev.confusion)
        figures += _figure("confusion matrix (rows true, columns predicted)",
                           confusion_svg(ev.confusion)) or (
            f'<div class="mlnb-muted">confusion matrix: {k} classes, too many to draw</div>')
    if ev.reliability is not None:
        figures += _figure("", reliability_svg(ev.reliability))
    if figures:
        parts.append(f'<div class="mlnb-sections">{figures}</div>')
    run = ev.details
    if run:
        bits = [f"{k.replace('_', ' ')} {run[k]}" for k in ("batch_size", "n_bootstrap", "seed")
                if run.get(k) is not None]
        parts.append(f'<div class="mlnb-muted">{esc(", ".join(bits))}</div>')
    return block("evaluation", "".join(parts))


def _signed(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return esc(fmt_metric(x))
    return esc(f"{x:+.4g}")


_CHANGE = {"better": "mlnb-better", "worse": "mlnb-worse"}


def comparison_html(cmp: Comparison) -> str:
    """A comparison: the verdict, then per metric A, B, B - A [paired interval], p (Holm), outcome."""
    rows = []
    for r in cmp.results.values():
        diff = "" if r.test is None else (
            f"{_signed(r.difference)} [{_signed(r.lower)}, {_signed(r.upper)}]")
        p = "" if r.p_holm is None else esc(f"{r.p_holm:.3g}")
        outcome = esc(r.change) if r.change not in _CHANGE else (
            f'<strong class="{_CHANGE[r.change]}">{esc(r.change)}</strong>')
        rows.append(f'<tr><td class="mlnb-code">{esc(r.name)}{_direction(r.name)}</td>'
                    f'<td class="mlnb-num">{metric(float(r.a.value))}</td>'
                    f'<td class="mlnb-num">{metric(float(r.b.value))}</td>'
                    f'<td class="mlnb-num">{diff}</td><td class="mlnb-num">{p}</td>'
                    f"<td>{outcome}</td><td class=\"mlnb-muted\">{esc(r.method)}</td>"
                    f'<td class="mlnb-wrap mlnb-muted">{esc(r.note)}</td></tr>')
    head = (f'<div class="mlnb-head"><span class="mlnb-ref">{esc(cmp.b.ref)}</span> vs '
            f'<span class="mlnb-ref">{esc(cmp.a.ref)}</span> '
            f'<span class="mlnb-muted">{esc(f"{cmp.n:,} examples, paired; α = {cmp.alpha:g}")}'
            "</span></div>"
            f"<div><strong>{esc(cmp.verdict)}</strong></div>")
    columns = ["metric", f"A {cmp.a.ref}", f"B {cmp.b.ref}", "B − A [95% interval]",
               "p (Holm)", "result", "test", "note"]
    body = table(columns, rows, [False, True, True, True, True, False, False, False])
    return block("comparison", head + body)
