"""Progress reports during training: a light text line per epoch.

The loop calls a reporter's ``epoch_end(row, run_state)``; that is the seam
where a notebook monitor (a widget updating one output in place) will plug in.
The text reporter writes to a stream (stderr by default) and is throttled so a
run with many very short epochs does not flood the output.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Mapping, TextIO

from mlnb.training.history import _fmt

__all__ = ["TextProgress"]


class TextProgress:
    """Print one line per epoch to *stream*, at most one every *interval* seconds.

    The last epoch is always printed, so the final state is never hidden by the
    throttle.
    """

    def __init__(self, stream: TextIO | None = None, *, interval: float = 0.5) -> None:
        self.stream = stream
        self.interval = interval
        self._last = -float("inf")

    def epoch_end(self, row: Mapping[str, Any], *, epochs: int, monitor: str,
                  best: float | None, last: bool) -> None:
        """Report a finished epoch (*row* is its history row)."""
        now = time.monotonic()
        if not last and now - self._last < self.interval:
            return
        self._last = now
        shown = [f"epoch {row['epoch']}/{epochs}"]
        for key, value in row.items():
            if key in ("epoch", "epoch_time_s", "samples_per_s"):
                continue
            shown.append(f"{key}={_fmt(value)}")
        shown.append(f"best {monitor}={_fmt(best)}")
        shown.append(f"{row['samples_per_s']:,.0f} samples/s")
        shown.append(f"{row['epoch_time_s']:.2f}s")
        stream = self.stream if self.stream is not None else sys.stderr
        print("  ".join(shown), file=stream, flush=True)
