"""Progress reporters for :func:`mlnb.train`: the text bar, and the choice of reporter.

:func:`make_reporter` turns ``train(progress=...)`` into an observer (see
:mod:`mlnb.training.events`): the live :class:`~mlnb.widgets.monitor.TrainingMonitor`
in a Jupyter kernel, :class:`TextProgress` elsewhere.  Neither IPython nor
anywidget is imported here until a widget is asked for, so ``import mlnb``
and a training script stay light.

:class:`TextProgress` writes to stderr.  On a terminal it redraws one tqdm-like
line in place (``\\r``) and leaves one line per epoch above it; in a log (CI,
a file, a notebook's stderr) it writes only the epoch lines.  Both are
throttled to one every *interval* seconds, and the final line, with the
run's status, is always written.
"""

from __future__ import annotations

import shutil
import sys
import time
from typing import Any, TextIO

from mlnb.display.monitor_state import MonitorState
from mlnb.display.training import render_text
from mlnb.errors import InvalidArgument

__all__ = ["TextProgress", "is_kernel", "make_reporter"]

_EVENTS = ("start", "progress", "step", "epoch", "end")
_CHOICES = ("auto", "widget", "text")


class TextProgress:
    """A text progress bar on *stream* (stderr by default), redrawn at most every *interval* s.

    Parameters
    ----------
    stream:
        Where to write; looked up at each write when ``None``, so a redirected
        ``sys.stderr`` is honoured.
    interval:
        Seconds between two redraws of the live line, and between two epoch
        lines (the last epoch and the final line are never held back).
    width:
        Columns of the live line; by default the terminal's.
    """

    def __init__(self, stream: TextIO | None = None, *, interval: float = 0.5,
                 width: int | None = None) -> None:
        self.stream = stream
        self.interval = interval
        self.width = width
        self.state = MonitorState()
        self._tty = False
        self._ascii = False
        self._live = 0                   # characters of the live line now on screen
        self._drawn = -float("inf")      # when the live line was last drawn
        self._logged = -float("inf")     # when the last epoch line was written

    def _out(self) -> TextIO:
        return self.stream if self.stream is not None else sys.stderr

    # -- events -------------------------------------------------------------------------

    def start(self, event: Any) -> None:
        """Look at the stream once: a terminal gets the live line."""
        self.state.start(event)
        out = self._out()
        try:
            self._tty = bool(out.isatty())
        except (AttributeError, ValueError):
            self._tty = False
        try:
            "█▏".encode(getattr(out, "encoding", None) or "utf-8")
        except (LookupError, UnicodeEncodeError):
            self._ascii = True

    def progress(self, event: Any) -> None:
        """Redraw the live line (terminals only), at most every *interval* seconds."""
        self.state.progress(event)
        if self._tty:
            now = time.monotonic()
            if now - self._drawn >= self.interval:
                self._drawn = now
                self._draw()

    def step(self, event: Any) -> None:
        """Note the loss; it shows with the next redraw."""
        self.state.step(event)

    def epoch(self, event: Any) -> None:
        """Write the epoch's line (throttled, but never the last epoch's)."""
        self.state.epoch(event)
        now = time.monotonic()
        last = int(event.row["epoch"]) >= event.epochs
        if last or now - self._logged >= self.interval:
            self._logged = now
            self._write(render_text(self.state, metrics=True))

    def end(self, event: Any) -> None:
        """Write the final line: status, epochs, metrics, best, what was registered."""
        self.state.end(event)
        self._write(render_text(self.state, metrics=True))

    def abort(self, status: str) -> None:
        """The run raised: end the live line with its status (the traceback follows)."""
        self.state.abort(status)
        self._write(render_text(self.state))

    # -- writing ------------------------------------------------------------------------

    def _columns(self) -> int:
        return self.width or shutil.get_terminal_size((100, 24)).columns

    def _draw(self) -> None:
        line = render_text(self.state, self._columns(), ascii_only=self._ascii)
        pad = " " * max(self._live - len(line), 0)
        self._live = len(line)
        out = self._out()
        out.write(f"\r{line}{pad}")
        out.flush()

    def _write(self, line: str) -> None:
        """A permanent line; on a terminal it replaces the live line, redrawn by the next event."""
        out = self._out()
        if self._tty and self._live:
            line = f"\r{line}{' ' * max(self._live - len(line), 0)}"
            self._live = 0
            self._drawn = -float("inf")
        out.write(line + "\n")
        out.flush()


def is_kernel() -> bool:
    """Whether this code runs in a Jupyter kernel (ipykernel's shell is the active IPython).

    Looks only at modules already imported: a plain script never imports IPython here.
    """
    zmqshell = sys.modules.get("ipykernel.zmqshell")
    ipython = sys.modules.get("IPython")
    if zmqshell is None or ipython is None:
        return False
    shell = ipython.get_ipython()
    return isinstance(shell, zmqshell.ZMQInteractiveShell)


def _has_anywidget() -> bool:
    import importlib.util

    return importlib.util.find_spec("anywidget") is not None


def make_reporter(progress: Any) -> Any:
    """The observer for ``train(progress=...)``, or ``None`` for no progress report.

    Parameters
    ----------
    progress:
        ``"auto"`` (or ``True``): the live monitor widget in a Jupyter kernel
        where anywidget is installed, else :class:`TextProgress`.  ``"widget"``:
        the monitor (raises :class:`~mlnb.errors.MissingDependency` without
        anywidget).  ``"text"``: :class:`TextProgress`.  ``False`` or ``None``:
        nothing.  Any object with some of the methods ``start``, ``progress``,
        ``step``, ``epoch`` and ``end`` is used as it is.

    Raises
    ------
    InvalidArgument
        Anything else.
    """
    if progress is None or progress is False:
        return None
    if progress is True:
        progress = "auto"
    if isinstance(progress, str):
        choice = progress.strip().lower()
        if choice == "auto":
            choice = "widget" if is_kernel() and _has_anywidget() else "text"
        if choice == "widget":
            from mlnb.widgets.monitor import TrainingMonitor

            return TrainingMonitor()
        if choice == "text":
            return TextProgress()
    elif any(callable(getattr(progress, name, None)) for name in _EVENTS):
        return progress
    raise InvalidArgument(
        f"progress must be {', '.join(repr(c) for c in _CHOICES)}, True, False or an observer "
        f"(an object with some of the methods {', '.join(_EVENTS)}), not {progress!r}"
    )
