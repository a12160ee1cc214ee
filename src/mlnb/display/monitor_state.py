"""A training run's state as a monitor shows it, built from the loop's events.

:class:`MonitorState` is itself an observer (``start``/``progress``/``step``/
``epoch``/``end``, see :mod:`mlnb.training.events`): each event updates a few
fields in O(1) and marks the parts of the view it changed (:data:`PARTS`), so a
reporter can redraw only those.  The renderers in :mod:`mlnb.display.training`
turn it into text, HTML and the widget's data.

Curves stay small whatever the run's length: a :class:`Series` keeps at most
``max_points`` points (500 by default), merging neighbours in pairs (their mean)
each time it fills up, so a point stands for more and more steps.

Rates come from the last ~10 s of progress in the current epoch; the ETA counts
the batches left in the epoch at that rate when ``steps_per_epoch`` is known,
and each epoch left at the mean time of the epochs done (validation included).
"""

from __future__ import annotations

import math
import sys
from array import array
from collections import deque
from typing import Any

__all__ = ["MonitorState", "PARTS", "Series"]

PARTS = ("status", "header", "bar", "metrics", "history", "curves", "gpu", "note")
DONE = ("finished", "stopped_early", "stopped", "interrupted", "diverged", "failed")
MAX_POINTS = 500
RATE_WINDOW_S = 10.0
_LOSSES = ("train_loss", "val_loss")


class Series:
    """Points ``(x, y)`` of one curve, at most *limit* of them (non-finite ``y`` skipped)."""

    __slots__ = ("limit", "xs", "ys", "stride", "_n", "_x", "_sum")

    def __init__(self, limit: int = MAX_POINTS) -> None:
        self.limit = max(2, int(limit))
        self.xs: list[float] = []
        self.ys: list[float] = []
        self.stride = 1          # how many added points each kept point stands for
        self._n, self._x, self._sum = 0, 0.0, 0.0   # the bucket being filled

    def __len__(self) -> int:
        return len(self.xs) + (1 if self._n else 0)

    def add(self, x: float, y: float | None) -> None:
        """Add a point; past *limit*, neighbours merge in pairs and buckets double."""
        if y is None or not math.isfinite(y):
            return
        self._n += 1
        self._x = x
        self._sum += y
        if self._n < self.stride:
            return
        self.xs.append(x)
        self.ys.append(self._sum / self._n)
        self._n, self._sum = 0, 0.0
        if len(self.xs) > self.limit:
            xs, ys = self.xs, self.ys
            even = len(xs) // 2 * 2
            self.xs = xs[1:even:2] + xs[even:]
            self.ys = [(ys[i] + ys[i + 1]) / 2 for i in range(0, even, 2)] + ys[even:]
            self.stride *= 2

    def points(self) -> list[list[float]]:
        """``[[x, y], ...]``, y to 6 significant digits, the bucket being filled last."""
        pts = [[x, float(f"{y:.6g}")] for x, y in zip(self.xs, self.ys)]
        if self._n:
            pts.append([self._x, float(f"{self._sum / self._n:.6g}")])
        return pts

    def packed(self) -> tuple[bytes, bytes]:
        """The x and the y values as little-endian float64 bytes (binary widget buffers)."""
        xs, ys = array("d", self.xs), array("d", self.ys)
        if self._n:
            xs.append(self._x)
            ys.append(self._sum / self._n)
        if sys.byteorder == "big":
            xs.byteswap()
            ys.byteswap()
        return xs.tobytes(), ys.tobytes()


class MonitorState:
    """What a training monitor shows, updated by the loop's events (an observer itself)."""

    def __init__(self, max_points: int = MAX_POINTS) -> None:
        self.max_points = max_points
        self.name, self.run_id, self.status = "run", "", "starting"
        self.device = self.precision = ""
        self.monitor, self.mode = "", "min"
        self.columns: tuple[str, ...] = ()
        self.epochs, self.start_epoch = 0, 1
        self.steps_per_epoch: int | None = None
        self.resumed = False
        self.current_epoch = self.batch = self.global_step = self.samples = 0
        self.elapsed_s = self.epoch_elapsed_s = 0.0
        self.loss: float | None = None
        self.best_value: float | None = None
        self.best_epoch: int | None = None
        self.gpu_memory: int | None = None
        self.gpu_memory_peak: int | None = None
        self.rows: list[dict[str, Any]] = []
        self.message, self.version = "", ""
        self.checkpoints = 0
        self.steps = Series(max_points)
        self.epoch_curves: dict[str, Series] = {}
        self.changed: set[str] = set(PARTS)
        self._epoch_step: dict[int, int] = {}   # the last logged step of each epoch (x of its row)
        self._window: deque[tuple[float, int, int]] = deque(maxlen=64)
        self._epoch_times: list[float] = []

    @property
    def done(self) -> bool:
        """Whether the run is over."""
        return self.status in DONE

    def take_changed(self) -> set[str]:
        """The parts changed since the last call (see :data:`PARTS`)."""
        changed, self.changed = self.changed, set()
        return changed

    # -- events ----------------------------------------------------------------------

    def start(self, event: Any) -> None:
        """A :class:`~mlnb.training.events.RunStart`."""
        self.name, self.run_id = event.name, event.run_id
        self.status = "training"
        self.device, self.precision = event.device, event.precision
        self.monitor, self.mode = event.monitor, event.mode
        self.columns = tuple(event.columns)
        self.epochs, self.start_epoch = event.epochs, event.start_epoch
        self.steps_per_epoch = event.steps_per_epoch
        self.resumed = bool(event.resumed)
        self.current_epoch = max(event.start_epoch - 1, 0)
        for step, epoch, loss in event.steps:
            self._add_step(int(step), int(epoch), float(loss))
        for row in event.history:
            self._add_row(dict(row))
        self.changed.update(PARTS)

    def progress(self, event: Any) -> None:
        """A :class:`~mlnb.training.events.Progress`: cheap, it comes 4 times a second."""
        if event.epoch != self.current_epoch or event.samples < self.samples:
            self._window.clear()   # rates restart with each epoch
        self.current_epoch, self.epochs, self.batch = event.epoch, event.epochs, event.batch
        if event.steps_per_epoch is not None:
            self.steps_per_epoch = event.steps_per_epoch
        self.global_step, self.samples = event.global_step, event.samples
        self.elapsed_s, self.epoch_elapsed_s = event.elapsed_s, event.epoch_elapsed_s
        self._window.append((event.elapsed_s, event.global_step, event.samples))
        if event.loss is not None:
            self.loss = event.loss
        if event.gpu_memory is not None:
            self.gpu_memory, self.gpu_memory_peak = event.gpu_memory, event.gpu_memory_peak
            self.changed.add("gpu")
        self.changed.add("bar")

    def step(self, event: Any) -> None:
        """A :class:`~mlnb.training.events.StepLog`."""
        self._add_step(event.step, event.epoch, event.loss)
        self.loss = event.loss
        self.global_step = max(self.global_step, event.step)
        self.changed.update(("bar", "curves"))

    def epoch(self, event: Any) -> None:
        """An :class:`~mlnb.training.events.EpochEnd`."""
        row = dict(event.row)
        self.epochs, self.monitor = event.epochs, event.monitor
        self.best_epoch, self.best_value = event.best_epoch, event.best_value
        self._add_row(row)
        self.current_epoch = max(self.current_epoch, int(row["epoch"]))
        if self.steps_per_epoch:
            self.batch = self.steps_per_epoch
        time_s = row.get("epoch_time_s")
        if isinstance(time_s, (int, float)) and math.isfinite(time_s):
            self._epoch_times.append(float(time_s))
        self.changed.update(("bar", "metrics", "history", "curves"))

    def end(self, event: Any) -> None:
        """A :class:`~mlnb.training.events.RunEnd`."""
        run = event.run
        self.status = run.status
        self.best_epoch, self.best_value = run.best_epoch, run.best_value
        self.elapsed_s = run.elapsed_s
        self.message = getattr(run, "message", "") or ""
        self.checkpoints = len(getattr(run, "checkpoints", ()) or ())
        version = run.version
        self.version = f"{version.name}:{version.version}" if version is not None else ""
        self.changed.update(PARTS)

    def abort(self, status: str) -> None:
        """The run raised (``status`` is ``"failed"``): it is over, with no result."""
        self.status = status
        self.message = "the training raised an error (see the traceback below)"
        self.changed.update(PARTS)

    # -- bookkeeping -------------------------------------------------------------------

    def _add_step(self, step: int, epoch: int, loss: float) -> None:
        self.steps.add(step, loss)
        self._epoch_step[epoch] = max(step, self._epoch_step.get(epoch, 0))

    def _add_row(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        epoch = int(row["epoch"])
        x = self._epoch_step.get(epoch)
        if x is None:
            x = epoch * self.steps_per_epoch if self.steps_per_epoch else max(self.global_step,
                                                                              epoch)
        for column in (*_LOSSES, _metric_column(self)):
            if column and column in row:
                series = self.epoch_curves.setdefault(column, Series(self.max_points))
                series.add(x, _number(row[column]))

    # -- derived figures -----------------------------------------------------------------

    def rates(self) -> tuple[float | None, float | None]:
        """(batches/s, samples/s) over the last ~10 s of this epoch; ``None`` when unknown."""
        window = self._window
        if len(window) >= 2:
            t1, s1, n1 = window[-1]
            t0, s0, n0 = next(p for p in window if p[0] >= t1 - RATE_WINDOW_S or p is window[-1])
            if t0 == t1:
                t0, s0, n0 = window[-2]
            if t1 > t0:
                return (s1 - s0) / (t1 - t0), ((n1 - n0) / (t1 - t0) if n1 > n0 else None)
        if self.epoch_elapsed_s > 0 and self.batch and window:
            samples = self.samples / self.epoch_elapsed_s if self.samples else None
            return self.batch / self.epoch_elapsed_s, samples
        return None, None

    def samples_per_s(self) -> float | None:
        """Live within an epoch; the last epoch's own figure between epochs and at the end."""
        live = self.current_epoch > self._completed() and not (self.done and self.rows)
        rate = self.rates()[1] if live else None
        if rate is None and self.rows:
            rate = _number(self.rows[-1].get("samples_per_s"))
        return rate

    def _completed(self) -> int:
        return int(self.rows[-1]["epoch"]) if self.rows else self.start_epoch - 1

    def _epoch_time(self) -> float | None:
        recent = self._epoch_times[-5:]
        return sum(recent) / len(recent) if recent else None

    def fraction(self) -> float | None:
        """How much of the run is done, 0 to 1 (``None`` before the number of epochs is known)."""
        if not self.epochs:
            return None
        if self.status == "finished":
            return 1.0
        completed, part = self._completed(), 0.0
        if self.current_epoch > completed:
            per_epoch = self._epoch_time()
            if self.steps_per_epoch:
                part = min(self.batch / self.steps_per_epoch, 1.0)
            elif per_epoch:
                part = min(self.epoch_elapsed_s / per_epoch, 0.99)
        return min((completed + part) / self.epochs, 1.0)

    def eta_s(self) -> float | None:
        """Seconds left, or ``None`` when it cannot be told yet (or the run is over)."""
        if self.done or not self.epochs:
            return None
        per_epoch = self._epoch_time()
        spe = self.steps_per_epoch
        batches_per_s = self.rates()[0]
        in_epoch = self.current_epoch > self._completed()
        if not in_epoch:
            current = 0.0
        elif spe and batches_per_s:
            current = max(spe - self.batch, 0) / batches_per_s
        elif per_epoch is not None:
            current = max(per_epoch - self.epoch_elapsed_s, 0.0)
        else:
            return None
        left = max(self.epochs - max(self.current_epoch, self._completed()), 0)
        if left and per_epoch is None:
            if not (spe and batches_per_s):
                return None
            per_epoch = spe / batches_per_s
        return current + left * (per_epoch or 0.0)


def _metric_column(state: MonitorState) -> str:
    """The one non-loss column drawn in a second chart: the monitor, else the first ``val_``."""
    if state.monitor and state.monitor not in _LOSSES:
        return state.monitor
    return next((c for c in state.columns if c.startswith("val_") and c not in _LOSSES), "")


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
