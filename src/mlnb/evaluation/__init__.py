"""Evaluate models, compare them with paired statistics, and gate promotion on the results.

``mlnb.evaluate`` (:mod:`~mlnb.evaluation.runner`) scores one model with
bootstrap intervals and stores the result; ``mlnb.compare``
(:mod:`~mlnb.evaluation.comparison`) tests two models on the same examples;
the pieces they stand on are :mod:`~mlnb.evaluation.accumulate`,
:mod:`~mlnb.evaluation.metrics`, :mod:`~mlnb.evaluation.bootstrap`,
:mod:`~mlnb.evaluation.paired` and :mod:`~mlnb.evaluation.gates`.

The public names are imported on first use (PEP 562), so ``import
mlnb.evaluation`` loads neither numpy, scipy nor torch.  The runner and the
comparison live in modules that are *not* called ``evaluate`` and ``compare``:
importing a submodule sets the package attribute of its name, which would
hide the function of the same name.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# public name -> module that defines it; imported on first attribute access.
_LAZY = {
    "Comparison": "mlnb.evaluation.report",
    "Estimate": "mlnb.evaluation.metrics",
    "Evaluation": "mlnb.evaluation.report",
    "compare": "mlnb.evaluation.comparison",
    "evaluate": "mlnb.evaluation.runner",
    "parse_gates": "mlnb.evaluation.gates",
}

__all__ = ["Comparison", "Estimate", "Evaluation", "compare", "evaluate", "parse_gates"]

if TYPE_CHECKING:
    from mlnb.evaluation.comparison import compare
    from mlnb.evaluation.gates import parse_gates
    from mlnb.evaluation.metrics import Estimate
    from mlnb.evaluation.report import Comparison, Evaluation
    from mlnb.evaluation.runner import evaluate


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mlnb.evaluation' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
