"""``diff_versions``: only what differs, with deltas; its text and HTML views."""

from __future__ import annotations

import math

import pytest

from mlnb.display import diff_html
from mlnb.registry.diff import diff_versions
from mlnb.registry.records import Change

HOSTILE = "<img src=x onerror=alert(1)>"


@pytest.fixture
def pair(mem, files):
    """m:2 and m:3, differing in some metrics, params, tags, files and fields."""
    mem.register("m", files(b"v1"))
    mem.register("m", files({"model.bin": b"v2", "vocab.txt": b"words"}), description="baseline",
                 metrics={"acc": 0.80, "val_loss": 0.50, "f1": 0.7, "auc": 0.9, "gone": 1.0},
                 params={"lr": 0.1, "opt": "adam", "epochs": 10, "flag": 1},
                 tags={"team": "growth", "stage": "dev"})
    mem.register("m", files({"model.bin": b"v3 is larger", "vocab.txt": b"words"}), parent="m:1",
                 description="tuned", metrics={"acc": 0.85, "val_loss": 0.40, "f1": 0.7,
                                               "auc": math.nan, "new": 2.0},
                 params={"lr": 0.01, "opt": "adam", "epochs": 10, "flag": True},
                 tags={"team": "growth", "stage": "prod"})
    mem.promote("m:3")
    return mem.get("m:2"), mem.get("m:3")


def test_diff_holds_only_what_differs_with_deltas(pair):
    a, b = pair
    d = diff_versions(a, b)

    assert (d.a, d.b) == ("m:2", "m:3")
    assert set(d.fields) == {"aliases", "description", "parent"}
    assert d.fields["aliases"] == Change((), ("production",))
    assert d.fields["description"] == Change("baseline", "tuned")
    assert d.fields["parent"] == Change(None, "m:1")

    assert list(d.metrics) == ["acc", "auc", "gone", "new", "val_loss"]  # f1 is equal
    assert d.metrics["acc"].delta == pytest.approx(0.05)
    assert d.metrics["val_loss"].delta == pytest.approx(-0.10)
    assert d.metrics["auc"].a == 0.9 and math.isnan(d.metrics["auc"].b)
    assert d.metrics["auc"].delta is None                 # no number to subtract from NaN
    assert d.metrics["gone"] == Change(1.0, None, None)
    assert d.metrics["new"] == Change(None, 2.0, None)

    assert d.params == {"lr": Change(0.1, 0.01), "flag": Change(1, True)}  # True is not 1
    assert d.tags == {"stage": Change("dev", "prod")}
    assert list(d.files) == ["model.bin"]                  # vocab.txt has the same bytes
    change = d.files["model.bin"]
    assert change.a.sha256 != change.b.sha256 and change.delta == 10
    assert len(d) == 3 + 5 + 2 + 1 + 1 and d


def test_a_version_against_itself_has_no_differences(pair, read_html):
    a, _ = pair
    d = diff_versions(a, a)
    assert len(d) == 0 and not d
    assert repr(d) == "<Diff m:2 -> m:2: no differences>"
    assert "no differences" in read_html(diff_html(d)).text


def test_nan_against_nan_and_inf_against_inf_are_equal(mem, files):
    mem.register("m", files(), metrics={"x": math.nan, "y": math.inf, "z": -math.inf})
    mem.register("m", files(), metrics={"x": math.nan, "y": math.inf, "z": math.inf})
    d = diff_versions(mem.get("m:1"), mem.get("m:2"))
    assert list(d.metrics) == ["z"] and d.metrics["z"].delta is None


def test_text_is_one_line_per_difference(pair):
    text = repr(diff_versions(*pair))
    lines = text.splitlines()
    assert lines[0] == "<Diff m:2 -> m:3"
    assert "  metric acc: 0.8 -> 0.85 (+0.05)" in lines
    assert "  metric val_loss: 0.5 -> 0.4 (-0.1)" in lines
    assert "  param lr: 0.1 -> 0.01" in lines
    assert "  tag stage: dev -> prod" in lines
    assert "  aliases: (none) -> @production" in lines
    assert any(line.startswith("  file model.bin: ") and "(+10 B)" in line
               for line in lines)
    assert len(lines) == 1 + len(diff_versions(*pair)) and text.endswith(">")


def test_html_shows_deltas_with_arrows_coloured_by_better_or_worse(pair, read_html, bundle):
    d = diff_versions(*pair)
    markup = d._repr_html_()
    page = read_html(markup)

    assert "m:2 → m:3 · 12 differences" in page.text
    assert "▲ +0.05 (+6.2%)" in page.text                   # acc went up: better
    assert "▼ -0.1 (-20.0%)" in page.text                    # val_loss went down: better
    better = [v for t, k, v in page.attrs if k == "class" and v == "mlnb-better"]
    worse = [v for t, k, v in page.attrs if k == "class" and v == "mlnb-worse"]
    assert len(better) == 2 and not worse
    for key in ("acc", "val_loss", "auc", "gone", "new", "lr", "flag", "stage", "model.bin",
                "description", "parent", "aliases"):
        assert key in page.text
    for same in ("f1", "opt", "epochs", "team", "vocab.txt"):
        assert same not in page.text
    assert "added" in page.text and "removed" in page.text and "changed (+10 B)" in page.text
    assert "img" not in page.tags and "svg" not in page.tags

    data = bundle(d)
    assert data["text/plain"] == repr(d) and data["text/html"] == markup


def test_a_worse_metric_is_marked_worse(mem, files, read_html):
    mem.register("m", files(), metrics={"accuracy": 0.9, "rmse": 1.0})
    mem.register("m", files(), metrics={"accuracy": 0.7, "rmse": 2.0})
    page = read_html(diff_html(diff_versions(mem.get("m:1"), mem.get("m:2"))))
    worse = [v for t, k, v in page.attrs if k == "class" and v == "mlnb-worse"]
    assert len(worse) == 2
    assert "▼ -0.2 (-22.2%)" in page.text and "▲ +1 (+100.0%)" in page.text


def test_hostile_text_in_a_diff_stays_text(mem, files, read_html):
    mem.register("m", files(), metrics={HOSTILE: 1.0}, params={"p": HOSTILE})
    mem.register("m", files(), description=HOSTILE, tags={HOSTILE: HOSTILE})
    d = diff_versions(mem.get("m:1"), mem.get("m:2"))
    page = read_html(diff_html(d))
    assert "img" not in page.tags
    assert page.text.count(HOSTILE) == 5
