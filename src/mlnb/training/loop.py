"""``mlnb.train``: a plain, fast PyTorch training loop that returns a :class:`Run`.

How it stays as fast as a hand-written loop: batches move to the device with
``non_blocking=True``; the training loss is added up on the device (a tensor
sum) and read back to the host only every ``log_every`` batches and at the end
of each epoch, never with a ``loss.item()`` per step; validation counts are also
summed on the device and read once per epoch.  Every argument is checked before
the first step, so a typo costs nothing.
"""

from __future__ import annotations

import contextlib
import math
import time
from typing import TYPE_CHECKING, Any, Callable, Iterable

from mlnb.errors import InvalidArgument
from mlnb.training.devices import Precision, resolve_device, resolve_precision
from mlnb.training.history import Run
from mlnb.training.metrics import MetricSpec, accuracy_count
from mlnb.training.plan import Plan, check_arguments

if TYPE_CHECKING:
    import torch

    from mlnb.registry.client import Registry

__all__ = ["train"]


def train(
    model: torch.nn.Module,
    train_loader: Iterable[Any],
    *,
    val_loader: Iterable[Any] | None = None,
    loss_fn: Callable[[Any, Any], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    scheduler: Any = None,
    epochs: int = 1,
    device: str | torch.device = "auto",
    precision: str = "auto",
    metrics: Any = None,
    monitor: str | None = None,
    mode: str | None = None,
    early_stop: int | None = None,
    grad_accum: int = 1,
    clip_grad: float | None = None,
    seed: int | None = None,
    register: str | None = None,
    registry: Registry | None = None,
    log_every: int = 50,
    progress: bool = True,
) -> Run:
    """Train *model* for *epochs* and return the :class:`~mlnb.training.Run`.

    Loaders yield ``(inputs, targets)`` pairs; the model is called as
    ``model(inputs)`` and the loss as ``loss_fn(outputs, targets)``, which must
    return the mean over the batch.  The model is moved to *device*; the
    optimizer must have been built over its parameters.  The model is left as
    trained after the last epoch (the best epoch is recorded, not restored).

    Parameters
    ----------
    val_loader:
        Evaluated after every epoch (``val_loss`` and the metrics).
    scheduler:
        Stepped once per epoch; a ``ReduceLROnPlateau`` is given the *monitor* value.
    device, precision:
        See :func:`~mlnb.training.resolve_device` and :func:`~mlnb.training.resolve_precision`.
    metrics:
        Validation metrics: built-in names (``"accuracy"``: argmax match) or a dict
        ``{"name": fn(outputs, targets) -> float}``, each called once per epoch on
        all validation outputs.  Default: ``("accuracy",)`` with a *val_loader*,
        none without.  Each is the history column ``val_<name>``.
    monitor, mode:
        The history column that ranks epochs (a metric's bare name means its
        ``val_`` column).  Default ``"val_loss"``, or ``"train_loss"`` without a
        *val_loader*.  *mode* defaults to ``"min"`` for names that read as
        lower-is-better (loss, error, mae, rmse, perplexity, latency, ...), as every
        mlnb table marks best values, else ``"max"``.
    early_stop:
        Stop after this many epochs in a row without a strictly better *monitor*.
    grad_accum:
        Micro-batches per optimizer step; each loss is divided by it, so
        ``grad_accum=2`` with batches of 8 steps like batches of 16.  A trailing
        partial group at the end of an epoch is stepped as it is.
    clip_grad:
        Clip the total gradient norm (``torch.nn.utils.clip_grad_norm_``) to this.
    seed:
        Calls ``torch.manual_seed(seed)`` (CPU and every GPU) and seeds ``random``
        before training.  A ``DataLoader(shuffle=True)`` without its own
        ``generator`` draws its order from that seeded global generator, so its
        shuffling is reproducible too; a loader with its own ``generator`` must be
        seeded by the caller.
    register, registry:
        Register the trained model under this name in *registry* (default
        ``mlnb.Registry()``) with the final epoch's losses and metrics plus
        ``best_<monitor>``, the hyper-parameters and the tag
        ``trained_with=mlnb.train``.  Not done when the run is interrupted.
    log_every:
        Read the training loss back to the host every this many batches (a row of
        ``run.steps``) besides the end of every epoch.
    progress:
        Print a short line per epoch to stderr (throttled).

    Returns
    -------
    Run
        Its ``status`` is ``"finished"``, ``"stopped_early"`` or ``"interrupted"``.
        A ``KeyboardInterrupt`` during training (Ctrl-C, the notebook's Stop) is not
        re-raised: the run stops, keeps the history of the completed epochs and
        the steps logged so far, registers nothing, and is returned.

    Raises
    ------
    InvalidArgument
        A bad argument, raised before any training step; or a loader that does
        not yield ``(inputs, targets)`` pairs.
    """
    start = time.perf_counter()
    plan = check_arguments(
        model=model, train_loader=train_loader, val_loader=val_loader, loss_fn=loss_fn,
        optimizer=optimizer, epochs=epochs, metrics=metrics, monitor=monitor, mode=mode,
        early_stop=early_stop, grad_accum=grad_accum, clip_grad=clip_grad, seed=seed,
        register=register, log_every=log_every,
    )
    dev = resolve_device(device)
    prec = resolve_precision(precision, dev)
    if seed is not None:
        _seed(seed)
    model.to(dev)
    loop = _Loop(model, loss_fn, optimizer, dev, prec, plan)
    reporter = None
    if progress:
        from mlnb.training.progress import TextProgress

        reporter = TextProgress()

    was_training = model.training
    status = "finished"
    best_epoch: int | None = None
    best_value: float | None = None
    stale = 0
    try:
        for epoch in range(1, epochs + 1):
            raw = loop.run_epoch(train_loader, epoch)
            if val_loader is not None:
                raw.update(loop.evaluate(val_loader))
            raw["epoch_time_s"] += raw.pop("_val_time_s", 0.0)
            row = {column: raw[column] for column in plan.columns}
            loop.history.append(row)
            value = row[plan.monitor]
            if _better(value, best_value, plan.mode):
                best_epoch, best_value, stale = epoch, float(value), 0
            else:
                stale += 1
            if scheduler is not None:
                _step_scheduler(scheduler, value)
            stop = early_stop is not None and stale >= early_stop
            if reporter is not None:
                reporter.epoch_end(row, epochs=epochs, monitor=plan.monitor, best=best_value,
                                   last=stop or epoch == epochs)
            if stop:
                status = "stopped_early"
                break
    except KeyboardInterrupt:
        # Stop cleanly: no half-accumulated gradient is left for the next cell.
        status = "interrupted"
        optimizer.zero_grad(set_to_none=True)
    finally:
        model.train(was_training)

    version = None
    if register is not None and status != "interrupted":
        version = _register(register, registry, model, loop, plan, best_value,
                            epochs=epochs, optimizer=optimizer, scheduler=scheduler, seed=seed,
                            precision=prec, device=dev, train_loader=train_loader)
    import pandas as pd

    return Run(
        history=pd.DataFrame(loop.history, columns=plan.columns),
        steps=pd.DataFrame(loop.steps, columns=["step", "epoch", "loss"]),
        status=status, best_epoch=best_epoch, best_value=best_value, monitor=plan.monitor,
        mode=plan.mode, epochs=epochs, device=str(dev), precision=prec.name, version=version,
        elapsed_s=time.perf_counter() - start,
    )


def _seed(seed: int) -> None:
    import random

    import torch

    random.seed(seed)
    torch.manual_seed(seed)


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


class _Loop:
    """The per-epoch work of one run: training steps, validation, logged losses."""

    def __init__(self, model: Any, loss_fn: Any, optimizer: Any, device: torch.device,
                 precision: Precision, plan: Plan) -> None:
        import torch

        self.torch = torch
        self.model = model
        self.loss_fn = loss_fn
        self.optimizer = optimizer
        self.device = device
        self.plan = plan
        self.autocast = (
            (lambda: torch.autocast(device.type, dtype=precision.torch_dtype))
            if precision.autocast else contextlib.nullcontext
        )
        self.scaler = torch.amp.GradScaler(device.type) if precision.grad_scaler else None
        self.global_step = 0
        self.history: list[dict[str, Any]] = []
        self.steps: list[tuple[int, int, float]] = []

    def _move(self, obj: Any) -> Any:
        if isinstance(obj, self.torch.Tensor):
            return obj.to(self.device, non_blocking=True)
        if isinstance(obj, (list, tuple)):
            return type(obj)(self._move(o) for o in obj)
        if isinstance(obj, dict):
            return {k: self._move(v) for k, v in obj.items()}
        return obj

    def _pair(self, batch: Any, where: str) -> tuple[Any, Any]:
        if not isinstance(batch, (list, tuple)) or len(batch) != 2:
            raise InvalidArgument(
                f"{where} must yield (inputs, targets) pairs, got {type(batch).__name__}"
                + (f" of length {len(batch)}" if isinstance(batch, (list, tuple)) else "")
            )
        return self._move(batch[0]), self._move(batch[1])

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

    def run_epoch(self, loader: Iterable[Any], epoch: int) -> dict[str, Any]:
        """Train one epoch; return the start of its history row."""
        torch, model, accum = self.torch, self.model, self.plan.grad_accum
        lr = _lr(self.optimizer)
        model.train()
        self.optimizer.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        window = torch.zeros((), device=self.device)
        window_n = 0
        total, total_n = 0.0, 0
        micro = 0
        for batch in loader:
            inputs, targets = self._pair(batch, "train_loader")
            with self.autocast():
                loss = self.loss_fn(model(inputs), targets)
            scaled = loss / accum if accum > 1 else loss
            if self.scaler is not None:
                scaled = self.scaler.scale(scaled)
            scaled.backward()
            micro += 1
            if micro % accum == 0:
                self._optimizer_step()
            n = _count(targets)
            window += loss.detach().float() * n  # on the device: no host sync here
            window_n += n
            self.global_step += 1
            if self.global_step % self.plan.log_every == 0:
                total += self._log(window, window_n, epoch)
                total_n += window_n
                window.zero_()
                window_n = 0
        if micro % accum:
            self._optimizer_step()
        if window_n:
            total += self._log(window, window_n, epoch)
            total_n += window_n
        elapsed = time.perf_counter() - t0
        return {
            "epoch": epoch,
            "train_loss": total / total_n if total_n else math.nan,
            "lr": lr,
            "epoch_time_s": elapsed,
            "samples_per_s": total_n / elapsed if elapsed > 0 else math.nan,
        }

    def _log(self, window: torch.Tensor, n: int, epoch: int) -> float:
        """Read the summed loss back (the one host sync) and log its mean; return the sum."""
        summed = window.item()
        self.steps.append((self.global_step, epoch, summed / n))
        return summed

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
                with self.autocast():
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
    lr = optimizer.param_groups[0].get("lr", math.nan)
    return float(lr)


def _register(name: str, registry: Any, model: Any, loop: _Loop, plan: Plan,
              best_value: float | None, *, epochs: int, optimizer: Any, scheduler: Any,
              seed: int | None,
              precision: Precision, device: Any, train_loader: Any) -> Any:
    """Register the trained model with its final metrics and hyper-parameters."""
    last = loop.history[-1] if loop.history else {}
    metrics = {k: v for k, v in last.items()
               if k == "train_loss" or k.startswith("val_")}
    if best_value is not None:
        metrics[f"best_{plan.monitor}"] = best_value
    batch_size = getattr(train_loader, "batch_size", None)
    lr = loop.history[0]["lr"] if loop.history else _lr(optimizer)
    params = {
        "epochs": epochs,
        "epochs_run": len(loop.history),
        "lr": lr if math.isfinite(lr) else None,
        "batch_size": batch_size if isinstance(batch_size, int) else None,
        "grad_accum": plan.grad_accum,
        "clip_grad": plan.clip_grad,
        "seed": seed,
        "precision": precision.name,
        "device": device.type,
        "optimizer": type(optimizer).__name__,
        "scheduler": type(scheduler).__name__ if scheduler is not None else None,
        "monitor": plan.monitor,
    }
    tags = {"trained_with": "mlnb.train"}
    if registry is not None:
        return registry.register(name, model, metrics=metrics, params=params, tags=tags)
    from mlnb.registry.client import Registry

    with Registry() as reg:
        return reg.register(name, model, metrics=metrics, params=params, tags=tags)
