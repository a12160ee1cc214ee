"""``mlnb.train``: a fast PyTorch training loop that checkpoints, resumes and reports live.

One call runs these parts, each in its own module:

- :mod:`~mlnb.training.plan` checks every argument before anything trains;
- :mod:`~mlnb.training.batches` batches in-memory tensors by indexing (no DataLoader);
- :mod:`~mlnb.training.session` drives one run's epochs, checkpoints and status;
- :mod:`~mlnb.training.steps` runs the epochs with no per-step host sync;
- :mod:`~mlnb.training.runs` and :mod:`~mlnb.training.checkpoint` keep each run's
  checkpoints in the artifact store, so ``resume=True`` continues a run that was
  stopped, interrupted or killed with its kernel, to the same final weights;
- :mod:`~mlnb.training.stopping` turns the first Ctrl-C (or Stop) into a clean stop;
- :mod:`~mlnb.training.events` feeds the monitor, the text bar and the trackers;
- :mod:`~mlnb.training.registration` registers the result with its provenance.
"""

from __future__ import annotations

import math
import time
import warnings
from typing import TYPE_CHECKING, Any, Callable

from mlnb.training.devices import resolve_device, resolve_precision
from mlnb.training.events import Observers, RunEnd, RunStart
from mlnb.training.history import Run
from mlnb.training.plan import check_arguments
from mlnb.training.session import Session, length
from mlnb.training.state import seed_everything
from mlnb.training.stopping import StopSignal

if TYPE_CHECKING:
    import torch

    from mlnb.registry.client import Registry

__all__ = ["TrainingWarning", "train"]


class TrainingWarning(UserWarning):
    """A run ended early for a reason the user must see (a diverged loss)."""


def train(
    model: torch.nn.Module,
    train_loader: Any,
    *,
    val_loader: Any = None,
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
    batch_size: int | None = None,
    shuffle: bool = True,
    fast_data: bool = True,
    name: str | None = None,
    resume: bool = False,
    keep: str = "best:1,last:1",
    checkpoint: bool = True,
    track: Any = None,
    init_from: str | None = None,
    register: str | None = None,
    register_from: str | None = None,
    registry: Registry | None = None,
    log_every: int = 50,
    progress: Any = "auto",
    source: str | None = None,
) -> Run:
    """Train *model* for *epochs* and return the :class:`~mlnb.training.Run`.

    Loaders yield ``(inputs, targets)`` pairs; the model is called as
    ``model(inputs)`` and the loss as ``loss_fn(outputs, targets)``, which must
    return the mean over the batch.  The model is moved to *device*; the
    optimizer must have been built over its parameters.  The model is left as
    trained after the last epoch (the best epoch is recorded, not restored).

    Parameters
    ----------
    train_loader, val_loader:
        A ``DataLoader`` or any iterable of ``(inputs, targets)``; or in-memory
        tensors ``(X, y)`` (then *batch_size* is required) or a ``TensorDataset``.
        In-memory tensors, and a ``DataLoader`` over a ``TensorDataset`` with the
        default sampler and collate, are batched by indexing whole tensors, on the
        device when they fit: no per-sample collation (see :mod:`mlnb.training.batches`).
    batch_size, shuffle:
        For tensors given directly (*shuffle* applies to the training data only).
    fast_data:
        ``False`` iterates a ``DataLoader`` over a ``TensorDataset`` as it is
        (its own order and random draws, e.g. to match a hand-written loop bit for bit).
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
        Seeds torch (CPU and every GPU), ``random`` and NumPy's global generator
        before training.  A ``DataLoader(shuffle=True)`` without its own
        ``generator`` draws its order from that seeded generator, so its shuffling
        is reproducible too.
    name:
        The run's name: its checkpoints are kept under it and ``resume=True``
        looks for it.  Default: *register*, else ``"run"``.
    resume:
        Continue the newest unfinished run of *name* (stopped, interrupted, or
        killed with its kernel) from its last checkpoint, when its model and
        optimizer have the same shapes; start a new run when there is none.  With
        the same seed and data the final weights equal an uninterrupted run's.
        Without it, every call starts a new run; nothing is ever merged.
    keep, checkpoint:
        Which checkpoints a run keeps, ``"best:K,last:N"`` (ranked by *monitor*;
        ``"all"`` keeps every one).  A checkpoint is written after every epoch and
        when the run is stopped; ``checkpoint=False`` writes none (and cannot resume).
    track:
        Publish the run to trackers: ``["mlflow", "wandb"]``, publisher objects,
        or ``{"mlflow": {"experiment": ...}}`` (see :mod:`mlnb.tracking`).
    init_from:
        A registry reference (``"mnist-mlp@production"``) whose weights are loaded
        into *model* before training; the registered version records it as parent.
    register, register_from, registry:
        Register the result under this name in *registry* (default
        ``mlnb.Registry()``) when the run finishes or stops early: the ``"best"``
        checkpoint (the default when checkpoints are kept) or the ``"last"``
        weights, with that epoch's metrics plus ``best_<monitor>``, the
        hyper-parameters, a fingerprint of the training data, the code that
        trained it (*source*, default the running notebook cell) and the
        environment.
    log_every:
        Read the training loss back to the host every this many batches (a row of
        ``run.steps``) besides the end of every epoch.
    progress:
        ``"auto"`` (a live monitor in a notebook, a text bar elsewhere), ``"widget"``,
        ``"text"``, ``False``, or an observer object (see :mod:`mlnb.training.events`).

    Returns
    -------
    Run
        Its ``status`` is ``"finished"``, ``"stopped_early"``, ``"stopped"`` (the
        first Ctrl-C or the Stop button: the run ends after the current optimizer
        step with a checkpoint), ``"interrupted"`` (a second Ctrl-C, or an interrupt
        the loop could not end cleanly: the last checkpoint stays) or
        ``"diverged"`` (the training loss became NaN or infinite: the model gets
        the last good checkpoint's weights back and a :class:`TrainingWarning`
        says so).  Interrupts are not re-raised.

    Raises
    ------
    InvalidArgument
        A bad argument, raised before any training step; a first batch that does
        not fit the model or the loss (its shapes and the fix in one line); a
        loader that does not yield ``(inputs, targets)`` pairs.
    Conflict
        ``resume=True`` while the run is still training in another kernel.
    """
    start = time.perf_counter()
    plan = check_arguments(
        model=model, train_loader=train_loader, val_loader=val_loader, loss_fn=loss_fn,
        optimizer=optimizer, epochs=epochs, metrics=metrics, monitor=monitor, mode=mode,
        early_stop=early_stop, grad_accum=grad_accum, clip_grad=clip_grad, seed=seed,
        register=register, log_every=log_every, name=name, resume=resume,
        checkpoint=checkpoint, register_from=register_from, init_from=init_from,
        batch_size=batch_size, shuffle=shuffle, source=source, fast_data=fast_data,
    )
    from mlnb.training.runs import parse_keep

    keep_policy = parse_keep(keep) if checkpoint else None
    run_name = name or register or "run"
    dev = resolve_device(device)
    prec = resolve_precision(precision, dev)
    observers = _observers(progress, track)
    if seed is not None:
        seed_everything(seed)

    from mlnb.training.batches import tensor_batches

    _hint_pinned_memory(train_loader, dev)
    train_source, val_source = train_loader, val_loader
    if fast_data or isinstance(train_loader, (tuple, list)):
        train_source = tensor_batches(train_loader, batch_size=batch_size, shuffle=shuffle,
                                      device=dev, seed=seed) or train_loader
    if val_loader is not None and (fast_data or isinstance(val_loader, (tuple, list))):
        val_source = tensor_batches(val_loader, batch_size=batch_size, shuffle=False,
                                    device=dev, seed=seed) or val_loader

    with _Registries(registry) as regs:
        parent = None
        if init_from is not None:
            reg = regs.get()
            parent = reg.get(init_from).ref
            reg.load(parent, into=model)
        model.to(dev)
        session = Session(model, optimizer, scheduler, plan, regs, run_name=run_name,
                           keep=keep_policy, resume=resume, epochs=epochs)
        stop = StopSignal()
        stepper = session.stepper(loss_fn, dev, prec, observers, stop)
        params = _params(plan, epochs=epochs, optimizer=optimizer, scheduler=scheduler,
                         seed=seed, precision=prec, device=dev, loader=train_loader,
                         batch_size=batch_size, keep=keep if checkpoint else None,
                         init_from=parent, run_name=run_name)
        session.open(params)
        observers.send("start", RunStart(
            name=run_name, run_id=session.run_id, epochs=epochs,
            start_epoch=session.start_epoch, steps_per_epoch=length(train_source),
            monitor=plan.monitor, mode=plan.mode, columns=tuple(plan.columns),
            device=str(dev), precision=prec.name, params=params, resumed=session.resumed,
            history=tuple(session.history), steps=tuple(stepper.steps),
            request_stop=stop.request,
        ))
        try:
            _run(session, stepper, stop, train_source, val_source, scheduler=scheduler,
                 early_stop=early_stop)
            version = None
            if register is not None and session.status in ("finished", "stopped_early"):
                from mlnb.training.registration import register_run

                version = register_run(
                    regs.get(), register, model, session, plan, params=params,
                    register_from=register_from, data=train_loader, source=source,
                    parent=parent,
                )
        except BaseException:
            observers.send("abort", "failed")
            raise
        run = session.result(version=version, elapsed_s=time.perf_counter() - start,
                             epochs=epochs, device=str(dev), precision=prec.name)
        observers.send("end", RunEnd(run=run, model=model))
        return run


def _run(session: Session, stepper: Any, stop: StopSignal, train_source: Any,
         val_source: Any, *, scheduler: Any, early_stop: int | None) -> None:
    """Train with SIGINT as a stop request; warn when the loss diverged."""
    model = session.model
    was_training = model.training
    try:
        with stop.installed():
            session.train(stepper, train_source, val_source, scheduler=scheduler,
                          early_stop=early_stop, stop=stop)
    finally:
        model.train(was_training)
    if session.status == "diverged":
        warnings.warn(session.message, TrainingWarning, stacklevel=3)


def _hint_pinned_memory(loader: Any, device: Any) -> None:
    """On CUDA, a DataLoader without pinned memory makes every batch copy synchronous."""
    if device.type != "cuda" or getattr(loader, "pin_memory", True):
        return
    from torch.utils.data import DataLoader

    if isinstance(loader, DataLoader):
        warnings.warn(
            "train_loader copies batches from pageable memory, so each copy to the GPU waits: "
            "DataLoader(..., pin_memory=True) lets them overlap with the computation",
            TrainingWarning, stacklevel=3,
        )


def _observers(progress: Any, track: Any) -> Observers:
    from mlnb.training.progress import make_reporter

    reporter = make_reporter(progress)
    publishers: list[Any] = []
    if track is not None:
        from mlnb.tracking import make_publishers

        publishers = make_publishers(track)
    return Observers([reporter, *publishers])


class _Registries:
    """The registry for ``init_from`` and ``register``: the caller's, or one opened on demand."""

    def __init__(self, given: Any) -> None:
        self.given = given
        self.opened: Any = None

    def get(self) -> Any:
        if self.given is not None:
            return self.given
        if self.opened is None:
            from mlnb.registry.client import Registry

            self.opened = Registry()
        return self.opened

    def __enter__(self) -> _Registries:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.opened is not None:
            self.opened.close()


def _params(plan: Any, *, epochs: int, optimizer: Any, scheduler: Any, seed: int | None,
            precision: Any, device: Any, loader: Any, batch_size: int | None,
            keep: str | None, init_from: str | None, run_name: str) -> dict[str, Any]:
    """The run's hyper-parameters, as registered and sent to trackers."""
    size = batch_size if batch_size is not None else getattr(loader, "batch_size", None)
    group = optimizer.param_groups[0]
    lr = float(group.get("lr", math.nan))
    params = {
        "epochs": epochs,
        "lr": lr if math.isfinite(lr) else None,
        "batch_size": size if isinstance(size, int) else None,
        "grad_accum": plan.grad_accum,
        "clip_grad": plan.clip_grad,
        "seed": seed,
        "precision": precision.name,
        "device": device.type,
        "optimizer": type(optimizer).__name__,
        "weight_decay": group.get("weight_decay"),
        "scheduler": type(scheduler).__name__ if scheduler is not None else None,
        "monitor": plan.monitor,
        "mode": plan.mode,
        "keep": keep,
        "init_from": init_from,
        "run": run_name,
    }
    return {k: v for k, v in params.items()
            if v is None or isinstance(v, (str, int, float, bool))}
