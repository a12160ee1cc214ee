"""mlnb: the whole life of an ML model inside Jupyter.

``import mlnb`` loads only the standard library and light mlnb modules; the
public names below are imported on first use (PEP 562), so heavy libraries
(duckdb, torch, ...) are paid for only by the code that needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from mlnb.errors import (
    Conflict,
    HoldExpired,
    IntegrityError,
    InvalidArgument,
    InvalidName,
    MissingDependency,
    MlnbError,
    NotFound,
    RegistryUnavailable,
    UnsafeArchive,
    UntrustedObject,
)

__version__ = "0.1.0"

# public name -> module that defines it; imported on first attribute access.
_LAZY = {
    "Registry": "mlnb.registry.client",
    "ModelInfo": "mlnb.registry.records",
    "Version": "mlnb.registry.records",
    "AuditEntry": "mlnb.registry.records",
    "Diff": "mlnb.registry.records",
    "LineageEdge": "mlnb.registry.records",
    "train": "mlnb.training.loop",
    "evaluate": "mlnb.evaluation.runner",
    "compare": "mlnb.evaluation.comparison",
}

__all__ = sorted(
    [
        "Conflict",
        "HoldExpired",
        "IntegrityError",
        "InvalidArgument",
        "InvalidName",
        "MissingDependency",
        "MlnbError",
        "NotFound",
        "RegistryUnavailable",
        "UnsafeArchive",
        "UntrustedObject",
        "__version__",
        *_LAZY,
    ]
)

if TYPE_CHECKING:
    from mlnb.evaluation.comparison import compare
    from mlnb.evaluation.runner import evaluate
    from mlnb.registry.client import Registry
    from mlnb.registry.records import AuditEntry, Diff, LineageEdge, ModelInfo, Version
    from mlnb.training.loop import train


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext mlnb``: register the ``%mlnb`` and ``%%mlnb`` magics."""
    from mlnb.magics import load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext mlnb``: remove the magics."""
    from mlnb.magics import unload

    unload(ipython)


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """Where Jupyter finds mlnb's server extension (``jupyter server extension list``)."""
    return [{"module": "mlnb.server"}]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """Where the built JupyterLab extension is (``jupyter labextension develop``)."""
    return [{"src": "labextension", "dest": "mlnb"}]


# subpackages reachable as attributes (``mlnb.widgets.RegistryPanel``), imported on use
_SUBMODULES = frozenset({"training", "widgets"})


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"mlnb.{name}")
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mlnb' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
