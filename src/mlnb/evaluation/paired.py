"""Paired comparison of two models scored on the same examples.

Both models see the same examples, so their errors are correlated and a test
that treats them as independent samples wastes most of the evidence.  Three
paired tools and one way to say what they found:

- :func:`mcnemar_exact` compares accuracies: the exact binomial test on the
  discordant pairs, with Newcombe's hybrid score interval for the paired
  difference of proportions (Newcombe 1998, method 10).
- :func:`paired_bootstrap` compares any other metric: both models are scored on
  the *same* resampled example indices, so each resampled difference keeps the
  pairing.  Mean-type metrics (per-example losses or correctness) run
  vectorised: one gather of ``b - a`` per chunk of resamples.
- :func:`holm` adjusts the p-values of several metrics (step-down, monotone).
- :func:`verdict` writes the one-line answer a person reads.

numpy and scipy are imported inside the functions, so that importing this
module costs nothing (``tests/test_import_time.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping

from mlnb.errors import InvalidArgument

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "McNemar",
    "PairedDifference",
    "holm",
    "mcnemar_exact",
    "paired_bootstrap",
    "vectorised",
    "verdict",
]

# Cap on the index elements held at once by the bootstrap (int32: 16 MiB).
_CHUNK_ELEMENTS = 1 << 22


def _fmt_p(p: float) -> str:
    """``p = 0.002``, ``p < 0.001``, ``p = 0.41``, ``p = 1``."""
    if p < 0.001:
        return "p < 0.001"
    return "p = " + (f"{p:.3f}".rstrip("0").rstrip(".") or "0")


@dataclass(frozen=True)
class McNemar:
    """McNemar's exact test of two classifiers' accuracies on the same examples.

    ``n01`` counts examples model A gets wrong and model B right, ``n10`` the
    reverse.  ``difference`` is accuracy B minus accuracy A, ``(n01 - n10) / n``,
    with its ``confidence`` interval ``[lower, upper]`` (Newcombe's hybrid score
    interval for paired proportions) and the exact two-sided ``p_value``.
    """

    n: int
    n01: int
    n10: int
    accuracy_a: float
    accuracy_b: float
    difference: float
    lower: float
    upper: float
    p_value: float
    confidence: float = 0.95

    def __repr__(self) -> str:
        return (f"McNemar(accuracy {100 * self.difference:+.2f} points "
                f"[{100 * self.lower:.2f}, {100 * self.upper:.2f}], {_fmt_p(self.p_value)}, "
                f"n01={self.n01}, n10={self.n10}, n={self.n})")


@dataclass(frozen=True)
class PairedDifference:
    """A metric's difference between two models (B minus A) by paired bootstrap.

    ``value_a`` and ``value_b`` are the metric on all examples, ``difference``
    their difference, ``[lower, upper]`` the percentile interval of the
    resampled differences and ``p_value`` the two-sided bootstrap p-value for
    "no difference".  ``n_bootstrap`` counts the resamples used (resamples on
    which the metric was not finite are left out).
    """

    value_a: float
    value_b: float
    difference: float
    lower: float
    upper: float
    p_value: float
    n: int
    n_bootstrap: int
    confidence: float = 0.95

    def __repr__(self) -> str:
        return (f"PairedDifference({self.difference:+.4g} [{self.lower:.4g}, {self.upper:.4g}], "
                f"{_fmt_p(self.p_value)}, n={self.n}, B={self.n_bootstrap})")


def _check_confidence(confidence: float) -> float:
    if not (isinstance(confidence, (int, float)) and 0.0 < confidence < 1.0):
        raise InvalidArgument(f"confidence must lie strictly between 0 and 1, got {confidence!r}; "
                              "use e.g. 0.95")
    return float(confidence)


def _correctness(values: Any, which: str) -> np.ndarray:
    """A 1-D bool array from booleans or 0/1 numbers, or an InvalidArgument."""
    import numpy as np

    arr = np.asarray(values)
    if arr.ndim != 1:
        raise InvalidArgument(f"{which} must be a 1-D array of per-example correctness, "
                              f"got shape {arr.shape}; pass y_pred == y_true")
    if arr.dtype == bool:
        return arr
    if arr.dtype.kind not in "iuf" or not np.isin(arr, (0, 1)).all():
        raise InvalidArgument(f"{which} must hold booleans or 0/1, got dtype {arr.dtype} with "
                              "other values; pass y_pred == y_true")
    return arr.astype(bool)


def _newcombe(n11, n01, n10, n00, z: float):
    """Newcombe's (1998) method 10 interval for p_B - p_A from paired counts (array-wise).

    ``n01``: A wrong, B right; ``n10``: A right, B wrong.  Each accuracy gets a
    Wilson score interval; the two are combined with the phi correlation of the
    2x2 table, continuity-adjusted and taken as 0 when a margin is empty, as in
    Newcombe's paper and Fagerland, Lydersen & Laake (2014).
    """
    import numpy as np

    n11, n01, n10, n00 = (np.asarray(c, dtype=float) for c in (n11, n01, n10, n00))
    n = n11 + n01 + n10 + n00

    def wilson(k):
        p = k / n
        centre = (k + z * z / 2) / (n + z * z)
        half = z * np.sqrt(n * p * (1 - p) + z * z / 4) / (n + z * z)
        return p, centre - half, centre + half

    pb, lb, ub = wilson(n11 + n01)
    pa, la, ua = wilson(n11 + n10)
    margins = (n11 + n01) * (n10 + n00) * (n11 + n10) * (n01 + n00)
    # Newcombe's continuity adjustment of phi: a positive AD - BC is shrunk by n/2.
    cross = n11 * n00 - n01 * n10
    cross = np.where(cross > n / 2, cross - n / 2, np.minimum(cross, 0.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        phi = np.where(margins > 0, cross / np.sqrt(margins), 0.0)
    delta = np.sqrt(np.maximum(
        (pb - lb) ** 2 - 2 * phi * (pb - lb) * (ua - pa) + (ua - pa) ** 2, 0.0))
    eps = np.sqrt(np.maximum(
        (ub - pb) ** 2 - 2 * phi * (ub - pb) * (pa - la) + (pa - la) ** 2, 0.0))
    diff = pb - pa
    return np.clip(diff - delta, -1.0, 1.0), np.clip(diff + eps, -1.0, 1.0)


def mcnemar_exact(correct_a: Any, correct_b: Any, *, confidence: float = 0.95) -> McNemar:
    """Compare two classifiers' accuracies on the same examples with McNemar's exact test.

    Parameters
    ----------
    correct_a, correct_b
        Per-example correctness of models A and B (bool or 0/1), same length.
    confidence
        Coverage of the interval for the accuracy difference.

    Returns
    -------
    McNemar
        The discordant counts, accuracy B minus A with Newcombe's hybrid score
        interval, and the exact two-sided p-value
        ``min(1, 2 * P[Binomial(n01 + n10, 1/2) <= min(n01, n10)])``.  With no
        discordant pair the p-value is 1 and the difference 0; the interval
        stays a proper one around 0, since agreement on n examples bounds but
        does not rule out a difference.

    Raises
    ------
    InvalidArgument
        Empty or differently long inputs, values other than booleans or 0/1.
    """
    import numpy as np
    from scipy.special import bdtr
    from scipy.stats import norm

    confidence = _check_confidence(confidence)
    a = _correctness(correct_a, "correct_a")
    b = _correctness(correct_b, "correct_b")
    if a.shape != b.shape:
        raise InvalidArgument(f"correct_a and correct_b differ in length ({a.size} vs {b.size}); "
                              "score both models on the same examples")
    if a.size == 0:
        raise InvalidArgument("no examples to compare (empty arrays); pass a non-empty dataset")
    n = int(a.size)
    n01 = int(np.count_nonzero(~a & b))
    n10 = int(np.count_nonzero(a & ~b))
    n11 = int(np.count_nonzero(a & b))
    discordant = n01 + n10
    p = 1.0 if discordant == 0 else min(1.0, 2.0 * float(bdtr(min(n01, n10), discordant, 0.5)))
    lower, upper = _newcombe(n11, n01, n10, n - n11 - discordant,
                             float(norm.ppf(0.5 + confidence / 2)))
    return McNemar(n=n, n01=n01, n10=n10, accuracy_a=(n11 + n10) / n,
                   accuracy_b=(n11 + n01) / n, difference=(n01 - n10) / n,
                   lower=float(lower), upper=float(upper), p_value=p, confidence=confidence)


def vectorised(metric: Callable[[Any, np.ndarray], np.ndarray]) -> Callable:
    """Mark *metric* as taking a ``(k, n)`` chunk of resampled indices and returning ``(k,)``.

    ``paired_bootstrap`` then calls it once per chunk instead of once per
    resample, e.g. ``vectorised(lambda v, idx: np.sqrt(v[idx].mean(axis=1)))``
    for RMSE from per-example squared errors.
    """
    metric.vectorised = True  # type: ignore[attr-defined]
    return metric


def _length(values: Any, which: str) -> int:
    """The example count of an array or a tuple of arrays sharing their first axis."""
    import numpy as np

    parts = values if isinstance(values, tuple) else (values,)
    lengths = {np.shape(part)[0] if np.ndim(part) else -1 for part in parts}
    if len(lengths) != 1 or -1 in lengths:
        raise InvalidArgument(f"{which} must be an array, or a tuple of arrays of one length, "
                              f"indexed by example; got lengths {sorted(lengths)}")
    return lengths.pop()


def _means(values: Any, which: str) -> np.ndarray:
    import numpy as np

    arr = None if isinstance(values, tuple) else np.asarray(values, dtype=float)
    if arr is None or arr.ndim != 1:
        raise InvalidArgument(f'metric="mean" needs {which} as a 1-D array of per-example '
                              "values (losses, 0/1 correctness); pass a metric function otherwise")
    if not np.isfinite(arr).all():
        raise InvalidArgument(f"{which} holds {int((~np.isfinite(arr)).sum())} NaN or infinite "
                              "values; check the model's predictions")
    return arr


def paired_bootstrap(
    values_a: Any,
    values_b: Any,
    metric: Callable[[Any, np.ndarray], Any] | str = "mean",
    *,
    n_bootstrap: int = 1000,
    seed: int | None = 0,
    confidence: float = 0.95,
) -> PairedDifference:
    """The difference of a metric between two models (B minus A) by paired bootstrap.

    Each resample draws n example indices with replacement and scores *both*
    models on those same indices.

    Parameters
    ----------
    values_a, values_b
        Per-example data of each model, indexed by example on the first axis:
        an array, or a tuple of arrays (e.g. ``(y_true, proba)``).
    metric
        ``"mean"`` (per-example losses or correctness; vectorised), or a
        function ``metric(values, idx) -> float`` scoring one model's values on
        the example indices ``idx`` (shape ``(n,)``), called once per resample.
        A function marked with :func:`vectorised` receives ``(k, n)`` chunks of
        indices and returns ``(k,)`` values.
    n_bootstrap
        Number of resamples.
    seed
        Seed of the resampling; the same seed gives the same result.
    confidence
        Coverage of the percentile interval.

    Returns
    -------
    PairedDifference
        The difference on all examples; the percentile interval of the
        resampled differences; and the two-sided p-value
        ``min(1, 2 * (1 + m) / (1 + B))``, where ``m`` is the smaller of the
        counts of resampled differences ``<= 0`` and ``>= 0``: the level at
        which the percentile interval would just reach 0, with the +1 that
        keeps a Monte Carlo p-value from being 0 (smallest value ``2 / (B + 1)``).

    Raises
    ------
    InvalidArgument
        Empty or differently long inputs, non-finite values, a bad option, or
        a metric that is not finite on the data or on most resamples.
    """
    import numpy as np

    confidence = _check_confidence(confidence)
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, int) or n_bootstrap < 1:
        raise InvalidArgument(f"n_bootstrap must be a positive integer, got {n_bootstrap!r}; "
                              "use e.g. 1000")
    n = _length(values_a, "values_a")
    if _length(values_b, "values_b") != n:
        raise InvalidArgument(f"values_a and values_b differ in length ({n} vs "
                              f"{_length(values_b, 'values_b')}); score both models on the same "
                              "examples")
    if n == 0:
        raise InvalidArgument("no examples to compare (empty arrays); pass a non-empty dataset")
    if isinstance(metric, str):
        if metric != "mean":
            raise InvalidArgument(f'unknown metric {metric!r}; pass "mean" or a function '
                                  "metric(values, idx) -> float")
        a, b = _means(values_a, "values_a"), _means(values_b, "values_b")
        d = b - a  # the difference of means is the mean of differences: one gather

        def chunk_diffs(idx: np.ndarray) -> np.ndarray:
            return d[idx].mean(axis=1)

        value_a, value_b = float(a.mean()), float(b.mean())
    elif callable(metric):
        if getattr(metric, "vectorised", False):
            def score(values: Any, idx: np.ndarray) -> np.ndarray:
                return np.asarray(metric(values, idx), dtype=float).reshape(len(idx))
        else:
            def score(values: Any, idx: np.ndarray) -> np.ndarray:
                return np.array([float(metric(values, row)) for row in idx])

        def chunk_diffs(idx: np.ndarray) -> np.ndarray:
            return score(values_b, idx) - score(values_a, idx)

        full = np.arange(n)[None, :]
        value_a, value_b = float(score(values_a, full)[0]), float(score(values_b, full)[0])
    else:
        raise InvalidArgument(f"metric must be \"mean\" or a function, got {metric!r}")
    if not (math.isfinite(value_a) and math.isfinite(value_b)):
        raise InvalidArgument(f"the metric is not finite on the data (A: {value_a}, B: "
                              f"{value_b}); check for NaN predictions or a metric that does not "
                              "fit the task")

    rng = np.random.default_rng(seed)
    dtype = np.int32 if n < 2**31 else np.int64
    rows = max(1, min(n_bootstrap, _CHUNK_ELEMENTS // n))
    diffs = np.empty(n_bootstrap)
    for start in range(0, n_bootstrap, rows):
        k = min(rows, n_bootstrap - start)
        diffs[start:start + k] = chunk_diffs(rng.integers(0, n, size=(k, n), dtype=dtype))
    diffs = diffs[np.isfinite(diffs)]
    if 2 * diffs.size < n_bootstrap:
        raise InvalidArgument(f"the metric is undefined on {n_bootstrap - diffs.size} of "
                              f"{n_bootstrap} resamples (e.g. one class only); use more examples "
                              "or a metric defined on every subset")
    used = int(diffs.size)
    alpha = 1.0 - confidence
    lower, upper = np.quantile(diffs, [alpha / 2, 1 - alpha / 2])
    tail = min(int(np.count_nonzero(diffs <= 0)), int(np.count_nonzero(diffs >= 0)))
    return PairedDifference(
        value_a=value_a, value_b=value_b, difference=value_b - value_a,
        lower=float(lower), upper=float(upper),
        p_value=min(1.0, 2.0 * (1 + tail) / (1 + used)),
        n=n, n_bootstrap=used, confidence=confidence,
    )


def holm(p_values: Mapping[str, float]) -> dict[str, float]:
    """Holm's step-down adjusted p-values, in the mapping's order.

    The k-th smallest of m p-values is multiplied by ``m - k + 1``, then a
    running maximum keeps the adjusted values in the order of the raw ones,
    capped at 1 (as statsmodels' ``multipletests(method="holm")``).  Rejecting
    where the adjusted value is ``<= alpha`` controls the family-wise error rate.

    Raises
    ------
    InvalidArgument
        A p-value that is not a number in [0, 1].
    """
    for name, p in p_values.items():
        if not (isinstance(p, (int, float)) and 0.0 <= p <= 1.0):
            raise InvalidArgument(f"p-value of {name!r} must be a number in [0, 1], got {p!r}")
    ranked = sorted(p_values, key=lambda name: p_values[name])
    m = len(ranked)
    adjusted: dict[str, float] = {}
    running = 0.0
    for k, name in enumerate(ranked):
        running = max(running, min(1.0, (m - k) * float(p_values[name])))
        adjusted[name] = running
    return {name: adjusted[name] for name in p_values}


def _default_lower_is_better(name: str) -> bool:
    from mlnb.display.markup import lower_is_better

    # ECE is an error but its name holds no word that markup's rule knows.
    return lower_is_better(name)


_POINT_WORDS = frozenset({"accuracy", "precision", "recall", "f1", "auc", "ece"})


def _in_points(name: str, result: Any) -> bool:
    """Whether the metric is a proportion best read in percentage points."""
    words = name.lower().replace("-", "_").split("_")
    return isinstance(result, McNemar) or any(w in _POINT_WORDS for w in words)


def _fmt(x: float, points: bool) -> str:
    if points:
        x = 100 * x
        return f"{x:.1f}" if abs(x) >= 0.1 or x == 0 else f"{x:.2g}"
    return f"{x:.3g}"


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def verdict(
    name_a: str,
    name_b: str,
    results: Mapping[str, McNemar | PairedDifference],
    *,
    alpha: float = 0.05,
    lower_is_better: Callable[[str], bool] | None = None,
) -> str:
    """One line saying whether *name_b* is better or worse than *name_a*, metric by metric.

    For example ``"m:3 is better on accuracy by 0.8 points [0.3, 1.3], p = 0.002;
    no significant change in log loss"``.  A change counts when its p-value is
    ``<= alpha``; with several metrics the p-values are Holm-adjusted first and
    the line says so once.  "Better" follows the metric's direction
    (*lower_is_better*, by default mlnb's rule from the metric's name); the
    interval shown is that of the change in the stated direction.  Proportions
    (accuracy, precision, recall, F1, AUC, ECE) read in percentage points,
    other metrics in their own units with 3 significant digits.  Intervals are the
    results' own (unadjusted) ones.

    Raises
    ------
    InvalidArgument
        No results, or *alpha* outside (0, 1).
    """
    if not results:
        raise InvalidArgument("no comparison results to summarise; compare at least one metric")
    if not (isinstance(alpha, (int, float)) and 0.0 < alpha < 1.0):
        raise InvalidArgument(f"alpha must lie strictly between 0 and 1, got {alpha!r}")
    lower_better = lower_is_better or _default_lower_is_better
    several = len(results) > 1
    p_adj = holm({name: r.p_value for name, r in results.items()})  # also checks them
    changes: list[str] = []
    unchanged: list[str] = []
    for name, r in results.items():
        label = name.replace("_", " ")
        sign = -1.0 if lower_better(name) else 1.0
        gain = sign * r.difference
        if p_adj[name] > alpha or gain == 0:
            unchanged.append(label)
            continue
        points = _in_points(name, r)
        # The interval of the change in the stated direction: gain, or loss if worse.
        lo, hi = sorted((sign * r.lower, sign * r.upper))
        if gain < 0:
            lo, hi = -hi, -lo
        unit = " points" if points else ""
        tag = " (Holm-adjusted)" if several and not changes else ""
        changes.append(f"{'better' if gain > 0 else 'worse'} on {label} by "
                       f"{_fmt(abs(gain), points)}{unit} [{_fmt(lo, points)}, {_fmt(hi, points)}], "
                       f"{_fmt_p(p_adj[name])}{tag}")
    if changes:
        line = f"{name_b} is " + "; ".join(changes)
        if unchanged:
            line += f"; no significant change in {_join(unchanged)}"
        return line
    smallest = min(p_adj.values())
    note = f"smallest {_fmt_p(smallest)}, Holm-adjusted" if several else _fmt_p(smallest)
    return f"{name_b} vs {name_a}: no significant change in {_join(unchanged)} ({note})"
