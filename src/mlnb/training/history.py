"""The result of :func:`mlnb.train`: a :class:`Run` with its per-epoch and per-step history."""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from mlnb.registry.records import Version

__all__ = ["STATUSES", "Run"]

STATUSES = ("finished", "stopped_early", "stopped", "interrupted", "diverged")


@dataclass(frozen=True, repr=False)
class Run:
    """One training run, as :func:`mlnb.train` returns it.

    Attributes
    ----------
    history:
        One row per completed epoch: ``epoch``, ``train_loss``, ``val_loss`` and
        ``val_<metric>`` (with a validation loader), ``lr`` (of the first param
        group, during the epoch), ``epoch_time_s`` and ``samples_per_s``.
    steps:
        The logged training loss: ``step`` (global batch count), ``epoch`` and
        ``loss`` (the mean over the samples since the previous row).
    status:
        ``"finished"``, ``"stopped_early"``, ``"stopped"`` (Stop or the first Ctrl-C:
        ended after an optimizer step, with a checkpoint), ``"interrupted"`` (a
        second Ctrl-C) or ``"diverged"`` (the training loss became NaN or infinite).
    best_epoch, best_value:
        The epoch with the best *monitor* value and that value (``None`` when no
        epoch completed or none was finite).
    monitor, mode:
        The history column watched for early stopping and ``"min"``/``"max"``.
    epochs:
        The number of epochs asked for.
    device, precision:
        Where and how it trained (``"cuda:0"``, ``"bf16"``, ...).
    version:
        The registered :class:`~mlnb.Version`, or ``None`` when not registered.
    elapsed_s:
        Wall time of the whole run, registration included.
    name, run_id:
        The run's name (what ``resume=True`` looks for) and its id in the run store.
    checkpoints:
        The checkpoints the run keeps (after the ``keep`` policy), oldest first.
    best_checkpoint:
        The kept checkpoint with the best *monitor* value, or ``None``.
    resumed:
        Whether this run continued an earlier one from its checkpoint.
    message:
        Why the run ended early, in one line (empty when it finished).
    """

    history: pd.DataFrame
    steps: pd.DataFrame
    status: str
    best_epoch: int | None
    best_value: float | None
    monitor: str
    mode: str
    epochs: int
    device: str
    precision: str
    version: Version | None
    elapsed_s: float
    name: str = "run"
    run_id: str = ""
    checkpoints: tuple[Any, ...] = ()
    best_checkpoint: Any = None
    resumed: bool = False
    message: str = ""

    @property
    def epochs_run(self) -> int:
        """How many epochs completed."""
        return len(self.history)

    def summary(self) -> str:
        """One line: status, epochs, best monitor value, device, precision, time."""
        parts = [f"{self.status}" + (" (resumed)" if self.resumed else ""),
                 f"{self.epochs_run}/{self.epochs} epochs"]
        if self.best_epoch is not None:
            parts.append(
                f"best {self.monitor}={_fmt(self.best_value)} at epoch {self.best_epoch}"
            )
        parts.append(f"{self.device}/{self.precision}")
        parts.append(f"{self.elapsed_s:.1f}s")
        if self.version is not None:
            parts.append(f"registered {self.version.name}:{self.version.version}")
        return ", ".join(parts)

    def __repr__(self) -> str:
        return f"<Run {self.summary()}>"

    def _repr_html_(self) -> str:
        table = self.history.to_html(index=False, float_format=_fmt, border=0)
        note = f"<p>{html.escape(self.message)}</p>" if self.message else ""
        return f"<div><p><b>Run</b> {html.escape(self.summary())}</p>{note}{table}</div>"


def _fmt(value: Any) -> str:
    """Four significant digits, the way a person reads a loss or an accuracy."""
    if value is None:
        return "-"
    value = float(value)
    if math.isnan(value):
        return "nan"
    return f"{value:.4g}"
