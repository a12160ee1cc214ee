"""The inner loops of :func:`mlnb.train`: one training epoch, one validation pass.

How they stay as fast as a hand-written loop: batches move to the device with
``non_blocking=True``; the training loss is added up on the device (a tensor
sum) and read back to the host only every ``log_every`` batches and at the end
of each epoch, never with a ``loss.item()`` per step; validation counts are also
summed on the device and read once per epoch.  Per step the bookkeeping is a
few integer additions and one ``time.perf_counter()`` (for throttled progress).

:class:`Stepper` keeps what a checkpoint needs to continue an epoch where it
stopped (``batch``, the partial sums in :attr:`Stepper.partial`) and whether
the model, optimizer and counters agree with each other right now
(:attr:`Stepper.at_boundary`): true between optimizer steps, false while a
batch is in flight, so an interrupt is known to be safe to checkpoint or not.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Iterator

from mlnb.errors import InvalidArgument
from mlnb.training.events import Observers, Progress, StepLog
from mlnb.training.metrics import MetricSpec, accuracy_count

if TYPE_CHECKING:
    import torch

    from mlnb.training.devices import Precision
    from mlnb.training.plan import Plan
    from mlnb.training.stopping import StopSignal

__all__ = ["EpochOutcome", "Stepper"]

PROGRESS_INTERVAL_S = 0.25


@dataclass
class EpochOutcome:
    """How an epoch ended: ``"done"``, ``"stopped"`` (at a step boundary) or ``"diverged"``."""

    end: str
    row: dict[str, Any]
    message: str = ""


class Stepper:
    """Training steps and validation passes over one model, optimizer and device."""

    def __init__(self, model: Any, loss_fn: Any, optimizer: Any, device: torch.device,
                 precision: Precision, plan: Plan, *, epochs: int,
                 observers: Observers | None = None, stop: StopSignal | None = None,
                 progress_interval: float = PROGRESS_INTERVAL_S) -> None:
        import torch

        self.torch = torch
        self.model = model
        self.loss_fn = loss_fn
        self.optimizer = optimizer
        self.device = device
        self.plan = plan
        self.epochs = epochs
        self.observers = observers or Observers()
        self.stop = stop
        self.progress_interval = progress_interval
        self.autocast = (
            (lambda: torch.autocast(device.type, dtype=precision.torch_dtype))
            if precision.autocast else contextlib.nullcontext
        )
        self.autocasting = precision.autocast
        self.scaler = torch.amp.GradScaler(device.type) if precision.grad_scaler else None
        self.global_step = 0
        self.steps: list[tuple[int, int, float]] = []
        self.best_value: float | None = None
        self.at_boundary = True
        self.batch = 0
        self.partial = {"total": 0.0, "n": 0, "time": 0.0}
        self.started = time.perf_counter()
        self._checked = {"train_loader": False, "val_loader": False}

    # -- moving and checking batches ------------------------------------------

    def _move(self, obj: Any) -> Any:
        if isinstance(obj, self.torch.Tensor):
            return obj.to(self.device, non_blocking=True)
        if isinstance(obj, (list, tuple)):
            return type(obj)(self._move(o) for o in obj)
        if isinstance(obj, dict):
            return {k: self._move(v) for k, v in obj.items()}
        return obj

    def _pair(self, batch: Any, where: str) -> tuple[Any, Any]:
        if type(batch) in (list, tuple) and len(batch) == 2:  # the common case, quickly
            inputs, targets = batch
            tensor, device = self.torch.Tensor, self.device
            if type(inputs) is tensor and type(targets) is tensor:
                return (inputs.to(device, non_blocking=True),
                        targets.to(device, non_blocking=True))
        if not isinstance(batch, (list, tuple)) or len(batch) != 2:
            raise InvalidArgument(
                f"{where} must yield (inputs, targets) pairs, got {type(batch).__name__}"
                + (f" of length {len(batch)}" if isinstance(batch, (list, tuple)) else "")
            )
        return self._move(batch[0]), self._move(batch[1])

    @contextlib.contextmanager
    def _first_batch(self, where: str, inputs: Any, targets: Any) -> Iterator[None]:
        """Turn an error of the first batch into one line that names the batch and the fix.

        Later batches raise as they are: by then the shapes are known to fit.
        """
        if self._checked[where]:
            yield
            return
        try:
            yield
        except (RuntimeError, ValueError, TypeError, IndexError) as err:
            raise InvalidArgument(_first_batch_message(where, inputs, targets, err,
                                                       self.device)) from err
        self._checked[where] = True

    # -- training ---------------------------------------------------------------

    def _optimizer_step(self) -> None:
        opt, scaler, clip = self.optimizer, self.scaler, self.plan.clip_grad
        if clip is not None:
            if scaler is not None:
                scaler.unscale_(opt)
            self.torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)
        if scaler is not None:
            scaler.step(opt)
            scaler.update()
        else:
            opt.step()
        opt.zero_grad(set_to_none=True)

    def _forward_backward(self, inputs: Any, targets: Any) -> torch.Tensor:
        """Forward, loss and backward of one micro-batch; return the unscaled loss."""
        if self.autocasting:
            with self.autocast():
                loss = self.loss_fn(self.model(inputs), targets)
        else:
            loss = self.loss_fn(self.model(inputs), targets)
        accum = self.plan.grad_accum
        scaled = loss / accum if accum > 1 else loss
        if self.scaler is not None:
            scaled = self.scaler.scale(scaled)
        scaled.backward()
        return loss

    def run_epoch(self, batches: Iterable[Any], epoch: int, *, start: int = 0,
                  steps_per_epoch: int | None = None) -> EpochOutcome:
        """Train one epoch over *batches*, which begin at batch *start* of the epoch.

        When *start* > 0 (a resumed epoch) :attr:`partial` must hold the sums of
        the batches before it.  *steps_per_epoch* (when known) is for progress.
        """
        torch, model, accum, plan = self.torch, self.model, self.plan.grad_accum, self.plan
        observers, stop = self.observers, self.stop
        lr = _lr(self.optimizer)
        model.train()
        self.optimizer.zero_grad(set_to_none=True)
        if start == 0:
            self.partial = {"total": 0.0, "n": 0, "time": 0.0}
        t0 = time.perf_counter() - self.partial["time"]
        window = torch.zeros((), device=self.device)
        window_n = 0
        self.batch = start
        micro = 0
        want_progress = observers.wants("progress")
        next_progress = time.perf_counter() + self.progress_interval
        end, message = "done", ""
        forward_backward = self._forward_backward
        try:
            for batch in batches:
                self.at_boundary = False
                inputs, targets = self._pair(batch, "train_loader")
                if self._checked["train_loader"]:
                    loss = forward_backward(inputs, targets)
                else:
                    with self._first_batch("train_loader", inputs, targets):
                        loss = forward_backward(inputs, targets)
                micro += 1
                if micro % accum == 0:
                    self._optimizer_step()
                n = _count(targets)
                window.add_(loss.detach(), alpha=n)  # on the device: no host sync here
                window_n += n
                self.global_step += 1
                self.batch += 1
                if self.global_step % plan.log_every == 0:
                    if not self._flush(window, window_n, epoch):
                        end, message = "diverged", self._diverged_message(epoch)
                        break
                    window.zero_()
                    window_n = 0
                if micro % accum == 0:
                    self.at_boundary = True
                    if stop is not None and stop.requested:
                        end, message = "stopped", stop.reason
                        break
                if want_progress:
                    now = time.perf_counter()
                    if now >= next_progress:
                        next_progress = now + self.progress_interval
                        self._send_progress(epoch, steps_per_epoch, now - t0, window_n)
        except KeyboardInterrupt:
            if self.at_boundary and window_n:  # the sums so far, right for a resume
                self._flush(window, window_n, epoch)
            self.partial["time"] = time.perf_counter() - t0
            raise
        if end == "done":
            if micro % accum:
                self._optimizer_step()
            self.at_boundary = True
        if end != "diverged" and window_n and not self._flush(window, window_n, epoch):
            end, message = "diverged", self._diverged_message(epoch)
        elapsed = time.perf_counter() - t0
        self.partial["time"] = elapsed
        total, total_n = self.partial["total"], self.partial["n"]
        row = {
            "epoch": epoch,
            "train_loss": total / total_n if total_n else math.nan,
            "lr": lr,
            "epoch_time_s": elapsed,
            "samples_per_s": total_n / elapsed if elapsed > 0 else math.nan,
        }
        return EpochOutcome(end, row, message)

    def _flush(self, window: torch.Tensor, n: int, epoch: int) -> bool:
        """Read the summed loss back (the one host sync) and log it; False if not finite."""
        summed = window.item()
        mean = summed / n
        self.steps.append((self.global_step, epoch, mean))
        if not math.isfinite(summed):
            return False
        self.partial["total"] += summed
        self.partial["n"] += n
        self.observers.send("step", StepLog(self.global_step, epoch, mean))
        return True

    def _diverged_message(self, epoch: int) -> str:
        loss = self.steps[-1][2] if self.steps else math.nan
        return (f"the training loss became {loss} by step {self.global_step} (epoch {epoch}); "
                "training stopped: lower the learning rate, set clip_grad, or check the data "
                "for NaN/inf")

    def _send_progress(self, epoch: int, steps_per_epoch: int | None, epoch_elapsed: float,
                       unread: int) -> None:
        memory = peak = None
        if self.device.type == "cuda":
            memory = self.torch.cuda.memory_allocated(self.device)
            peak = self.torch.cuda.max_memory_allocated(self.device)
        self.observers.send("progress", Progress(
            epoch=epoch, epochs=self.epochs, batch=self.batch, steps_per_epoch=steps_per_epoch,
            global_step=self.global_step, samples=self.partial["n"] + unread,
            elapsed_s=time.perf_counter() - self.started, epoch_elapsed_s=epoch_elapsed,
            loss=self.steps[-1][2] if self.steps else None, best_value=self.best_value,
            gpu_memory=memory, gpu_memory_peak=peak,
        ))

    # -- validation -------------------------------------------------------------

    def evaluate(self, loader: Iterable[Any]) -> dict[str, float]:
        """Validation loss and metrics over *loader*, read from the device once."""
        torch, model = self.torch, self.model
        t0 = time.perf_counter()
        model.eval()
        streamed = [s for s in self.plan.metrics if s.fn is None]
        custom = [s for s in self.plan.metrics if s.fn is not None]
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        outputs, targets_all = [], []
        n = 0
        with torch.no_grad():
            for batch in loader:
                inputs, targets = self._pair(batch, "val_loader")
                with self._first_batch("val_loader", inputs, targets), self.autocast():
                    out = model(inputs)
                    loss = self.loss_fn(out, targets)
                k = _count(targets)
                loss_sum += loss.float() * k
                n += k
                if streamed:
                    correct += accuracy_count(out, targets)
                if custom:
                    outputs.append(out.float())
                    targets_all.append(targets)
        row: dict[str, float] = {"val_loss": loss_sum.item() / n if n else math.nan}
        for spec in streamed:
            row[spec.column] = correct.item() / n if n else math.nan
        if custom:
            out_cat, tgt_cat = _cat(torch, outputs), _cat(torch, targets_all)
            for spec in custom:
                row[spec.column] = _metric_value(spec, out_cat, tgt_cat)
        row["_val_time_s"] = time.perf_counter() - t0
        return row


def _first_batch_message(where: str, inputs: Any, targets: Any, err: BaseException,
                         device: Any) -> str:
    detail = " ".join(str(err).split())
    if len(detail) > 300:
        detail = detail[:297] + "..."
    shown = f"inputs {_describe(inputs)}, targets {_describe(targets)}"
    lowered = detail.lower()
    if "device" in lowered and ("same device" in lowered or "expected device" in lowered):
        hint = (f"the batch and the model are on {device}; move any other tensor the model "
                f"or loss_fn uses (class weights, masks, buffers kept in a list) there too, "
                f"e.g. with .to('{device}')")
    else:
        hint = ("check that the loader yields (inputs, targets) shaped as the model and "
                "loss_fn expect")
    return f"the first batch of {where} failed ({shown}): {detail}; {hint}"


def _describe(obj: Any) -> str:
    shape = getattr(obj, "shape", None)
    if shape is not None:
        return f"{tuple(shape)} {str(getattr(obj, 'dtype', '')).removeprefix('torch.')}".strip()
    return type(obj).__name__


def _metric_value(spec: MetricSpec, outputs: Any, targets: Any) -> float:
    value = spec.fn(outputs, targets)
    try:
        return float(value)
    except (TypeError, ValueError) as err:
        raise InvalidArgument(
            f"metric {spec.name!r} must return a number, got {type(value).__name__}"
        ) from err


def _cat(torch: Any, parts: list[Any]) -> Any:
    if parts and all(isinstance(p, torch.Tensor) for p in parts):
        return torch.cat(parts) if parts[0].ndim else torch.stack(parts)
    return parts


def _count(targets: Any) -> int:
    """Samples in a batch, from shape metadata only (no device sync)."""
    shape = getattr(targets, "shape", None)
    if shape is not None and len(shape):
        return int(shape[0])
    try:
        return len(targets)
    except TypeError:
        return 1


def _lr(optimizer: Any) -> float:
    return float(optimizer.param_groups[0].get("lr", math.nan))
