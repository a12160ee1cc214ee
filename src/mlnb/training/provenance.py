"""Where a registered training run came from besides its data: its code and its environment.

Two JSON-safe records that registration stores next to the weights (the data's
fingerprint is in :mod:`mlnb.training.fingerprint`):

* :func:`code_source`: the executing cell (or script) with its hash, and the
  notebook file with its hash;
* :func:`environment`: Python, platform, torch, CUDA, cuDNN, GPUs, mlnb.

Neither changes the state a training run depends on: no CUDA context is
created, and IPython is never imported.
"""

from __future__ import annotations

import hashlib
import os
import sys
from typing import Any

from mlnb.errors import InvalidArgument

__all__ = ["MAX_SOURCE_CHARS", "code_source", "environment"]

#: Characters of source kept in :func:`code_source` (the hash covers all of it).
MAX_SOURCE_CHARS = 100_000


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
