"""What a registered training run was made from: its data, its code, its environment.

Three JSON-safe records that registration stores next to the weights:

* :func:`data_fingerprint`: shapes, dtypes and a sha256 of a deterministic
  sample of the training data, the same however the data are shuffled;
* :func:`code_source`: the executing cell (or script) with its hash, and the
  notebook file with its hash;
* :func:`environment`: Python, platform, torch, CUDA, cuDNN, GPUs, mlnb.

None of them changes the state a training run depends on: the data are read
with every global RNG (torch, ``random``, numpy) saved and restored, no CUDA
context is created, and IPython is never imported.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
from typing import TYPE_CHECKING, Any, Iterator

from mlnb.errors import InvalidArgument

if TYPE_CHECKING:
    import torch

__all__ = ["FULL_HASH_BYTES", "MAX_SOURCE_CHARS", "code_source", "data_fingerprint",
           "environment"]

#: Tensors up to this many bytes in all are hashed whole instead of sampled.
FULL_HASH_BYTES = 16 * 2**20
#: Characters of source kept in :func:`code_source` (the hash covers all of it).
MAX_SOURCE_CHARS = 100_000


# -- data -------------------------------------------------------------------------------------

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


# -- environment ------------------------------------------------------------------------------

def environment() -> dict:
    """Python, platform, torch, CUDA, cuDNN, GPUs, MPS, mlnb and numpy versions.

    Cheap: it creates no CUDA context.  GPU names come from torch when CUDA is
    already initialised, else from NVML (the driver's library), else ``None``.
    """
    import platform

    env: dict[str, Any] = {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "mlnb": _version("mlnb"), "numpy": _version("numpy"), "torch": None,
        "cuda_available": False, "cuda": None, "cudnn": None, "gpu_count": 0, "gpus": [],
        "mps_available": False,
    }
    try:
        import torch
    except ImportError:
        return env
    env["torch"] = torch.__version__
    env["cuda"] = torch.version.cuda
    cudnn = torch.backends.cudnn
    env["cudnn"] = cudnn.version() if cudnn.is_available() else None
    mps = getattr(torch.backends, "mps", None)
    env["mps_available"] = bool(mps is not None and mps.is_available())
    if torch.cuda.is_available():
        count = torch.cuda.device_count()
        env.update(cuda_available=True, gpu_count=count)
        if torch.cuda.is_initialized():
            env["gpus"] = [torch.cuda.get_device_name(i) for i in range(count)]
        else:
            env["gpus"] = _nvml_names(count)
    return env


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        if package == "mlnb":
            import mlnb

            return mlnb.__version__
        return None


def _nvml_names(count: int) -> list[str] | None:
    """GPU names from NVML without a CUDA context, in CUDA's order; ``None`` if unknown."""
    import ctypes

    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    try:
        order = [int(d) for d in visible.split(",")[:count]] if visible else list(range(count))
    except ValueError:
        return None  # UUIDs or MIG names: not mapped here
    try:
        lib = ctypes.CDLL("nvml.dll" if sys.platform == "win32" else "libnvidia-ml.so.1")
        if lib.nvmlInit_v2() != 0:
            return None
    except (OSError, AttributeError):
        return None
    try:
        names = []
        for index in order:
            handle = ctypes.c_void_p()
            buf = ctypes.create_string_buffer(96)
            if (lib.nvmlDeviceGetHandleByIndex_v2(index, ctypes.byref(handle)) != 0
                    or lib.nvmlDeviceGetName(handle, buf, 96) != 0):
                return None
            names.append(buf.value.decode(errors="replace"))
        return names
    finally:
        lib.nvmlShutdown()


# -- code -------------------------------------------------------------------------------------

def code_source(source: str | None = None) -> dict | None:
    """The code that trained: *source*, else the executing IPython cell, else the script.

    Under IPython (never imported here; only used when already loaded) the
    cell is the one running now, as typed (magics included).  The notebook
    is found from ``__vsc_ipynb_file__`` (VS Code) or ``__session__`` in the
    user namespace or the ``JPY_SESSION_NAME`` variable (both set for a
    notebook's kernel by Jupyter); its hash is of the file as last saved.
    Outside IPython the code is the ``__main__`` script run as ``python file.py``.

    Returns
    -------
    dict or None
        ``source`` (at most :data:`MAX_SOURCE_CHARS` characters, with a note when
        cut), ``sha256`` (of the whole source), ``truncated``, ``cell_id``,
        ``notebook`` and ``notebook_sha256``, ``script`` and ``script_sha256``;
        ``None`` when there is no code to find.
    """
    shell = _ipython_shell()
    out: dict[str, Any] = {"source": None, "sha256": None, "truncated": False, "cell_id": None,
                           "notebook": None, "notebook_sha256": None, "script": None,
                           "script_sha256": None}
    if shell is not None:
        notebook = _notebook_path(shell)
        if notebook is not None:
            out.update(notebook=notebook, notebook_sha256=_file_sha256(notebook))
        if source is None:
            source, out["cell_id"] = _current_cell(shell)
    else:
        script = _main_script()
        if script is not None:
            out.update(script=script, script_sha256=_file_sha256(script))
            if source is None:
                with open(script, encoding="utf-8", errors="replace") as f:
                    source = f.read()
    if source is None and out["notebook"] is None and out["script"] is None:
        return None
    if source is not None:
        if not isinstance(source, str):
            raise InvalidArgument(f"source must be a str, not {type(source).__name__}")
        out["sha256"] = hashlib.sha256(source.encode()).hexdigest()
        if len(source) > MAX_SOURCE_CHARS:
            out["truncated"] = True
            source = (source[:MAX_SOURCE_CHARS] + f"\n# [mlnb: source truncated, "
                      f"{MAX_SOURCE_CHARS} of {len(source)} characters kept]\n")
        out["source"] = source
    return out


def _ipython_shell() -> Any:
    ipython = sys.modules.get("IPython")
    get = getattr(ipython, "get_ipython", None)
    return get() if get is not None else None


def _current_cell(shell: Any) -> tuple[str | None, str | None]:
    """The raw source and id of the cell being executed.

    IPython keeps the running cell's ``ExecutionResult`` on the display hook
    while the cell runs (``run_cell_async``), whether or not history is stored;
    the input history is the fallback.
    """
    result = getattr(getattr(shell, "displayhook", None), "exec_result", None)
    info = getattr(result, "info", None)
    raw = getattr(info, "raw_cell", None)
    if isinstance(raw, str):
        return raw, getattr(info, "cell_id", None)
    history = getattr(getattr(shell, "history_manager", None), "input_hist_raw", None)
    if history and len(history) > 1 and isinstance(history[-1], str):
        return history[-1], None
    return None, None


def _notebook_path(shell: Any) -> str | None:
    ns = getattr(shell, "user_ns", {}) or {}
    for candidate in (ns.get("__vsc_ipynb_file__"), ns.get("__session__"),
                      os.environ.get("JPY_SESSION_NAME")):
        if isinstance(candidate, str) and candidate:
            path = os.path.abspath(os.path.expanduser(candidate))
            if os.path.isfile(path):
                return path
    return None


def _main_script() -> str | None:
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    # A module run with ``python -m`` has a __spec__; only a script file is the user's code.
    if not isinstance(path, str) or getattr(main, "__spec__", None) is not None:
        return None
    path = os.path.abspath(path)
    return path if os.path.isfile(path) else None


def _file_sha256(path: str) -> str | None:
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    except OSError:
        return None
    return h.hexdigest()
