"""A list of versions: one row each, a column per metric, the best value marked, long lists cut."""

from __future__ import annotations

import math
import time
from datetime import datetime, timedelta, timezone

from mlnb.display import versions_html
from mlnb.registry.records import Version, VersionList

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


def wire(version: int, metrics: dict, status: str = "active", aliases: tuple = (),
         name: str = "m") -> dict:
    return {"name": name, "version": version, "status": status, "format": "torch",
            "description": None, "created_at": (T0 + timedelta(hours=version)).timestamp(),
            "created_by": "ana", "metrics": metrics, "params": {}, "tags": {},
            "aliases": list(aliases), "parent": None}


def cells(markup: str, tag: str = "td") -> list[str]:
    """Each <td> as the text a reader sees in it, in order."""
    from html.parser import HTMLParser

    out: list[str] = []

    class P(HTMLParser):
        depth = 0

        def handle_starttag(self, t, a):  # noqa: ANN001
            if t == tag:
                out.append("")
                self.depth += 1

        def handle_endtag(self, t):  # noqa: ANN001
            if t == tag:
                self.depth -= 1

        def handle_data(self, d):  # noqa: ANN001
            if self.depth:
                out[-1] += d

    P().feed(markup)
    return out


def test_a_registry_listing_shows_each_version_aliases_and_metric_columns(mem, files, read_html):
    for acc, loss in ((0.8, 0.5), (0.9, 0.3), (0.85, 0.4)):
        mem.register("churn", files(str(acc).encode()), metrics={"acc": acc, "loss": loss})
    mem.promote("churn:2")
    mem.set_alias("churn:3", "candidate")
    versions = mem.versions("churn")

    page = read_html(versions._repr_html_())

    assert "churn · 3 versions" in page.text
    for ref in ("churn:1", "churn:2", "churn:3"):
        assert ref in page.text
    assert "@production" in page.text and "@candidate" in page.text
    assert page.count("tr") == 4  # header + 3 versions
    headers = cells(versions._repr_html_(), "th")
    assert headers == ["version", "status", "aliases", "created", "by", "acc", "loss"]


def test_best_value_per_metric_is_bold_higher_or_lower_by_name(read_html):
    versions = VersionList(Version.from_wire(w) for w in [
        wire(1, {"acc": 0.8, "val_loss": 0.5}),
        wire(2, {"acc": 0.9, "val_loss": 0.3}),
        wire(3, {"acc": 0.95, "val_loss": 0.1}, status="retired"),   # never the best
        wire(4, {"acc": math.nan, "val_loss": math.inf}),            # never the best
    ])
    markup = versions_html(versions, now=T0 + timedelta(days=1))
    page = read_html(markup)
    assert page.count("strong") == 2
    bold = [c for c, css in zip(cells(markup), _td_classes(markup)) if "mlnb-best" in css]
    assert bold == ["0.9", "0.3"]
    assert "nan" in page.text and "inf" in page.text


def _td_classes(markup: str) -> list[str]:
    from html.parser import HTMLParser

    out: list[str] = []

    class P(HTMLParser):
        def handle_starttag(self, t, a):  # noqa: ANN001
            if t == "td":
                out.append(dict(a).get("class") or "")

    P().feed(markup)
    return out


def test_no_best_is_marked_when_every_value_is_equal(read_html):
    versions = [Version.from_wire(wire(i, {"acc": 0.5})) for i in (1, 2)]
    assert read_html(versions_html(versions)).count("strong") == 0


def test_relative_times_keep_the_exact_time_as_a_title(read_html):
    versions = [Version.from_wire(wire(1, {}))]
    page = read_html(versions_html(versions, now=T0 + timedelta(hours=3)))
    assert "2 h ago" in page.text
    assert ("time", "title", "2024-05-01 13:00:00 UTC") in page.attrs


def test_metric_columns_are_the_sorted_union_capped_at_eight(read_html):
    versions = [
        Version.from_wire(wire(1, {f"m{i:02}": 1.0 for i in range(0, 6)})),
        Version.from_wire(wire(2, {f"m{i:02}": 1.0 for i in range(4, 12)})),
    ]
    markup = versions_html(versions)
    headers = cells(markup, "th")
    assert headers[5:] == [f"m{i:02}" for i in range(8)]
    page = read_html(markup)
    assert "4 more metrics" in page.text
    assert ("span", "title", "m08, m09, m10, m11") in page.attrs
    assert cells(markup)[5:13] == ["1"] * 6 + ["", ""]  # v1 lacks m06, m07


def test_hostile_names_in_a_listing_stay_text(read_html):
    hostile = "<img src=x onerror=alert(1)>"
    versions = [Version.from_wire(wire(1, {hostile: 1.0}, aliases=("ok",)) | {"created_by": hostile})]
    page = read_html(versions_html(versions))
    assert "img" not in page.tags
    assert page.text.count(hostile) == 2


def test_ten_thousand_versions_render_fast_and_cut_to_both_ends(read_html, bundle):
    versions = VersionList(
        Version.from_wire(wire(i, {f"metric{j}": (i * 7 + j) % 1000 / 1000 for j in range(10)},
                               aliases=("production",) if i == 9000 else ()))
        for i in range(1, 10_001)
    )
    start = time.perf_counter()
    markup = versions._repr_html_()
    elapsed = time.perf_counter() - start
    assert elapsed < 1.0, elapsed

    page = read_html(markup)
    assert page.count("tr") == 1 + 50 + 1 + 50
    assert "m:1" in page.text and "m:50" in page.text and "m:51\n" not in page.text
    assert "m:9951" in page.text and "m:10000" in page.text and "m:9000" not in page.text
    assert "… 9,900 more versions …" in page.text
    assert "10,000 versions · showing the first 50 and last 50" in page.text

    data = bundle(versions)
    assert len(data["text/plain"].splitlines()) == 2 + 10 + 1 + 10
    assert "… 9,980 more versions …" in data["text/plain"]
    assert data["text/html"] == markup


def test_an_empty_list_says_so(read_html, bundle):
    assert "no versions" in read_html(versions_html([])).text
    assert bundle(VersionList())["text/plain"] == "no versions"
