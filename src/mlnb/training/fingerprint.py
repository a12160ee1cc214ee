"""What a registered training run was trained on: a fingerprint of its data.

:func:`data_fingerprint` records shapes, dtypes and a sha256 of a
deterministic sample of the training data, the same however the data are
shuffled: a JSON-safe record that registration stores next to the weights
(the code and environment records are in :mod:`mlnb.training.provenance`).

It does not change the state a training run depends on: the data are read
with every global RNG (torch, ``random``, numpy) saved and restored, and no
CUDA context is created.
"""

from __future__ import annotations

import contextlib
import hashlib
import sys
from typing import TYPE_CHECKING, Any, Iterator

from mlnb.errors import InvalidArgument

if TYPE_CHECKING:
    import torch

__all__ = ["FULL_HASH_BYTES", "data_fingerprint"]

#: Tensors up to this many bytes in all are hashed whole instead of sampled.
FULL_HASH_BYTES = 16 * 2**20


def data_fingerprint(data: Any, *, max_samples: int = 256, max_batches: int = 4) -> dict:
    """Describe *data* and hash a deterministic sample of it.

    Parameters
    ----------
    data:
        Tensors ``(X, y)``, a ``TensorBatches``, a map-style ``Dataset``, a
        ``DataLoader``, or any iterable of batches.
    max_samples:
        Examples hashed from a map-style dataset or tensors: evenly spaced,
        first and last included, so the hash does not depend on shuffling and
        changes when any of those rows does.  Tensors of at most
        :data:`FULL_HASH_BYTES` are hashed whole.
    max_batches:
        Batches hashed from an iterable (fewer when *max_samples* examples are reached).

    Returns
    -------
    dict
        ``kind`` (``"tensors"``, ``"dataset"``, ``"iterable"``, ``"iterator"`` or
        ``"other"``), ``type``, ``examples`` (or ``None``), ``fields`` (name,
        shape without the batch dimension, dtype), ``hash`` (sha256 hex, or
        ``None``), ``scope`` (``"all"``, ``"sample"``,
        ``"first_batches"`` or ``"first_examples"``), ``hashed`` (examples, or
        batches for ``"first_batches"``), ``loader`` (a ``DataLoader``'s
        batch size, shuffle, drop_last) and, when the data could not be read,
        ``error``.  A one-shot iterator is not read: its ``hash`` is ``None``.

    Raises
    ------
    InvalidArgument
        *max_samples* or *max_batches* is not a positive integer.
    """
    for name, value in (("max_samples", max_samples), ("max_batches", max_batches)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidArgument(f"{name} must be a positive integer, not {value!r}")
    import torch
    from torch.utils.data import DataLoader, IterableDataset

    out: dict[str, Any] = {"kind": "other", "type": _type_name(data), "examples": None,
                           "fields": None, "hash": None, "scope": None, "hashed": 0}
    source = data
    if isinstance(data, DataLoader):
        out["loader"] = {
            "batch_size": data.batch_size, "drop_last": bool(data.drop_last),
            "shuffle": type(data.sampler) is torch.utils.data.RandomSampler,
        }
        source = data.dataset
    try:
        with _frozen_rng(torch):
            tensors = _plain_tensors(torch, source)
            if tensors is not None:
                out["kind"] = ("dataset" if isinstance(source, torch.utils.data.Dataset)
                               else "tensors")
                out.update(_hash_tensors(torch, tensors, max_samples))
            elif isinstance(source, torch.utils.data.Dataset) and not isinstance(
                    source, IterableDataset) and hasattr(source, "__len__"):
                out["kind"] = "dataset"
                out.update(_hash_dataset(source, max_samples))
            elif hasattr(type(source), "__next__"):
                out["kind"] = "iterator"  # one pass only: reading it would steal batches
            elif hasattr(source, "__iter__"):
                out["kind"] = "iterable"
                # A DataLoader over an IterableDataset: its dataset yields single examples.
                samples = source is not data and data.batch_size is not None
                out.update(_hash_iterable(source, max_samples, max_batches, samples))
    except Exception as err:  # a fingerprint never fails a registration: it notes why
        out.update(hash=None, error=f"{type(err).__name__}: {err}"[:300])
    return out


@contextlib.contextmanager
def _frozen_rng(torch: Any) -> Iterator[None]:
    """Read data under fixed seeds, then give every global RNG its state back.

    Fixed seeds make datasets with random transforms hash the same every time.
    Only the CPU generator is seeded: ``torch.manual_seed`` would also queue a
    seed for CUDA generators that are not created yet, which no restore undoes.
    """
    import random

    py_state = random.getstate()
    np = sys.modules.get("numpy")
    np_state = np.random.get_state() if np is not None else None
    cuda = torch.cuda.is_initialized()
    devices = list(range(torch.cuda.device_count())) if cuda else []
    try:
        with torch.random.fork_rng(devices=devices):
            torch.default_generator.manual_seed(0)
            random.seed(0)
            if np is not None:
                np.random.seed(0)
            yield
    finally:
        random.setstate(py_state)
        if np_state is not None:
            np.random.set_state(np_state)


def _plain_tensors(torch: Any, data: Any) -> list[torch.Tensor] | None:
    """The field tensors of tensors, a TensorBatches or a plain TensorDataset; else None."""
    from torch.utils.data import TensorDataset

    from mlnb.training.batches import TensorBatches

    if isinstance(data, torch.Tensor):
        return [data]
    if isinstance(data, (tuple, list)) and data and all(
            isinstance(d, torch.Tensor) and d.ndim for d in data):
        return list(data)
    if isinstance(data, TensorBatches):
        return list(data._fields)
    if isinstance(data, TensorDataset) and type(data).__getitem__ is TensorDataset.__getitem__:
        return list(data.tensors)
    return None


def _spaced(n: int, k: int) -> list[int]:
    """*k* indices evenly spaced over ``range(n)``, first and last included."""
    k = min(k, n)
    if k <= 1:
        return [0][:k]
    return [i * (n - 1) // (k - 1) for i in range(k)]


def _hash_tensors(torch: Any, tensors: list[torch.Tensor], max_samples: int) -> dict:
    sizes = {int(t.shape[0]) if t.ndim else 1 for t in tensors}
    n = sizes.pop() if len(sizes) == 1 else None
    total = sum(t.numel() * t.element_size() for t in tensors)
    whole = n is None or n <= max_samples or total <= FULL_HASH_BYTES
    h = hashlib.sha256(f"mlnb.data/1 examples={n}".encode())
    if whole:
        rows = tensors
    else:
        index = torch.tensor(_spaced(n, max_samples))
        rows = [t.index_select(0, index.to(t.device)) for t in tensors]
    for i, (t, r) in enumerate(zip(tensors, rows)):
        h.update(f"|{i}:{_dtype(t.dtype)}:{list(t.shape)}|".encode())
        h.update(_tensor_bytes(torch, r))
    return {
        "examples": n, "hash": h.hexdigest(), "scope": "all" if whole else "sample",
        "hashed": n if whole else min(n, max_samples),
        "fields": [{"name": str(i), "shape": list(t.shape[1:]), "dtype": _dtype(t.dtype)}
                   for i, t in enumerate(tensors)],
    }


def _hash_dataset(dataset: Any, max_samples: int) -> dict:
    n = len(dataset)
    indices = _spaced(n, max_samples)
    h = hashlib.sha256(f"mlnb.data/1 examples={n}".encode())
    fields = None
    for i in indices:
        sample = dataset[i]
        if fields is None:
            fields = _describe(sample, batched=False)
        h.update(f"#{i}".encode())
        _hash_value(h, sample)
    return {"examples": n, "hash": h.hexdigest(), "fields": fields, "hashed": len(indices),
            "scope": "all" if len(indices) == n else "sample"}


def _hash_iterable(data: Any, max_samples: int, max_batches: int, samples: bool) -> dict:
    h = hashlib.sha256(b"mlnb.data/1 iterable")
    fields, count, examples = None, 0, 0
    for item in data:
        if fields is None:
            fields = _describe(item, batched=not samples)
        h.update(f"#{count}".encode())
        _hash_value(h, item)
        count += 1
        examples += 1 if samples else _batch_len(item)
        if examples >= max_samples or (not samples and count >= max_batches):
            break
    return {"hash": h.hexdigest(), "fields": fields, "hashed": count,
            "scope": "first_examples" if samples else "first_batches"}


def _leaves(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, (tuple, list)):
        for i, v in enumerate(value):
            yield from _leaves(v, f"{path}.{i}" if path else str(i))
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(v, f"{path}.{k}" if path else str(k))
    else:
        yield path, value


def _describe(value: Any, *, batched: bool) -> list[dict]:
    fields = []
    for name, leaf in _leaves(value):
        shape = getattr(leaf, "shape", None)
        if shape is not None and hasattr(leaf, "dtype"):
            dims = [int(d) for d in shape]
            fields.append({"name": name, "shape": dims[1:] if batched else dims,
                           "dtype": _dtype(leaf.dtype)})
        else:
            fields.append({"name": name, "shape": [], "dtype": type(leaf).__name__})
    return fields


def _hash_value(h: Any, value: Any) -> None:
    """Feed every leaf of *value* into *h*: a header (name, type, dtype, shape), then bytes."""
    import torch

    for name, leaf in _leaves(value):
        if isinstance(leaf, torch.Tensor):
            h.update(f"|{name}:tensor:{_dtype(leaf.dtype)}:{list(leaf.shape)}|".encode())
            h.update(_tensor_bytes(torch, leaf))
        elif leaf is None or isinstance(leaf, (bool, int, float, complex, str, bytes)):
            h.update(f"|{name}:{type(leaf).__name__}:{leaf!r}|".encode())
        elif hasattr(leaf, "__array__") or hasattr(leaf, "__array_interface__"):
            import numpy as np

            arr = np.ascontiguousarray(np.asarray(leaf))
            if arr.dtype.hasobject:
                raise TypeError(f"field {name!r} is an array of Python objects")
            h.update(f"|{name}:array:{arr.dtype.str}:{list(arr.shape)}|".encode())
            h.update(arr.view(np.uint8).reshape(-1).data if arr.size else b"")
        else:
            raise TypeError(f"cannot hash field {name!r} of type {type(leaf).__name__}")


def _tensor_bytes(torch: Any, t: torch.Tensor) -> Any:
    t = t.detach()
    if t.layout != torch.strided:
        t = t.to_dense()
    t = t.cpu().resolve_conj().resolve_neg().contiguous().reshape(-1)
    if not t.numel():
        return b""
    if t.dtype != torch.uint8:
        t = t.view(torch.uint8)
    return t.numpy().data


def _batch_len(batch: Any) -> int:
    for _, leaf in _leaves(batch):
        shape = getattr(leaf, "shape", None)
        if shape is not None and len(shape):
            return int(shape[0])
    return 1


def _dtype(dtype: Any) -> str:
    return str(dtype).removeprefix("torch.")


def _type_name(obj: Any) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"
