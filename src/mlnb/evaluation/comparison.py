"""``mlnb.compare``: do two models really differ on the same data? Paired tests and a verdict.

How it works, and the choices made:

* **Pairing.**  One pass over the data feeds every batch to both models before
  the next batch is read (:func:`mlnb.evaluation.streaming.stream`), so the two
  models are scored on the same examples in the same order even when a
  ``DataLoader`` shuffles; shuffled data need not be refused.
* **Accuracy** of classifiers: McNemar's exact test on per-example
  correctness, with Newcombe's interval for the difference
  (:func:`mlnb.evaluation.paired.mcnemar_exact`).
* **Every other metric**: a paired bootstrap.  Both models' metrics are
  computed on the same resamples (:func:`~mlnb.evaluation.metrics.resample_metrics`
  with one seed), the difference B - A is taken per resample, and the
  interval and p-value follow :func:`mlnb.evaluation.paired.paired_bootstrap`'s
  rules: percentile interval, p = min(1, 2 (1 + m) / (1 + B)), m the smaller
  count of differences <= 0 and >= 0.  The draws come from ``resample_metrics``
  rather than from ``paired_bootstrap`` itself because it scores a family of
  metrics (precision, recall, F1 ...) in one pass over each resample; both
  draw the same resamples from the same seed, and
  ``tests/evaluation/test_compare.py`` checks that the two agree.
* **Several metrics**: Holm's correction (:func:`~mlnb.evaluation.paired.holm`)
  over the metrics tested; the verdict line is :func:`~mlnb.evaluation.paired.verdict`'s.
  By default only a few headline metrics per task are compared
  (:data:`COMPARED`): micro averages equal accuracy on single-label data and
  every extra metric costs power under Holm.
* **Nothing is stored.**  A comparison is a view over two evaluations of the
  same data.  Storing both sides would also change which evaluation is each
  version's newest, the one promotion checks against the gates, as a side
  effect of looking; run :func:`mlnb.evaluate` on each to store them.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from mlnb.errors import InvalidArgument

if TYPE_CHECKING:
    import numpy as np
    import torch

    from mlnb.evaluation.accumulate import Predictions
    from mlnb.evaluation.metrics import Estimate
    from mlnb.evaluation.paired import McNemar, PairedDifference
    from mlnb.evaluation.report import Comparison
    from mlnb.registry.client import Registry

__all__ = ["COMPARED", "compare", "paired_from_draws"]

#: Metrics compared when none are named.
COMPARED = {
    "classification": ("accuracy", "f1_macro", "log_loss"),
    "regression": ("mse", "mae", "r2"),
    "language-model": ("perplexity",),
}
_CONFIDENCE = 0.95


def paired_from_draws(value_a: float, value_b: float, draws_a: np.ndarray, draws_b: np.ndarray,
                      *, n: int, confidence: float = _CONFIDENCE
                      ) -> tuple[PairedDifference | None, str]:
    """The paired bootstrap of B - A from both models' per-resample values (same resamples).

    Returns ``(result, note)``: result None when the metric is not finite on
    the data or on at least half of the resamples, as ``paired_bootstrap``
    refuses those too; *note* says why.
    """
    import numpy as np

    from mlnb.evaluation.paired import PairedDifference

    if not (math.isfinite(value_a) and math.isfinite(value_b)):
        return None, f"not tested: the metric is undefined on these data (A {value_a}, B {value_b})"
    diffs = np.asarray(draws_b, dtype=np.float64) - np.asarray(draws_a, dtype=np.float64)
    total = len(diffs)
    diffs = diffs[np.isfinite(diffs)]
    if 2 * len(diffs) < total:
        return None, (f"not tested: the metric is undefined on {total - len(diffs)} of {total} "
                      "resamples (e.g. one class only)")
    alpha = 1.0 - confidence
    lower, upper = np.quantile(diffs, [alpha / 2, 1 - alpha / 2])
    tail = min(int(np.count_nonzero(diffs <= 0)), int(np.count_nonzero(diffs >= 0)))
    used = len(diffs)
    return PairedDifference(
        value_a=float(value_a), value_b=float(value_b), difference=float(value_b - value_a),
        lower=float(lower), upper=float(upper), p_value=min(1.0, 2.0 * (1 + tail) / (1 + used)),
        n=n, n_bootstrap=used, confidence=confidence), ""


def _correct(pred: Predictions) -> np.ndarray:
    return pred.proba.argmax(axis=1) == pred.y_true


def _change(test: McNemar | PairedDifference | None, p_holm: float | None, name: str,
            alpha: float) -> str:
    from mlnb.evaluation.metrics import is_lower_better

    if test is None or p_holm is None:
        return "not tested"
    gain = -test.difference if is_lower_better(name) else test.difference
    if p_holm > alpha or gain == 0:
        return "no change"
    return "better" if gain > 0 else "worse"


def _tests(task: str, pa: Predictions, pb: Predictions, est_a: dict[str, Estimate],
           est_b: dict[str, Estimate], draws_a: dict[str, Any], draws_b: dict[str, Any]
           ) -> dict[str, tuple[McNemar | PairedDifference | None, str]]:
    from mlnb.evaluation.paired import mcnemar_exact

    out: dict[str, tuple[Any, str]] = {}
    for name in est_a:
        if name == "accuracy" and task == "classification":
            out[name] = (mcnemar_exact(_correct(pa), _correct(pb), confidence=_CONFIDENCE), "")
        else:
            out[name] = paired_from_draws(float(est_a[name].value), float(est_b[name].value),
                                          draws_a[name], draws_b[name], n=len(pa))
    return out


def compare(
    ref_a: Any,
    ref_b: Any,
    data: Any,
    *,
    task: str = "classification",
    metrics: Any = None,
    n_bootstrap: int = 1000,
    seed: int | None = 0,
    alpha: float = 0.05,
    device: str | torch.device = "auto",
    batch_size: int | None = None,
    registry: Registry | None = None,
    output_type: str = "auto",
) -> Comparison:
    """Compare two models on the same examples with paired tests; store nothing.

    Parameters
    ----------
    ref_a, ref_b
        Registry references (``"m:2"``, ``"m@production"``) or ``nn.Module``
        objects (labelled ``<model A>`` and ``<model B>``).  Differences are
        B minus A; the verdict speaks of B.
    data, task, device, batch_size, registry, output_type
        As for :func:`mlnb.evaluate`.  Both models run on one device.
    metrics
        As for :func:`mlnb.evaluate`; None compares :data:`COMPARED` for the task.
    n_bootstrap, seed
        Resamples (at least 1) and their seed, shared by both models: the pairing.
    alpha
        Level at which a (Holm-adjusted) p-value counts as a change.

    Returns
    -------
    Comparison
        Each side's :class:`~mlnb.evaluation.report.Evaluation` (not stored),
        the per-metric tests and the verdict line.

    Raises
    ------
    InvalidArgument
        As :func:`mlnb.evaluate`, or *alpha* outside (0, 1), or ``n_bootstrap < 1``.
    """
    from mlnb.evaluation.metrics import compute, confusion_matrix, reliability, resample_metrics
    from mlnb.evaluation.paired import holm, verdict
    from mlnb.evaluation.report import Comparison, Evaluation, MetricComparison
    from mlnb.evaluation.runner import check_options, run_details
    from mlnb.evaluation.streaming import batches, open_models, stream
    from mlnb.training.fingerprint import data_fingerprint

    chosen = list(COMPARED.get(task, ())) if metrics is None else metrics
    names, user = check_options(task, chosen, n_bootstrap, seed, output_type)
    if not names and not user:
        raise InvalidArgument(f"no metric to compare: name at least one, e.g. "
                              f"metrics={list(COMPARED[task])!r}")
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, int) or n_bootstrap < 1:
        raise InvalidArgument(f"n_bootstrap must be a positive integer to compare, not "
                              f"{n_bootstrap!r}; use e.g. 1000")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
        raise InvalidArgument(f"alpha must lie strictly between 0 and 1, not {alpha!r}")
    fingerprint = data_fingerprint(data)
    labels = ["<model A>", "<model B>"]
    with open_models([ref_a, ref_b], device, registry, labels) as (models, dev, _):
        stream_of, size, examples = batches(data, batch_size, dev)
        runs = stream(models, stream_of, task=task, device=dev, output_type=output_type,
                      size_hint=examples)
    pa, pb = runs[0][0], runs[1][0]
    sides, draws = [], []
    for model, (pred, timing) in zip(models, runs):
        estimates = compute(pred, chosen, n_bootstrap=n_bootstrap, seed=seed)
        draws.append(resample_metrics(pred, chosen, n_bootstrap=n_bootstrap, seed=seed))
        classes = task == "classification"
        sides.append(Evaluation(
            ref=model.label, task=task, n=len(pred), estimates={**estimates,
                                                                  **timing.estimates()},
            data_fingerprint=fingerprint["hash"],
            confusion=confusion_matrix(pred) if classes else None,
            reliability=reliability(pred) if classes else None, device=str(dev),
            details=run_details(n=len(pred), device=dev, batch_size=size,
                                n_bootstrap=n_bootstrap, seed=seed, timing=timing,
                                fingerprint=fingerprint, output_type=output_type)))
    a, b = sides
    scalar = {k: v for k, v in a.estimates.items() if k in draws[0]}
    tests = _tests(task, pa, pb, scalar, {k: b.estimates[k] for k in scalar}, *draws)
    tested = {name: test for name, (test, _) in tests.items() if test is not None}
    p_holm = holm({name: t.p_value for name, t in tested.items()}) if tested else {}
    results = {name: MetricComparison(
        name=name, a=a.estimates[name], b=b.estimates[name], test=test,
        p_holm=p_holm.get(name), change=_change(test, p_holm.get(name), name, alpha), note=note)
        for name, (test, note) in tests.items()}
    if tested:
        from mlnb.evaluation.metrics import is_lower_better

        line = verdict(a.ref, b.ref, tested, alpha=alpha, lower_is_better=is_lower_better)
    else:
        line = (f"{b.ref} vs {a.ref}: no metric could be tested "
                f"({'; '.join(f'{k}: {v}' for k, (_, v) in tests.items()) or 'none chosen'})")
    return Comparison(a=a, b=b, results=results, verdict=line, alpha=float(alpha),
                      details={"n_bootstrap": n_bootstrap, "seed": seed,
                               "correction": "holm", "confidence": _CONFIDENCE})
