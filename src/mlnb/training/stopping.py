"""Stop a training run cleanly: the first Ctrl-C (or the notebook's Stop) asks, the second forces.

While :func:`mlnb.train` runs, :meth:`StopSignal.installed` replaces the SIGINT
handler.  The first SIGINT only sets :attr:`StopSignal.requested`; the loop
checks that flag after every optimizer step and ends the run there, with a
checkpoint, so no step is ever half applied.  A second SIGINT raises
``KeyboardInterrupt`` at once, for a step that hangs (a stuck data loader).

Jupyter's Stop button and the monitor's Stop button both interrupt the kernel,
which is a SIGINT to the kernel process; ipykernel puts Python's default handler
back for each cell, and this one is put back after the run.  Off the main thread
(where signal handlers cannot be set) nothing is installed and Ctrl-C keeps
raising ``KeyboardInterrupt``, which the loop still survives (status
``"interrupted"``, resumable from the last checkpoint).
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Any, Iterator

__all__ = ["StopSignal"]


class StopSignal:
    """A stop request: set by SIGINT, by :meth:`request`, or by an observer."""

    def __init__(self) -> None:
        self.requested = False
        self.reason = ""

    def request(self, reason: str = "stop requested") -> None:
        """Ask the run to end after the current optimizer step."""
        if not self.requested:
            self.requested = True
            self.reason = reason

    def _on_sigint(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.request("interrupted (Ctrl-C or Stop); interrupt again to stop at once")

    @contextmanager
    def installed(self) -> Iterator[StopSignal]:
        """Handle SIGINT as a stop request for the duration of the block."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        try:
            previous = signal.signal(signal.SIGINT, self._on_sigint)
        except (ValueError, OSError):  # no signals here (an embedded interpreter)
            yield self
            return
        try:
            yield self
        finally:
            signal.signal(signal.SIGINT,
                          previous if previous is not None else signal.default_int_handler)
