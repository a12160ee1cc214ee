"""Lineage: a small drawing of what came from what, readable without JavaScript."""

from __future__ import annotations

import re

from mlnb.display import lineage_html
from mlnb.registry.records import Lineage, LineageEdge


def _x_of(markup: str, ref: str) -> float:
    """Where the SVG draws *ref*'s label, left to right."""
    found = re.findall(rf'<text x="([\d.]+)"[^>]*>{re.escape(ref)}</text>', markup)
    assert len(found) == 1, (ref, found)
    return float(found[0])


def test_lineage_draws_every_version_and_labelled_edge(mem, files, read_html, bundle):
    mem.register("m", files())
    mem.register("m", files(), parent="m:1")
    mem.register("m", files(), parent="m:2")
    mem.register("m", files(), parent="m:2")
    lineage = mem.lineage("m:2")

    markup = lineage._repr_html_()
    page = read_html(markup)

    assert page.count("svg") == 1
    assert "lineage of m:2 · 3 edges" in page.text
    for ref in ("m:1", "m:2", "m:3", "m:4"):
        assert ref in page.text
    assert markup.count(">parent</text>") == 3
    # origins on the left, what came from them to the right; siblings share a column
    assert _x_of(markup, "m:1") < _x_of(markup, "m:2") < _x_of(markup, "m:3")
    assert _x_of(markup, "m:3") == _x_of(markup, "m:4")
    assert re.search(r'font-weight="bold">m:2</text>', markup)  # the root stands out
    # the same edges as a list, for readers whose viewer drops SVG
    assert "m:3 —parent→ m:2" in page.text and "m:2 —parent→ m:1" in page.text
    assert page.count("li") == 3

    data = bundle(lineage)
    assert data["text/plain"] == repr(lineage) and "m:2 --parent--> m:1" in data["text/plain"]


def test_a_version_without_lineage_says_so(mem, files, read_html):
    mem.register("m", files())
    page = read_html(mem.lineage("m:1")._repr_html_())
    assert "m:1: no lineage recorded" in page.text and "svg" not in page.tags


def test_other_kinds_cycles_and_odd_names_still_draw(read_html):
    hostile = "<img src=x onerror=alert(1)>:1"
    lineage = Lineage("m:2", (
        LineageEdge("m:2", "parent", "m:1"),
        LineageEdge("m-onnx:1", "converted_from", "m:2"),
        LineageEdge("m:1", "distilled_from", "m:2"),      # a cycle: drawn, not looped on
        LineageEdge(hostile, "parent", "m:2"),
    ))
    markup = lineage_html(lineage)
    page = read_html(markup)
    assert "img" not in page.tags
    assert hostile in page.text
    for label in ("converted_from", "distilled_from", "parent"):
        assert f">{label}</text>" in markup
    assert _x_of(markup, "m:2") < _x_of(markup, "m-onnx:1")


def test_long_names_are_cut_in_the_drawing_and_whole_in_the_list(read_html):
    long = "a-model-with-a-really-very-long-name-indeed:12"
    page = read_html(lineage_html(Lineage(long, (LineageEdge(long, "parent", "m:1"),))))
    assert "a-model-with-a-really-very-l…:12" in page.text  # the version number stays
    assert f"{long} —parent→ m:1" in page.text


def test_a_large_graph_is_listed_not_drawn(read_html):
    edges = tuple(LineageEdge(f"m:{i + 1}", "parent", f"m:{i}") for i in range(1, 100))
    page = read_html(lineage_html(Lineage("m:50", edges)))
    assert "svg" not in page.tags and "details" not in page.tags
    assert page.count("li") == 99 and "m:100 —parent→ m:99" in page.text
