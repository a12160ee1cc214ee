"""What :func:`mlnb.train` tells its observers: the live monitor, the text bar, trackers.

The loop sends five kinds of event, each a small frozen dataclass:

==============  ===============================================================
``start``       :class:`RunStart`, once, before the first step (after a resume
                is loaded: ``history`` holds the epochs already done)
``progress``    :class:`Progress`, at most every ``interval`` seconds
                (4 a second by default), never with a host sync of its own
``step``        :class:`StepLog`, each time the training loss is read back
                (every ``log_every`` batches and at the end of each epoch)
``epoch``       :class:`EpochEnd`, after each epoch's validation and checkpoint
``end``         :class:`RunEnd`, once, after registration, whatever the status
``abort``       the status ``"failed"`` (a str), instead of ``end``, when the
                run raised (a bad batch, a bug in user code)
==============  ===============================================================

An observer is any object with some of the methods ``start``, ``progress``,
``step``, ``epoch``, ``end`` and ``abort``, each taking the event; missing ones are skipped.
:class:`Observers` calls them in order and keeps training going whatever they
do: an observer that raises is reported once with :class:`ObserverWarning` and
not called again for the rest of the run (a tracker losing its server must not
cost the training).  ``KeyboardInterrupt`` is not caught.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

if TYPE_CHECKING:
    from mlnb.training.history import Run

__all__ = [
    "EpochEnd",
    "ObserverWarning",
    "Observers",
    "Progress",
    "RunEnd",
    "RunStart",
    "StepLog",
]

EVENTS = ("start", "progress", "step", "epoch", "end", "abort")


class ObserverWarning(UserWarning):
    """An observer (monitor, tracker) failed; training went on without it."""


@dataclass(frozen=True)
class RunStart:
    """A run is about to train its first (or, resuming, its next) step."""

    name: str
    run_id: str
    epochs: int
    start_epoch: int
    steps_per_epoch: int | None
    monitor: str
    mode: str
    columns: Sequence[str]
    device: str
    precision: str
    params: Mapping[str, Any]
    resumed: bool = False
    history: Sequence[Mapping[str, Any]] = ()
    steps: Sequence[tuple[int, int, float]] = ()
    request_stop: Callable[[], None] = field(default=lambda: None, repr=False, compare=False)


@dataclass(frozen=True)
class Progress:
    """Where the run is, sent at most every ``interval`` seconds.

    ``loss`` is the last training loss read back (``None`` before the first);
    ``gpu_memory``/``gpu_memory_peak`` are bytes allocated on a CUDA device,
    ``None`` elsewhere.  Nothing here costs a device synchronisation.
    """

    epoch: int
    epochs: int
    batch: int
    steps_per_epoch: int | None
    global_step: int
    samples: int
    elapsed_s: float
    epoch_elapsed_s: float
    loss: float | None
    best_value: float | None
    gpu_memory: int | None = None
    gpu_memory_peak: int | None = None


@dataclass(frozen=True)
class StepLog:
    """A training loss read back: the mean over the batches since the previous one."""

    step: int
    epoch: int
    loss: float


@dataclass(frozen=True)
class EpochEnd:
    """An epoch is done: its history row, the best so far, the checkpoint written."""

    row: Mapping[str, float]
    epochs: int
    monitor: str
    best_epoch: int | None
    best_value: float | None
    checkpoint: str | None = None


@dataclass(frozen=True)
class RunEnd:
    """The run is over; ``model`` is the trained module (on its training device)."""

    run: Run
    model: Any = field(repr=False, default=None)


class Observers:
    """Fan events out to observers, isolating each one's failures."""

    def __init__(self, observers: Sequence[Any] = ()) -> None:
        self._observers = [o for o in observers if o is not None]
        self._failed: set[int] = set()
        # Which observers have which method, looked up once: events are frequent.
        self._methods = {
            event: [(i, getattr(o, event)) for i, o in enumerate(self._observers)
                    if callable(getattr(o, event, None))]
            for event in EVENTS
        }

    def __bool__(self) -> bool:
        return bool(self._observers)

    def __len__(self) -> int:
        return len(self._observers)

    def wants(self, event: str) -> bool:
        """Whether any observer listens to *event* (so the loop can skip building it)."""
        return bool(self._methods[event])

    def send(self, event: str, payload: Any) -> None:
        """Call ``observer.<event>(payload)`` on each observer that has the method."""
        for index, method in self._methods[event]:
            if index in self._failed:
                continue
            try:
                method(payload)
            except Exception as err:  # noqa: BLE001 - an observer never stops training
                self._failed.add(index)
                observer = self._observers[index]
                warnings.warn(
                    f"{type(observer).__name__}.{event} failed ({type(err).__name__}: {err}); "
                    "training goes on without it",
                    ObserverWarning, stacklevel=2,
                )
