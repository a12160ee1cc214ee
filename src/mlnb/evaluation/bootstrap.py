"""Vectorised percentile bootstrap: resample indices in chunks and metric kernels over them.

:func:`resample_indices` draws the resamples from ``np.random.default_rng(seed)``
as (rows, n) index arrays, a chunk of rows at a time so that memory stays
bounded (about :data:`CHUNK_BYTES` per chunk).  The stream of indices does not
depend on the chunk size, and every metric of one evaluation sees the same
resamples, so their intervals are consistent and a naive per-resample loop over
the same chunks reproduces them (tests/evaluation/test_bootstrap.py).

Each kernel takes per-example arrays and a chunk ``idx`` and returns one value
(or one row of tallies) per resample, without a Python loop over resamples:

* :func:`resampled_means`: gathered means (accuracy, log loss, squared and
  absolute errors, the sums behind R² and perplexity);
* :func:`class_tallies`: support, predicted count and true positives per class
  from one ``bincount`` over (resample, true, predicted) codes;
* :func:`resampled_auc`: the Mann-Whitney AUC with resample weights, scores
  sorted once into tie groups, ties counting 1/2;
* :func:`resampled_bin_sums`: weighted per-bin sums (calibration error).

:class:`PerExample` derives the per-example arrays once (predicted labels,
losses, tie groups, calibration bins, errors) and :func:`family_values` turns
the kernels' tallies into metric values for a chunk of resamples.  Applied to
``identity(n)``, the one "resample" that is the data itself, they give the
point estimates, so point and interval come from one formula.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from mlnb.evaluation.accumulate import Predictions

__all__ = [
    "CHUNK_BYTES",
    "PerExample",
    "auc_codes",
    "bin_of",
    "class_tallies",
    "family_values",
    "identity",
    "percentile_interval",
    "resample_indices",
    "resampled_auc",
    "resampled_bin_sums",
    "resampled_means",
]

CHUNK_BYTES = 64 * 2**20
_JOINT_MAX_CLASSES = 64  # past this, (resample, true, pred) bins outgrow three per-class tallies


def resample_indices(n: int, n_bootstrap: int, seed: int | None = 0, *,
                     chunk_bytes: int = CHUNK_BYTES) -> Iterator[np.ndarray]:
    """Yield the bootstrap resamples of *n* examples as (rows, n) index arrays.

    Parameters
    ----------
    n : int
        Number of examples; each resample draws *n* indices with replacement.
    n_bootstrap : int
        Number of resamples in all, over every chunk.
    seed : int or None
        Seed of ``np.random.default_rng``; the same seed gives the same resamples,
        whatever *chunk_bytes* is.
    chunk_bytes : int
        Rows per chunk are chosen so that a float64 gather over the chunk stays
        within about this many bytes (at least one row).

    Yields
    ------
    numpy.ndarray
        int32 indices (int64 past 2**31 examples), shape (rows, n).
    """
    rng = np.random.default_rng(seed)
    dtype = np.int32 if n < 2**31 else np.int64
    per_chunk = max(1, chunk_bytes // (8 * max(n, 1)))
    done = 0
    while done < n_bootstrap:
        rows = min(per_chunk, n_bootstrap - done)
        yield rng.integers(0, n, size=(rows, n), dtype=dtype)
        done += rows


def identity(n: int) -> np.ndarray:
    """Return the one resample that is the data itself, shape (1, n)."""
    return np.arange(n)[None, :]


def percentile_interval(values: np.ndarray, confidence: float = 0.95
                        ) -> tuple[float | None, float | None, int]:
    """Return ``(lower, upper, used)``: the percentile interval of the finite *values*.

    Resamples where a metric is undefined (NaN, e.g. one class only) are left
    out; *used* says how many remained.  Fewer than two give ``(None, None, used)``.
    """
    finite = values[np.isfinite(values)]
    if len(finite) < 2:
        return None, None, len(finite)
    tail = (1.0 - confidence) / 2.0
    lower, upper = np.quantile(finite, [tail, 1.0 - tail])
    return float(lower), float(upper), len(finite)


def _blocks(rows: int, bytes_per_row: int, chunk_bytes: int) -> Iterator[slice]:
    step = max(1, chunk_bytes // max(bytes_per_row, 1))
    for start in range(0, rows, step):
        yield slice(start, min(start + step, rows))


def _offsets(rows: int, bins: int) -> np.ndarray:
    return (np.arange(rows, dtype=np.int64) * bins)[:, None]


def resampled_means(values: np.ndarray, idx: np.ndarray, *,
                    chunk_bytes: int = CHUNK_BYTES) -> np.ndarray:
    """Return the mean of *values* over each resample: (rows,) or (rows, ...) for (n, ...) values.

    Each column is gathered on its own (a 1-d gather is several times faster
    than numpy's gather of short rows); boolean values are counted exactly.
    """
    rows, n = idx.shape
    columns = np.ascontiguousarray(values.reshape(n, -1).T)
    out = np.empty((rows, len(columns)), dtype=np.float64)
    for block in _blocks(rows, 8 * n, chunk_bytes):
        for j, column in enumerate(columns):
            if column.dtype == np.bool_:
                out[block, j] = column.view(np.uint8)[idx[block]].sum(axis=1, dtype=np.int64) / n
            else:
                out[block, j] = column[idx[block]].mean(axis=1)
    return out.reshape(rows, *values.shape[1:])


def class_tallies(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int, idx: np.ndarray,
                  *, chunk_bytes: int = CHUNK_BYTES) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return per-resample ``(support, predicted, true_positives)``, each (rows, C) int64.

    Up to 64 classes one ``bincount`` over (resample, true, predicted) codes
    gives each resample's confusion matrix; past that three per-class
    bincounts keep memory linear in the number of classes.
    """
    rows, n = idx.shape
    c = num_classes
    support = np.empty((rows, c), dtype=np.int64)
    predicted = np.empty_like(support)
    hits = np.empty_like(support)
    if c <= _JOINT_MAX_CLASSES:
        pair = y_true.astype(np.int64) * c + y_pred
        for b in _blocks(rows, 8 * (n + c * c), chunk_bytes):
            codes = pair[idx[b]] + _offsets(b.stop - b.start, c * c)
            cells = np.bincount(codes.ravel(), minlength=(b.stop - b.start) * c * c)
            cells = cells.reshape(-1, c, c)
            support[b], predicted[b] = cells.sum(axis=2), cells.sum(axis=1)
            hits[b] = np.diagonal(cells, axis1=1, axis2=2)
        return support, predicted, hits
    correct = (y_true == y_pred).astype(np.float64)
    for b in _blocks(rows, 8 * (3 * n + 3 * c), chunk_bytes):
        count = (b.stop - b.start) * c
        truth = (y_true[idx[b]] + _offsets(b.stop - b.start, c)).ravel()
        support[b] = np.bincount(truth, minlength=count).reshape(-1, c)
        hits[b] = np.bincount(truth, weights=correct[idx[b]].ravel(),
                              minlength=count).reshape(-1, c)
        guess = (y_pred[idx[b]] + _offsets(b.stop - b.start, c)).ravel()
        predicted[b] = np.bincount(guess, minlength=count).reshape(-1, c)
    return support, predicted, hits


def auc_codes(positive: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, int]:
    """Sort *scores* once: return per-example ``is_positive * blocks + block`` and the block count.

    Blocks follow increasing score.  Examples with equal scores share a block,
    and so does each run of consecutive tie groups holding one label only: the
    AUC counts, for each positive, the negatives below it and tied with it, so
    a run of negatives (or of positives) with no other label in between acts
    as one group.  Merging runs leaves fewer bins for every resample to count.
    """
    order = np.argsort(scores, kind="stable")
    ranked, label = scores[order], positive[order].astype(np.int64)
    starts = np.concatenate([[True], ranked[1:] != ranked[:-1]])
    group = np.cumsum(starts) - 1
    kind = np.bincount(group, weights=label) / np.bincount(group)  # 0 neg, 1 pos, else mixed
    pure = (kind == 0) | (kind == 1)
    new_block = np.concatenate([[True], ~pure[1:] | ~pure[:-1] | (kind[1:] != kind[:-1])])
    block_of_group = np.cumsum(new_block) - 1
    blocks = int(block_of_group[-1]) + 1
    codes = np.empty(len(scores), dtype=np.int64)
    codes[order] = label * blocks + block_of_group[group]
    return codes, blocks


def resampled_auc(codes: np.ndarray, blocks: int, idx: np.ndarray, *,
                  chunk_bytes: int = CHUNK_BYTES) -> np.ndarray:
    """Return each resample's ROC AUC from :func:`auc_codes` (NaN when a class is missing).

    With w the resample counts, AUC = sum over positives i and negatives j of
    w_i w_j ([s_i > s_j] + [s_i = s_j] / 2), divided by W_pos W_neg: per
    block, positive weight times (2 x negatives strictly below + negatives in
    the block), halved, in exact integers until the final division.
    """
    rows, n = idx.shape
    out = np.empty(rows, dtype=np.float64)
    for b in _blocks(rows, 8 * (n + 5 * blocks), chunk_bytes):
        r = b.stop - b.start
        bins = np.bincount((codes[idx[b]] + _offsets(r, 2 * blocks)).ravel(),
                           minlength=r * 2 * blocks).reshape(r, 2, blocks)
        neg, pos = bins[:, 0], bins[:, 1]
        below2 = np.cumsum(neg, axis=1)
        below2 *= 2
        below2 -= neg  # 2 x strictly below + in the block
        numerator = np.einsum("ij,ij->i", pos, below2)
        pairs = 2 * pos.sum(axis=1) * neg.sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[b] = np.where(pairs > 0, numerator / np.maximum(pairs, 1), np.nan)
    return out


def resampled_bin_sums(bins: np.ndarray, weights: np.ndarray, n_bins: int, idx: np.ndarray, *,
                       chunk_bytes: int = CHUNK_BYTES) -> np.ndarray:
    """Return per-resample sums of *weights* in each of *n_bins* bins, shape (rows, n_bins)."""
    rows, n = idx.shape
    out = np.empty((rows, n_bins), dtype=np.float64)
    for b in _blocks(rows, 8 * 3 * n, chunk_bytes):
        codes = (bins[idx[b]] + _offsets(b.stop - b.start, n_bins)).ravel()
        out[b] = np.bincount(codes, weights=weights[idx[b]].ravel(),
                             minlength=(b.stop - b.start) * n_bins).reshape(-1, n_bins)
    return out


class PerExample:
    """Per-example arrays behind the metrics, each derived once per evaluation.

    Parameters
    ----------
    pred : Predictions
        The predictions to evaluate.
    ece_bins : int
        Equal-width confidence bins of the calibration error.
    """

    def __init__(self, pred: Predictions, ece_bins: int = 15) -> None:
        self.pred, self.n, self.ece_bins = pred, len(pred), ece_bins

    @cached_property
    def labels(self) -> np.ndarray:
        return self.pred.proba.argmax(axis=1)

    @cached_property
    def correct(self) -> np.ndarray:
        return self.labels == self.pred.y_true

    @cached_property
    def losses(self) -> np.ndarray:
        eps = np.finfo(np.float64).eps
        picked = self.pred.proba[np.arange(self.n), self.pred.y_true]
        return -np.log(np.clip(picked, eps, 1 - eps))

    @cached_property
    def auc(self) -> list[tuple[np.ndarray, int]]:
        """Tie-group codes per class with both positives and negatives (class 1 if binary)."""
        y, c = self.pred.y_true, self.pred.proba.shape[1]
        classes = [1] if c == 2 else range(c)
        usable = [k for k in classes if 0 < (y == k).sum() < self.n]
        return [auc_codes(y == k, self.pred.proba[:, k]) for k in usable]

    @cached_property
    def ece(self) -> tuple[np.ndarray, np.ndarray]:
        confidence = self.pred.proba.max(axis=1)
        return bin_of(confidence, self.ece_bins), self.correct - confidence

    @cached_property
    def regression(self) -> np.ndarray:
        """(n, 4, k): squared error, absolute error, centred target, its square."""
        y = self.pred.y_true.reshape(self.n, -1)
        err = self.pred.y_pred.reshape(self.n, -1) - y
        centred = y - y.mean(axis=0)
        return np.stack([err * err, np.abs(err), centred, centred * centred], axis=1)


def bin_of(confidence: np.ndarray, bins: int) -> np.ndarray:
    """Return the bin (0..bins-1) of each confidence among equal-width bins (a, b] of [0, 1]."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    return np.clip(np.digitize(confidence, edges, right=True) - 1, 0, bins - 1)


def _ratio(top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    """top / bottom, 0 where bottom is 0 (scikit-learn's zero_division=0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(bottom > 0, top / np.where(bottom > 0, bottom, 1), 0.0)


def family_values(name: str, d: PerExample, idx: np.ndarray, wanted: set[str]
                  ) -> dict[str, np.ndarray]:
    """Return the metrics of family *name* on each resample of *idx* (shape (rows, n)).

    A family is the metrics one kernel gives together: ``classes`` (accuracy,
    micro and macro precision, recall, F1: from per-class tallies when a macro
    one is wanted, else from gathered hits), ``roc_auc``, ``log_loss``, ``ece``,
    ``regression`` (those of mse, rmse, mae, r2 in *wanted*), ``perplexity``.
    """
    if name == "classes":
        micro = ("accuracy", "precision_micro", "recall_micro", "f1_micro")
        if not wanted - set(micro):
            return dict.fromkeys(micro, resampled_means(d.correct, idx))
        support, predicted, hits = class_tallies(d.pred.y_true, d.labels, d.pred.num_classes,
                                                 idx)
        present = ((support + predicted) > 0).sum(axis=1)
        return dict.fromkeys(micro, hits.sum(axis=1) / d.n) | {
            "precision_macro": _ratio(hits, predicted).sum(axis=1) / present,
            "recall_macro": _ratio(hits, support).sum(axis=1) / present,
            "f1_macro": _ratio(2 * hits, support + predicted).sum(axis=1) / present}
    if name == "roc_auc":
        if not d.auc:
            return {"roc_auc": np.full(len(idx), np.nan)}
        per_class = np.array([resampled_auc(codes, groups, idx) for codes, groups in d.auc])
        defined = np.isfinite(per_class)
        total = np.where(defined, per_class, 0.0).sum(axis=0)
        with np.errstate(invalid="ignore"):
            return {"roc_auc": np.where(defined.any(axis=0), total / defined.sum(axis=0), np.nan)}
    if name == "log_loss":
        return {"log_loss": resampled_means(d.losses, idx)}
    if name == "ece":
        bins, gap = d.ece
        sums = resampled_bin_sums(bins, gap, d.ece_bins, idx)
        return {"ece": np.abs(sums).sum(axis=1) / d.n}
    if name == "perplexity":
        means = resampled_means(np.stack([d.pred.nll_sum, d.pred.tokens], axis=1), idx)
        with np.errstate(divide="ignore", invalid="ignore"):
            return {"perplexity": np.exp(means[:, 0] / means[:, 1])}
    # columns of d.regression: 0 squared error, 1 absolute error, 2 centred target, 3 its square
    needed = {0} if wanted & {"mse", "rmse"} else set()
    needed |= {1} if "mae" in wanted else set()
    needed = sorted(needed | ({0, 2, 3} if "r2" in wanted else set()))
    means = dict(zip(needed, np.moveaxis(resampled_means(d.regression[:, needed], idx), 1, 0)))
    out = {}
    if 0 in means:
        out |= {"mse": means[0].mean(axis=1), "rmse": np.sqrt(means[0]).mean(axis=1)}
    if 1 in means:
        out["mae"] = means[1].mean(axis=1)
    if "r2" in wanted:
        variance = means[3] - means[2] ** 2
        with np.errstate(divide="ignore", invalid="ignore"):
            r2 = np.where(variance > 0, 1.0 - means[0] / variance, np.nan)
        out["r2"] = r2.mean(axis=1)
    return out
