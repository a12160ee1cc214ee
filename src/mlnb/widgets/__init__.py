"""Notebook panels over the core API (thin): ``RegistryPanel`` browses a registry,
``TrainingMonitor`` shows a training run live (``mlnb.train(progress="auto")`` in a notebook).

The panels are `anywidget <https://anywidget.dev>`_ widgets: synced traits in
Python, an ES module and a style sheet shipped in ``static/``.  Importing this
package imports neither anywidget nor ipywidgets; the first use of a panel
class does (PEP 562), and raises :class:`~mlnb.errors.MissingDependency` with
the ``pip install "mlnb[notebook]"`` hint when anywidget is missing.
``tests/widgets/test_widgets_lazy.py`` guards both.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = ["RegistryPanel", "TrainingMonitor"]

# public name -> module that defines it; imported on first attribute access.
_LAZY = {"RegistryPanel": "mlnb.widgets.panel", "TrainingMonitor": "mlnb.widgets.monitor"}

if TYPE_CHECKING:
    from mlnb.widgets.monitor import TrainingMonitor
    from mlnb.widgets.panel import RegistryPanel


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mlnb.widgets' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
