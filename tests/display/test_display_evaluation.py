"""Evaluation and comparison HTML: escaped user text, balanced safe markup, SVG figures."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mlnb.display.evaluation import (
    CONFUSION_MAX_CLASSES,
    comparison_html,
    confusion_svg,
    evaluation_html,
    reliability_svg,
)
from mlnb.evaluation.accumulate import accumulate
from mlnb.evaluation.gates import check, parse_gates
from mlnb.evaluation.metrics import Estimate, reliability
from mlnb.evaluation.paired import PairedDifference, mcnemar_exact
from mlnb.evaluation.report import Comparison, Evaluation, MetricComparison

HOSTILE = '<script>alert("x")</script>&<b onmouseover=1>'


def _reliability() -> dict:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(300, 3)) * 2
    return reliability(accumulate("classification", logits, rng.integers(0, 3, 300)))


def _evaluation(ref: str = HOSTILE, **extra) -> Evaluation:
    estimates = {
        "accuracy": Estimate("accuracy", 0.9, 0.88, 0.92),
        "roc_auc": Estimate("roc_auc", math.nan, None, None, note=HOSTILE),
        "latency_p95_ms": Estimate("latency_p95_ms", 3.5, note="per batch"),
    }
    fields = {"ref": ref, "task": "classification", "n": 1234, "estimates": estimates,
              "data_fingerprint": "ab" * 32, "confusion": np.array([[50, 3], [7, 40]]),
              "reliability": _reliability(), "record_id": 7, "device": "cpu",
              "details": {"batch_size": 256, "n_bootstrap": 1000, "seed": 0}}
    fields.update(extra)
    return Evaluation(**fields)


def test_hostile_text_is_escaped_and_the_markup_is_safe(read_html):
    gates = check(parse_gates(["accuracy >= 0.95", "latency_p95_ms <= 10"],
                              known_metrics={"accuracy", "latency_p95_ms"}),
                  _evaluation().estimates)
    ev = _evaluation(gates=gates)
    markup = evaluation_html(ev)
    page = read_html(markup)
    assert HOSTILE in page.text  # shown as text, never as markup
    assert "<b onmouseover" not in markup
    assert "Evaluation of" in page.text and "1,234 examples" in page.text
    assert "stored as evaluation #7" in page.text and "data abababababab" in page.text
    assert "gates not passed" in page.text and "✘ failed" in page.text and "✔ passed" in page.text
    assert "[0.88, 0.92]" in page.text


def test_the_evaluation_has_both_figures_as_svg(read_html):
    page = read_html(evaluation_html(_evaluation(ref="m:3")))
    assert page.count("svg") == 2
    classes = [v for tag, k, v in page.attrs if tag == "svg" and k == "class"]
    assert classes == ["mlnb-confusion", "mlnb-reliability"]


def test_confusion_svg_is_a_heat_map_with_counts(read_html):
    matrix = np.array([[50, 3, 0], [7, 40, 1], [0, 2, 1234]])
    page = read_html(confusion_svg(matrix, labels=["cat", "dog", HOSTILE]))
    assert page.count("rect") == 9
    for count in ("50", "40", "1,234"):
        assert count in page.text
    assert "true cat, predicted dog: 3 (5.7% of row)" in page.text  # the tooltip
    assert HOSTILE[:12] in page.text
    shades = [float(v) for tag, k, v in page.attrs if tag == "rect" and k == "fill-opacity"]
    assert max(shades) == shades[8] and min(shades) == shades[2]  # 1234 of its row vs 0


def test_confusion_svg_gives_way_to_a_note_with_too_many_classes(read_html):
    k = CONFUSION_MAX_CLASSES + 1
    assert confusion_svg(np.eye(k, dtype=int)) == ""
    page = read_html(evaluation_html(_evaluation(ref="m:3", confusion=np.eye(k, dtype=int))))
    assert f"confusion matrix: {k} classes, too many to draw" in page.text


def test_reliability_svg_draws_one_bar_per_filled_bin(read_html):
    rel = _reliability()
    page = read_html(reliability_svg(rel))
    assert page.count("rect") == sum(1 for c in rel["count"] if c)
    assert f"Reliability diagram, ECE {rel['ece']:.4g}" in page.text
    assert "confidence" in page.text and "accuracy" in page.text


def test_comparison_html_escapes_and_shows_each_metric(read_html):
    a = _evaluation(ref=HOSTILE)
    b = _evaluation(ref="m:3")
    mc = mcnemar_exact(np.array([1, 1, 0, 0, 1] * 20), np.array([1, 1, 1, 0, 1] * 20))
    pd = PairedDifference(0.3, 0.25, -0.05, -0.08, -0.02, 0.004, n=100, n_bootstrap=1000)
    results = {
        "accuracy": MetricComparison("accuracy", a["accuracy"], b["accuracy"], mc, 0.0001,
                                     "better"),
        "log_loss": MetricComparison("log_loss", Estimate("log_loss", 0.3),
                                     Estimate("log_loss", 0.25), pd, 0.008, "better"),
        "roc_auc": MetricComparison("roc_auc", a["roc_auc"], b["roc_auc"], None, None,
                                    "not tested", note=HOSTILE),
    }
    cmp = Comparison(a=a, b=b, results=results, verdict=f"m:3 is better than {HOSTILE}")
    markup = comparison_html(cmp)
    page = read_html(markup)
    assert page.text.count(HOSTILE) >= 3  # header, verdict, column title, note
    assert "<script" not in markup
    assert "+0.2 [" in page.text and "McNemar exact" in page.text
    assert "-0.05 [-0.08, -0.02]" in page.text and "not tested" in page.text
    assert page.count("tr") == 4


def test_reprs_are_short_and_both_mime_types_exist(bundle):
    ev = _evaluation(ref="m:3")
    assert repr(ev) == ("<Evaluation m:3 on 1,234 examples: accuracy 0.9 [0.88, 0.92], roc_auc "
                        "nan, latency_p95_ms 3.5>")
    data = bundle(ev)
    assert "text/plain" in data and "<svg" in data["text/html"]


@pytest.mark.parametrize("missing", ["confusion", "reliability"])
def test_an_evaluation_without_figures_renders(read_html, missing):
    page = read_html(evaluation_html(_evaluation(ref="m:3", **{missing: None})))
    assert page.count("svg") == 1
