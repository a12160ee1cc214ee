"""Check every argument of :func:`mlnb.train` before anything is trained.

:func:`check_arguments` raises :class:`~mlnb.errors.InvalidArgument` (or
``InvalidName`` for a bad ``register`` name) with the offending value and the
way out, and returns the :class:`Plan` the loop follows: the metrics, the
monitor and its mode, and the history columns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from mlnb.errors import InvalidArgument
from mlnb.training.metrics import MetricSpec, normalize_metrics

__all__ = ["Plan", "check_arguments"]


@dataclass(frozen=True)
class Plan:
    """The checked arguments of one :func:`mlnb.training.train` call."""

    metrics: tuple[MetricSpec, ...]
    monitor: str
    mode: str
    grad_accum: int
    clip_grad: float | None
    log_every: int
    columns: list[str] = field(default_factory=list)


def check_arguments(*, model: Any, train_loader: Any, val_loader: Any, loss_fn: Any,
                    optimizer: Any, epochs: Any, metrics: Any, monitor: Any, mode: Any,
                    early_stop: Any, grad_accum: Any, clip_grad: Any, seed: Any, register: Any,
                    log_every: Any, name: Any = None, resume: Any = False, checkpoint: Any = True,
                    register_from: Any = None, init_from: Any = None, batch_size: Any = None,
                    shuffle: Any = True, source: Any = None, fast_data: Any = True) -> Plan:
    """Check every argument and return the plan; raise before anything is trained."""
    import torch

    if not isinstance(model, torch.nn.Module):
        raise InvalidArgument(f"model must be a torch.nn.Module, not {type(model).__name__}")
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise InvalidArgument(
            f"optimizer must be a torch.optim.Optimizer, not {type(optimizer).__name__}: "
            "e.g. torch.optim.AdamW(model.parameters(), lr=1e-3)"
        )
    own = {id(p) for p in model.parameters()}
    if any(id(p) not in own for group in optimizer.param_groups for p in group["params"]):
        raise InvalidArgument(
            "the optimizer holds parameters that are not the model's (was the model rebuilt "
            "after the optimizer?); build it from this model: "
            "torch.optim.AdamW(model.parameters(), lr=1e-3)"
        )
    if not callable(loss_fn):
        raise InvalidArgument(
            f"loss_fn must be callable as loss_fn(outputs, targets), not {loss_fn!r}: "
            "e.g. torch.nn.functional.cross_entropy"
        )
    for where, loader in (("train_loader", train_loader), ("val_loader", val_loader)):
        if loader is not None and not hasattr(loader, "__iter__"):
            raise InvalidArgument(
                f"{where} must be iterable (a DataLoader, any iterable of (inputs, targets), "
                f"or tensors (X, y) with batch_size=...), not {type(loader).__name__}"
            )
    _positive_int("epochs", epochs)
    _positive_int("grad_accum", grad_accum)
    _positive_int("log_every", log_every)
    if early_stop is not None:
        _positive_int("early_stop", early_stop, hint="or None to train every epoch")
    if clip_grad is not None and (
        isinstance(clip_grad, bool) or not isinstance(clip_grad, (int, float))
        or not math.isfinite(clip_grad) or clip_grad <= 0
    ):
        raise InvalidArgument(
            f"clip_grad must be a positive number (a max gradient norm) or None, got {clip_grad!r}"
        )
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise InvalidArgument(f"seed must be a non-negative int or None, got {seed!r}")
    _check_run_options(name=name, register=register, resume=resume, checkpoint=checkpoint,
                       register_from=register_from, init_from=init_from, batch_size=batch_size,
                       shuffle=shuffle, source=source, fast_data=fast_data)

    specs = normalize_metrics(metrics, has_val=val_loader is not None)
    columns = ["epoch", "train_loss"]
    if val_loader is not None:
        columns += ["val_loss", *(s.column for s in specs)]
    if monitor is None:
        monitor = "val_loss" if val_loader is not None else "train_loss"
    elif not isinstance(monitor, str):
        raise InvalidArgument(f"monitor must be a history column name, not {monitor!r}")
    elif monitor not in columns and f"val_{monitor}" in columns:
        monitor = f"val_{monitor}"
    if monitor not in columns[1:]:
        from mlnb.refs import suggest

        extra = "" if val_loader is not None else " (val_* columns need a val_loader)"
        raise InvalidArgument(
            f"monitor {monitor!r} is not produced by this run{suggest(monitor, columns[1:])}: "
            f"choose one of {', '.join(columns[1:])}{extra}"
        )
    if mode is None:
        from mlnb.display.markup import lower_is_better

        # the rule every table uses to mark the best value: losses, errors, latency...
        mode = "min" if lower_is_better(monitor) else "max"
    elif mode not in ("min", "max"):
        raise InvalidArgument(f"mode must be 'min' or 'max', got {mode!r}")
    return Plan(metrics=specs, monitor=monitor, mode=mode, grad_accum=grad_accum,
                 clip_grad=None if clip_grad is None else float(clip_grad),
                 log_every=log_every,
                 columns=[*columns, "lr", "epoch_time_s", "samples_per_s"])


def _check_run_options(*, name: Any, register: Any, resume: Any, checkpoint: Any,
                       register_from: Any, init_from: Any, batch_size: Any, shuffle: Any,
                       source: Any, fast_data: Any) -> None:
    from mlnb.refs import check_name, parse_ref

    for label, value in (("name", name), ("register", register)):
        if value is not None:
            if not isinstance(value, str):
                raise InvalidArgument(f"{label} must be a model name (str), not {value!r}")
            check_name(value)
    for label, value in (("resume", resume), ("checkpoint", checkpoint), ("shuffle", shuffle),
                         ("fast_data", fast_data)):
        if not isinstance(value, bool):
            raise InvalidArgument(f"{label} must be True or False, not {value!r}")
    if resume and not checkpoint:
        raise InvalidArgument("resume=True needs checkpoints: drop checkpoint=False")
    if register_from not in (None, "best", "last"):
        raise InvalidArgument(f"register_from must be 'best' or 'last', not {register_from!r}")
    if register_from == "best" and not checkpoint:
        raise InvalidArgument(
            "register_from='best' needs the best checkpoint: drop checkpoint=False, "
            "or register_from='last'"
        )
    if init_from is not None:
        if not isinstance(init_from, str):
            raise InvalidArgument(
                f"init_from must be a registry reference such as 'mnist-mlp@production', "
                f"not {init_from!r}"
            )
        parse_ref(init_from)
    if batch_size is not None:
        _positive_int("batch_size", batch_size)
    if source is not None and not isinstance(source, str):
        raise InvalidArgument(f"source must be the training code as a str, not {source!r}")


def _positive_int(name: str, value: Any, hint: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgument(
            f"{name} must be an int >= 1, got {value!r}" + (f" ({hint})" if hint else "")
        )
