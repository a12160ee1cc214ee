"""The vectorised bootstrap equals a naive loop over the same resamples, and covers as promised."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as skm

from mlnb.evaluation import bootstrap
from mlnb.evaluation.accumulate import Predictions
from mlnb.evaluation.bootstrap import (
    PerExample,
    class_tallies,
    identity,
    percentile_interval,
    resample_indices,
    resampled_auc,
)
from mlnb.evaluation.metrics import compute, resample_metrics

B = 25


def _rows(n: int, n_bootstrap: int = B, seed: int = 0):
    for chunk in resample_indices(n, n_bootstrap, seed):
        yield from chunk


def test_resample_indices_do_not_depend_on_the_chunk_size():
    whole = np.concatenate(list(resample_indices(1000, 37, seed=4)))
    small = list(resample_indices(1000, 37, seed=4, chunk_bytes=8 * 1000 * 5))
    assert [len(c) for c in small] == [5] * 7 + [2]
    assert np.array_equal(whole, np.concatenate(small))
    assert whole.shape == (37, 1000) and whole.dtype == np.int32
    assert whole.min() >= 0 and whole.max() < 1000
    assert not np.array_equal(whole, np.concatenate(list(resample_indices(1000, 37, seed=5))))
    assert list(resample_indices(10, 0)) == []


def _naive_ece(y, proba, bins=15):
    conf, hit = proba.max(axis=1), (proba.argmax(axis=1) == y).astype(float)
    which = np.minimum(np.maximum(np.searchsorted(np.linspace(0, 1, bins + 1), conf) - 1, 0),
                       bins - 1)
    gap = np.zeros(bins)
    np.add.at(gap, which, hit - conf)
    return np.abs(gap).sum() / len(y)


def _naive_auc(y, proba):
    classes = [1] if proba.shape[1] == 2 else range(proba.shape[1])
    scores = [skm.roc_auc_score(y == k, proba[:, k]) for k in classes if 0 < (y == k).sum() < len(y)]
    return float(np.mean(scores)) if scores else math.nan


def _naive_classification(y, proba):
    yhat = proba.argmax(axis=1)
    out = {"accuracy": skm.accuracy_score(y, yhat), "roc_auc": _naive_auc(y, proba),
           "log_loss": skm.log_loss(y, y_proba=proba, labels=range(proba.shape[1])),
           "ece": _naive_ece(y, proba)}
    for average in ("macro", "micro"):
        p, r, f, _ = skm.precision_recall_fscore_support(y, yhat, average=average,
                                                         zero_division=0)
        out |= {f"precision_{average}": p, f"recall_{average}": r, f"f1_{average}": f}
    return out


def _classification_case(classes: int, n: int, ties: bool, seed: int) -> Predictions:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    logits = rng.normal(size=(n, classes))
    logits[np.arange(n), y] += 1.0
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    if ties:  # a handful of distinct rows: every column full of ties
        proba = proba[rng.integers(0, 6, n)]
    return Predictions("classification", y, proba)


@pytest.mark.parametrize(("classes", "ties"), [(2, False), (2, True), (4, False), (4, True)])
def test_classification_bootstrap_equals_a_naive_loop(classes, ties):
    pred = _classification_case(classes, 120, ties, seed=classes + ties)
    draws = resample_metrics(pred, n_bootstrap=B, seed=3)
    naive = [_naive_classification(pred.y_true[row], pred.proba[row])
             for row in _rows(len(pred), seed=3)]
    for name, values in draws.items():
        expected = np.array([resample[name] for resample in naive])
        assert np.allclose(values, expected, rtol=1e-12, atol=1e-12, equal_nan=True), name


def test_many_classes_take_the_per_class_path_with_the_same_result(monkeypatch):
    pred = _classification_case(80, 300, False, seed=9)  # past 64 classes
    draws = resample_metrics(pred, ["f1_macro", "precision_macro", "recall_macro"],
                             n_bootstrap=10, seed=1)
    for i, row in enumerate(_rows(300, 10, seed=1)):
        p, r, f, _ = skm.precision_recall_fscore_support(
            pred.y_true[row], pred.proba[row].argmax(axis=1), average="macro", zero_division=0)
        assert (draws["precision_macro"][i], draws["recall_macro"][i], draws["f1_macro"][i]) == \
            pytest.approx((p, r, f), rel=1e-12)
    small = _classification_case(5, 200, False, seed=2)
    idx = next(resample_indices(200, 30, seed=0))
    args = (small.y_true, small.proba.argmax(axis=1), 5, idx)
    joint = class_tallies(*args)
    monkeypatch.setattr(bootstrap, "_JOINT_MAX_CLASSES", 0)
    assert all(np.array_equal(a, b) for a, b in zip(joint, class_tallies(*args)))


def test_weighted_auc_equals_sklearn_with_sample_weights():
    rng = np.random.default_rng(6)
    y, s = rng.integers(0, 2, 90), np.round(rng.random(90), 1)
    codes, blocks = bootstrap.auc_codes(y == 1, s)
    idx = next(resample_indices(90, 20, seed=2))
    got = resampled_auc(codes, blocks, idx)
    for row, value in zip(idx, got):
        weights = np.bincount(row, minlength=90)
        assert value == pytest.approx(skm.roc_auc_score(y, s, sample_weight=weights), rel=1e-12)


@pytest.mark.parametrize("outputs", [1, 2])
def test_regression_bootstrap_equals_a_naive_loop(outputs):
    rng = np.random.default_rng(outputs)
    y = rng.normal(size=(150, outputs)) + 100.0
    yhat = y + rng.normal(size=y.shape)
    if outputs == 1:
        y, yhat = y[:, 0], yhat[:, 0]
    draws = resample_metrics(Predictions("regression", y, y_pred=yhat), n_bootstrap=B, seed=7)
    for i, row in enumerate(_rows(150, seed=7)):
        want = {"mse": skm.mean_squared_error(y[row], yhat[row]),
                "rmse": skm.root_mean_squared_error(y[row], yhat[row]),
                "mae": skm.mean_absolute_error(y[row], yhat[row]),
                "r2": skm.r2_score(y[row], yhat[row])}
        for name, value in want.items():
            assert draws[name][i] == pytest.approx(value, rel=1e-12), name


def test_perplexity_bootstrap_equals_a_naive_loop():
    rng = np.random.default_rng(8)
    tokens = rng.integers(0, 40, 60)
    nll = tokens * rng.uniform(1, 4, 60)
    draws = resample_metrics(Predictions("language-model", None, nll_sum=nll, tokens=tokens),
                             n_bootstrap=B, seed=0)["perplexity"]
    naive = [math.exp(nll[row].sum() / tokens[row].sum()) for row in _rows(60)]
    assert np.allclose(draws, naive, rtol=1e-12, atol=0)


def test_small_memory_chunks_give_the_same_values(monkeypatch):
    pred = _classification_case(3, 400, True, seed=11)
    full = resample_metrics(pred, n_bootstrap=40, seed=2)
    monkeypatch.setattr(bootstrap, "CHUNK_BYTES", 8 * 400 * 3)  # 3 resamples a chunk
    kernels = ("resampled_means", "class_tallies", "resampled_auc", "resampled_bin_sums")
    for name in kernels:  # and one row at a time inside each kernel
        kernel = getattr(bootstrap, name)
        monkeypatch.setattr(bootstrap, name,
                            lambda *a, _k=kernel, **kw: _k(*a, **kw, chunk_bytes=1))
    small = resample_metrics(pred, n_bootstrap=40, seed=2)
    for name in full:
        assert np.allclose(full[name], small[name], rtol=1e-13, atol=0), name


def test_points_come_from_the_same_formula():
    pred = _classification_case(3, 200, False, seed=12)
    data = PerExample(pred)
    values = bootstrap.family_values("classes", data, identity(200), {"accuracy"})
    assert values["accuracy"][0] == compute(pred, ["accuracy"], n_bootstrap=0)["accuracy"].value
    # accuracy from per-class tallies (when a macro metric is wanted too) is the same, exactly
    both = resample_metrics(pred, ["accuracy", "f1_macro"], n_bootstrap=30)["accuracy"]
    assert np.array_equal(both, resample_metrics(pred, ["accuracy"], n_bootstrap=30)["accuracy"])


def test_percentile_interval_leaves_undefined_resamples_out():
    values = np.array([np.nan, 3.0, 1.0, 2.0, np.inf, 4.0])
    lower, upper, used = percentile_interval(values, 0.5)
    assert used == 4
    assert (lower, upper) == tuple(np.percentile([1.0, 2.0, 3.0, 4.0], [25, 75]))
    assert percentile_interval(np.array([np.nan, 1.0]), 0.95) == (None, None, 1)


def test_accuracy_interval_covers_the_true_value_about_95_percent_of_the_time():
    rng = np.random.default_rng(2024)
    truth, n, trials = 0.8, 200, 200
    covered = 0
    for trial in range(trials):
        y = rng.integers(0, 2, n)
        right = rng.random(n) < truth
        p = np.where(right == (y == 1), 0.9, 0.1)
        est = compute(Predictions("classification", y, np.stack([1 - p, p], axis=1)),
                      ["accuracy"], n_bootstrap=400, seed=trial)["accuracy"]
        covered += est.lower <= truth <= est.upper
    # 200 trials at 95%: a binomial standard deviation of 1.5 points
    assert 0.90 <= covered / trials <= 0.99, covered
