"""Point metrics equal scikit-learn's; undefined metrics and wrong names give clear results."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn import metrics as skm

from mlnb.errors import InvalidArgument
from mlnb.evaluation.accumulate import Predictions
from mlnb.evaluation.metrics import (
    LOWER_IS_BETTER,
    METRICS_BY_TASK,
    RUNTIME_METRICS,
    Estimate,
    compute,
    confusion_matrix,
    is_lower_better,
    reliability,
)

TOL = {"rel": 1e-12, "abs": 1e-12}


def classification_cases() -> dict[str, Predictions]:
    """Binary, multiclass, heavy ties, classes absent from labels or predictions."""
    rng = np.random.default_rng(0)
    cases = {}
    y = rng.integers(0, 2, 400)
    p = 1 / (1 + np.exp(-(rng.normal(size=400) + y)))
    cases["binary"] = Predictions("classification", y, np.stack([1 - p, p], axis=1))
    p = np.round(rng.random(300), 1)  # ties everywhere
    cases["binary-ties"] = Predictions("classification", rng.integers(0, 2, 300),
                                       np.stack([1 - p, p], axis=1))
    logits = rng.normal(size=(500, 5))
    y = rng.integers(0, 5, 500)
    logits[np.arange(500), y] += 1.0
    e = np.exp(logits)
    cases["multiclass"] = Predictions("classification", y, e / e.sum(axis=1, keepdims=True))
    rows = rng.dirichlet(np.ones(5), size=8)  # 8 distinct rows: ties in every column
    cases["multiclass-ties"] = Predictions("classification", rng.integers(0, 5, 400),
                                           rows[rng.integers(0, 8, 400)])
    # 6 classes: class 3 never a label, class 5 only predicted, never a label
    rows = rng.dirichlet(np.ones(6) * 0.5, size=300)
    y = rng.choice([0, 1, 2, 4], size=300)
    rows[:, 3] = 0.0
    rows /= rows.sum(axis=1, keepdims=True)
    cases["absent-classes"] = Predictions("classification", y, rows)
    return cases


CASES = classification_cases()


def _sk_roc_auc(y: np.ndarray, proba: np.ndarray) -> float:
    if proba.shape[1] == 2:
        return skm.roc_auc_score(y, proba[:, 1])
    present = np.unique(y)
    if len(present) == proba.shape[1]:
        return skm.roc_auc_score(y, proba, multi_class="ovr", average="macro")
    return float(np.mean([skm.roc_auc_score(y == k, proba[:, k]) for k in present]))


def _naive_ece(y: np.ndarray, proba: np.ndarray, bins: int = 15) -> float:
    conf, hit = proba.max(axis=1), proba.argmax(axis=1) == y
    edges = np.linspace(0, 1, bins + 1)
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = (conf > lo) & (conf <= hi)
        if inside.any():
            total += inside.sum() * abs(hit[inside].mean() - conf[inside].mean())
    return total / len(y)


@pytest.mark.parametrize("case", sorted(CASES))
def test_classification_metrics_equal_sklearn(case):
    pred = CASES[case]
    y, proba = pred.y_true, pred.proba
    yhat = proba.argmax(axis=1)
    got = compute(pred, n_bootstrap=0)
    assert list(got) == list(METRICS_BY_TASK["classification"][:10])
    want = {"accuracy": skm.accuracy_score(y, yhat),
            "roc_auc": _sk_roc_auc(y, proba),
            "log_loss": skm.log_loss(y, y_proba=proba, labels=range(proba.shape[1])),
            "ece": _naive_ece(y, proba)}
    for average in ("macro", "micro"):
        p, r, f, _ = skm.precision_recall_fscore_support(y, yhat, average=average,
                                                         zero_division=0)
        want |= {f"precision_{average}": p, f"recall_{average}": r, f"f1_{average}": f}
    for name, value in want.items():
        assert got[name].value == pytest.approx(value, **TOL), name
        assert got[name].lower is None and got[name].upper is None
    assert np.array_equal(confusion_matrix(pred),
                          skm.confusion_matrix(y, yhat, labels=range(proba.shape[1])))


def test_notes_say_what_an_average_left_out():
    got = compute(CASES["absent-classes"], n_bootstrap=0)
    assert got["roc_auc"].note == "one-vs-rest average over the 4 of 6 classes present in the labels"
    assert "of 6 classes present in the labels or predictions" in got["f1_macro"].note
    assert got["accuracy"].note == ""


def test_a_single_class_leaves_roc_auc_undefined_not_an_error():
    rng = np.random.default_rng(2)
    p = rng.random(50)
    pred = Predictions("classification", np.ones(50, dtype=int), np.stack([1 - p, p], axis=1))
    got = compute(pred, n_bootstrap=50)
    assert math.isnan(got["roc_auc"].value) and got["roc_auc"].lower is None
    assert got["roc_auc"].note == "ROC AUC is undefined: only class 1 is present in the labels"
    assert got["accuracy"].value == (p > 0.5).mean() and got["accuracy"].lower is not None
    # a rare class: some resamples miss it, and the interval says how many it used
    y = np.zeros(40, dtype=int)
    y[0] = 1
    rare = compute(Predictions("classification", y, np.stack([1 - p[:40], p[:40]], axis=1)),
                   ["roc_auc"], n_bootstrap=200)["roc_auc"]
    assert rare.lower is not None and "resamples; the metric is undefined on the others" in rare.note


@pytest.mark.parametrize("outputs", [1, 3])
def test_regression_metrics_equal_sklearn(outputs):
    rng = np.random.default_rng(3)
    y = rng.normal(size=(200, outputs)) * [1.0, 50.0, 1e-3][:outputs] + 1e4
    yhat = y + rng.normal(size=y.shape) * 0.5
    if outputs == 1:
        y, yhat = y[:, 0], yhat[:, 0]
    got = compute(Predictions("regression", y, y_pred=yhat), n_bootstrap=0)
    want = {"mse": skm.mean_squared_error(y, yhat), "rmse": skm.root_mean_squared_error(y, yhat),
            "mae": skm.mean_absolute_error(y, yhat), "r2": skm.r2_score(y, yhat)}
    assert list(got) == ["mse", "rmse", "mae", "r2"]
    for name, value in want.items():
        assert got[name].value == pytest.approx(value, rel=1e-10), name


def test_constant_targets_leave_r2_undefined():
    got = compute(Predictions("regression", np.full(30, 2.0), y_pred=np.linspace(0, 3, 30)),
                  n_bootstrap=20)
    assert math.isnan(got["r2"].value) and got["r2"].lower is None
    assert got["r2"].note.startswith("R² is undefined")
    assert got["mse"].lower is not None


def test_perplexity_is_exp_of_the_mean_token_nll():
    nll, tokens = np.array([10.0, 0.0, 7.5]), np.array([5, 0, 3])
    got = compute(Predictions("language-model", None, nll_sum=nll, tokens=tokens),
                  n_bootstrap=100)["perplexity"]
    assert got.value == pytest.approx(math.exp(17.5 / 8), rel=1e-15)
    assert got.lower <= got.value <= got.upper


def test_a_metric_that_does_not_fit_the_task_is_refused_with_the_task_metrics():
    pred = CASES["binary"]
    with pytest.raises(InvalidArgument) as err:
        compute(pred, ["accuracy", "mse"])
    assert str(err.value).startswith(
        "metric 'mse' does not fit task 'classification' ('mse' is a regression metric); "
        "its metrics are accuracy, precision_macro")
    with pytest.raises(InvalidArgument, match="did you mean 'accuracy'"):
        compute(pred, "acuracy")
    for bad in (-1, 1.5, True):
        with pytest.raises(InvalidArgument, match="n_bootstrap must be an integer >= 0"):
            compute(pred, n_bootstrap=bad)
    assert compute(pred, "accuracy", n_bootstrap=np.int64(5))["accuracy"].lower is not None
    with pytest.raises(InvalidArgument, match="confidence must lie strictly between 0 and 1"):
        compute(pred, confidence=95)
    with pytest.raises(InvalidArgument, match="'accuracy' is a built-in metric's name"):
        compute(pred, {"accuracy": lambda y, p: 1.0})
    with pytest.raises(InvalidArgument, match="must be an identifier"):
        compute(pred, {"top 5": lambda y, p: 1.0})
    with pytest.raises(InvalidArgument, match="must return a number"):
        compute(pred, {"words": lambda y, p: "high"}, n_bootstrap=0)


def test_runtime_metrics_are_accepted_and_left_to_the_runner():
    got = compute(CASES["binary"], ["latency_p95_ms", "log_loss", "throughput", "accuracy"],
                  n_bootstrap=0)
    assert list(got) == ["log_loss", "accuracy"]
    assert all(name in METRICS_BY_TASK[task] for name in RUNTIME_METRICS
               for task in METRICS_BY_TASK)


def test_user_metrics_are_bootstrapped_on_the_same_resamples():
    pred = CASES["multiclass"]

    def hit_rate(y, proba):
        return float((proba.argmax(axis=1) == y).mean())

    def top2(y, proba):
        return float((np.argsort(proba, axis=1)[:, -2:] == y[:, None]).any(axis=1).mean())

    got = compute(pred, {"hit_rate": hit_rate, "top2": top2}, n_bootstrap=200, seed=5)
    assert list(got)[-2:] == ["hit_rate", "top2"] and "accuracy" in got
    mine, builtin = got["hit_rate"], got["accuracy"]
    assert (mine.value, mine.lower, mine.upper) == pytest.approx(
        (builtin.value, builtin.lower, builtin.upper), rel=1e-15)
    assert got["top2"].lower < got["top2"].value < got["top2"].upper
    only = compute(pred, ["f1_macro", {"top2": top2}], n_bootstrap=0)
    assert list(only) == ["f1_macro", "top2"]


def test_a_user_metric_failing_on_some_resamples_is_noted():
    y = np.zeros(30, dtype=int)
    y[:2] = 1
    p = np.linspace(0, 1, 30)
    pred = Predictions("classification", y, np.stack([1 - p, p], axis=1))

    def positives_mean_score(y, q):
        if not y.any():
            raise ValueError("no positive example")
        return float(q[y == 1, 1].mean())

    got = compute(pred, [{"pos_score": positives_mean_score}], n_bootstrap=100)["pos_score"]
    assert got.note.startswith("interval from 8")  # about (28/30)^30 of resamples lack a positive
    assert got.note.endswith("(first failure: ValueError: no positive example)")
    assert got.lower is not None


def test_estimate_and_directions():
    assert Estimate("accuracy", 0.9) == Estimate("accuracy", 0.9, None, None, "")
    lower = {"log_loss", "ece", "mse", "rmse", "mae", "perplexity", "latency_p50_ms",
             "latency_p95_ms", "latency_p99_ms"}
    assert lower == LOWER_IS_BETTER
    assert is_lower_better("ece") and is_lower_better("val_loss")
    assert not is_lower_better("accuracy") and not is_lower_better("throughput")


def test_reliability_diagram_data():
    pred = CASES["multiclass"]
    diagram = reliability(pred)
    json.dumps(diagram)  # plain values only
    assert len(diagram["edges"]) == 16 and sum(diagram["count"]) == len(pred)
    assert diagram["ece"] == pytest.approx(compute(pred, ["ece"], n_bootstrap=0)["ece"].value,
                                           **TOL)
    conf = pred.proba.max(axis=1)
    top = (conf > 14 / 15)
    assert diagram["count"][-1] == top.sum()
    empty = [i for i, k in enumerate(diagram["count"]) if k == 0]
    assert empty and all(diagram["accuracy"][i] is None for i in empty)
    with pytest.raises(InvalidArgument, match="needs classification predictions"):
        reliability(Predictions("regression", np.zeros(3), y_pred=np.zeros(3)))
