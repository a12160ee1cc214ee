"""Metrics of a model's predictions, each with a percentile bootstrap interval.

:func:`compute` takes :class:`~mlnb.evaluation.accumulate.Predictions` and
returns one :class:`Estimate` per metric.  Built-in metrics and their
conventions (they match scikit-learn, which the tests check):

* classification: ``accuracy``; ``precision``/``recall``/``f1`` ``_macro``
  and ``_micro``, macro averaging over the classes present in the labels or the
  predictions (scikit-learn's ``labels=None``), a class with no predicted (or
  no true) example scoring 0 (``zero_division=0``), micro ones equal to
  accuracy (single-label data); ``roc_auc`` (binary, or one-vs-rest macro over
  the classes present in the labels, ties counting 1/2); ``log_loss`` (natural
  log, probabilities clipped to [eps, 1 - eps]); ``ece`` (15 equal-width bins
  (a, b] of top-label confidence).  :func:`confusion_matrix` and
  :func:`reliability` give the report's tables.
* regression: ``mse``, ``rmse``, ``mae``, ``r2``; several outputs are averaged
  uniformly (``rmse`` and ``r2`` per output, then averaged).
* language-model: ``perplexity`` = exp(total NLL / total scored tokens); the
  bootstrap resamples sequences, keeping each one's tokens together.

Latency and throughput (:data:`RUNTIME_METRICS`) belong to every task but are
measured by the evaluation runner, not computed from predictions; ``compute``
accepts and skips their names.  A metric that is undefined on the data (ROC
AUC with one class, R² of constant targets) gets the value NaN and a ``note``,
never an exception; resamples where it is undefined are left out of the
interval, and the note says how many remained.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlnb.errors import InvalidArgument
from mlnb.refs import suggest

if TYPE_CHECKING:
    import numpy as np

    from mlnb.evaluation.accumulate import Predictions
    from mlnb.evaluation.bootstrap import PerExample

__all__ = [
    "ECE_BINS",
    "Estimate",
    "LOWER_IS_BETTER",
    "METRICS_BY_TASK",
    "RUNTIME_METRICS",
    "check_metric",
    "compute",
    "confusion_matrix",
    "is_lower_better",
    "reliability",
    "resample_metrics",
]

ECE_BINS = 15
RUNTIME_METRICS = ("latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "throughput")
_COMPUTED = {
    "classification": ("accuracy", "precision_macro", "recall_macro", "f1_macro",
                       "precision_micro", "recall_micro", "f1_micro", "roc_auc", "log_loss",
                       "ece"),
    "regression": ("mse", "rmse", "mae", "r2"),
    "language-model": ("perplexity",),
}
METRICS_BY_TASK: dict[str, tuple[str, ...]] = {
    task: names + RUNTIME_METRICS for task, names in _COMPUTED.items()}
LOWER_IS_BETTER = frozenset({"log_loss", "ece", "mse", "rmse", "mae", "perplexity",
                             "latency_p50_ms", "latency_p95_ms", "latency_p99_ms"})
_FAMILY = {  # metrics that one kernel computes together over a chunk of resamples
    "accuracy": "classes", "precision_micro": "classes", "recall_micro": "classes",
    "f1_micro": "classes", "precision_macro": "classes", "recall_macro": "classes",
    "f1_macro": "classes", "roc_auc": "roc_auc", "log_loss": "log_loss", "ece": "ece",
    "mse": "regression", "rmse": "regression", "mae": "regression", "r2": "regression",
    "perplexity": "perplexity",
}


@dataclass(frozen=True)
class Estimate:
    """A metric's value with its bootstrap interval (None where it cannot be computed)."""

    name: str
    value: float
    lower: float | None = None
    upper: float | None = None
    note: str = ""


def is_lower_better(name: str) -> bool:
    """Whether a smaller value of metric *name* is better (built-ins, then mlnb's naming rule)."""
    from mlnb.display.markup import lower_is_better

    return name in LOWER_IS_BETTER or lower_is_better(name)


def check_metric(task: str, name: str) -> str:
    """Return *name* if it is a built-in metric of *task*, else raise :class:`InvalidArgument`."""
    from mlnb.evaluation.accumulate import check_task

    if name in METRICS_BY_TASK[check_task(task)]:
        return name
    other = [t for t, names in _COMPUTED.items() if name in names]
    hint = f" ({name!r} is a {other[0]} metric)" if other else suggest(
        str(name), METRICS_BY_TASK[task])
    raise InvalidArgument(
        f"metric {name!r} does not fit task {task!r}{hint}; its metrics are "
        f"{', '.join(METRICS_BY_TASK[task])}, or pass your own as {{name: function}}")


def _select(task: str, metrics: Any) -> tuple[list[str], dict[str, Callable]]:
    if metrics is None:
        return list(_COMPUTED[task]), {}
    if isinstance(metrics, str):
        metrics = [metrics]
    names, user = [], {}
    if isinstance(metrics, Mapping):
        names, metrics = list(_COMPUTED[task]), [metrics]
    for item in metrics:
        if isinstance(item, str):
            if check_metric(task, item) not in names and item not in RUNTIME_METRICS:
                names.append(item)
        elif isinstance(item, Mapping):
            for name, fn in item.items():
                if not isinstance(name, str) or not name.isidentifier():
                    raise InvalidArgument(f"metric name {name!r} must be an identifier "
                                          "(letters, digits, _) so that gates can name it")
                if name in _FAMILY or name in RUNTIME_METRICS or name in user:
                    why = "given twice" if name in user else "a built-in metric's name"
                    raise InvalidArgument(f"metric {name!r} is {why}; give your function "
                                          "another name")
                if not callable(fn):
                    raise InvalidArgument(f"metric {name!r} must be a function "
                                          f"fn(y_true, prediction) -> float, not {fn!r}")
                user[name] = fn
        else:
            raise InvalidArgument(f"metrics are names or {{name: function}} mappings, not "
                                  f"{item!r}")
    return names, user


def _point_note(name: str, value: float, d: PerExample) -> str:
    """Say why a point estimate is NaN, or what a macro average left out."""
    import numpy as np

    pred = d.pred
    if name == "roc_auc":
        present = np.unique(pred.y_true)
        if math.isnan(value):
            return (f"ROC AUC is undefined: only class {present[0]} is present in the labels")
        if pred.num_classes > 2 and len(d.auc) < pred.num_classes:
            return (f"one-vs-rest average over the {len(d.auc)} of {pred.num_classes} classes "
                    "present in the labels")
    if name.endswith("_macro"):
        present = len(np.union1d(pred.y_true, d.labels))
        if present < pred.num_classes:
            return (f"average over the {present} of {pred.num_classes} classes present in the "
                    "labels or predictions")
    if name == "r2" and math.isnan(value):
        return "R² is undefined: the targets (or a target column) are constant"
    if math.isnan(value):
        return f"{name} is undefined on these predictions"
    return ""


def _user_args(d: PerExample, index: Any = slice(None)) -> tuple[Any, Any]:
    pred = d.pred
    if pred.task == "language-model":
        return pred.tokens[index], pred.nll_sum[index]
    return pred.y_true[index], (pred.proba if pred.task == "classification"
                                else pred.y_pred)[index]


def _call_user(name: str, fn: Callable, args: tuple[Any, Any]) -> float:
    result = fn(*args)
    try:
        return float(result)
    except (TypeError, ValueError) as err:
        raise InvalidArgument(f"metric {name!r} must return a number, not {result!r}") from err


def _check_bootstrap(n_bootstrap: Any) -> int:
    try:
        count = operator.index(n_bootstrap)  # ints and numpy integers, not 1.5 or True
    except TypeError:
        count = -1
    if isinstance(n_bootstrap, bool) or count < 0:
        raise InvalidArgument(f"n_bootstrap must be an integer >= 0, not {n_bootstrap!r}")
    return count


def _draws(d: PerExample, names: list[str], user: dict[str, Callable], n_bootstrap: int,
           seed: int | None, failures: dict[str, str]) -> dict[str, np.ndarray]:
    """Each metric on each resample of :func:`~mlnb.evaluation.bootstrap.resample_indices`."""
    import numpy as np

    from mlnb.evaluation.bootstrap import family_values, resample_indices

    families: dict[str, set[str]] = {}
    for name in names:
        families.setdefault(_FAMILY[name], set()).add(name)
    draws = {name: np.full(n_bootstrap, np.nan) for name in [*names, *user]}
    start = 0
    for idx in resample_indices(d.n, n_bootstrap, seed):
        stop = start + len(idx)
        for family, wanted in families.items():
            values = family_values(family, d, idx, wanted)
            for name in wanted:
                draws[name][start:stop] = values[name]
        for name, fn in user.items():
            for row in range(len(idx)):
                try:
                    draws[name][start + row] = _call_user(name, fn, _user_args(d, idx[row]))
                except Exception as err:  # a resample the function cannot score (one class)
                    failures.setdefault(name, f"{type(err).__name__}: {err}")
        start = stop
    return draws


def resample_metrics(predictions: Predictions, metrics: Any = None, *,
                     n_bootstrap: int = 1000, seed: int | None = 0) -> dict[str, np.ndarray]:
    """Return each metric's value on each bootstrap resample (NaN where undefined).

    The resamples are those of ``resample_indices(len(predictions), n_bootstrap,
    seed)``, so two models' predictions on the same examples and seed are
    scored on the same resamples: the difference of their arrays is a paired
    bootstrap.  *metrics* as in :func:`compute`; runtime metrics are skipped.
    """
    from mlnb.evaluation.bootstrap import PerExample

    names, user = _select(predictions.task, metrics)
    return _draws(PerExample(predictions, ECE_BINS), names, user,
                  _check_bootstrap(n_bootstrap), seed, {})


def compute(predictions: Predictions, metrics: Any = None, *, n_bootstrap: int = 1000,
            seed: int | None = 0, confidence: float = 0.95) -> dict[str, Estimate]:
    """Compute metrics of *predictions*, each with a percentile bootstrap interval.

    Parameters
    ----------
    predictions : Predictions
        From :class:`~mlnb.evaluation.accumulate.Accumulator`.
    metrics : None, str, iterable or mapping
        None: every built-in metric of the task.  Names select built-ins; a
        mapping ``{name: fn}`` adds user metrics, called as ``fn(y_true, proba)``
        (classification), ``fn(y_true, y_pred)`` (regression) or
        ``fn(tokens, nll_sum)`` (language model) and returning a float.  A
        mapping alone means the built-ins plus those; a list may mix names and
        mappings to choose exactly.  User functions are bootstrapped by a
        Python loop over the same resamples.
    n_bootstrap : int
        Resamples for the intervals; 0 computes point values only.
    seed : int or None
        Seed of the resamples: the same seed gives the same intervals.
    confidence : float
        Coverage of the percentile interval.

    Returns
    -------
    dict of str to Estimate
        In the order asked, built-ins before user metrics.

    Raises
    ------
    InvalidArgument
        A metric does not fit the task, or an argument is out of range.
    """
    from mlnb.evaluation.bootstrap import PerExample, family_values, identity, percentile_interval

    names, user = _select(predictions.task, metrics)
    n_bootstrap = _check_bootstrap(n_bootstrap)
    if not 0 < confidence < 1:
        raise InvalidArgument(f"confidence must lie strictly between 0 and 1, not {confidence!r}")
    d = PerExample(predictions, ECE_BINS)
    points: dict[str, float] = {}
    for name in names:
        if name not in points:  # a family gives its siblings too
            wanted = {m for m in names if _FAMILY[m] == _FAMILY[name]}
            values = family_values(_FAMILY[name], d, identity(d.n), wanted)
            points.update((m, float(values[m][0])) for m in wanted)
    points.update((name, _call_user(name, fn, _user_args(d))) for name, fn in user.items())
    defined = [m for m in names if math.isfinite(points[m])]
    failures: dict[str, str] = {}
    draws = _draws(d, defined, {m: f for m, f in user.items() if math.isfinite(points[m])},
                   n_bootstrap, seed, failures) if n_bootstrap else {}
    out = {}
    for name in [*names, *user]:
        value = points[name]
        note = _point_note(name, value, d) if name in _FAMILY else (
            "" if math.isfinite(value) else f"{name} returned {value}")
        lower = upper = None
        if name in draws:
            lower, upper, used = percentile_interval(draws[name], confidence)
            if used < n_bootstrap:
                why = f" (first failure: {failures[name]})" if name in failures else ""
                note = "; ".join(filter(None, [note, (
                    f"interval from {used} of {n_bootstrap} resamples; the metric is undefined "
                    f"on the others{why}")]))
        out[name] = Estimate(name, value, lower, upper, note)
    return out


def _classification(pred: Predictions, what: str) -> None:
    if pred.task != "classification":
        raise InvalidArgument(f"a {what} needs classification predictions, not {pred.task}")


def confusion_matrix(pred: Predictions) -> np.ndarray:
    """Return the (C, C) counts: rows true class, columns predicted class (scikit-learn's layout)."""
    import numpy as np

    _classification(pred, "confusion matrix")
    c = pred.num_classes
    cells = pred.y_true * c + pred.proba.argmax(axis=1)
    return np.bincount(cells, minlength=c * c).reshape(c, c)


def reliability(pred: Predictions, bins: int = ECE_BINS) -> dict[str, Any]:
    """Return the reliability diagram's data: top-label confidence against accuracy per bin.

    Returns
    -------
    dict
        ``edges`` (bins + 1 floats), ``count`` (ints), ``confidence`` and
        ``accuracy`` (mean per bin, None for an empty bin) and ``ece``, all
        plain Python values (JSON-ready).
    """
    import numpy as np

    from mlnb.evaluation.bootstrap import bin_of

    _classification(pred, "reliability diagram")
    if int(bins) != bins or bins < 1:
        raise InvalidArgument(f"bins must be a positive integer, not {bins!r}")
    confidence = pred.proba.max(axis=1)
    correct = (pred.proba.argmax(axis=1) == pred.y_true).astype(np.float64)
    which = bin_of(confidence, bins)
    count = np.bincount(which, minlength=bins)
    conf_sum = np.bincount(which, weights=confidence, minlength=bins)
    hit_sum = np.bincount(which, weights=correct, minlength=bins)

    def mean(total: np.ndarray) -> list[float | None]:
        return [float(t / k) if k else None for t, k in zip(total, count)]

    return {"edges": np.linspace(0.0, 1.0, bins + 1).tolist(), "count": count.tolist(),
            "confidence": mean(conf_sum), "accuracy": mean(hit_sum),
            "ece": float(np.abs(hit_sum - conf_sum).sum() / len(pred))}
