"""Quality gates: the strict gate language, its canonical text, JSON, and checks on estimates."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from html.parser import HTMLParser

import pytest

from mlnb.errors import InvalidArgument
from mlnb.evaluation.gates import Gate, GateReport, GateResult, check, parse_gate, parse_gates

KNOWN = ["accuracy", "f1_macro", "log_loss", "latency_p95_ms", "confusion_matrix", "my_score"]
HOSTILE = "<img src=x onerror=alert(1)>"


@dataclass(frozen=True)
class Est:
    """Stands for metrics.Estimate: gates need only value/lower/upper."""

    value: float
    lower: float | None = None
    upper: float | None = None


def gate(text: str) -> Gate:
    return parse_gate(text, known_metrics=KNOWN)


def error(text: str) -> str:
    with pytest.raises(InvalidArgument) as info:
        gate(text)
    message = str(info.value)
    assert "\n" not in message
    return message


# -- the language -------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "canonical", "fields"), [
    ("accuracy >= 0.95", "accuracy >= 0.95", ("accuracy", "value", ">=", 0.95, None, 0.0)),
    ("accuracy<=1", "accuracy <= 1", ("accuracy", "value", "<=", 1.0, None, 0.0)),
    ("latency_p95_ms < 20", "latency_p95_ms < 20", ("latency_p95_ms", "value", "<", 20.0, None, 0.0)),
    ("log_loss>1e-3", "log_loss > 0.001", ("log_loss", "value", ">", 0.001, None, 0.0)),
    ("log_loss > 2.5E+2", "log_loss > 250", ("log_loss", "value", ">", 250.0, None, 0.0)),
    ("my_score >= -0.5", "my_score >= -0.5", ("my_score", "value", ">=", -0.5, None, 0.0)),
    ("my_score >= - .5", "my_score >= -0.5", ("my_score", "value", ">=", -0.5, None, 0.0)),
    ("my_score >= -0", "my_score >= 0", ("my_score", "value", ">=", 0.0, None, 0.0)),
    ("accuracy.lower >= 0.9", "accuracy.lower >= 0.9", ("accuracy", "lower", ">=", 0.9, None, 0.0)),
    ("  accuracy . upper\t<= .99 ", "accuracy.upper <= 0.99",
     ("accuracy", "upper", "<=", 0.99, None, 0.0)),
    ("accuracy.value >= 0.9", "accuracy >= 0.9", ("accuracy", "value", ">=", 0.9, None, 0.0)),
    ("log_loss <= @staging", "log_loss <= @staging", ("log_loss", "value", "<=", None, "staging", 0.0)),
    ("accuracy >= @production - 0.005", "accuracy >= @production - 0.005",
     ("accuracy", "value", ">=", None, "production", -0.005)),
    ("accuracy>=@production -0.005", "accuracy >= @production - 0.005",
     ("accuracy", "value", ">=", None, "production", -0.005)),
    ("latency_p95_ms <= @production+2", "latency_p95_ms <= @production + 2",
     ("latency_p95_ms", "value", "<=", None, "production", 2.0)),
    ("accuracy.lower >= @ champion.v2 + 1e-3", "accuracy.lower >= @champion.v2 + 0.001",
     ("accuracy", "lower", ">=", None, "champion.v2", 0.001)),
    ("accuracy >= @production - 0", "accuracy >= @production",
     ("accuracy", "value", ">=", None, "production", 0.0)),
    ("accuracy >= @canary-2 + 0", "accuracy >= @canary-2 + 0",
     ("accuracy", "value", ">=", None, "canary-2", 0.0)),
    ("accuracy >= @canary-2 - 0.01", "accuracy >= @canary-2 - 0.01",
     ("accuracy", "value", ">=", None, "canary-2", -0.01)),
    ("log_loss >= 0.1", "log_loss >= 0.1", ("log_loss", "value", ">=", 0.1, None, 0.0)),
])
def test_valid_gates_parse_to_fields_and_a_canonical_text_that_parses_back(text, canonical, fields):
    g = gate(text)
    assert (g.metric, g.bound, g.op, g.threshold, g.alias, g.offset) == fields
    assert g.text == str(g) == canonical
    assert g.is_relative is (fields[4] is not None)
    assert gate(canonical) == g
    assert repr(g) == f"<Gate {canonical}>"


OPS = "use >=, <=, > or <"
EXAMPLE = "e.g. 'accuracy >= 0.95' or 'accuracy >= @production - 0.005'"
RULE = "1-128 characters of letters, digits, '.', '_' or '-', starting with a letter or digit"


@pytest.mark.parametrize(("text", "message"), [
    ("acuracy >= 0.9", "gate 'acuracy >= 0.9': unknown metric 'acuracy'; known metrics: accuracy, "
     "confusion_matrix, f1_macro, latency_p95_ms, log_loss, my_score; did you mean 'accuracy'?"),
    ("Accuracy >= 0.9", "unknown metric 'Accuracy'; known metrics: accuracy,"),
    ("accuracy => 0.9", f"gate 'accuracy => 0.9': '=>' is not a comparison; {OPS}; "
     f"did you mean '>='?"),
    ("accuracy =< 0.9", "'=<' is not a comparison; use >=, <=, > or <; did you mean '<='?"),
    ("accuracy == 0.9", f"gate 'accuracy == 0.9': '==' is not allowed: metrics are floats and "
     f"equality is fragile; {OPS} (two gates for a range)"),
    ("accuracy = 0.9", "'=' is not allowed: metrics are floats"),
    ("accuracy != 0.9", f"'!=' is not a comparison; {OPS}"),
    ("accuracy 0.9", f"gate 'accuracy 0.9': expected a comparison after 'accuracy', not '0.9'; {OPS}"),
    ("accuracy", f"gate 'accuracy': no comparison after 'accuracy'; {OPS} and a value"),
    ("accuracy >= 95%", "gate 'accuracy >= 95%': percentages are not allowed (95%); "
     "write the fraction 0.95"),
    ("accuracy >= @production - 0.5 %", "percentages are not allowed (0.5%); write the fraction 0.005"),
    ("accuracy >=", "gate 'accuracy >=': nothing after '>='; give a number (0.95) or an alias "
     "(@production, @production - 0.005)"),
    ("accuracy >= @_prod", f"gate 'accuracy >= @_prod': invalid alias '_prod': an alias is {RULE}"),
    ("accuracy >= @prod/x", f"invalid alias 'prod/x': an alias is {RULE}"),
    ("accuracy >= @", f"gate 'accuracy >= @': '@' needs an alias name, as in '@production'; "
     f"an alias is {RULE}"),
    ("accuracy >= production", "'production' is not a number or an alias (0.95, @production); "
     "did you mean '@production'?"),
    ("accuracy.mean >= 0.9", "gate 'accuracy.mean >= 0.9': unknown bound '.mean' on 'accuracy'; "
     "use .lower, .upper or .value (the default)"),
    ("accuracy.lowr >= 0.9", "(the default); did you mean 'lower'?"),
    ("accuracy >= 0.9 and f1_macro >= 0.8", "gate 'accuracy >= 0.9 and f1_macro >= 0.8': "
     "unexpected 'and f1_macro >= 0.8' after '0.9'; write one comparison per gate"),
    ("accuracy >= 0.9 <= 1", "gate 'accuracy >= 0.9 <= 1': more than one comparison ('<= 1' after "
     "'0.9'); write one comparison per gate (two gates for a range)"),
    ("accuracy >= 0.9 - 0.01", "unexpected '- 0.01' after '0.9': only an alias takes an offset "
     "('@production - 0.005'); write the number itself"),
    ("accuracy >= @production * 2", "unexpected '* 2' after '@production': only '+ NUMBER' or "
     "'- NUMBER' may follow an alias"),
    ("accuracy >= @production - x", "'-' after '@production' needs a plain number, not 'x'"),
    ("accuracy >= @production -", "'-' after '@production' needs a plain number, not nothing"),
    ("accuracy >= @production-0.005", "gate 'accuracy >= @production-0.005': "
     "'@production-0.005' is ambiguous: write '@production - 0.005' for an offset, or "
     "'@production-0.005 + 0' for an alias named 'production-0.005'"),
    ("0.9 <= accuracy", f"gate '0.9 <= accuracy': a gate starts with a metric name, not '0.9'; "
     f"{EXAMPLE}"),
    (">= 0.9", f"gate '>= 0.9': no metric before '>='; write METRIC OP VALUE, {EXAMPLE}"),
    ("   ", f"a gate is empty: write METRIC OP VALUE, {EXAMPLE}"),
    ("accuracy >= nan", "'nan' is not a number or an alias (0.95, @production)"),
    ("accuracy >= 1e999", "'1e999' is not a finite number"),
    ("confusion_matrix >= 0.9", "gate 'confusion_matrix >= 0.9': 'confusion_matrix' is not a "
     "single number and cannot be gated; gate a scalar metric such as 'accuracy'"),
])
def test_each_bad_gate_is_one_line_that_names_the_bad_part(text, message):
    got = error(text)
    assert message in got
    assert got.startswith("a gate is empty") or got.startswith(f"gate {text!r}: ")


def test_nan_is_not_suggested_as_an_alias():
    assert "did you mean" not in error("accuracy >= nan")


def test_a_gate_must_be_a_string_and_known_metrics_a_collection():
    with pytest.raises(InvalidArgument, match="a gate must be a string.*not int: 3"):
        parse_gate(3, known_metrics=KNOWN)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match=r"not the string 'accuracy': use \['accuracy'\]"):
        parse_gate("accuracy >= 0.9", known_metrics="accuracy")


def test_parse_gates_keeps_order_refuses_duplicates_and_takes_one_string():
    gates = parse_gates(["accuracy >= 0.9", "log_loss <= @production"], known_metrics=KNOWN)
    assert [str(g) for g in gates] == ["accuracy >= 0.9", "log_loss <= @production"]
    assert parse_gates("accuracy>=0.9", known_metrics=KNOWN) == (gate("accuracy >= 0.9"),)
    assert parse_gates([gates[0]], known_metrics=KNOWN) == gates[:1]
    assert parse_gates([], known_metrics=KNOWN) == ()
    with pytest.raises(InvalidArgument) as info:
        parse_gates(["accuracy >= 0.9", "accuracy>=.90"], known_metrics=KNOWN)
    assert str(info.value) == ("gate 'accuracy >= 0.9' is given twice ('accuracy >= 0.9' and "
                               "'accuracy>=.90'); drop one")
    with pytest.raises(InvalidArgument, match="unknown metric 'my_score'"):
        parse_gates([gates[0], "my_score > 0"], known_metrics=["accuracy"])


def test_json_round_trip_and_tampered_records():
    for text in ("accuracy.lower >= 0.9", "accuracy >= @production - 0.005", "log_loss < 1e-10",
                 "accuracy >= @canary-2 + 0"):
        g = gate(text)
        assert Gate.from_dict(json.loads(json.dumps(g.to_dict()))) == g
    # Stored gates load without knowing the task's metrics (a user metric may be gone).
    assert Gate.from_dict({"text": "old_metric >= 1"}).metric == "old_metric"
    stored = gate("accuracy >= 0.95").to_dict() | {"threshold": 0.5}
    with pytest.raises(InvalidArgument, match="disagrees with its text on threshold"):
        Gate.from_dict(stored)
    with pytest.raises(InvalidArgument, match="'=>' is not a comparison"):
        Gate.from_dict({"text": "accuracy => 1"})
    with pytest.raises(InvalidArgument, match="must be a mapping with its 'text'"):
        Gate.from_dict({"metric": "accuracy"})


# -- checks -------------------------------------------------------------------------------

def one(text, estimates, reference=None) -> GateResult:
    (result,) = check([gate(text)], estimates, reference=reference).results
    return result


@pytest.mark.parametrize(("text", "passed"), [
    ("accuracy >= 0.9", True), ("accuracy > 0.9", False),
    ("accuracy <= 0.9", True), ("accuracy < 0.9", False),
    ("accuracy >= 0.9000001", False), ("accuracy > 0.8999999", True),
])
def test_absolute_gates_at_the_boundary(text, passed):
    r = one(text, {"accuracy": Est(0.9)})
    assert r.passed is passed
    assert r.actual == 0.9 and r.required == gate(text).threshold


def test_reasons_say_the_comparison_with_enough_digits_to_differ():
    assert one("accuracy >= 0.95", {"accuracy": Est(0.931)}).reason == "accuracy 0.931 < 0.95"
    assert one("accuracy >= 0.95", {"accuracy": Est(0.962)}).reason == "accuracy 0.962 >= 0.95"
    assert one("accuracy >= 0.95", {"accuracy": Est(0.94996)}).reason == "accuracy 0.94996 < 0.95"


def test_interval_bounds_are_used_when_asked_and_missing_ones_are_undecided():
    est = {"accuracy": Est(0.93, 0.91, 0.95)}
    assert one("accuracy.lower >= 0.92", est).passed is False
    assert one("accuracy.lower >= 0.92", est).actual == 0.91
    assert one("accuracy.lower >= 0.92", est).reason == "accuracy.lower 0.91 < 0.92"
    assert one("accuracy >= 0.92", est).passed is True
    assert one("accuracy.upper <= 0.95", est).passed is True
    r = one("accuracy.lower >= 0.9", {"accuracy": Est(0.93)})
    assert r.passed is None
    assert r.reason == "accuracy has no lower bound: its interval could not be computed"


def test_relative_gates_compare_with_the_alias_point_estimate_plus_offset():
    mine = {"accuracy": Est(0.896, 0.88, 0.91), "log_loss": Est(0.30)}
    ref = {"production": {"accuracy": Est(0.9, 0.85, 0.95), "log_loss": Est(0.31)},
           "staging": {"accuracy": Est(0.8), "log_loss": Est(0.29)}}
    r = one("accuracy >= @production - 0.005", mine, ref)
    assert r.passed is True and r.required == pytest.approx(0.895)
    assert r.reason == "accuracy 0.896 >= 0.895 (@production 0.9 - 0.005)"
    r = one("accuracy >= @production - 0.001", mine, ref)
    assert r.passed is False and r.reason == "accuracy 0.896 < 0.899 (@production 0.9 - 0.001)"
    assert one("accuracy >= @staging + 0.09", mine, ref).passed is True
    assert one("accuracy >= @staging + 0.1", mine, ref).passed is False
    assert one("log_loss <= @production", mine, ref).passed is True
    assert one("log_loss <= @staging", mine, ref).reason == "log_loss 0.3 > 0.29 (@staging 0.29)"
    # The alias side is its point estimate even when the gate takes our lower bound.
    r = one("accuracy.lower >= @production - 0.02", mine, ref)
    assert r.passed is True and r.actual == 0.88 and r.required == pytest.approx(0.88)


def test_a_tie_after_subtracting_an_offset_is_a_tie_not_float_noise():
    assert 0.93 - 0.1 > 0.83  # the noise this guards against
    ref = {"production": {"accuracy": Est(0.93)}}
    r = one("accuracy >= @production - 0.1", {"accuracy": Est(0.83)}, ref)
    assert r.passed is True and r.reason == "accuracy 0.83 >= 0.83 (@production 0.93 - 0.1)"
    assert one("accuracy > @production - 0.1", {"accuracy": Est(0.83)}, ref).passed is False


def test_relative_gates_without_a_comparable_reference():
    mine = {"accuracy": Est(0.9)}
    for reference in (None, {}, {"staging": {"accuracy": Est(0.5)}}):
        r = one("accuracy >= @production", mine, reference)
        assert r.passed is None and r.actual == 0.9 and r.required is None
        assert r.reason == "no evaluation of @production on this data: evaluate it first"
    r = one("accuracy >= @production", mine, {"production": {"log_loss": Est(0.2)}})
    assert r.passed is None
    assert r.reason == ("the evaluation of @production on this data has no accuracy: "
                        "evaluate it with that metric")


def test_an_alias_that_holds_no_version_passes_so_a_first_version_can_be_promoted():
    r = one("accuracy >= @production - 0.005", {"accuracy": Est(0.5)}, {"production": None})
    assert r.passed is True and r.required is None
    assert r.reason == "no version holds @production yet, nothing to compare"


def test_nan_fails_on_either_side_even_against_an_empty_alias():
    nan = float("nan")
    r = one("accuracy >= 0.9", {"accuracy": Est(nan)})
    assert r.passed is False and math.isnan(r.actual) and r.reason == "accuracy is NaN"
    assert one("log_loss <= 1", {"log_loss": Est(nan)}).passed is False
    assert one("accuracy.lower >= 0.9", {"accuracy": Est(0.95, nan, nan)}).reason == \
        "accuracy.lower is NaN"
    assert one("accuracy >= @production", {"accuracy": Est(nan)}, {"production": None}).passed \
        is False
    r = one("accuracy >= @production", {"accuracy": Est(0.9)}, {"production": {"accuracy": Est(nan)}})
    assert r.passed is False and r.reason == "accuracy of @production is NaN"


def test_a_missing_metric_is_not_decided_and_the_report_does_not_pass():
    report = check(parse_gates(["accuracy >= 0.9", "f1_macro >= 0.8"], known_metrics=KNOWN),
                   {"accuracy": Est(0.95)})
    assert [r.passed for r in report] == [True, None]
    assert report.results[1].reason == "f1_macro is not in this evaluation: evaluate with that metric"
    assert report.passed is False and not report and len(report) == 2
    assert report.undecided == report.results[1:] and report.failed == ()


def test_report_summary_repr_and_empty_report():
    gates = parse_gates(["accuracy >= 0.95", "log_loss <= 0.5", "latency_p95_ms <= 20"],
                        known_metrics=KNOWN)
    est = {"accuracy": Est(0.931), "log_loss": Est(0.2), "latency_p95_ms": Est(12.0)}
    report = check(gates, est)
    assert report.summary() == "3 gates: 2 passed, 1 failed: accuracy >= 0.95 (0.931)"
    assert repr(report) == "<GateReport FAILED: 3 gates: 2 passed, 1 failed: accuracy >= 0.95 (0.931)>"
    ok = check(gates[1:], est)
    assert ok.passed and ok and ok.summary() == "2 gates: 2 passed"
    mixed = check(parse_gates(["accuracy >= @production", "f1_macro > 0"], known_metrics=KNOWN),
                  {"accuracy": Est(0.9)}, reference={"production": {"accuracy": Est(0.95)}})
    assert mixed.summary() == ("2 gates: 0 passed, 1 failed, 1 not decided: accuracy >= "
                               "@production (0.9 vs 0.95); f1_macro > 0 (f1_macro is not in this "
                               "evaluation: evaluate with that metric)")
    empty = check([], est)
    assert empty.passed and empty.summary() == "no gates: nothing to check"
    assert check(gates[0], est).results[0].gate == gates[0]


def test_check_takes_parsed_gates_only():
    with pytest.raises(InvalidArgument, match="check\\(\\) takes parsed gates, not str .*parse_gates"):
        check(["accuracy >= 0.9"], {"accuracy": Est(1.0)})  # type: ignore[list-item]


class _Page(HTMLParser):
    def __init__(self, markup: str) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text = ""
        self.feed(markup)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)

    def handle_data(self, data):
        self.text += data


def test_html_is_a_table_of_results_with_user_text_escaped():
    report = check(parse_gates(["accuracy >= 0.95", "f1_macro > @production"], known_metrics=KNOWN),
                   {"accuracy": Est(0.931), "f1_macro": Est(0.8)})
    page = _Page(report._repr_html_())
    assert page.tags.count("tr") == 3
    assert "✘ failed" in page.text and "? not decided" in page.text and "0.931" in page.text
    assert "no evaluation of @production on this data" in page.text
    # Names that reach a report are validated, but a report still escapes whatever it holds.
    hostile = Gate(metric=HOSTILE, bound="value", op=">=", alias=HOSTILE)
    report = GateReport((GateResult(hostile, None, None, None, f"no version holds @{HOSTILE}"),))
    markup = report._repr_html_()
    page = _Page(markup)
    assert "img" not in page.tags and "script" not in markup.lower().replace("<style>", "")
    assert page.text.count(HOSTILE) >= 2
