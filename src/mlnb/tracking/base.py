"""The publisher interface: what every tracker (MLflow, W&B, your own) receives from a run.

A :class:`Publisher` is an observer of :func:`mlnb.train` (see
:mod:`mlnb.training.events`): its ``start``/``step``/``epoch``/``end`` methods
turn the run's events into five small hooks that a tracker implements
(:meth:`~Publisher.open`, :meth:`~Publisher.log_metrics`,
:meth:`~Publisher.log_summary`, :meth:`~Publisher.log_model_files`,
:meth:`~Publisher.close`).  Every publisher therefore maps a run the same way:

===================  ===========================================================
params               ``RunStart.params`` (the hyper-parameters), as given
tags                 ``mlnb.run_id``, ``mlnb.name``, ``mlnb.device``,
                     ``mlnb.precision``, ``mlnb.monitor``, ``mlnb.mode``,
                     ``mlnb.resumed``; at the end ``mlnb.status`` and, when
                     registered, ``mlnb.version`` (``name:3``)
``train_loss_step``  each logged training loss, on axis ``"step"``: the global
                     batch count (``StepLog.step``), every ``log_every`` batches
epoch columns        each numeric history column but ``epoch`` (``train_loss``,
                     ``val_loss``, ``val_<metric>``, ``lr``, ``epoch_time_s``,
                     ``samples_per_s``) on axis ``"epoch"``: the epoch number,
                     from 1
final metrics        ``best_<monitor>``, ``best_epoch``, ``epochs_run``,
                     ``elapsed_s`` (the last epoch's values are the last points
                     of the epoch columns)
model                the trained weights: ``model.safetensors`` plus
                     ``mlnb.json`` (format and metadata for
                     :func:`mlnb.serialize.load`), unless the run was
                     ``interrupted`` or ``diverged``
status               the tracker's own run state, from mlnb's status
===================  ===========================================================

A resumed run (``RunStart.resumed``) continues the tracker's earlier run when
:meth:`~Publisher.open` finds it; otherwise the epochs and steps done before
the resume are logged first, so a tracker run always holds the whole history.

Failures: the loop's :class:`~mlnb.training.events.Observers` warns once and
drops an observer that raises.  Before re-raising, a publisher closes its
tracker run as ``"failed"`` (best effort), so no run is left marked running;
:meth:`Publisher.abort` does the same for a run that ends without ``end``.
"""

from __future__ import annotations

import contextlib
import json
import math
import numbers
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Iterator, Mapping

from mlnb.errors import InvalidArgument

if TYPE_CHECKING:
    from mlnb.training.events import EpochEnd, RunEnd, RunStart, StepLog
    from mlnb.training.history import Run

__all__ = [
    "MODEL_DIR",
    "NO_MODEL_STATUSES",
    "Publisher",
    "STEP_METRIC",
    "final_metrics",
    "final_tags",
    "flatten_params",
    "plain_params",
    "run_tags",
    "stage_model",
]

STEP_METRIC = "train_loss_step"
MODEL_DIR = "model"
NO_MODEL_STATUSES = frozenset({"interrupted", "diverged", "failed"})


class Publisher:
    """Base class of a tracker: subclasses implement the five hooks below.

    Parameters
    ----------
    log_model:
        Publish the trained weights at the end of the run (default True).

    The observer methods (``start``, ``step``, ``epoch``, ``end``) are called
    by the training loop; a publisher may be reused for several runs, each
    ``start`` beginning a new tracker run.  ``progress`` events are not
    listened to: trackers get every logged loss through ``step`` anyway.
    """

    #: The name users pass in ``track=[...]``.
    name: ClassVar[str] = "tracker"
    # class-level defaults, for subclasses that do not call ``super().__init__``
    log_model: bool = True
    _active: bool = False

    def __init__(self, *, log_model: bool = True) -> None:
        if not isinstance(log_model, bool):
            raise InvalidArgument(
                f"log_model must be True or False, not {log_model!r}"
            )
        self.log_model = log_model
        self._active = False

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    # -- hooks a tracker implements -------------------------------------------------------

    def open(self, start: RunStart, params: dict[str, Any], tags: dict[str, str]) -> bool:
        """Begin (or, resuming, reopen) the tracker's run and record *params* and *tags*.

        *params* is :func:`plain_params` of ``start.params`` (nested mappings
        kept); *tags* are mlnb's string tags.

        Returns
        -------
        bool
            True when an earlier tracker run of this mlnb run was reopened and
            already holds the history before the resume; False for a new one.
        """
        raise NotImplementedError

    def log_metrics(self, metrics: Mapping[str, float], *, step: int, axis: str) -> None:
        """Record *metrics* at *step* of *axis*: ``"step"`` (global batch) or ``"epoch"``."""
        raise NotImplementedError

    def log_summary(self, metrics: Mapping[str, float], tags: Mapping[str, str]) -> None:
        """Record the run's final metrics and end-of-run tags."""
        raise NotImplementedError

    def log_model_files(self, directory: Path, info: Mapping[str, Any]) -> None:
        """Publish the files in *directory* (weights and ``mlnb.json``; *info* is its content).

        *directory* is removed when this returns: copy or upload before.
        """
        raise NotImplementedError

    def close(self, status: str) -> None:
        """End the tracker's run with mlnb's *status* (``"finished"``, ``"failed"``, ...)."""
        raise NotImplementedError

    # -- observer methods -------------------------------------------------------------------

    def start(self, event: RunStart) -> None:
        """Open the tracker run; log the history before a resume when it is a new one."""
        if self._active:  # the previous run never ended (its kernel cell crashed)
            self._abort("failed")
        self._active = True
        with self._closing_on_error():
            continued = self.open(event, plain_params(event.params), run_tags(event))
            if not continued and (event.history or event.steps):
                self._backfill(event)

    def step(self, event: StepLog) -> None:
        """Log one training loss at its global step."""
        if self._active:
            with self._closing_on_error():
                self.log_metrics({STEP_METRIC: float(event.loss)}, step=event.step, axis="step")

    def epoch(self, event: EpochEnd) -> None:
        """Log an epoch's history row at its epoch number."""
        if self._active:
            with self._closing_on_error():
                epoch, metrics = _epoch_metrics(event.row)
                self.log_metrics(metrics, step=epoch, axis="epoch")

    def end(self, event: RunEnd) -> None:
        """Log the final metrics and the model, then close the tracker run with its status."""
        if not self._active:
            return
        run = event.run
        status = str(run.status)
        with self._closing_on_error(status):
            self.log_summary(final_metrics(run), final_tags(run))
            if self.log_model and event.model is not None and status not in NO_MODEL_STATUSES:
                with tempfile.TemporaryDirectory(prefix="mlnb-track-") as tmp:
                    info = stage_model(event.model, Path(tmp), run)
                    self.log_model_files(Path(tmp), info)
        self._active = False
        self.close(status)

    def abort(self, status: str = "failed") -> None:
        """Close the tracker run now, ignoring errors: for a run that ends without ``end``.

        For the loop to call when training raises (a bug, an out-of-memory
        error), so the tracker does not show the run as running forever.
        """
        self._abort(status)

    # -- internals --------------------------------------------------------------------------

    @contextlib.contextmanager
    def _closing_on_error(self, status: str = "failed") -> Iterator[None]:
        """Close the tracker run before an error reaches the loop, which then drops us."""
        try:
            yield
        except Exception:  # KeyboardInterrupt passes: the loop ends the run and sends ``end``
            self._abort(status)
            raise

    def _abort(self, status: str) -> None:
        if self._active:
            self._active = False
            with contextlib.suppress(Exception):
                self.close(status)

    def _backfill(self, start: RunStart) -> None:
        steps_by_epoch: dict[int, list[tuple[int, float]]] = {}
        for step, epoch, loss in start.steps:
            steps_by_epoch.setdefault(int(epoch), []).append((int(step), float(loss)))
        rows = {int(row["epoch"]): row for row in start.history if "epoch" in row}
        for epoch in sorted(set(steps_by_epoch) | set(rows)):
            for step, loss in steps_by_epoch.get(epoch, ()):
                self.log_metrics({STEP_METRIC: loss}, step=step, axis="step")
            if epoch in rows:
                number, metrics = _epoch_metrics(rows[epoch])
                self.log_metrics(metrics, step=number, axis="epoch")


def _number(value: Any) -> float | None:
    """A metric value as a float, or None for what is not a number (None, text, bools)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    return float(value)


def _epoch_metrics(row: Mapping[str, Any]) -> tuple[int, dict[str, float]]:
    metrics = {}
    for key, value in row.items():
        number = _number(value)
        if key != "epoch" and number is not None:
            metrics[str(key)] = number
    return int(row["epoch"]), metrics


def run_tags(start: RunStart) -> dict[str, str]:
    """mlnb's tags for a tracker run, known at its start."""
    return {
        "mlnb.run_id": str(start.run_id),
        "mlnb.name": str(start.name),
        "mlnb.device": str(start.device),
        "mlnb.precision": str(start.precision),
        "mlnb.monitor": str(start.monitor),
        "mlnb.mode": str(start.mode),
        "mlnb.resumed": "true" if start.resumed else "false",
    }


def final_metrics(run: Run) -> dict[str, float]:
    """The end-of-run numbers: best monitor value and epoch, epochs run, wall time."""
    out: dict[str, float] = {}
    best = _number(run.best_value)
    if best is not None:
        out[f"best_{run.monitor}"] = best
    if run.best_epoch is not None:
        out["best_epoch"] = float(run.best_epoch)
    out["epochs_run"] = float(run.epochs_run)
    elapsed = _number(getattr(run, "elapsed_s", None))
    if elapsed is not None and math.isfinite(elapsed):
        out["elapsed_s"] = elapsed
    return out


def final_tags(run: Run) -> dict[str, str]:
    """The end-of-run tags: status and, when registered, the version (``name:3``)."""
    tags = {"mlnb.status": str(run.status)}
    version = getattr(run, "version", None)
    if version is not None:
        tags["mlnb.version"] = f"{version.name}:{version.version}"
    return tags


def stage_model(model: Any, directory: Path, run: Run) -> dict[str, Any]:
    """Write *model*'s files into *directory* with ``mlnb.json``; return that JSON's content.

    The weights are written by :func:`mlnb.serialize.stage` (safetensors for a
    torch module, never a pickle of the module), so ``mlnb.json``'s ``format``
    and ``metadata`` are what :func:`mlnb.serialize.load` takes to rebuild it.
    """
    from mlnb.serialize.formats import stage

    work = directory / ".stage"
    work.mkdir()
    staged = stage(model, work)
    files = []
    for rel, source in staged.files:
        target = directory / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if _inside(source, work):
            shutil.move(str(source), target)
        else:
            shutil.copy2(source, target)
        files.append(rel)
    shutil.rmtree(work)
    version = getattr(run, "version", None)
    info = {
        "format": staged.format,
        "metadata": staged.metadata,
        "files": files,
        "run_id": getattr(run, "run_id", None),
        "name": getattr(run, "name", None),
        "status": str(run.status),
        "version": None if version is None else f"{version.name}:{version.version}",
    }
    (directory / "mlnb.json").write_text(json.dumps(info, indent=2, default=str))
    return info


def _inside(path: Path, root: Path) -> bool:
    try:
        Path(path).resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def plain_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """*params* as JSON data: nested mappings kept, sequences as lists, other objects as text."""
    return {str(key): _plain(value) for key, value in params.items()}


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, Mapping):
        return plain_params(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)


def flatten_params(params: Mapping[str, Any], sep: str = ".") -> dict[str, Any]:
    """Flatten nested mappings: ``{"opt": {"lr": 0.1}}`` becomes ``{"opt.lr": 0.1}``."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, Mapping) and value:
            for sub, inner in flatten_params(value, sep).items():
                flat[f"{key}{sep}{sub}"] = inner
        else:
            flat[str(key)] = value
    return flat
