"""Seconds to bootstrap each metric: mlnb's vectorised bootstrap against a naive loop.

For every metric, ``mlnb.evaluation.metrics.compute(pred, [metric],
n_bootstrap=R)`` (point value, R resamples of n examples, percentile interval)
is timed against the plain way of doing the same: a Python loop over the
resamples that recomputes the metric with numpy on each one, and, for a few
metrics, scikit-learn's function on each resample.  The naive loops are slow,
so they run over ``--naive`` resamples and their time is scaled to R (shown
with a ``~``).  Each mlnb figure is the best of ``--repeat`` runs (the median
is shown beside it), because other processes on a shared machine inflate
single runs; the load average is printed before and after.

The goal of issue 6: R = 1,000 resamples of n = 100,000 examples in under 2 s
for accuracy and the main metrics.

Run: ``python benchmarks/bootstrap_speed.py [--n 100000] [--resamples 1000]
[--naive 50] [--repeat 3] [--classes 10]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import numpy as np

from mlnb.evaluation.accumulate import Predictions
from mlnb.evaluation.bootstrap import resample_indices
from mlnb.evaluation.metrics import compute

try:
    from sklearn import metrics as skm
except ImportError:  # the sklearn column is left empty
    skm = None


def _classification(n: int, classes: int, seed: int) -> Predictions:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    logits = rng.normal(size=(n, classes))
    logits[np.arange(n), y] += 1.5
    e = np.exp(logits)
    return Predictions("classification", y, e / e.sum(axis=1, keepdims=True))


def _regression(n: int, seed: int) -> Predictions:
    rng = np.random.default_rng(seed)
    y = rng.normal(size=n) * 3 + 10
    return Predictions("regression", y, y_pred=y + rng.normal(size=n))


def _language_model(n: int, seed: int) -> Predictions:
    rng = np.random.default_rng(seed)
    tokens = rng.integers(1, 512, n)
    return Predictions("language-model", None, nll_sum=tokens * rng.uniform(2, 4, n),
                       tokens=tokens)


def _naive_numpy(pred: Predictions, metric: str) -> Callable[[np.ndarray], float]:
    """The metric recomputed from scratch on one resample's rows, in plain numpy."""
    if pred.task == "language-model":
        return lambda r: float(np.exp(pred.nll_sum[r].sum() / pred.tokens[r].sum()))
    if pred.task == "regression":
        def regression(r: np.ndarray) -> float:
            err = pred.y_pred[r] - pred.y_true[r]
            if metric == "r2":
                y = pred.y_true[r]
                return 1 - (err**2).sum() / ((y - y.mean()) ** 2).sum()
            return {"mse": lambda: (err**2).mean(), "rmse": lambda: np.sqrt((err**2).mean()),
                    "mae": lambda: np.abs(err).mean()}[metric]()
        return regression
    c = pred.num_classes

    def classification(r: np.ndarray) -> float:
        y, proba = pred.y_true[r], pred.proba[r]
        yhat = proba.argmax(axis=1)
        if metric == "accuracy":
            return (yhat == y).mean()
        if metric == "f1_macro":
            tp = np.bincount(y[yhat == y], minlength=c)
            total = np.bincount(y, minlength=c) + np.bincount(yhat, minlength=c)
            return (2 * tp[total > 0] / total[total > 0]).mean()
        if metric == "log_loss":
            return -np.log(np.clip(proba[np.arange(len(y)), y], 1e-16, 1)).mean()
        if metric == "ece":
            conf = proba.max(axis=1)
            bins = np.clip(np.ceil(conf * 15).astype(int) - 1, 0, 14)
            gap = np.bincount(bins, weights=(yhat == y) - conf, minlength=15)
            return np.abs(gap).sum() / len(y)
        if metric == "roc_auc":  # Mann-Whitney with average ranks, one-vs-rest
            from scipy.stats import rankdata

            aucs = []
            for k in [1] if c == 2 else range(c):
                pos = y == k
                ranks = rankdata(proba[:, k])
                n1 = pos.sum()
                aucs.append((ranks[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * (len(y) - n1)))
            return float(np.mean(aucs))
        raise ValueError(metric)
    return classification


def _sklearn(pred: Predictions, metric: str) -> Callable[[np.ndarray], float] | None:
    if skm is None or pred.task != "classification":
        return None
    if metric == "f1_macro":
        return lambda r: skm.f1_score(pred.y_true[r], pred.proba[r].argmax(axis=1),
                                      average="macro", zero_division=0)
    if metric == "roc_auc":
        if pred.num_classes == 2:
            return lambda r: skm.roc_auc_score(pred.y_true[r], pred.proba[r, 1])
        return lambda r: skm.roc_auc_score(pred.y_true[r], pred.proba[r], multi_class="ovr")
    if metric == "accuracy":
        return lambda r: skm.accuracy_score(pred.y_true[r], pred.proba[r].argmax(axis=1))
    if metric == "log_loss":
        return lambda r: skm.log_loss(pred.y_true[r], y_proba=pred.proba[r],
                                      labels=range(pred.num_classes))
    return None


def _mlnb(pred: Predictions, metrics: list[str] | None, resamples: int, repeat: int
          ) -> tuple[float, float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        compute(pred, metrics, n_bootstrap=resamples, seed=0)
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def _loop(fn: Callable[[np.ndarray], float] | None, n: int, naive: int, resamples: int
          ) -> float | None:
    if fn is None:
        return None
    start = time.perf_counter()
    for chunk in resample_indices(n, naive, seed=0):
        for row in chunk:
            fn(row)
    return (time.perf_counter() - start) * resamples / naive


def _cell(seconds: float | None, scaled: bool) -> str:
    if seconds is None:
        return f"{'-':>10}"
    return f"{'~' if scaled else ''}{seconds:.2f}".rjust(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="examples")
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--naive", type=int, default=50, help="resamples the naive loops run")
    parser.add_argument("--repeat", type=int, default=3, help="mlnb runs per metric")
    parser.add_argument("--classes", type=int, default=10, help="classes of the multiclass rows")
    args = parser.parse_args()
    n, r = args.n, args.resamples
    scaled = args.naive != r
    print(f"{r} resamples of {n} examples; {os.cpu_count()} CPUs; "
          f"load {os.getloadavg()[0]:.2f}")
    print(f"{'data':<16}{'metric':<12}{'mlnb best':>10}{'median':>10}{'numpy loop':>12}"
          f"{'sklearn':>10}{'speed-up':>10}")
    binary, multi = _classification(n, 2, 0), _classification(n, args.classes, 1)
    rows = [("binary", binary, m) for m in ("accuracy", "f1_macro", "roc_auc", "log_loss",
                                              "ece", None)]
    rows += [(f"{args.classes} classes", multi, m) for m in ("accuracy", "f1_macro", "roc_auc",
                                                             None)]
    reg, lm = _regression(n, 2), _language_model(n, 3)
    rows += [("regression", reg, m) for m in ("mse", "rmse", "mae", "r2", None)]
    rows += [("language-model", lm, "perplexity")]
    for label, pred, metric in rows:
        best, median = _mlnb(pred, None if metric is None else [metric], r, args.repeat)
        if metric is None:
            print(f"{label:<16}{'(all)':<12}{best:>10.2f}{median:>10.2f}")
            continue
        numpy_s = _loop(_naive_numpy(pred, metric), n, args.naive, r)
        sk_s = _loop(_sklearn(pred, metric), n, args.naive, r)
        speedup = max(s for s in (numpy_s, sk_s) if s is not None) / best
        print(f"{label:<16}{metric:<12}{best:>10.2f}{median:>10.2f}{_cell(numpy_s, scaled):>12}"
              f"{_cell(sk_s, scaled)}{speedup:>9.0f}x")
    print(f"load {os.getloadavg()[0]:.2f}; '~': naive time over {args.naive} resamples, "
          f"scaled to {r}; speed-up against the slower naive way")


if __name__ == "__main__":
    main()
