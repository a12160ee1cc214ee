"""Run models over data batch by batch: predictions held once, every forward pass timed.

The evaluation runner (:func:`mlnb.evaluate`) runs one model and the
comparison (:func:`mlnb.compare`) two, through the same three steps:

* :func:`open_models` turns registry references and ``nn.Module`` objects into
  models on one device, in eval mode.  A reference is loaded from the registry
  (one is opened, and closed after, when none is given).  A module passed in is
  *borrowed*: with ``device="auto"`` it runs where its parameters are; moved to
  another device, it is moved back afterwards, and its train/eval mode is
  restored.
* :func:`batches` reads the data: tensors ``(X, y)`` (numpy arrays are wrapped,
  not copied), a ``TensorDataset`` or a plain ``DataLoader`` over one are cut by
  indexing (:func:`mlnb.training.batches.tensor_batches`, in order, on the
  device when they fit); any other ``DataLoader`` or iterable of
  ``(inputs, targets)`` is read as it is.
* :func:`stream` feeds every batch to every model, under ``torch.inference_mode``,
  into one :class:`~mlnb.evaluation.accumulate.Accumulator` per model.  All
  models see each batch before the next is read, so two models are paired on
  the same examples even when a ``DataLoader`` shuffles.  Each forward pass is
  timed (after ``torch.cuda.synchronize`` on CUDA, so the time is the GPU's);
  data loading and moving the inputs are not part of it.

:class:`Timing` turns the per-batch times into latency percentiles and a
throughput.  The first batch pays for lazy initialisation (CUDA context,
kernel selection, caches), so with three or more batches it is left out of
both; the estimates' notes say how many batches were timed.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

from mlnb.errors import InvalidArgument

if TYPE_CHECKING:
    import torch

    from mlnb.evaluation.accumulate import Predictions
    from mlnb.evaluation.metrics import Estimate
    from mlnb.registry.client import Registry

__all__ = ["DEFAULT_BATCH_SIZE", "Model", "Timing", "batches", "choose_device", "open_models",
           "stream"]

#: Examples per batch for tensors when no batch_size is given.
DEFAULT_BATCH_SIZE = 256
_FORWARD_ERRORS = (RuntimeError, ValueError, TypeError, IndexError)


@dataclass(frozen=True)
class Model:
    """A model ready to run: its label (``m:3`` or ``<model>``) and registry reference, if any."""

    label: str
    module: Any
    ref: str | None


@dataclass
class Timing:
    """Forward-pass seconds and example counts, one entry per batch."""

    seconds: list[float] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)

    def add(self, seconds: float, rows: int) -> None:
        """Record one batch."""
        self.seconds.append(seconds)
        self.rows.append(rows)

    @property
    def warmup_excluded(self) -> bool:
        """Whether the first batch is left out (it is when there are at least three)."""
        return len(self.seconds) >= 3

    def summary(self) -> dict[str, Any]:
        """JSON-ready facts for the stored record."""
        return {"batches": len(self.seconds), "batches_timed": len(self.seconds)
                - int(self.warmup_excluded), "warmup_excluded": self.warmup_excluded,
                "forward_seconds": float(sum(self.seconds))}

    def estimates(self) -> dict[str, Estimate]:
        """``latency_p50_ms``, ``latency_p95_ms``, ``latency_p99_ms`` and ``throughput``.

        Latencies are per batch (milliseconds of one forward pass); throughput
        is examples per second of forward time.  No intervals: the batches are
        not independent draws of anything a bootstrap could resample.
        """
        import numpy as np

        from mlnb.evaluation.metrics import Estimate

        skip = int(self.warmup_excluded)
        ms = np.asarray(self.seconds[skip:], dtype=np.float64) * 1000.0
        rows = sum(self.rows[skip:])
        p50, p95, p99 = (float(v) for v in np.percentile(ms, [50, 95, 99]))
        timed = (f"over {len(ms)} of {len(self.seconds)} batches"
                 + ("; the first (warm-up) batch is left out" if skip else ""))
        note = f"per batch, {timed}"
        throughput = rows / max(float(ms.sum()) / 1000.0, 1e-9)
        return {
            "latency_p50_ms": Estimate("latency_p50_ms", p50, note=note),
            "latency_p95_ms": Estimate("latency_p95_ms", p95, note=note),
            "latency_p99_ms": Estimate("latency_p99_ms", p99, note=note),
            "throughput": Estimate("throughput", throughput,
                                   note=f"examples per second of forward time, {timed}"),
        }


def _module_device(torch: Any, module: Any) -> torch.device | None:
    """The one device of *module*'s parameters and buffers; None if none or several."""
    devices = {t.device for t in (*module.parameters(), *module.buffers())}
    return devices.pop() if len(devices) == 1 else None


def choose_device(items: Sequence[Any], device: Any) -> torch.device:
    """The device to run on: *device*, or for ``"auto"`` the first given module's own."""
    import torch

    from mlnb.training.devices import resolve_device

    if isinstance(device, str) and device.strip().lower() == "auto":
        for item in items:
            if isinstance(item, torch.nn.Module):
                found = _module_device(torch, item)
                if found is not None:
                    return found
    return resolve_device(device)


@contextlib.contextmanager
def _borrowed(torch: Any, module: Any, device: torch.device) -> Iterator[None]:
    """Run a caller's module on *device* in eval mode; give it back as it was."""
    training = module.training
    home = _module_device(torch, module)
    moved = home is not None and home != device
    try:
        if moved:
            module.to(device)
        module.eval()
        yield
    finally:
        module.train(training)
        if moved:
            module.to(home)


@contextlib.contextmanager
def open_models(items: Sequence[Any], device: Any, registry: Registry | None,
                labels: Sequence[str]) -> Iterator[tuple[list[Model], torch.device,
                                                        Registry | None]]:
    """Yield ``(models, device, registry)`` for registry references and modules in *items*.

    *labels* name the modules (a reference is labelled by its ``name:version``).
    The registry is *registry*, or one opened here when a reference needs it,
    closed on exit.

    Raises
    ------
    InvalidArgument
        An item is neither a reference nor a module, or a version is not a torch model.
    """
    import torch

    from mlnb.refs import Ref

    for item in items:
        if not isinstance(item, (str, Ref, torch.nn.Module)):
            raise InvalidArgument(
                f"a model to evaluate is a registry reference such as 'mnist:3' or a "
                f"torch.nn.Module, not {type(item).__name__} {item!r:.80}")
    with contextlib.ExitStack() as stack:
        reg = registry
        if reg is None and any(isinstance(i, (str, Ref)) for i in items):
            from mlnb.registry.client import Registry

            reg = Registry()
            stack.callback(reg.close)
        dev = choose_device(items, device)
        models = []
        for item, label in zip(items, labels):
            if isinstance(item, torch.nn.Module):
                stack.enter_context(_borrowed(torch, item, dev))
                models.append(Model(label, item, None))
                continue
            version = reg.get(str(item))
            module = reg.load(version.ref, device=str(dev))
            if not isinstance(module, torch.nn.Module):
                raise InvalidArgument(
                    f"{version.ref} is a {version.format!r} version ({type(module).__name__}), "
                    "not a torch.nn.Module: only torch models can be evaluated")
            module.eval()
            models.append(Model(version.ref, module, version.ref))
        yield models, dev, reg


def _is_array(torch: Any, obj: Any) -> bool:
    return isinstance(obj, torch.Tensor) or type(obj).__module__ == "numpy"


def _check_not_empty(fields: Sequence[Any]) -> None:
    if fields and getattr(fields[0], "ndim", 1) and len(fields[0]) == 0:
        raise InvalidArgument("no examples: the data hold 0 rows; evaluate on data with at "
                              "least one example")


def batches(data: Any, batch_size: int | None, device: torch.device
            ) -> tuple[Iterable[Any], int | None, int | None]:
    """Return ``(batches, batch size, examples)`` for *data*; the last two None when unknown.

    Raises
    ------
    InvalidArgument
        No examples, tensors that are not ``(inputs, targets)``, a *batch_size*
        for data that brings its own batches, or data that cannot be iterated.
    """
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from mlnb.training.batches import tensor_batches

    if isinstance(data, (tuple, list)) and data and all(_is_array(torch, d) for d in data):
        if len(data) != 2:
            raise InvalidArgument(f"tensors must be given as (inputs, targets), not {len(data)} "
                                  "of them")
        data = tuple(d if isinstance(d, torch.Tensor) else torch.from_numpy(d) for d in data)
        _check_not_empty(data)
    elif isinstance(data, TensorDataset):
        _check_not_empty(data.tensors)
    elif isinstance(data, DataLoader):
        if batch_size is not None:
            raise InvalidArgument(f"batch_size={batch_size!r} applies to tensors; this DataLoader "
                                  f"has its own (batch_size={data.batch_size}): leave it out")
        if isinstance(data.dataset, TensorDataset):
            _check_not_empty(data.dataset.tensors)
        fast = tensor_batches(data, device=device)
        if fast is not None:
            return fast.epoch(0), fast.batch_size, fast.num_examples
        examples = len(data.dataset) if hasattr(data.dataset, "__len__") else None
        return data, data.batch_size, examples
    else:
        if batch_size is not None:
            raise InvalidArgument(f"batch_size={batch_size!r} applies to tensors (X, y); an "
                                  "iterable of batches is read as it comes: leave it out")
        if not hasattr(data, "__iter__"):
            raise InvalidArgument(
                f"data must be tensors (X, y), a DataLoader or an iterable of (inputs, targets) "
                f"batches, not {type(data).__name__}")
        return data, None, None
    size = DEFAULT_BATCH_SIZE if batch_size is None else batch_size
    fast = tensor_batches(data, batch_size=size, shuffle=False, device=device)
    return fast.epoch(0), size, fast.num_examples


def _move(torch: Any, obj: Any, device: torch.device) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, (list, tuple)):
        return type(obj)(_move(torch, o, device) for o in obj)
    if isinstance(obj, dict):
        return {k: _move(torch, v, device) for k, v in obj.items()}
    return obj


def _pair(batch: Any, index: int) -> tuple[Any, Any]:
    if not isinstance(batch, (list, tuple)) or len(batch) != 2:
        got = type(batch).__name__ + (f" of length {len(batch)}"
                                      if isinstance(batch, (list, tuple)) else "")
        raise InvalidArgument(f"batch {index} is a {got}; the data must yield (inputs, targets) "
                              "pairs")
    return batch[0], batch[1]


def _rows(targets: Any) -> int:
    shape = getattr(targets, "shape", None)
    return int(shape[0]) if shape is not None and len(shape) else len(targets)


def _output(torch: Any, out: Any, label: str) -> Any:
    """The tensor of a model's outputs (``.logits`` of a Hugging Face style output)."""
    if not isinstance(out, torch.Tensor) and isinstance(getattr(out, "logits", None),
                                                        torch.Tensor):
        return out.logits
    if isinstance(out, torch.Tensor):
        return out
    raise InvalidArgument(
        f"{label} returned a {type(out).__name__}; evaluation needs one tensor per batch "
        "(logits, probabilities or predictions): wrap the model so that forward returns it")


def _shape(obj: Any) -> str:
    shape = getattr(obj, "shape", None)
    return str(tuple(shape)) if shape is not None else type(obj).__name__


def stream(models: Sequence[Model], data: Iterable[Any], *, task: str, device: torch.device,
           output_type: str = "auto", size_hint: int | None = None
           ) -> list[tuple[Predictions, Timing]]:
    """Run every model on every batch of *data*; return each one's predictions and timing.

    Raises
    ------
    InvalidArgument
        A batch is not ``(inputs, targets)``, a model fails on the first batch
        or returns outputs that do not fit *task*, labels lie outside the
        model's classes, predictions are NaN, or there is no example.
    """
    import torch

    from mlnb.evaluation.accumulate import Accumulator

    accumulators = [Accumulator(task, output_type=output_type, size_hint=size_hint)
                    for _ in models]
    timings = [Timing() for _ in models]
    cuda = device.type == "cuda"
    clock = time.perf_counter
    with torch.inference_mode():
        for index, batch in enumerate(data):
            inputs, targets = _pair(batch, index)
            inputs = _move(torch, inputs, device)
            rows = _rows(targets)
            for model, acc, timing in zip(models, accumulators, timings):
                if cuda:  # the input copy and earlier work are not this forward pass's time
                    torch.cuda.synchronize(device)
                start = clock()
                try:
                    out = model.module(inputs)
                    if cuda:
                        torch.cuda.synchronize(device)
                except _FORWARD_ERRORS as err:
                    if index:  # later batches: the shapes fit, so this is a real bug
                        raise
                    reason = str(err).strip().splitlines()[0] if str(err).strip() else ""
                    raise InvalidArgument(
                        f"{model.label} failed on the first batch (inputs {_shape(inputs)} on "
                        f"{device}): {type(err).__name__}: {reason}; check that the data fit "
                        "the model") from err
                timing.add(clock() - start, rows)
                acc.add(_output(torch, out, model.label), targets)
    return [(acc.finish(), timing) for acc, timing in zip(accumulators, timings)]
