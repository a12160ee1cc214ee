"""Lineage as a picture: a small layered graph in inline SVG, plus the edges as a list.

Layout: an edge ``source --kind--> target`` points from a version to what it came
from (``m:3 --parent--> m:2``), so each node's column is one more than the
deepest column among its targets.  Origins stand on the left, what derives from
them to the right, and every arrow points left, to its origin.  Within a column
nodes are sorted by reference.  The SVG uses ``currentColor`` and no style
sheet, so it follows light and dark themes; the list under it (a
``<details>``, which needs no JavaScript) reads the same where SVG is stripped.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

from mlnb.display.markup import block, esc

if TYPE_CHECKING:
    from mlnb.registry.records import Lineage

__all__ = ["lineage_html"]

_CHAR_W, _BOX_H, _ROW_H, _PAD = 7.2, 24, 40, 8
_MAX_LABEL = 32        # characters of a reference drawn in a box; the rest in its <title>
_MAX_NODES = 60        # larger graphs show only the list: a drawing that size is unreadable


def _ref_key(ref: str) -> tuple[str, int, str]:
    name, _, ver = ref.rpartition(":")
    return (name, int(ver), "") if ver.isdigit() else (ref, 0, ref)


def _columns(nodes: set[str], targets: dict[str, list[str]]) -> dict[str, int]:
    """Each node's column: 0 with no targets, else 1 + its deepest target's (cycles cut)."""
    column: dict[str, int] = {}
    for start in sorted(nodes, key=_ref_key):
        stack, on_path = [(start, iter(targets[start]))], {start}
        while stack:  # iterative DFS: a long chain of parents must not hit the recursion limit
            node, it = stack[-1]
            nxt = next((t for t in it if t not in column and t not in on_path), None)
            if nxt is not None:
                stack.append((nxt, iter(targets[nxt])))
                on_path.add(nxt)
                continue
            stack.pop()
            on_path.discard(node)
            done = [column[t] for t in targets[node] if t in column]
            column[node] = 1 + max(done) if done else 0
    return column


def _label(ref: str) -> str:
    """*ref* short enough for a box: a long name is cut, its version number kept."""
    if len(ref) <= _MAX_LABEL:
        return ref
    name, sep, ver = ref.rpartition(":")
    if not sep or len(ver) > 8:
        return ref[: _MAX_LABEL - 1] + "…"
    return f"{name[: _MAX_LABEL - len(ver) - 2]}…:{ver}"


def _svg(lineage: Lineage, nodes: set[str]) -> str:
    targets: dict[str, list[str]] = defaultdict(list)
    for e in lineage.edges:
        targets[e.source].append(e.target)
    column = _columns(nodes, targets)
    by_col: dict[int, list[str]] = defaultdict(list)
    for node in sorted(nodes, key=_ref_key):
        by_col[column[node]].append(node)
    box_w = max(len(_label(n)) for n in nodes) * _CHAR_W + 2 * _PAD
    kinds = max((len(e.kind) for e in lineage.edges), default=0)
    gap = max(48.0, kinds * 6.6 + 28)
    rows = max(len(col) for col in by_col.values())
    width = len(by_col) * box_w + (len(by_col) - 1) * gap
    height = rows * _ROW_H
    pos = {}
    for col, members in by_col.items():
        top = (height - len(members) * _ROW_H) / 2
        for i, node in enumerate(members):
            pos[node] = (col * (box_w + gap), top + i * _ROW_H + (_ROW_H - _BOX_H) / 2)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width:.0f}" '
        f'height="{height:.0f}" viewBox="-2 -2 {width + 4:.0f} {height + 4:.0f}" '
        'font-family="monospace" font-size="12" fill="currentColor" stroke="none">',
        f"<title>{esc(f'lineage of {lineage.root}')}</title>",
    ]
    for e in lineage.edges:
        (sx, sy), (tx, ty) = pos[e.source], pos[e.target]
        x1, y1 = sx, sy + _BOX_H / 2                    # left side of the source
        x2, y2 = tx + box_w, ty + _BOX_H / 2            # right side of the target
        if x1 <= x2:  # same column (a cycle): leave from the right, loop back
            x1 = sx + box_w
        mx, my = (x1 + x2) / 2, (y1 + y2) / 2
        head = f"{x2:.1f},{y2:.1f} {x2 + 7:.1f},{y2 - 4:.1f} {x2 + 7:.1f},{y2 + 4:.1f}"
        end = f"{x2 + 7:.1f},{y2:.1f}" if x1 > x2 + 7 else f"{x2:.1f},{y2:.1f}"
        out.append(
            f"<g><title>{esc(f'{e.source} --{e.kind}--> {e.target}')}</title>"
            f'<path d="M{x1:.1f},{y1:.1f} L{end}" fill="none" stroke="currentColor" '
            f'stroke-opacity="0.6"></path>'
            f'<polygon points="{head}" fill-opacity="0.7"></polygon>'
            f'<text x="{mx:.1f}" y="{my - 4:.1f}" text-anchor="middle" font-size="10" '
            f'fill-opacity="0.75">{esc(e.kind)}</text></g>'
        )
    for node, (x, y) in pos.items():
        root = node == lineage.root
        bold = ' font-weight="bold"' if root else ""
        out.append(
            f"<g><title>{esc(node)}</title>"
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{box_w:.1f}" height="{_BOX_H}" rx="4" '
            f'fill="currentColor" fill-opacity="{0.12 if root else 0.04}" '
            f'stroke="currentColor" stroke-width="{2 if root else 1}"></rect>'
            f'<text x="{x + box_w / 2:.1f}" y="{y + _BOX_H / 2 + 4:.1f}" text-anchor="middle"{bold}>'
            f"{esc(_label(node))}</text></g>"
        )
    out.append("</svg>")
    return "".join(out)


def lineage_html(lineage: Lineage) -> str:
    """The lineage around one version: a drawing (up to 60 versions) and its edges as a list."""
    root = f'<span class="mlnb-ref">{esc(lineage.root)}</span>'
    if not lineage.edges:
        return block("lineage", f'<div class="mlnb-head">{root}: no lineage recorded</div>')
    nodes = {lineage.root} | {e.source for e in lineage.edges} | {e.target for e in lineage.edges}
    count = len(lineage.edges)
    head = f'<div class="mlnb-head">lineage of {root} · {count} edge{"s" * (count != 1)}</div>'
    items = "".join(
        f'<li><span class="mlnb-ref">{esc(e.source)}</span> —{esc(e.kind)}→ '
        f'<span class="mlnb-ref">{esc(e.target)}</span></li>'
        for e in sorted(lineage.edges, key=lambda e: (_ref_key(e.source), e.kind,
                                                      _ref_key(e.target)))
    )
    if len(nodes) > _MAX_NODES:
        return block("lineage", f"{head}<ul>{items}</ul>")
    listing = f"<details><summary>edges</summary><ul>{items}</ul></details>"
    return block("lineage", f"{head}<div>{_svg(lineage, nodes)}</div>{listing}")

