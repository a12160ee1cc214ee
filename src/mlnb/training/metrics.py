"""Validation metrics for :func:`mlnb.train`: built-in names and user callables.

A built-in metric streams: it adds per-batch counts on the device and is read
once per epoch.  A user metric ``fn(outputs, targets) -> float`` is called once
per epoch on the concatenated validation outputs and targets, so metrics that do
not decompose over batches (AUC, F1) come out right.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping

from mlnb.errors import InvalidArgument
from mlnb.refs import suggest

if TYPE_CHECKING:
    import torch

__all__ = ["BUILTIN", "MetricSpec", "accuracy_count", "normalize_metrics"]

BUILTIN = ("accuracy",)


@dataclass(frozen=True)
class MetricSpec:
    """A metric to compute on the validation set; *fn* is ``None`` for a built-in."""

    name: str
    fn: Callable[[Any, Any], float] | None

    @property
    def column(self) -> str:
        """The history column that holds it."""
        return f"val_{self.name}"


def normalize_metrics(metrics: Any, *, has_val: bool) -> tuple[MetricSpec, ...]:
    """Check *metrics* and turn it into :class:`MetricSpec` s.

    *metrics* is ``None`` (``("accuracy",)`` with a validation loader, none
    without), a built-in name, a sequence of built-in names, or a mapping of
    ``name -> callable`` (or ``name -> built-in name``).

    Raises
    ------
    InvalidArgument
        An unknown name, a value that is not callable, a reserved name, or a
        metric requested without a validation loader.
    """
    if metrics is None:
        return (MetricSpec("accuracy", None),) if has_val else ()
    if isinstance(metrics, str):
        metrics = (metrics,)
    if isinstance(metrics, Mapping):
        items = list(metrics.items())
    else:
        try:
            items = [(m, m) for m in metrics]
        except TypeError as err:
            raise InvalidArgument(
                f"metrics must be names or a dict of name -> fn(outputs, targets), "
                f"not {type(metrics).__name__}"
            ) from err
    specs = []
    for name, value in items:
        if not isinstance(name, str) or not name or name == "loss":
            raise InvalidArgument(
                f"invalid metric name {name!r}: use a non-empty string other than 'loss'"
            )
        if callable(value):
            specs.append(MetricSpec(name, value))
        elif isinstance(value, str) and value in BUILTIN:
            specs.append(MetricSpec(name, None) if value == name else _alias(name, value))
        else:
            shown = value if isinstance(value, str) else name
            raise InvalidArgument(
                f"unknown metric {shown!r}{suggest(str(shown), BUILTIN)}: built-in metrics are "
                f"{', '.join(BUILTIN)}; pass your own as metrics={{{name!r}: fn}} "
                "with fn(outputs, targets) -> float"
            )
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise InvalidArgument(f"metric names must be unique, got {names}")
    if specs and not has_val:
        raise InvalidArgument(
            f"metrics {names} are computed on validation data, but no val_loader was given: "
            "pass val_loader=... or metrics=()"
        )
    return tuple(specs)


def _alias(name: str, builtin: str) -> MetricSpec:
    """A built-in under another name (``{"acc": "accuracy"}``), still streamed."""
    return MetricSpec(name, _BUILTIN_ALIASES[builtin])


def accuracy_count(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Number of correct predictions in a batch, as a device tensor (no host sync).

    Outputs of shape ``(N, C)`` with ``C > 1`` are class scores (argmax);
    outputs of shape ``(N,)`` or ``(N, 1)`` are binary logits (positive means 1).
    """
    if outputs.ndim >= 2 and outputs.shape[1] > 1:
        pred = outputs.argmax(dim=1)
    else:
        pred = (outputs.reshape(outputs.shape[0]) > 0).long()
    return (pred == targets.reshape(pred.shape)).sum()


def _accuracy(outputs: torch.Tensor, targets: torch.Tensor) -> float:
    return accuracy_count(outputs, targets).item() / max(len(targets), 1)


_BUILTIN_ALIASES = {"accuracy": _accuracy}
