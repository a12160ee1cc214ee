"""One training run's life: where it stands in the epochs, its checkpoints, its status.

:class:`Session` is what :func:`mlnb.train` drives: it finds the run to resume
(or creates one) in the run store, puts back the model, optimizer, scheduler,
scaler, random generators and counters from its last checkpoint, runs the
epochs through a :class:`~mlnb.training.steps.Stepper`, writes a checkpoint
after each epoch and when stopped, and records how the run ended.

Where a resumed epoch starts: the generators are set as they were at the start
of that epoch, so a ``DataLoader`` draws the same order, the batches already
trained are drawn and dropped (or, for in-memory tensors, not built at all),
and then the generators are set as they were when the run stopped.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

from mlnb.errors import InvalidArgument
from mlnb.training.events import EpochEnd, Observers
from mlnb.training.history import Run
from mlnb.training.state import capture_rng, restore_rng, signature
from mlnb.training.stopping import StopSignal

__all__ = ["Session", "length"]


def length(source: Any) -> int | None:
    try:
        return len(source)
    except TypeError:
        return None


def _epoch_batches(source: Any, epoch: int, start: int) -> Iterable[Any]:
    """The batches of *epoch* from batch *start* on (the skipped ones are drawn and dropped)."""
    from mlnb.training.batches import TensorBatches

    if isinstance(source, TensorBatches):
        return source.epoch(epoch, start)
    iterator = iter(source)
    for skipped in range(start):
        try:
            next(iterator)
        except StopIteration:
            raise InvalidArgument(
                f"cannot resume: train_loader now yields {skipped} batches an epoch, but the "
                f"run stopped after batch {start}; resume with the same data and batch size"
            ) from None
    return iterator


def _better(value: float, best: float | None, mode: str) -> bool:
    """Whether *value* strictly beats *best*; NaN never does."""
    if value is None or math.isnan(value):
        return False
    if best is None:
        return True
    return value < best if mode == "min" else value > best


def _step_scheduler(scheduler: Any, value: float) -> None:
    from torch.optim.lr_scheduler import ReduceLROnPlateau

    if isinstance(scheduler, ReduceLROnPlateau):
        scheduler.step(value)
    else:
        scheduler.step()


class Session:
    """One run's life: its checkpoints, its place in the epochs, its status."""

    def __init__(self, model: Any, optimizer: Any, scheduler: Any, plan: Any,
                 regs: Any, *, run_name: str, keep: Any, resume: bool,
                 epochs: int) -> None:
        self.model, self.optimizer, self.scheduler, self.plan = model, optimizer, scheduler, plan
        self.regs, self.run_name, self.keep, self.resume = regs, run_name, keep, resume
        self.epochs = epochs
        self.handle: Any = None
        self.run_id = ""
        self.resumed = False
        self.state: dict[str, Any] | None = None
        self.history: list[dict[str, Any]] = []
        self.best_epoch: int | None = None
        self.best_value: float | None = None
        self.stale = 0
        self.start_epoch = 1
        self.status = "running"
        self.message = ""
        self.rng_epoch_start: dict[str, Any] | None = None
        self.data_seed: int | None = None
        self._stepper: Any = None

    # -- opening -----------------------------------------------------------------

    def stepper(self, loss_fn: Any, dev: Any, prec: Any, observers: Observers,
                stop: StopSignal) -> Any:
        from mlnb.training.steps import Stepper

        self._stepper = Stepper(self.model, loss_fn, self.optimizer, dev, prec, self.plan,
                                epochs=self.epochs, observers=observers, stop=stop)
        return self._stepper

    def _store(self) -> Any:
        from mlnb.training.runs import RunStore

        if self.regs.given is not None:
            return RunStore.from_registry(self.regs.given)
        return RunStore.default()

    def open(self, params: dict[str, Any]) -> None:
        """Find the run to resume, or create a new one; load its last checkpoint."""
        if self.keep is None:
            return
        store = self._store()
        sig = signature(self.model, self.optimizer)
        if self.resume:
            self.handle = store.find_resumable(self.run_name, signature=sig)
        if self.handle is not None:
            self.resumed = True
            self.handle.resume()  # claims it: running, in this process
            self._restore(self.handle.load())
        else:
            self.handle = store.create(self.run_name, signature=sig, monitor=self.plan.monitor,
                                       mode=self.plan.mode, params=params)
        self.run_id = self.handle.run_id

    def _restore(self, state: dict[str, Any]) -> None:
        """Put the model, optimizer, scheduler, scaler, generators and counters back."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        stepper = self._stepper
        if stepper.scaler is not None and state.get("scaler") is not None:
            stepper.scaler.load_state_dict(state["scaler"])
        loop = state["loop"]
        stepper.global_step = loop["global_step"]
        stepper.steps = [tuple(s) for s in loop["steps"]]
        stepper.partial = dict(loop["partial"])
        stepper.best_value = loop["best_value"]
        self.history = [dict(row) for row in loop["history"]]
        self.best_epoch, self.best_value, self.stale = (
            loop["best_epoch"], loop["best_value"], loop["stale"])
        self.state = state
        self.data_seed = loop.get("data_seed")
        if loop["batch"]:
            self.start_epoch = loop["epoch"]  # generators are put back when its batches start
        else:
            self.start_epoch = loop["epoch"] + 1
            restore_rng(state["rng"])

    # -- checkpoints ---------------------------------------------------------------

    def _state(self, epoch: int, batch: int) -> dict[str, Any]:
        stepper = self._stepper
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler": stepper.scaler.state_dict() if stepper.scaler is not None else None,
            "rng": capture_rng(),
            "loop": {
                "epoch": epoch, "global_step": stepper.global_step, "batch": batch,
                "best_epoch": self.best_epoch, "best_value": self.best_value,
                "stale": self.stale, "partial": dict(stepper.partial),
                "rng_epoch_start": self.rng_epoch_start if batch else None,
                "history": self.history, "steps": [list(s) for s in stepper.steps],
                "data_seed": self.data_seed,
            },
        }

    def checkpoint(self, epoch: int, batch: int, kind: str, value: float | None) -> str | None:
        if self.handle is None:
            return None
        info = self.handle.save_checkpoint(
            self._state(epoch, batch), epoch=epoch, step=self._stepper.global_step,
            batch=batch, kind=kind, value=value, keep=self.keep, history=self.history,
            steps=self._stepper.steps, best_epoch=self.best_epoch, best_value=self.best_value,
        )
        return info.file

    # -- the epochs ----------------------------------------------------------------

    def train(self, stepper: Any, train_source: Any, val_source: Any, *, scheduler: Any,
              early_stop: int | None, stop: StopSignal) -> None:
        """Run the epochs from :attr:`start_epoch`; leave the outcome in :attr:`status`."""
        plan, observers = self.plan, stepper.observers
        epoch = self.start_epoch
        from mlnb.training.batches import TensorBatches

        if isinstance(train_source, TensorBatches):
            # The shuffled orders come from this seed: a resumed run must use the same one.
            if self.data_seed is not None:
                train_source.seed = self.data_seed
            self.data_seed = train_source.seed
        try:
            for epoch in range(self.start_epoch, self.epochs + 1):
                begin = 0
                if self.state is not None and epoch == self.start_epoch:
                    begin = self.state["loop"]["batch"]
                batches = self._batches(train_source, epoch, begin)
                outcome = stepper.run_epoch(batches, epoch, start=begin,
                                            steps_per_epoch=length(train_source))
                if outcome.end == "diverged":
                    self._diverged(outcome.message)
                    return
                if outcome.end == "stopped":
                    self.checkpoint(epoch, stepper.batch, "stop", None)
                    self._finish("stopped", outcome.message)
                    return
                stepper.at_boundary = False  # until this epoch's checkpoint is written
                raw = outcome.row
                if val_source is not None:
                    raw.update(stepper.evaluate(_epoch_batches(val_source, epoch, 0)))
                raw["epoch_time_s"] += raw.pop("_val_time_s", 0.0)
                row = {column: raw[column] for column in plan.columns}
                self.history.append(row)
                value = row[plan.monitor]
                if _better(value, self.best_value, plan.mode):
                    self.best_epoch, self.best_value, self.stale = epoch, float(value), 0
                else:
                    self.stale += 1
                stepper.best_value = self.best_value
                if scheduler is not None:
                    _step_scheduler(scheduler, value)
                stepper.partial = {"total": 0.0, "n": 0, "time": 0.0}
                file = self.checkpoint(epoch, 0, "epoch", value)
                stepper.batch = 0
                stepper.at_boundary = True
                observers.send("epoch", EpochEnd(
                    row=row, epochs=self.epochs, monitor=plan.monitor,
                    best_epoch=self.best_epoch, best_value=self.best_value, checkpoint=file,
                ))
                if early_stop is not None and self.stale >= early_stop:
                    self._finish("stopped_early", f"no better {plan.monitor} for "
                                 f"{early_stop} epochs")
                    return
                if stop.requested:
                    self._finish("stopped", stop.reason)
                    return
            self._finish("finished")
        except KeyboardInterrupt:
            # A clean place (between optimizer steps, mid-epoch): keep it for resume.
            if stepper.at_boundary and stepper.batch:
                self.checkpoint(epoch, stepper.batch, "stop", None)
            # No half-accumulated gradient is left for the next cell.
            self.optimizer.zero_grad(set_to_none=True)
            self._finish("interrupted", "interrupted; resume=True continues from the last "
                         "checkpoint")
        except BaseException:
            self._finish("failed")
            raise

    def _batches(self, source: Any, epoch: int, begin: int) -> Iterable[Any]:
        """The epoch's batches, with every generator where it was when a resumed run stopped."""
        if self.handle is None:
            return _epoch_batches(source, epoch, 0)
        if not begin:
            self.rng_epoch_start = capture_rng()
            return _epoch_batches(source, epoch, 0)
        loop = self.state["loop"]
        self.rng_epoch_start = loop["rng_epoch_start"]
        restore_rng(self.rng_epoch_start)  # the loader draws its order as it did then
        batches = _epoch_batches(source, epoch, begin)
        restore_rng(self.state["rng"])
        return batches

    def _diverged(self, message: str) -> None:
        last = self.handle.last_checkpoint() if self.handle is not None else None
        if last is not None:
            self.model.load_state_dict(self.handle.load(last)["model"])
            message += (f"; the model has the weights of the last good checkpoint "
                        f"(epoch {last.epoch}, step {last.step})")
        self.optimizer.zero_grad(set_to_none=True)
        self._finish("diverged", message)

    def _finish(self, status: str, message: str = "") -> None:
        self.status, self.message = status, message
        if self.handle is not None:
            self.handle.update(history=self.history, steps=self._stepper.steps,
                               best_epoch=self.best_epoch, best_value=self.best_value)
            self.handle.close(status)

    # -- the result ------------------------------------------------------------------

    def result(self, *, version: Any, elapsed_s: float, epochs: int, device: str,
               precision: str) -> Run:
        import pandas as pd

        checkpoints = tuple(self.handle.checkpoints) if self.handle is not None else ()
        best = None
        if self.handle is not None:
            best = self.handle.best_checkpoint()
        return Run(
            history=pd.DataFrame(self.history, columns=self.plan.columns),
            steps=pd.DataFrame(self._stepper.steps, columns=["step", "epoch", "loss"]),
            status=self.status, best_epoch=self.best_epoch, best_value=self.best_value,
            monitor=self.plan.monitor, mode=self.plan.mode, epochs=epochs, device=device,
            precision=precision, version=version, elapsed_s=elapsed_s, name=self.run_name,
            run_id=self.run_id, checkpoints=checkpoints, best_checkpoint=best,
            resumed=self.resumed, message=self.message,
        )
