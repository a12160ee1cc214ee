"""The results a user holds: :class:`Evaluation`, :class:`Comparison` and its :class:`MetricComparison` rows.

Frozen dataclasses with a short ``__repr__``, a ``_repr_html_`` rendered by
:mod:`mlnb.display.evaluation`, and ``to_frame()`` for pandas.  They are built
by :func:`mlnb.evaluate` and :func:`mlnb.compare`; nothing here computes a
statistic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

from mlnb.errors import InvalidArgument
from mlnb.refs import suggest

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from mlnb.evaluation.gates import GateReport
    from mlnb.evaluation.metrics import Estimate
    from mlnb.evaluation.paired import McNemar, PairedDifference

__all__ = ["Comparison", "Evaluation", "MetricComparison"]

_SHOWN = 3  # metrics written out in a repr


def fmt_estimate(est: Estimate) -> str:
    """``0.9534 [0.9491, 0.9572]``, or the value alone when there is no interval."""
    from mlnb.display.text import fmt_metric

    if est.lower is None or est.upper is None:
        return fmt_metric(float(est.value))
    return f"{fmt_metric(float(est.value))} [{fmt_metric(est.lower)}, {fmt_metric(est.upper)}]"


def _lookup(mapping: Mapping[str, Any], name: str, what: str) -> Any:
    try:
        return mapping[name]
    except KeyError:
        raise InvalidArgument(f"no metric {name!r} in this {what}{suggest(str(name), mapping)}; "
                              f"it has {', '.join(mapping) or 'none'}") from None


@dataclass(frozen=True, eq=False)
class Evaluation:
    """One model evaluated on one dataset.

    Attributes
    ----------
    ref : str
        The version's ``name:version``, or ``<model>`` for a module passed in.
    task : str
        ``"classification"``, ``"regression"`` or ``"language-model"``.
    n : int
        Examples (sequences, for a language model).
    estimates : mapping of str to Estimate
        Every metric: computed ones with a bootstrap 95% interval, then latency
        and throughput (no interval).
    data_fingerprint : str or None
        sha256 of the data (:func:`mlnb.training.fingerprint.data_fingerprint`);
        None when the data could not be read twice (a one-shot iterator).
    gates : GateReport or None
        The gates' results, when gates were given.
    confusion : numpy.ndarray or None
        Classification: counts, rows true class, columns predicted class.
    reliability : dict or None
        Classification: the reliability diagram's bins (:func:`~mlnb.evaluation.metrics.reliability`).
    record_id : int or None
        Id of the stored record (``Registry.evaluations``); None when nothing was stored.
    device : str
        Where the model ran.
    details : mapping
        How it was run (batch size, resamples, seed, timing), as stored.
    """

    ref: str
    task: str
    n: int
    estimates: Mapping[str, Estimate]
    data_fingerprint: str | None
    gates: GateReport | None = None
    confusion: np.ndarray | None = None
    reliability: dict[str, Any] | None = None
    record_id: int | None = None
    device: str = "cpu"
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool | None:
        """Whether every gate passed; None when no gates were given."""
        return None if self.gates is None else self.gates.passed

    def __getitem__(self, name: str) -> Estimate:
        return _lookup(self.estimates, name, "evaluation")

    def __repr__(self) -> str:
        shown = [f"{name} {fmt_estimate(est)}" for name, est in
                 list(self.estimates.items())[:_SHOWN]]
        if len(self.estimates) > _SHOWN:
            shown.append(f"+{len(self.estimates) - _SHOWN} more")
        gates = "" if self.gates is None else (
            "; gates passed" if self.gates.passed else "; gates NOT passed")
        return f"<Evaluation {self.ref} on {self.n:,} examples: {', '.join(shown)}{gates}>"

    def _repr_html_(self) -> str:
        from mlnb.display.evaluation import evaluation_html

        return evaluation_html(self)

    def to_frame(self) -> pd.DataFrame:
        """One row per metric: ``metric``, ``value``, ``lower``, ``upper``, ``note``."""
        import pandas as pd

        rows = [(name, float(e.value), e.lower, e.upper, e.note)
                for name, e in self.estimates.items()]
        return pd.DataFrame(rows, columns=["metric", "value", "lower", "upper", "note"])


@dataclass(frozen=True)
class MetricComparison:
    """One metric of a comparison: both models' estimates and the paired test of B - A.

    ``test`` is McNemar's exact test (accuracy of classifiers) or a paired
    bootstrap; None when the metric could not be tested (``note`` says why).
    ``p_holm`` is the p-value after Holm's correction over the metrics tested;
    ``change`` is ``"better"``, ``"worse"`` (B against A, in the metric's
    direction), ``"no change"`` or ``"not tested"``.
    """

    name: str
    a: Estimate
    b: Estimate
    test: McNemar | PairedDifference | None
    p_holm: float | None
    change: str
    note: str = ""

    @property
    def method(self) -> str:
        """``"McNemar exact"``, ``"paired bootstrap"`` or ``""``."""
        if self.test is None:
            return ""
        return "McNemar exact" if hasattr(self.test, "n01") else "paired bootstrap"

    @property
    def difference(self) -> float:
        """B minus A on all examples."""
        return float(self.b.value) - float(self.a.value) if self.test is None \
            else self.test.difference

    @property
    def lower(self) -> float | None:
        """Lower end of the paired 95% interval of the difference."""
        return None if self.test is None else self.test.lower

    @property
    def upper(self) -> float | None:
        """Upper end of the paired 95% interval of the difference."""
        return None if self.test is None else self.test.upper

    @property
    def p_value(self) -> float | None:
        """The test's own p-value, before Holm's correction."""
        return None if self.test is None else self.test.p_value


@dataclass(frozen=True, eq=False)
class Comparison:
    """Two models on the same examples: per-metric paired tests and one verdict line.

    Attributes
    ----------
    a, b : Evaluation
        Each model's evaluation on the data (not stored in the registry).
    results : mapping of str to MetricComparison
        In the order of the metrics compared.
    verdict : str
        One line, e.g. ``"m:3 is better on accuracy by 0.8 points [0.3, 1.3],
        p = 0.002; no significant change in log loss"``; p-values Holm-adjusted
        when several metrics are tested.
    alpha : float
        Level at which a change counts.
    """

    a: Evaluation
    b: Evaluation
    results: Mapping[str, MetricComparison]
    verdict: str
    alpha: float = 0.05
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        """Examples both models were scored on."""
        return self.a.n

    def __getitem__(self, name: str) -> MetricComparison:
        return _lookup(self.results, name, "comparison")

    def __repr__(self) -> str:
        return (f"<Comparison {self.a.ref} vs {self.b.ref} on {self.n:,} examples: "
                f"{self.verdict}>")

    def _repr_html_(self) -> str:
        from mlnb.display.evaluation import comparison_html

        return comparison_html(self)

    def to_frame(self) -> pd.DataFrame:
        """One row per metric: values, difference B - A, its interval, p-values, method, change."""
        import pandas as pd

        def num(x: float | None) -> float:
            return math.nan if x is None else float(x)

        rows = [(r.name, num(r.a.value), num(r.b.value), r.difference, num(r.lower),
                 num(r.upper), num(r.p_value), num(r.p_holm), r.method, r.change)
                for r in self.results.values()]
        return pd.DataFrame(rows, columns=["metric", "a", "b", "difference", "lower", "upper",
                                           "p_value", "p_holm", "method", "change"])
