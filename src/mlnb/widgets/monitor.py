"""``TrainingMonitor``: the live view of :func:`mlnb.train` in a notebook, with a Stop button.

An observer of the training loop (see :mod:`mlnb.training.events`) and an
anywidget.  How it works:

- Each event updates a :class:`~mlnb.display.monitor_state.MonitorState`, which
  costs microseconds.  At most every ``interval`` seconds (and at the start and
  the end) the parts that changed go to the browser as synced traits, in one
  message (``hold_sync``).  Trait updates travel on IOPub, which the kernel
  flushes while the training cell runs, so the view moves during training.
- On ``start`` the monitor displays itself with a display id.  On ``end`` it
  replaces that output with the final static view (``text/html`` from
  :func:`~mlnb.display.training.render_html`, plus ``text/plain``), so the
  saved notebook reads the same in JupyterLab after a restart, in nbconvert
  and on GitHub.  (A bundle that also kept the widget view would not: JupyterLab
  ranks the widget first and, with the kernel gone, shows "model not found".)
- Stop: the kernel is busy running the training cell and reads no widget
  message until it ends, so ``static/monitor.js`` interrupts the kernel through
  Jupyter Server's REST API, using ``kernel_id`` (from ipykernel's connection
  file).  The loop takes that SIGINT as "stop after this optimizer step and
  keep a checkpoint".
"""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path
from typing import Any, Callable

from mlnb.errors import MissingDependency

try:
    import anywidget
    import traitlets as t
except ImportError as err:  # the notebook extra is not installed
    raise MissingDependency("anywidget", "notebook", "show the training monitor") from err

from mlnb.display.monitor_state import MonitorState
from mlnb.display.training import render_html, render_text, view

__all__ = ["TrainingMonitor", "kernel_id"]

_STATIC = Path(__file__).parent / "static"
_KERNEL_FILE = re.compile(r"kernel-([A-Za-z0-9._-]+)\.json")


def kernel_id() -> str:
    """This kernel's id as Jupyter Server knows it (``kernel-<id>.json``), or ``""``.

    Outside a kernel nothing is imported: ipykernel's app module, once imported,
    changes which comm manager new widgets use.
    """
    app = sys.modules.get("ipykernel.kernelapp")
    if app is None or not app.IPKernelApp.initialized():
        return ""
    try:
        import ipykernel

        path = ipykernel.get_connection_file()
    except Exception:  # noqa: BLE001 - a kernel without a connection file: no id
        return ""
    found = _KERNEL_FILE.fullmatch(os.path.basename(path or ""))
    return found.group(1) if found else ""


class TrainingMonitor(anywidget.AnyWidget):
    """Progress, rates, ETA, metrics, loss curves and a Stop button for one training run.

    Pass it as ``mlnb.train(..., progress=TrainingMonitor())``, or let
    ``progress="auto"`` create one in a notebook.

    Parameters
    ----------
    interval:
        Seconds between two updates sent to the browser.
    show:
        Display the monitor when the run starts and put the final static view in
        its place when it ends; ``False`` leaves displaying to the caller.
    max_points:
        Points kept per curve (see :class:`~mlnb.display.monitor_state.Series`).
    """

    _esm = _STATIC / "monitor.js"
    _css = _STATIC / "monitor.css"

    status = t.Unicode("starting", help="starting, training, or the run's final "
                       "status").tag(sync=True)
    header = t.Dict(help="name, run_id, device, precision, monitor, mode, resumed").tag(sync=True)
    bar = t.Dict(help="fraction (0-1) and texts: epoch, batch, percent, elapsed, eta, rate, "
                 "loss, best").tag(sync=True)
    metrics = t.Dict(help="the last epoch's metrics and their values at the best "
                     "epoch").tag(sync=True)
    history = t.Dict(help="the last epochs as texts: columns, rows, epochs, best_epoch, "
                     "hidden").tag(sync=True)
    curves = t.Dict(help="charts: title and series (name, colour, dots, x and y as float64 "
                    "bytes)").tag(sync=True)
    gpu = t.Unicode("", help="GPU memory in use, empty off a GPU").tag(sync=True)
    note = t.Unicode("", help="how the run ended, what was registered").tag(sync=True)
    kernel_id = t.Unicode("", help="the kernel the Stop button interrupts").tag(sync=True)

    def __init__(self, *, interval: float = 0.25, show: bool = True,
                 max_points: int = 500, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.interval = interval
        self.show = show
        self.state = MonitorState(max_points)
        self._clock: Callable[[], float] = time.monotonic
        self._pushed = -float("inf")
        self._handle: Any = None

    def __repr__(self) -> str:
        return f"<TrainingMonitor {self.state.name} {self.status}>"

    # -- events -------------------------------------------------------------------------

    def start(self, event: Any) -> None:
        """Show the monitor (kernel id, header, first state)."""
        self.state.start(event)
        self.kernel_id = kernel_id()
        self._push()
        if self.show:
            from IPython.display import display

            self._handle = display(self, display_id=True)

    def progress(self, event: Any) -> None:
        """Note where the run is; sent with the next update."""
        self.state.progress(event)
        self._maybe_push()

    def step(self, event: Any) -> None:
        """Note a logged loss (a point of the curve)."""
        self.state.step(event)
        self._maybe_push()

    def epoch(self, event: Any) -> None:
        """Note a finished epoch: metrics, history, curves."""
        self.state.epoch(event)
        self._maybe_push()

    def end(self, event: Any) -> None:
        """Send the final state, then put the static view in the monitor's place."""
        self.state.end(event)
        self._push()
        if self._handle is not None:
            self._handle.update(self.final_bundle(), raw=True)

    def abort(self, status: str) -> None:
        """The run raised: show it as failed and leave the static view in place."""
        self.state.abort(status)
        self._push()
        if self._handle is not None:
            self._handle.update(self.final_bundle(), raw=True)

    # -- output -------------------------------------------------------------------------

    def final_bundle(self) -> dict[str, str]:
        """The run as a saved notebook keeps it: ``text/html`` and ``text/plain``."""
        return {"text/html": render_html(self.state),
                "text/plain": render_text(self.state, metrics=True)}

    def _maybe_push(self) -> None:
        if self._clock() - self._pushed >= self.interval:
            self._push()

    def _push(self) -> None:
        """Send the parts changed since the last push, as one update."""
        self._pushed = self._clock()
        changed = self.state.take_changed()
        if not changed:
            return
        with self.hold_sync():
            for part, value in view(self.state, changed, packed=True).items():
                setattr(self, part, value)
