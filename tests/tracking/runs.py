"""A hand-built run for the tracking tests: its events as the loop sends them, and its Run."""

from __future__ import annotations

import dataclasses
import inspect
import math
from dataclasses import dataclass, field
from typing import Any

import pytest

COLUMNS = ("epoch", "train_loss", "val_loss", "val_accuracy", "lr", "epoch_time_s",
           "samples_per_s")
PARAMS = {"epochs": 2, "lr": 0.1, "optimizer": "SGD", "batch_size": 32, "seed": None,
          "grad_accum": 1, "opt": {"betas": (0.9, 0.999), "nesterov": False}}
STEPS = [(5, 1, 0.9), (8, 1, 0.7), (13, 2, 0.5), (16, 2, 0.4)]
ROWS = [
    {"epoch": 1, "train_loss": 0.8, "val_loss": 0.6, "val_accuracy": 0.75, "lr": 0.1,
     "epoch_time_s": 0.5, "samples_per_s": 512.0},
    {"epoch": 2, "train_loss": 0.45, "val_loss": 0.3, "val_accuracy": 0.9, "lr": 0.1,
     "epoch_time_s": 0.4, "samples_per_s": 640.0},
]


def _has_track() -> bool:
    import mlnb

    return "track" in inspect.signature(mlnb.train).parameters


needs_track = pytest.mark.skipif(
    not _has_track(), reason="mlnb.train has no track= yet (the lead is adding it)"
)


def make_run(status: str = "finished", rows=ROWS, steps=STEPS, **overrides: Any):
    """A :class:`~mlnb.training.history.Run` built directly, as the loop would return it."""
    import pandas as pd

    from mlnb.training.history import Run

    best = min(rows, key=lambda r: r["val_loss"]) if rows else None
    values: dict[str, Any] = {
        "history": pd.DataFrame(list(rows), columns=list(COLUMNS)),
        "steps": pd.DataFrame(list(steps), columns=["step", "epoch", "loss"]),
        "status": status, "best_epoch": best and best["epoch"],
        "best_value": best and best["val_loss"], "monitor": "val_loss", "mode": "min",
        "epochs": 2, "device": "cpu", "precision": "fp32", "version": None, "elapsed_s": 1.5,
        # fields the Run gains with checkpoints and resume; filled only when it has them
        "name": "blobs", "run_id": "run-0", "checkpoints": (), "best_checkpoint": None,
        "resumed": False,
    }
    values.update(overrides)
    names = {f.name for f in dataclasses.fields(Run)}
    return Run(**{k: v for k, v in values.items() if k in names})


@dataclass
class Scenario:
    """The events of one small run, in the order the loop sends them."""

    name: str
    run_id: str
    model: Any
    status: str = "finished"
    resumed: bool = False
    done: int = 0  # epochs already done before a resume
    events: list[tuple[str, Any]] = field(default_factory=list)

    def build(self) -> Scenario:
        from mlnb.training.events import EpochEnd, RunEnd, RunStart, StepLog

        before = [r for r in ROWS if r["epoch"] <= self.done]
        steps_before = [s for s in STEPS if s[1] <= self.done]
        self.events = [("start", RunStart(
            name=self.name, run_id=self.run_id, epochs=2, start_epoch=self.done + 1,
            steps_per_epoch=8, monitor="val_loss", mode="min", columns=COLUMNS, device="cpu",
            precision="fp32", params=PARAMS, resumed=self.resumed, history=before,
            steps=steps_before,
        ))]
        best_value, best_epoch = math.inf, None
        for row in ROWS[self.done:]:
            for step, epoch, loss in STEPS:
                if epoch == row["epoch"]:
                    self.events.append(("step", StepLog(step=step, epoch=epoch, loss=loss)))
            if row["val_loss"] < best_value:
                best_value, best_epoch = row["val_loss"], row["epoch"]
            self.events.append(("epoch", EpochEnd(
                row=row, epochs=2, monitor="val_loss", best_epoch=best_epoch,
                best_value=best_value, checkpoint=None,
            )))
        run = make_run(self.status, name=self.name, run_id=self.run_id, resumed=self.resumed)
        self.events.append(("end", RunEnd(run=run, model=self.model)))
        return self

    def send(self, *observers: Any, until: str | None = None) -> None:
        """Send every event through the loop's :class:`Observers` (which isolates failures)."""
        from mlnb.training.events import Observers

        group = Observers(observers)
        for kind, event in self.events:
            if kind == until:
                return
            group.send(kind, event)

