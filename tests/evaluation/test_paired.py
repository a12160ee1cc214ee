"""Paired comparison: McNemar's exact test, the paired bootstrap, Holm, and the verdict line.

The statistics are checked against scipy's own functions, a published worked
example, and by simulation (coverage, size, power) with fixed seeds; the
tolerances are three binomial standard errors of the simulated rate.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binomtest

from mlnb.errors import InvalidArgument
from mlnb.evaluation import paired
from mlnb.evaluation.paired import (
    McNemar,
    PairedDifference,
    holm,
    mcnemar_exact,
    paired_bootstrap,
    vectorised,
    verdict,
)


def _arrays(n11: int, n01: int, n10: int, n00: int) -> tuple[np.ndarray, np.ndarray]:
    """Correctness of A and B with the given 2x2 counts (n01: A wrong, B right)."""
    a = np.repeat([True, False, True, False], [n11, n01, n10, n00])
    b = np.repeat([True, True, False, False], [n11, n01, n10, n00])
    return a, b


def _simulate_correctness(rng, probs, n: int, reps: int):
    """``reps`` paired samples of n examples; probs of (both right, only B, only A, neither)."""
    cell = rng.choice(4, size=(reps, n), p=probs)
    return (cell == 0) | (cell == 2), (cell == 0) | (cell == 1)


def _tol(rate: float, reps: int) -> float:
    return 3 * math.sqrt(rate * (1 - rate) / reps)


# --- McNemar ---------------------------------------------------------------------------------

def test_mcnemar_p_value_is_scipys_exact_binomial_test():
    for n01 in range(0, 26):
        for n10 in range(0, 26, 3):
            r = mcnemar_exact(*_arrays(40, n01, n10, 7))
            assert (r.n01, r.n10, r.n) == (n01, n10, 47 + n01 + n10)
            expected = 1.0 if n01 + n10 == 0 else binomtest(n01, n01 + n10, 0.5).pvalue
            assert r.p_value == pytest.approx(expected, rel=1e-12, abs=1e-300)
    big = mcnemar_exact(*_arrays(5000, 340, 260, 400))
    assert big.p_value == pytest.approx(binomtest(260, 600, 0.5).pvalue, rel=1e-9)


def test_mcnemar_matches_statsmodels_when_installed():
    contingency = pytest.importorskip("statsmodels.stats.contingency_tables")
    for n11, n01, n10, n00 in [(30, 5, 1, 10), (100, 12, 20, 8), (3, 0, 4, 0), (50, 9, 9, 5)]:
        table = [[n11, n10], [n01, n00]]
        expected = contingency.mcnemar(table, exact=True).pvalue
        assert mcnemar_exact(*_arrays(n11, n01, n10, n00)).p_value == pytest.approx(expected)


def test_mcnemar_counts_accuracies_and_difference():
    a, b = _arrays(n11=70, n01=12, n10=5, n00=13)
    r = mcnemar_exact(a.astype(int), b.astype(float))  # 0/1 numbers work like booleans
    assert r.accuracy_a == pytest.approx(0.75) and r.accuracy_b == pytest.approx(0.82)
    assert r.difference == pytest.approx(0.07) == r.accuracy_b - r.accuracy_a
    assert r.lower < r.difference < r.upper
    swapped = mcnemar_exact(b, a)
    assert (swapped.n01, swapped.n10) == (5, 12) and swapped.p_value == r.p_value
    assert (swapped.lower, swapped.upper) == pytest.approx((-r.upper, -r.lower))


def test_newcombe_interval_matches_the_published_worked_example():
    # Bentur et al. (2009), airway hyper-responsiveness before/after stem cell
    # transplantation: table [[1, 1], [7, 12]]; Fagerland, Lydersen & Laake (2014)
    # give the Newcombe hybrid score interval -0.507 to -0.026 for p1 - p2.
    # Here "after" is model A (p2) and "before" model B (p1).
    r = mcnemar_exact(*_arrays(n11=1, n01=1, n10=7, n00=12))
    assert r.difference == pytest.approx(-6 / 21)
    assert (round(r.lower, 3), round(r.upper, 3)) == (-0.507, -0.026)


def test_newcombe_interval_approaches_wald_for_large_samples():
    n11, n01, n10, n00 = 700_000, 60_000, 50_000, 190_000
    r = mcnemar_exact(*_arrays(n11, n01, n10, n00))
    n = n11 + n01 + n10 + n00
    d = (n01 - n10) / n
    se = math.sqrt(((n01 + n10) / n - d * d) / n)
    assert r.lower == pytest.approx(d - 1.959964 * se, rel=1e-3)
    assert r.upper == pytest.approx(d + 1.959964 * se, rel=1e-3)


def test_mcnemar_when_the_models_agree_everywhere():
    for n11, n00 in [(80, 20), (100, 0), (0, 100)]:
        r = mcnemar_exact(*_arrays(n11, 0, 0, n00))
        assert (r.p_value, r.difference) == (1.0, 0.0)
        # A defined, finite interval around 0: agreement bounds the difference.
        assert -0.1 < r.lower <= 0.0 <= r.upper < 0.1


def test_mcnemar_level_is_at_most_alpha_under_the_null():
    rng = np.random.default_rng(11)
    reps = 3000
    a, b = _simulate_correctness(rng, [0.8, 0.06, 0.06, 0.08], n=200, reps=reps)
    rate = np.mean([mcnemar_exact(x, y).p_value <= 0.05 for x, y in zip(a, b)])
    assert rate <= 0.05 + _tol(0.05, reps)  # exact tests are conservative
    assert rate > 0.01


def test_mcnemar_has_power_against_a_clear_difference():
    rng = np.random.default_rng(12)
    a, b = _simulate_correctness(rng, [0.8, 0.08, 0.02, 0.10], n=300, reps=1000)
    power = np.mean([mcnemar_exact(x, y).p_value <= 0.05 for x, y in zip(a, b)])
    assert power > 0.85


@pytest.mark.parametrize(("probs", "n"), [
    ([0.80, 0.08, 0.04, 0.08], 100),
    ([0.60, 0.15, 0.15, 0.10], 100),
    ([0.88, 0.05, 0.03, 0.04], 500),
])
def test_mcnemar_interval_covers_the_true_difference_95_percent(probs, n):
    rng = np.random.default_rng(int(1000 * probs[1]) + n)
    reps = 1500
    a, b = _simulate_correctness(rng, probs, n=n, reps=reps)
    truth = probs[1] - probs[2]
    results = [mcnemar_exact(x, y) for x, y in zip(a, b)]
    coverage = np.mean([r.lower <= truth <= r.upper for r in results])
    assert 0.95 - _tol(0.95, reps) <= coverage <= 0.985


def test_mcnemar_interval_follows_the_confidence_level():
    a, b = _arrays(60, 15, 6, 19)
    widths = [mcnemar_exact(a, b, confidence=c) for c in (0.8, 0.95, 0.99)]
    assert widths[0].upper - widths[0].lower < widths[1].upper - widths[1].lower
    assert widths[1].upper - widths[1].lower < widths[2].upper - widths[2].lower


@pytest.mark.parametrize(("a", "b", "message"), [
    ([], [], "no examples"),
    ([1, 0, 1], [1, 0], "differ in length"),
    ([1, 2, 0], [1, 0, 0], "booleans or 0/1"),
    (["x", "y"], ["x", "y"], "booleans or 0/1"),
    ([[1, 0]], [[1, 0]], "1-D"),
    ([1.0, float("nan")], [1, 0], "booleans or 0/1"),
])
def test_mcnemar_refuses_bad_input(a, b, message):
    with pytest.raises(InvalidArgument, match=message):
        mcnemar_exact(a, b)


def test_mcnemar_refuses_a_confidence_outside_0_1():
    with pytest.raises(InvalidArgument, match="confidence must lie strictly between 0 and 1"):
        mcnemar_exact([1], [0], confidence=1.5)


def test_mcnemar_repr_is_short():
    text = repr(mcnemar_exact(*_arrays(80, 9, 1, 10)))
    assert text.startswith("McNemar(accuracy +8.00 points [") and "n01=9, n10=1, n=100" in text
    assert len(text) < 100


# --- paired bootstrap ------------------------------------------------------------------------

def _paired_losses(rng, n: int, shift: float, shared: float = 1.0, own: float = 0.3):
    """Per-example losses of two models whose errors share a large common part."""
    common = shared * rng.standard_normal(n)
    return common + own * rng.standard_normal(n), common + shift + own * rng.standard_normal(n)


def test_bootstrap_difference_and_its_fields():
    a, b = _paired_losses(np.random.default_rng(0), 500, 0.1)
    r = paired_bootstrap(a, b, n_bootstrap=2000, seed=3)
    assert isinstance(r, PairedDifference)
    assert (r.value_a, r.value_b) == pytest.approx((a.mean(), b.mean()))
    assert r.difference == pytest.approx(b.mean() - a.mean())
    assert r.lower < r.difference < r.upper and (r.n, r.n_bootstrap) == (500, 2000)
    # Against the normal approximation: se of the paired mean difference.
    se = (b - a).std(ddof=1) / math.sqrt(500)
    assert r.upper - r.lower == pytest.approx(2 * 1.959964 * se, rel=0.1)
    assert r.p_value == pytest.approx(2 / 2001)  # no resample reaches 0: the smallest p
    assert r == paired_bootstrap(a, b, n_bootstrap=2000, seed=3)  # same seed, same answer
    assert repr(r).startswith("PairedDifference(+0.") and "B=2000" in repr(r)


def test_bootstrap_metric_forms_agree_on_the_same_resamples():
    rng = np.random.default_rng(1)
    a, b = _paired_losses(rng, 300, 0.05)
    as_mean = paired_bootstrap(a, b, n_bootstrap=300, seed=7)
    as_loop = paired_bootstrap(a, b, lambda v, idx: v[idx].mean(), n_bootstrap=300, seed=7)
    as_chunks = paired_bootstrap(a, b, vectorised(lambda v, idx: v[idx].mean(axis=1)),
                                 n_bootstrap=300, seed=7)
    for other in (as_loop, as_chunks):
        assert other.difference == pytest.approx(as_mean.difference)
        assert (other.lower, other.upper) == pytest.approx((as_mean.lower, as_mean.upper))
        assert other.p_value == as_mean.p_value


def test_bootstrap_takes_tuples_for_metrics_of_several_arrays():
    # Perplexity-like: exp(sum nll / sum tokens), tokens shared by both models.
    rng = np.random.default_rng(2)
    tokens = rng.integers(5, 50, size=400)
    nll_a = tokens * rng.gamma(4.0, 0.5, size=400)
    nll_b = nll_a * 0.97 + tokens * rng.normal(0, 0.05, size=400)

    def ppl(v, idx):
        return math.exp(v[0][idx].sum() / v[1][idx].sum())

    def ppl_chunks(v, idx):
        return np.exp(v[0][idx].sum(axis=1) / v[1][idx].sum(axis=1))

    loop = paired_bootstrap((nll_a, tokens), (nll_b, tokens), ppl, n_bootstrap=200)
    fast = paired_bootstrap((nll_a, tokens), (nll_b, tokens), vectorised(ppl_chunks),
                            n_bootstrap=200)
    assert loop.value_a == pytest.approx(math.exp(nll_a.sum() / tokens.sum()))
    assert (fast.lower, fast.upper, fast.p_value) == pytest.approx(
        (loop.lower, loop.upper, loop.p_value))


def test_bootstrap_gives_the_same_answer_whatever_the_chunk_size(monkeypatch):
    a, b = _paired_losses(np.random.default_rng(3), 97, 0.1)
    whole = paired_bootstrap(a, b, n_bootstrap=250, seed=5)
    monkeypatch.setattr(paired, "_CHUNK_ELEMENTS", 97 * 7)  # 36 chunks, the last one short
    assert paired_bootstrap(a, b, n_bootstrap=250, seed=5) == whole


def test_bootstrap_interval_covers_the_true_difference_95_percent():
    reps, n, delta = 1000, 200, 0.1
    rng = np.random.default_rng(21)
    hits = 0
    for seed in range(reps):
        a, b = _paired_losses(rng, n, delta, shared=1.0, own=0.5)
        r = paired_bootstrap(a, b, n_bootstrap=400, seed=seed)
        hits += r.lower <= delta <= r.upper
    # The percentile interval runs a little short at n = 200; allow 1 point of that.
    assert abs(hits / reps - 0.95) <= _tol(0.95, reps) + 0.01


@pytest.mark.parametrize("kind", ["losses", "correctness"])
def test_bootstrap_p_value_has_its_size_under_the_null(kind):
    reps, n = 1000, 200
    rng = np.random.default_rng(31 if kind == "losses" else 32)
    rejections = 0
    for seed in range(reps):
        if kind == "losses":
            a, b = _paired_losses(rng, n, 0.0, own=0.5)
        else:
            a, b = _simulate_correctness(rng, [0.8, 0.06, 0.06, 0.08], n, 1)
            a, b = a[0].astype(float), b[0].astype(float)
        rejections += paired_bootstrap(a, b, n_bootstrap=200, seed=seed).p_value <= 0.05
    assert abs(rejections / reps - 0.05) <= _tol(0.05, reps) + 0.01


def test_bootstrap_p_value_detects_a_real_difference():
    rng = np.random.default_rng(41)
    small = [paired_bootstrap(*_paired_losses(rng, 200, 0.2, own=0.5), n_bootstrap=400,
                              seed=s).p_value <= 0.05 for s in range(200)]
    assert np.mean(small) > 0.9


def test_bootstrap_is_paired_not_two_independent_samples():
    rng = np.random.default_rng(51)
    a, b = _paired_losses(rng, 1000, 0.05, shared=1.0, own=0.1)
    r = paired_bootstrap(a, b, n_bootstrap=1000, seed=0)
    ia, ib = rng.integers(0, 1000, size=(2, 1000, 1000))
    unpaired = b[ib].mean(axis=1) - a[ia].mean(axis=1)
    lo, hi = np.quantile(unpaired, [0.025, 0.975])
    assert r.upper - r.lower < 0.25 * (hi - lo)
    assert r.lower > 0 > lo  # the pairing is what makes the difference visible


def test_bootstrap_of_identical_models():
    a = np.random.default_rng(4).standard_normal(50)
    r = paired_bootstrap(a, a.copy(), n_bootstrap=100)
    assert (r.difference, r.lower, r.upper, r.p_value) == (0.0, 0.0, 0.0, 1.0)


def test_bootstrap_leaves_out_resamples_where_the_metric_is_undefined():
    y = np.array([0] * 3 + [1] * 97)

    def recall0(v, idx):  # undefined (nan) when no example of class 0 is drawn
        pos = y[idx] == 0
        return v[idx][pos].mean() if pos.any() else float("nan")

    a = np.ones(100)
    b = np.where(np.arange(100) < 2, 0.0, 1.0)
    r = paired_bootstrap(a, b, recall0, n_bootstrap=400)
    assert 300 < r.n_bootstrap < 400  # about (1 - 0.97**100) of them are usable
    with pytest.raises(InvalidArgument, match="undefined on"):
        paired_bootstrap(a, b, lambda v, idx: v[idx].mean() if (np.diff(idx) == 1).all()
                         else float("nan"), n_bootstrap=50)


@pytest.mark.parametrize(("a", "b", "kwargs", "message"), [
    ([], [], {}, "no examples"),
    ([1.0, 2.0], [1.0], {}, "differ in length"),
    ([1.0, float("nan")], [1.0, 2.0], {}, "NaN or infinite"),
    ([[1.0, 2.0]], [[1.0, 2.0]], {}, "1-D array"),
    ([1.0, 2.0], [1.0, 2.0], {"n_bootstrap": 0}, "n_bootstrap"),
    ([1.0, 2.0], [1.0, 2.0], {"confidence": 95}, "confidence"),
    ([1.0, 2.0], [1.0, 2.0], {"metric": "median"}, "unknown metric"),
    ([1.0, 2.0], [1.0, 2.0], {"metric": 3}, "must be \"mean\" or a function"),
    ((np.ones(3), np.ones(4)), (np.ones(3), np.ones(3)), {"metric": len}, "one length"),
])
def test_bootstrap_refuses_bad_input(a, b, kwargs, message):
    with pytest.raises(InvalidArgument, match=message):
        paired_bootstrap(a, b, **kwargs)


def test_bootstrap_refuses_a_metric_not_finite_on_the_data():
    with pytest.raises(InvalidArgument, match="not finite on the data"):
        paired_bootstrap(np.ones(5), np.ones(5), lambda v, idx: float("nan"))


# --- Holm ------------------------------------------------------------------------------------

def test_holm_against_a_hand_computed_reference():
    raw = {"accuracy": 0.01, "log_loss": 0.04, "ece": 0.03, "f1_macro": 0.005}
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> running max 0.06
    assert holm(raw) == pytest.approx(
        {"accuracy": 0.03, "log_loss": 0.06, "ece": 0.06, "f1_macro": 0.02})
    assert list(holm(raw)) == list(raw)
    assert holm({"a": 0.3, "b": 0.6}) == {"a": 0.6, "b": 0.6}
    assert holm({"only": 0.04}) == {"only": 0.04}
    assert holm({}) == {}


def test_holm_matches_statsmodels_when_installed():
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    rng = np.random.default_rng(61)
    for _ in range(50):
        p = rng.uniform(0, 0.2, size=rng.integers(1, 9))
        expected = multitest.multipletests(p, method="holm")[1]
        got = holm({str(i): float(v) for i, v in enumerate(p)})
        assert list(got.values()) == pytest.approx(list(expected))


def test_holm_rejects_exactly_what_the_step_down_procedure_rejects():
    rng = np.random.default_rng(62)
    for _ in range(300):
        m = int(rng.integers(1, 8))
        p = {f"m{i}": float(v) for i, v in enumerate(rng.uniform(0, 0.1, size=m))}
        alpha = float(rng.choice([0.01, 0.05, 0.1]))
        rejected = set()
        for k, name in enumerate(sorted(p, key=p.get)):  # Holm (1979): stop at the first keep
            if p[name] > alpha / (m - k):
                break
            rejected.add(name)
        adjusted = holm(p)
        assert {name for name, q in adjusted.items() if q <= alpha} == rejected
        assert all(p[name] <= q <= 1 for name, q in adjusted.items())
        order = sorted(p, key=p.get)
        assert all(adjusted[x] <= adjusted[y] for x, y in zip(order, order[1:]))


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), "0.1", None])
def test_holm_refuses_values_that_are_not_p_values(bad):
    with pytest.raises(InvalidArgument, match="'b'"):
        holm({"a": 0.1, "b": bad})


# --- verdict ---------------------------------------------------------------------------------

def _mc(diff: float, lower: float, upper: float, p: float) -> McNemar:
    return McNemar(n=1000, n01=0, n10=0, accuracy_a=0.9, accuracy_b=0.9 + diff,
                   difference=diff, lower=lower, upper=upper, p_value=p)


def _pd(diff: float, lower: float, upper: float, p: float) -> PairedDifference:
    return PairedDifference(value_a=1.0, value_b=1.0 + diff, difference=diff, lower=lower,
                            upper=upper, p_value=p, n=1000, n_bootstrap=1000)


def test_verdict_better_on_accuracy_in_points():
    line = verdict("m:2", "m:3", {"accuracy": _mc(0.008, 0.003, 0.013, 0.002)})
    assert line == "m:3 is better on accuracy by 0.8 points [0.3, 1.3], p = 0.002"


def test_verdict_of_the_issue_with_holm_said_once():
    line = verdict("m:2", "m:3", {"accuracy": _mc(0.008, 0.003, 0.013, 0.001),
                                  "log_loss": _pd(-0.001, -0.004, 0.002, 0.4)})
    assert line == ("m:3 is better on accuracy by 0.8 points [0.3, 1.3], p = 0.002 "
                    "(Holm-adjusted); no significant change in log loss")


def test_verdict_worse_on_a_higher_is_better_metric():
    line = verdict("m:2", "m:3", {"f1_macro": _pd(-0.0123, -0.02, -0.005, 0.0004)})
    assert line == "m:3 is worse on f1 macro by 1.2 points [0.5, 2.0], p < 0.001"


def test_verdict_follows_lower_is_better_metrics():
    better = verdict("a", "b", {"log_loss": _pd(-0.0123, -0.0195, -0.00512, 0.004)})
    assert better == "b is better on log loss by 0.0123 [0.00512, 0.0195], p = 0.004"
    worse = verdict("a", "b", {"latency_p95_ms": _pd(2.5, 1.25, 3.75, 0.002)})
    assert worse == "b is worse on latency p95 ms by 2.5 [1.25, 3.75], p = 0.002"
    ece = verdict("a", "b", {"ece": _pd(-0.01, -0.015, -0.005, 0.002)})
    assert ece.startswith("b is better on ece by 1.0 points [0.5, 1.5]")
    custom = verdict("a", "b", {"score": _pd(-0.5, -0.7, -0.3, 0.002)},
                     lower_is_better=lambda name: name == "score")
    assert custom.startswith("b is better on score by 0.5 [0.3, 0.7]")


def test_verdict_when_nothing_changed():
    one = verdict("m:2", "m:3", {"accuracy": _mc(0.001, -0.004, 0.006, 0.41)})
    assert one == "m:3 vs m:2: no significant change in accuracy (p = 0.41)"
    several = verdict("m:2", "m:3", {"accuracy": _mc(0.001, -0.004, 0.006, 0.41),
                                     "log_loss": _pd(0.01, -0.01, 0.03, 0.3),
                                     "mae": _pd(0.01, -0.01, 0.03, 0.2)})
    assert several == ("m:3 vs m:2: no significant change in accuracy, log loss or mae "
                       "(smallest p = 0.6, Holm-adjusted)")


def test_verdict_uses_holm_adjusted_p_values():
    # Raw 0.03 and 0.04 each pass 0.05 alone, but not after Holm (0.06, 0.06).
    line = verdict("a", "b", {"accuracy": _mc(0.01, 0.001, 0.02, 0.03),
                              "mse": _pd(-0.2, -0.4, -0.01, 0.04)})
    assert line.startswith("b vs a: no significant change in accuracy or mse")
    # Raw 0.02 and 0.04 both survive (0.04, 0.04): two changes, one "Holm-adjusted".
    line = verdict("a", "b", {"accuracy": _mc(0.01, 0.001, 0.02, 0.02),
                              "mse": _pd(0.2, 0.01, 0.4, 0.04)})
    assert line == ("b is better on accuracy by 1.0 points [0.1, 2.0], p = 0.04 "
                    "(Holm-adjusted); worse on mse by 0.2 [0.01, 0.4], p = 0.04")
    assert line.count("Holm") == 1


def test_verdict_end_to_end_from_data():
    rng = np.random.default_rng(71)
    a, b = _simulate_correctness(rng, [0.85, 0.07, 0.02, 0.06], n=2000, reps=1)
    loss_a, loss_b = _paired_losses(rng, 2000, 0.0)
    results = {"accuracy": mcnemar_exact(a[0], b[0]),
               "log_loss": paired_bootstrap(loss_a, loss_b, n_bootstrap=1000)}
    line = verdict("m:2", "m:3", results)
    assert line.startswith("m:3 is better on accuracy by ")
    assert "(Holm-adjusted); no significant change in log loss" in line


def test_verdict_refuses_nothing_to_say_and_bad_alpha():
    with pytest.raises(InvalidArgument, match="no comparison results"):
        verdict("a", "b", {})
    with pytest.raises(InvalidArgument, match="alpha"):
        verdict("a", "b", {"accuracy": _mc(0.0, -0.01, 0.01, 1.0)}, alpha=5)


def test_the_module_imports_no_numpy_or_scipy_at_import_time():
    import subprocess
    import sys

    code = ("import sys, mlnb.evaluation.paired; "
            "print(sorted(m for m in ('numpy', 'scipy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"
