"""The ``torch`` format: an ``nn.Module`` as safetensors weights plus how to rebuild it.

Weights are the module's ``state_dict`` (parameters and persistent buffers) in
one ``model.safetensors`` file: no pickle, so reading weights never runs code.
safetensors refuses tensors that share memory, so tied weights (the same
tensor under two names, e.g. an embedding reused as the output layer) are
stored once and recorded in ``metadata["tied"]`` as ``{alias: stored name}``;
other overlapping views are cloned.

Loading rebuilds the module, in this order: the ``into=`` instance, the
``model_class=`` class, the architecture spec (:mod:`mlnb.serialize.arch`),
then the recorded class if its module is already imported
(:mod:`mlnb.serialize.torch_classes`).  Nothing here unpickles: weights come
only from safetensors.
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

from mlnb.errors import IntegrityError, InvalidArgument, MissingDependency, NotFound
from mlnb.serialize.arch import build_spec, read_spec
from mlnb.serialize.torch_classes import check_init_kwargs, construct, find_imported_class

__all__ = ["WEIGHTS_FILE", "load_torch", "stage_torch"]

WEIGHTS_FILE = "model.safetensors"
FORMAT_VERSION = 1


def _import_torch() -> Any:
    try:
        import torch
    except ImportError as err:
        raise MissingDependency("torch", "torch", "load PyTorch models") from err
    return torch


def _import_safetensors() -> Any:
    try:
        import safetensors
        import safetensors.torch
    except ImportError as err:
        raise MissingDependency("safetensors", "torch", "store PyTorch weights") from err
    return safetensors


def _dtype_name(dtype: Any) -> str:
    return str(dtype).removeprefix("torch.")


def _split_tied(torch: Any, state: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Tensors to write (on CPU, contiguous, no shared memory) and the tied aliases."""
    tensors: dict[str, Any] = {}
    tied: dict[str, str] = {}
    seen: dict[tuple, str] = {}
    for name, tensor in state.items():
        if not isinstance(tensor, torch.Tensor):
            raise InvalidArgument(
                f"state_dict entry {name!r} is a {type(tensor).__name__}, not a tensor "
                "(extra state); mlnb stores only tensors"
            )
        if tensor.device.type == "meta" or torch.nn.parameter.is_lazy(tensor):
            raise InvalidArgument(
                f"tensor {name!r} holds no data (meta device or a lazy module not yet run); "
                "materialise the model, e.g. run one forward pass, before storing it"
            )
        # The same view of the same memory under two names is one tensor, tied.
        key = (tensor.device, tensor.data_ptr(), tensor.dtype, tuple(tensor.shape), tensor.stride())
        if tensor.numel() and key in seen:
            tied[name] = seen[key]
            continue
        seen[key] = name
        tensors[name] = tensor.detach().to("cpu").contiguous()
    # Distinct views that still share storage (slices of one buffer): copy them apart.
    owners: dict[int, list[str]] = {}
    for name, tensor in tensors.items():
        ptr = tensor.untyped_storage().data_ptr()
        if tensor.numel() and ptr:
            owners.setdefault(ptr, []).append(name)
    for names in owners.values():
        if len(names) > 1:
            for name in names:
                tensors[name] = tensors[name].clone()
    return tensors, tied


def _unwrap(torch: Any, model: Any) -> Any:
    """Return the module inside a ``torch.compile`` or data-parallel wrapper.

    The wrappers prefix every weight name (``_orig_mod.``, ``module.``) and are
    not what anyone wants to rebuild, so the inner module is stored.
    """
    while True:
        if isinstance(model, (torch.nn.DataParallel, torch.nn.parallel.DistributedDataParallel)):
            model = model.module
        elif type(model).__name__ == "OptimizedModule" and isinstance(
            getattr(model, "_orig_mod", None), torch.nn.Module
        ):
            model = model._orig_mod
        else:
            return model


def stage_torch(model: Any, workdir: Path, init_kwargs: dict | None) -> tuple[list, dict[str, Any]]:
    """Write *model*'s weights to ``workdir/model.safetensors`` and describe how to rebuild it.

    Raises
    ------
    InvalidArgument
        *init_kwargs* is not JSON or does not fit the class, or the state
        dict holds something that is not a materialised tensor.
    MissingDependency
        safetensors is not installed.
    """
    import torch

    model = _unwrap(torch, model)
    cls = type(model)
    kwargs = None if init_kwargs is None else check_init_kwargs(cls, init_kwargs)
    safetensors = _import_safetensors()
    tensors, tied = _split_tied(torch, model.state_dict())
    target = Path(workdir) / WEIGHTS_FILE
    safetensors.torch.save_file(tensors, str(target), metadata={"format": "pt"})
    metadata = {
        "format_version": FORMAT_VERSION,
        "class": {"module": cls.__module__, "qualname": cls.__qualname__},
        "init_kwargs": kwargs,
        "arch": read_spec(model),
        "tied": dict(sorted(tied.items())),
        "parameters": sum(p.numel() for p in model.parameters()),
        "dtypes": sorted({_dtype_name(t.dtype) for t in tensors.values()}),
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "safetensors": safetensors.__version__,
        },
    }
    return [(WEIGHTS_FILE, target)], metadata


def _device(torch: Any, device: Any) -> Any:
    """Return the torch.device to load onto, checked to exist on this machine."""
    if device is None:
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as err:
        raise InvalidArgument(
            f"invalid device {device!r}: {err}; use e.g. 'cpu', 'cuda', 'cuda:1' or 'mps'"
        ) from err
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InvalidArgument(
                f"device {device!r} was requested but CUDA is not available on this machine "
                f"(torch {torch.__version__}); pass device='cpu'"
            )
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise InvalidArgument(
                f"device {device!r} was requested but this machine has {count} CUDA "
                f"device(s): use cuda:0 to cuda:{count - 1}"
            )
        return torch.device("cuda", torch.cuda.current_device() if dev.index is None else dev.index)
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise InvalidArgument(
            f"device {device!r} was requested but MPS is not available; pass device='cpu'"
        )
    if dev.type != "cpu":
        try:
            torch.empty(0, device=dev)
        except (RuntimeError, AssertionError) as err:
            raise InvalidArgument(f"device {device!r} cannot be used here: {err}") from err
    return dev


def _read_weights(
    safetensors: Any, root: Path, metadata: dict[str, Any], dev: Any
) -> dict[str, Any]:
    path = root / WEIGHTS_FILE
    if not path.is_file():
        raise NotFound(f"{WEIGHTS_FILE} is missing from {str(root)!r}")
    try:
        state = safetensors.torch.load_file(str(path), device=str(dev))
    except (OSError, ValueError, RuntimeError, safetensors.SafetensorError) as err:
        raise IntegrityError(f"cannot read weights {str(path)!r}: {err}") from err
    tied = metadata.get("tied") or {}
    if not isinstance(tied, dict):
        raise InvalidArgument(f"version metadata 'tied' is not a mapping: {tied!r:.200}")
    for alias, name in tied.items():
        if name not in state:
            raise IntegrityError(
                f"tied weight {alias!r} refers to {name!r}, which is not in {WEIGHTS_FILE}"
            )
        state[alias] = state[name]
    return state


def _retie(model: Any, tied: dict[str, str]) -> None:
    """Make each tied alias the very same Parameter as its stored name, as when it was saved."""
    params = dict(model.named_parameters(remove_duplicate=False))
    for alias, name in tied.items():
        if (
            alias in params
            and name in params
            and params[alias] is not params[name]
            and params[alias].shape == params[name].shape
        ):
            owner, _, leaf = alias.rpartition(".")
            model.get_submodule(owner).register_parameter(leaf, params[name])


def _match_dtypes(model: Any, state: dict[str, Any]) -> None:
    """Give a freshly built model the stored dtypes (a float16 model stays float16)."""
    named = [
        *model.named_parameters(remove_duplicate=False),
        *model.named_buffers(remove_duplicate=False),
    ]
    for name, tensor in named:
        stored = state.get(name)
        if stored is not None and stored.dtype != tensor.dtype:
            tensor.data = tensor.data.to(stored.dtype)


def _check_fit(model: Any, state: dict[str, Any], how: str) -> None:
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    problems = []
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing:
        problems.append(f"missing from the stored weights: {missing[:5]}")
    if unexpected:
        problems.append(f"not in the model: {unexpected[:5]}")
    for key in sorted(set(expected) & set(state)):
        if expected[key] != tuple(state[key].shape):
            problems.append(f"{key} stored {tuple(state[key].shape)} vs model {expected[key]}")
            if len(problems) >= 8:
                break
    if problems:
        raise InvalidArgument(
            f"the stored weights do not fit the model built {how} "
            f"({type(model).__qualname__}): "
            + "; ".join(problems)
            + ". Pass model_class= or into= with the architecture the version was stored with"
        )


def load_torch(
    root: Path,
    metadata: dict[str, Any],
    *,
    device: Any = None,
    model_class: type | None = None,
    into: Any = None,
) -> Any:
    """Rebuild the stored ``nn.Module`` on *device* (default CPU), in eval mode.

    Raises
    ------
    NotFound
        No way to rebuild the model: its class is not imported and no
        ``model_class=``, ``into=`` or architecture spec is available.
    InvalidArgument
        A bad device, class or instance, or weights that do not fit the model.
    MissingDependency
        torch or safetensors is not installed.
    """
    torch = _import_torch()
    safetensors = _import_safetensors()
    dev = _device(torch, device)
    init_kwargs = metadata.get("init_kwargs")
    tied = metadata.get("tied") or {}
    # Settle how to build the model before reading weights that may be gigabytes.
    cls = None
    if into is not None:
        if not isinstance(into, torch.nn.Module):
            raise InvalidArgument(f"into= must be an nn.Module instance, not {type(into).__name__}")
    elif model_class is not None:
        if not (isinstance(model_class, type) and issubclass(model_class, torch.nn.Module)):
            raise InvalidArgument(
                f"model_class= must be an nn.Module subclass, not {model_class!r}"
            )
        cls, how = model_class, "from model_class="
    elif metadata.get("arch") is None:
        info = metadata.get("class")
        info = info if isinstance(info, dict) else {}
        cls = find_imported_class(torch, info.get("module"), info.get("qualname"))
        how = "from its recorded class"
    if into is not None:
        # An instance stays where it is unless a device is asked for.
        state = _read_weights(safetensors, root, metadata, dev if device is not None else "cpu")
        model, how = into, "from into="
        _check_fit(model, state, how)
        if device is not None:
            model.to(dev)
    else:
        state = _read_weights(safetensors, root, metadata, dev)
        if cls is None:
            model, how = build_spec(metadata["arch"]), "from its architecture spec"
        else:
            model = construct(cls, init_kwargs)
        if isinstance(tied, dict):
            _retie(model, tied)
        _match_dtypes(model, state)
        model.to(dev)
        _check_fit(model, state, how)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise InvalidArgument(
            f"the stored weights do not fit the model built {how}: {err}"
        ) from err
    return model.eval()
