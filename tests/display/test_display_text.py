"""The small formatters under the renderers: sizes, deltas, values, metric direction."""

from __future__ import annotations

import math

import pytest

from mlnb.display import fmt_delta, fmt_value, human_size
from mlnb.display.markup import lower_is_better


@pytest.mark.parametrize(("n", "text"), [
    (0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (1536, "1.5 KiB"),
    (5 * 1024**3, "5.0 GiB"), (3 * 1024**5, "3072.0 TiB"), (None, ""),
])
def test_human_size(n, text):
    assert human_size(n) == text


@pytest.mark.parametrize(("value", "text"), [
    (0.05, "+0.05"), (-0.1, "-0.1"), (123456.0, "+1.235e+05"), (None, ""), (math.inf, "inf"),
])
def test_fmt_delta(value, text):
    assert fmt_delta(value) == text


def test_fmt_value_keeps_strings_and_writes_the_rest_as_json():
    assert fmt_value("adam") == "adam"
    assert fmt_value({"b": [1, 2], "a": None}) == '{"a": null, "b": [1, 2]}'
    assert fmt_value(True) == "true" and fmt_value(None) == "null"
    assert fmt_value("two\nlines") == "two lines"
    assert fmt_value("x" * 10, limit=5) == "xxxx…"


@pytest.mark.parametrize("name", ["loss", "val_loss", "trainLoss", "RMSE", "test-mae", "wer",
                                  "p95_latency", "error_rate"])
def test_names_to_minimise(name):
    assert lower_is_better(name)


@pytest.mark.parametrize("name", ["acc", "accuracy", "f1", "auc", "bleu", "recall@10", "lossless"])
def test_names_to_maximise(name):
    assert not lower_is_better(name)
