"""Training checkpoints: a nested state tree as ONE safetensors file, never a pickle.

A checkpoint holds what :func:`mlnb.train` needs to continue a run (model,
optimizer, scheduler, scaler, RNG states, loop counters; see the design page).
The file is plain safetensors, so any safetensors tool reads its tensors:

* every torch tensor and numpy array is an entry of the tensor table, named by
  its path in the tree joined with ``/``: ``model/fc1.weight``,
  ``optimizer/state/0/exp_avg``, ``rng/torch``, ``rng/cuda/0``,
  ``rng/numpy/1`` (the uint32 key of ``numpy.random.get_state()``).  A name
  already taken (a dict key holding ``/``) gets a ``~N`` suffix.  The model's
  weights are the ``model/`` entries: strip the prefix for a ``state_dict``;
* the structure goes as JSON in the safetensors header, under
  ``__metadata__["mlnb.checkpoint"]``: ``{"version": 1, "tree": ...}``.  A
  JSON object with the key ``"$"`` is a tagged value: ``tensor``/``ndarray``
  (``"key"``: the table entry), ``tuple`` (``"items"``), ``float`` (``"value"``:
  ``"nan"``, ``"inf"``, ``"-inf"``), ``dict`` (``"pairs"``: dicts with keys that
  are not all strings, e.g. optimizer state's int keys), ``odict`` (an
  ``OrderedDict`` with its ``_metadata``, as ``state_dict()`` returns) and
  ``scalar`` (a numpy scalar: ``"dtype"``, ``"value"``).  Any other object is a
  dict with string keys; a key starting with ``$`` is written with one more ``$``.

Tensors are written from CPU, contiguous copies; the same tensor in two places
(tied weights) is stored once and read back as one tensor object in both.  The
bytes are streamed to a temporary file beside the target, hashed on the way,
and renamed into place, so a reader never sees half a checkpoint.  Reading goes
through safetensors' own parser and ``json``: it never unpickles and never
imports or runs anything named in the file.  Torch and numpy are imported only
when the tree holds their objects.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import uuid
from collections import OrderedDict
from pathlib import Path
from typing import Any, BinaryIO

from mlnb.errors import IntegrityError, InvalidArgument, MissingDependency, NotFound

__all__ = ["FORMAT_VERSION", "METADATA_KEY", "read_checkpoint", "write_checkpoint"]

#: The ``__metadata__`` entry that holds the tree, and its format version.
METADATA_KEY = "mlnb.checkpoint"
FORMAT_VERSION = 1

_MAX_DEPTH = 64
_TORCH_DTYPES = {  # torch dtype name -> safetensors dtype
    "float64": "F64", "float32": "F32", "float16": "F16", "bfloat16": "BF16",
    "int64": "I64", "int32": "I32", "int16": "I16", "int8": "I8",
    "uint64": "U64", "uint32": "U32", "uint16": "U16", "uint8": "U8", "bool": "BOOL",
    "float8_e4m3fn": "F8_E4M3", "float8_e5m2": "F8_E5M2", "complex64": "C64",
}
_NUMPY_DTYPES = {  # numpy dtype name -> safetensors dtype
    "float64": "F64", "float32": "F32", "float16": "F16",
    "int64": "I64", "int32": "I32", "int16": "I16", "int8": "I8",
    "uint64": "U64", "uint32": "U32", "uint16": "U16", "uint8": "U8", "bool": "BOOL",
    "complex64": "C64",
}
_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
_ALLOWED = ("tensors, numpy arrays, int, float, str, bool, None, and lists, tuples and "
            "dicts of them")


def _label(parts: tuple) -> str:
    """``scheduler.lr_lambdas[0]``: where a value sits in the tree, as a person writes it."""
    text = ""
    for part in parts:
        if isinstance(part, str) and part.isidentifier():
            text += f".{part}" if text else part
        else:
            text += f"[{part!r}]"
    return text or "the state"


class _Encoder:
    """Turns a state tree into JSON-ready data plus a table of tensors and arrays."""

    def __init__(self) -> None:
        self.torch = sys.modules.get("torch")  # no tensor exists unless torch is imported
        self.numpy = sys.modules.get("numpy")
        self.tensors: dict[str, Any] = {}
        self.arrays: dict[str, Any] = {}
        self.refs: list[dict[str, Any]] = []
        self.taken: set[str] = {"__metadata__"}

    def _key(self, parts: tuple) -> str:
        base = "/".join(str(p) for p in parts) or "state"
        key, n = base, 1
        while key in self.taken:
            key, n = f"{base}~{n}", n + 1
        self.taken.add(key)
        return key

    def _fail(self, parts: tuple, value: Any, why: str = "") -> InvalidArgument:
        shown = repr(value)
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        return InvalidArgument(
            f"cannot store {_label(parts)} in a checkpoint: {why or 'it is a'} "
            f"{type(value).__qualname__} ({shown}); a checkpoint holds {_ALLOWED}. Make "
            "that state_dict() return plain data (e.g. drop the function or object)"
        )

    def encode(self, value: Any, parts: tuple = ()) -> Any:
        kind = type(value)
        if value is None or kind in (bool, int, str):
            return value
        if kind is float:
            if math.isfinite(value):
                return value
            return {"$": "float", "value": repr(value)}
        if len(parts) > _MAX_DEPTH:
            raise InvalidArgument(
                f"the state is nested deeper than {_MAX_DEPTH} levels at {_label(parts)}; "
                "a checkpoint holds plain state dicts"
            )
        if kind is list:
            return [self.encode(v, (*parts, i)) for i, v in enumerate(value)]
        if isinstance(value, tuple) and not hasattr(value, "_fields"):  # torch.Size too
            return {"$": "tuple", "items": [self.encode(v, (*parts, i))
                                            for i, v in enumerate(value)]}
        if kind is dict:
            return self._dict(value, parts)
        if kind is OrderedDict:
            out = {"$": "odict", "value": self._dict(value, parts)}
            meta = getattr(value, "_metadata", None)
            if meta is not None:
                out["meta"] = self.encode(meta, (*parts, "_metadata"))
            return out
        torch, np = self.torch, self.numpy
        if torch is not None and isinstance(value, torch.Tensor):
            return self._tensor(value, parts)
        if np is not None and isinstance(value, np.ndarray):
            return self._array(value, parts)
        if (np is not None and isinstance(value, np.generic) and value.dtype.kind in "biuf"
                and value.dtype.name in _NUMPY_DTYPES):
            return {"$": "scalar", "dtype": value.dtype.name,
                    "value": self.encode(value.item(), parts)}
        raise self._fail(parts, value)

    def _dict(self, value: dict, parts: tuple) -> Any:
        if all(type(k) is str for k in value):
            return {("$" + k if k.startswith("$") else k): self.encode(v, (*parts, k))
                    for k, v in value.items()}
        pairs = []
        for k, v in value.items():
            if not (k is None or type(k) in (bool, int, float, str) or type(k) is tuple):
                raise self._fail((*parts, k), k, "its key is a")
            pairs.append([self.encode(k, parts), self.encode(v, (*parts, k))])
        return {"$": "dict", "pairs": pairs}

    def _tensor(self, value: Any, parts: tuple) -> dict[str, Any]:
        name = str(value.dtype).removeprefix("torch.")
        if name not in _TORCH_DTYPES:
            raise self._fail(parts, value, f"its dtype {name} cannot be stored; it is a")
        if value.layout is not self.torch.strided:
            raise self._fail(parts, value, "it is not dense (call .to_dense()); it is a")
        key = self._key(parts)
        self.tensors[key] = value
        ref = {"$": "tensor", "key": key}
        self.refs.append(ref)
        return ref

    def _array(self, value: Any, parts: tuple) -> dict[str, Any]:
        if value.dtype.name not in _NUMPY_DTYPES:
            raise self._fail(parts, value, f"its dtype {value.dtype} cannot be stored; it is a")
        array = value if value.flags.c_contiguous else value.copy(order="C")  # keeps 0-d
        if array.dtype.byteorder == ">":
            array = array.astype(array.dtype.newbyteorder("<"))
        key = self._key(parts)
        self.arrays[key] = array
        return {"$": "ndarray", "key": key}


def _raw_bytes(torch: Any, tensor: Any) -> memoryview:
    """The bytes of a CPU contiguous tensor, without copying them."""
    tensor = tensor.resolve_conj().resolve_neg()  # lazy conjugate/negative views hold other bytes
    return memoryview(tensor.reshape(-1).view(torch.uint8).numpy())


def _table(enc: _Encoder) -> list[tuple[str, str, list[int], memoryview]]:
    """(key, safetensors dtype, shape, bytes) of every entry, tied tensors stored once."""
    entries = []
    if enc.tensors:
        from mlnb.serialize.torch_model import _split_tied

        tensors, tied = _split_tied(enc.torch, enc.tensors)
        for ref in enc.refs:
            ref["key"] = tied.get(ref["key"], ref["key"])
        for key, t in tensors.items():
            dtype = _TORCH_DTYPES[str(t.dtype).removeprefix("torch.")]
            entries.append((key, dtype, list(t.shape), _raw_bytes(enc.torch, t)))
    for key, a in enc.arrays.items():
        view = memoryview(a.reshape(-1).view(enc.numpy.uint8))
        entries.append((key, _NUMPY_DTYPES[a.dtype.name], list(a.shape), view))
    # Widest items first, as safetensors does, so every entry stays aligned.
    entries.sort(key=lambda e: (-_itemsize(e[1]), e[0]))
    return entries


def _itemsize(dtype: str) -> int:
    if dtype in ("BOOL", "U8", "I8") or dtype.startswith("F8"):
        return 1
    return 8 if dtype == "C64" else int(dtype.lstrip("BFIU")) // 8


def _dump(state: Any, out: BinaryIO) -> tuple[str, int]:
    """Write *state* as safetensors to *out*; return the sha256 and size of what was written."""
    enc = _Encoder()
    tree = enc.encode(state)
    entries = _table(enc)
    header: dict[str, Any] = {}
    offset = 0
    for key, dtype, shape, data in entries:
        header[key] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + data.nbytes]}
        offset += data.nbytes
    meta = json.dumps({"version": FORMAT_VERSION, "tree": tree}, separators=(",", ":"),
                      allow_nan=False)
    header["__metadata__"] = {"format": "pt", METADATA_KEY: meta}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the tensor data starts 8-byte aligned
    digest = hashlib.sha256()
    size = 0
    for chunk in (len(text).to_bytes(8, "little"), text, *(e[3] for e in entries)):
        digest.update(chunk)
        out.write(chunk)
        size += len(chunk) if isinstance(chunk, bytes) else chunk.nbytes
    return digest.hexdigest(), size


def _write_file(state: Any, path: str | os.PathLike[str]) -> tuple[str, int]:
    """Write *state* to *path* atomically; return its sha256 and size."""
    path = Path(path)
    temp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
    try:
        with open(temp, "xb") as out:
            digest, size = _dump(state, out)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return digest, size


def write_checkpoint(state: Any, path: str | os.PathLike[str]) -> None:
    """Write the state tree *state* to the safetensors file *path*, atomically.

    Raises
    ------
    InvalidArgument
        The tree holds something a checkpoint cannot store (a function, an
        arbitrary object, a sparse tensor, an unsupported dtype); the message
        names where it is, e.g. ``scheduler.lr_lambdas[0]``.
    """
    _write_file(state, path)


class _Decoder:
    """Rebuilds the tree from the JSON structure, reading entries from safetensors."""

    def __init__(self, path: str, keys: set[str]) -> None:
        self.path, self.keys = path, keys
        self.handles: dict[str, Any] = {}
        self.cache: dict[tuple[str, str], Any] = {}

    def close(self) -> None:
        for handle in self.handles.values():
            handle.__exit__(None, None, None)
        self.handles.clear()

    def bad(self, parts: tuple, why: str) -> IntegrityError:
        return IntegrityError(
            f"checkpoint {self.path!r} is damaged or not an mlnb checkpoint: {why} at "
            f"{_label(parts)}; use another checkpoint of the run"
        )

    def entry(self, framework: str, key: Any, parts: tuple) -> Any:
        if not isinstance(key, str) or key not in self.keys:
            raise self.bad(parts, f"tensor {key!r} is not in the file")
        if (framework, key) not in self.cache:
            handle = self.handles.get(framework)
            if handle is None:
                handle = _safe_open(self.path, framework).__enter__()
                self.handles[framework] = handle
            self.cache[(framework, key)] = handle.get_tensor(key)
        return self.cache[(framework, key)]

    def decode(self, node: Any, parts: tuple = ()) -> Any:
        if node is None or type(node) in (bool, int, float, str):
            return node
        if len(parts) > _MAX_DEPTH:
            raise self.bad(parts, "nesting too deep")
        if type(node) is list:
            return [self.decode(v, (*parts, i)) for i, v in enumerate(node)]
        if type(node) is not dict:
            raise self.bad(parts, f"unexpected {type(node).__name__}")
        tag = node.get("$")
        if tag is None:
            return {(k[1:] if k.startswith("$") else k): self.decode(v, (*parts, k))
                    for k, v in node.items()}
        if tag == "tensor":
            return self.entry("pt", node.get("key"), parts)
        if tag == "ndarray":
            return self.entry("numpy", node.get("key"), parts)
        if tag == "tuple" and type(node.get("items")) is list:
            return tuple(self.decode(v, (*parts, i)) for i, v in enumerate(node["items"]))
        if tag == "float" and node.get("value") in _NONFINITE:
            return _NONFINITE[node["value"]]
        if tag == "dict" and type(node.get("pairs")) is list:
            out = {}
            for pair in node["pairs"]:
                if type(pair) is not list or len(pair) != 2:
                    raise self.bad(parts, "a dict entry is not a [key, value] pair")
                key = self.decode(pair[0], parts)
                try:
                    out[key] = self.decode(pair[1], (*parts, key))
                except TypeError as err:
                    raise self.bad(parts, f"unhashable dict key {key!r:.40}") from err
            return out
        if tag == "odict" and "value" in node:
            value = self.decode(node["value"], parts)
            if type(value) is not dict:
                raise self.bad(parts, "an OrderedDict that is not a dict")
            out = OrderedDict(value)
            if "meta" in node:
                out._metadata = self.decode(node["meta"], (*parts, "_metadata"))
            return out
        if tag == "scalar" and node.get("dtype") in _NUMPY_DTYPES:
            import numpy as np

            value = self.decode(node.get("value"), parts)
            if type(value) not in (bool, int, float):
                raise self.bad(parts, "a numpy scalar that is not a number")
            return np.dtype(node["dtype"]).type(value)
        raise self.bad(parts, f"unknown or malformed value {json.dumps(node)[:60]}")


def _safe_open(path: str, framework: str) -> Any:
    try:
        import safetensors
    except ImportError as err:
        raise MissingDependency("safetensors", "torch", "read training checkpoints") from err
    if framework == "pt" and "torch" not in sys.modules:
        try:
            import torch  # noqa: F401
        except ImportError as err:
            raise MissingDependency("torch", "torch", "read training checkpoints") from err
    return safetensors.safe_open(path, framework=framework)


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a state tree written by :func:`write_checkpoint`; tensors come back on the CPU.

    Raises
    ------
    NotFound
        There is no file at *path*.
    IntegrityError
        The file is not an mlnb checkpoint: truncated, a bad header, JSON that
        is not ours, a reference to a tensor the file lacks, or a newer format.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise NotFound(f"no checkpoint file at {path!r}")
    try:
        import safetensors
    except ImportError as err:
        raise MissingDependency("safetensors", "torch", "read training checkpoints") from err
    try:
        with safetensors.safe_open(path, framework="numpy") as f:
            keys, meta = set(f.keys()), f.metadata() or {}
        text = meta.get(METADATA_KEY)
        if text is None:
            raise IntegrityError(
                f"{path!r} is a safetensors file but not an mlnb checkpoint (no "
                f"{METADATA_KEY!r} metadata); read it with safetensors directly"
            )
        doc = json.loads(text)
        if type(doc) is not dict or type(doc.get("version")) is not int or "tree" not in doc:
            raise IntegrityError(f"checkpoint {path!r} has metadata that is not mlnb's format")
        if doc["version"] > FORMAT_VERSION:
            raise IntegrityError(
                f"checkpoint {path!r} has format version {doc['version']}, newer than this "
                f"mlnb reads ({FORMAT_VERSION}); upgrade mlnb"
            )
        decoder = _Decoder(path, keys)
        try:
            tree = decoder.decode(doc["tree"])
        finally:
            decoder.close()
    except IntegrityError:
        raise
    except (safetensors.SafetensorError, OSError, ValueError, TypeError, KeyError,
            AttributeError, RuntimeError, RecursionError, OverflowError) as err:
        raise IntegrityError(
            f"cannot read checkpoint {path!r}: {type(err).__name__}: {str(err)[:200]}; the "
            "file is damaged or not a checkpoint, use another checkpoint of the run"
        ) from err
    if type(tree) not in (dict, OrderedDict):
        raise IntegrityError(f"checkpoint {path!r} holds a {type(tree).__name__}, not a state dict")
    return tree
