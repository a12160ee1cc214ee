"""Batches cut from in-memory tensors by indexing, without a ``DataLoader``.

A ``DataLoader`` over a ``TensorDataset`` calls ``__getitem__`` once per example
and stacks the examples back together in ``default_collate``: a few Python
calls per example.  When the whole dataset already sits in tensors, a batch is
just ``tensor.index_select(0, rows)`` per field: two or three kernel calls per
batch, whatever the batch size.  :func:`tensor_batches` recognises such data
and returns a :class:`TensorBatches`; for anything else it returns ``None`` and
the caller iterates the object as it is.

Shuffling draws each epoch's order from its own ``torch.Generator`` seeded from
``(seed, epoch)``, so the order never depends on how much of the global RNG the
model consumed, and a resumed run sees the same order from any batch on
(``tests/training/test_batches.py``).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any, Iterator

from mlnb.errors import InvalidArgument

if TYPE_CHECKING:
    import torch

__all__ = ["DEVICE_FRACTION", "TensorBatches", "tensor_batches"]

#: Share of the device's free memory the dataset may take when it is moved there.
DEVICE_FRACTION = 0.5


def tensor_batches(
    data: Any,
    *,
    batch_size: int | None = None,
    shuffle: bool = True,
    drop_last: bool = False,
    device: str | torch.device = "cpu",
    seed: int | None = None,
) -> TensorBatches | None:
    """Return a fast batcher over *data* when it is in-memory tensors, else ``None``.

    The fast path applies to:

    * a tuple or list of tensors with the same first dimension, e.g. ``(X, y)``
      (*batch_size* required; batches are tuples);
    * a ``torch.utils.data.TensorDataset`` (*batch_size* required; batches are
      lists, as a ``DataLoader`` gives them);
    * a plain ``DataLoader`` over a ``TensorDataset`` with the default
      ``collate_fn``, its default sampler (``shuffle=True`` or ``False``, no
      ``sampler``, ``batch_sampler``, or ``worker_init_fn``) and a batch size: its
      ``batch_size``, ``drop_last`` and shuffling are used instead of the
      arguments, and batches have the dtypes, shapes and list type the
      ``DataLoader`` would give.  ``num_workers`` and ``pin_memory`` are ignored:
      indexing needs no workers, and pinning is decided here.

    Anything else (a ``DataLoader`` with a custom ``collate_fn`` or sampler, a
    ``Dataset`` subclass that overrides ``__getitem__``, an ``IterableDataset``,
    a list of batches, a generator) gives ``None``.  To opt out of the fast
    path, don't call this: the caller (``mlnb.train``) offers the switch.

    The differences from a ``DataLoader`` a user could notice: the shuffled
    order is another permutation (still seeded, every example once per epoch),
    the global torch RNG is read once here instead of once per epoch, and on a
    GPU the dataset is copied to the device once when it takes at most
    :data:`DEVICE_FRACTION` of the free memory.

    Parameters
    ----------
    data:
        The training data, as described above.
    batch_size:
        Examples per batch for tensors and a ``TensorDataset``; ignored for a ``DataLoader``.
    shuffle, drop_last:
        As for a ``DataLoader``; ignored for a ``DataLoader`` (its own are used).
    device:
        Where the batches are used.  On CUDA the tensors are moved there once
        if they fit; otherwise batches are cut on the CPU into pinned memory, so
        that a ``.to(device, non_blocking=True)`` overlaps with compute.
    seed:
        Base seed of the shuffling.  Default: one number drawn here from the
        ``DataLoader``'s ``generator`` if it has one, else from the global torch
        RNG (so ``torch.manual_seed`` beforehand reproduces it); 0 without
        shuffling, which then reads no RNG at all.  Read
        :attr:`TensorBatches.seed` to store it for a resume.

    Returns
    -------
    TensorBatches or None
        ``None`` when *data* is not one of the forms above.

    Raises
    ------
    InvalidArgument
        Tensors with different first dimensions, a non-tensor among tensors, no
        examples, a missing or bad *batch_size*, a bad *seed*.
    """
    import torch

    fields, batch_size, shuffle, drop_last, as_list, generator = _recognise(
        torch, data, batch_size, shuffle, drop_last
    )
    if fields is None:
        return None
    _check_batch_size(batch_size)
    n = _check_fields(torch, fields)
    if seed is None:
        # Drawn only when it is used: an unshuffled run leaves the global RNG alone.
        seed = (int(torch.empty((), dtype=torch.int64).random_(generator=generator).item())
                if shuffle else 0)
    elif isinstance(seed, bool) or not isinstance(seed, int):
        raise InvalidArgument(f"seed must be an integer, not {seed!r}")
    return TensorBatches(fields, n=n, batch_size=batch_size, shuffle=bool(shuffle),
                         drop_last=bool(drop_last), device=device, seed=seed, as_list=as_list)


class TensorBatches:
    """Batches of in-memory tensors, cut by indexing; build it with :func:`tensor_batches`.

    Attributes
    ----------
    num_examples:
        Examples in the dataset.
    batch_size, shuffle, drop_last:
        How epochs are cut.
    seed:
        The base seed of the shuffled orders (store it to resume in a new process).
    device:
        Where the tensors are indexed: the training device when they fit there, else the CPU.
    pinned:
        Whether batches are copied into pinned memory (CUDA training, data on the CPU).
    """

    def __init__(self, fields: list[torch.Tensor], *, n: int, batch_size: int, shuffle: bool,
                 drop_last: bool, device: str | torch.device, seed: int, as_list: bool) -> None:
        import torch

        self.num_examples = n
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = seed
        self._as_list = as_list
        self.device, self.pinned = _placement(torch, fields, torch.device(device))
        # contiguous() once here, so index_select reads rows without strides later.
        self._fields = [f.to(self.device).contiguous() for f in fields]

    def __len__(self) -> int:
        """Batches per epoch."""
        full, rest = divmod(self.num_examples, self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def __repr__(self) -> str:
        return (f"TensorBatches({self.num_examples} examples, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, drop_last={self.drop_last}, device={self.device})")

    def order(self, epoch: int) -> torch.Tensor:
        """The example order of *epoch* (a CPU int64 tensor), identical on every call."""
        import torch

        if not self.shuffle:
            return torch.arange(self.num_examples)
        g = torch.Generator().manual_seed(_epoch_seed(self.seed, epoch))
        return torch.randperm(self.num_examples, generator=g)

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, ...]]:
        """Yield the batches of *epoch* from batch *start* on (skipped ones are not built).

        Raises
        ------
        InvalidArgument
            *epoch* is not an integer, or *start* is not within ``0 .. len(self)``.
        """
        if isinstance(epoch, bool) or not isinstance(epoch, int):
            raise InvalidArgument(f"epoch must be an integer, not {epoch!r}")
        if isinstance(start, bool) or not isinstance(start, int) or not 0 <= start <= len(self):
            raise InvalidArgument(
                f"start must be a batch index from 0 to {len(self)}, not {start!r}"
            )
        return self._batches(epoch, start)

    def _batches(self, epoch: int, start: int) -> Iterator[Any]:
        rows = self.order(epoch).to(self.device) if self.shuffle else None
        fields, size, n = self._fields, self.batch_size, self.num_examples
        wrap = list if self._as_list else tuple
        for b in range(start, len(self)):
            lo, hi = b * size, min((b + 1) * size, n)
            if self.pinned:
                batch = [_cut_pinned(f, lo, hi, rows) for f in fields]
            elif rows is None:
                # A copy, never a view: changing a batch in place must not change the data.
                batch = [f[lo:hi].clone() for f in fields]
            else:
                index = rows[lo:hi]
                batch = [f.index_select(0, index) for f in fields]
            yield wrap(batch)


def _cut_pinned(field: torch.Tensor, lo: int, hi: int, rows: torch.Tensor | None) -> torch.Tensor:
    """Rows ``lo:hi`` (of the order *rows*) written straight into pinned memory: one copy."""
    import torch

    out = torch.empty((hi - lo, *field.shape[1:]), dtype=field.dtype, pin_memory=True)
    if rows is None:
        return out.copy_(field[lo:hi])
    return torch.index_select(field, 0, rows[lo:hi], out=out)


def _recognise(torch: Any, data: Any, batch_size: Any, shuffle: Any, drop_last: Any) -> tuple:
    """``(fields, batch_size, shuffle, drop_last, as_list, generator)``; fields None: no fast path."""
    from torch.utils.data import DataLoader, TensorDataset

    none = (None, batch_size, shuffle, drop_last, False, None)
    if isinstance(data, (tuple, list)):
        if not any(_is_array(torch, d) for d in data):
            return none  # e.g. a list of ready-made batches: iterated as it is
        if batch_size is None:
            raise InvalidArgument(
                f"batch_size is needed when the data are tensors ({len(data)} of them): "
                "e.g. train(model, (X, y), batch_size=64, ...)"
            )
        return list(data), batch_size, shuffle, drop_last, False, None
    if _is_tensor_dataset(data, TensorDataset):
        if batch_size is None:
            raise InvalidArgument(
                "batch_size is needed for a TensorDataset: e.g. train(model, dataset, "
                "batch_size=64, ...), or pass DataLoader(dataset, batch_size=64, shuffle=True)"
            )
        return list(data.tensors), batch_size, shuffle, drop_last, True, None
    if type(data) is DataLoader and _is_plain_loader(torch, data, TensorDataset):
        shuffled = type(data.sampler) is torch.utils.data.RandomSampler
        generator = data.sampler.generator if shuffled else None
        if generator is None:
            generator = data.generator
        return (list(data.dataset.tensors), data.batch_size, shuffled, data.drop_last, True,
                generator)
    return none


def _is_tensor_dataset(data: Any, tensor_dataset: type) -> bool:
    # A subclass that changes how an example is read (a transform) is not plain tensors.
    cls = type(data)
    return (isinstance(data, tensor_dataset)
            and cls.__getitem__ is tensor_dataset.__getitem__
            and cls.__len__ is tensor_dataset.__len__)


def _is_plain_loader(torch: Any, loader: Any, tensor_dataset: type) -> bool:
    """A DataLoader whose batches are exactly rows of a TensorDataset's tensors."""
    from torch.utils.data import BatchSampler, RandomSampler, SequentialSampler, default_collate

    sampler, batches = loader.sampler, loader.batch_sampler
    if not _is_tensor_dataset(loader.dataset, tensor_dataset) or loader.batch_size is None:
        return False
    if loader.collate_fn is not default_collate or loader.worker_init_fn is not None:
        return False
    if type(batches) is not BatchSampler or batches.sampler is not sampler:
        return False
    if type(sampler) is SequentialSampler:
        return sampler.data_source is loader.dataset
    if type(sampler) is RandomSampler:
        return (sampler.data_source is loader.dataset and not sampler.replacement
                and sampler._num_samples is None)
    return False


def _is_array(torch: Any, obj: Any) -> bool:
    return isinstance(obj, torch.Tensor) or type(obj).__module__ == "numpy"


def _check_batch_size(batch_size: Any) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidArgument(f"batch_size must be a positive integer, not {batch_size!r}")


def _check_fields(torch: Any, fields: list[Any]) -> int:
    """The shared first dimension of *fields*; raise unless they are tensors that agree."""
    if not fields:
        raise InvalidArgument("no tensors given: pass them as (inputs, targets), e.g. (X, y)")
    for i, f in enumerate(fields):
        if not isinstance(f, torch.Tensor):
            hint = " (convert it with torch.from_numpy)" if type(f).__module__ == "numpy" else ""
            raise InvalidArgument(
                f"data item {i} is a {type(f).__name__}, not a torch.Tensor{hint}"
            )
        if f.ndim == 0:
            raise InvalidArgument(f"data item {i} is a 0-d tensor: it needs a first dimension")
    sizes = [int(f.shape[0]) for f in fields]
    if len(set(sizes)) > 1:
        raise InvalidArgument(
            f"the tensors have different first dimensions {sizes}: "
            "each must have one row per example"
        )
    if sizes[0] == 0:
        raise InvalidArgument("the tensors hold 0 examples: there is nothing to train on")
    return sizes[0]


def _epoch_seed(base: int, epoch: int) -> int:
    # Hashed rather than added: torch's CPU generator keeps only 32 bits of its seed,
    # and nearby seeds must not give related orders.
    digest = hashlib.sha256(f"mlnb.batches:{base}:{epoch}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def _placement(torch: Any, fields: list[torch.Tensor], device: torch.device) -> tuple:
    """``(where to index, whether to pin batches)`` for training on *device*."""
    cpu = torch.device("cpu")
    if device.type == "cpu":
        return cpu, False
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    if all(f.device == device for f in fields):
        return device, False
    need = sum(f.numel() * f.element_size() for f in fields if f.device != device)
    if need <= DEVICE_FRACTION * _free_memory(torch, device):
        return device, False
    return cpu, device.type == "cuda"


def _free_memory(torch: Any, device: torch.device) -> int:
    """Bytes free on *device* (0 when unknown, which keeps the data on the CPU)."""
    try:
        if device.type == "cuda":
            return int(torch.cuda.mem_get_info(device)[0])
        if device.type == "mps":
            return int(torch.mps.recommended_max_memory() - torch.mps.driver_allocated_memory())
    except (RuntimeError, AttributeError):
        return 0
    return 0
