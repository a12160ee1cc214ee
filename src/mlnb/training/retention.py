"""Which checkpoints a run keeps: the keep policy, and checkpoints ranked by step and monitor.

:func:`parse_keep` reads a policy (``"best:2,last:1"``, ``"last:3"``, ``"all"``)
into a :class:`Keep`; the helpers here order a run's checkpoints by step and by
the monitor value, pick the best and the last, and apply a policy.  The newest
checkpoint is always kept (resuming needs it).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mlnb.errors import InvalidArgument

if TYPE_CHECKING:
    from mlnb.training.run_manifest import CheckpointInfo

__all__ = ["Keep", "parse_keep"]

_KEEP_PART = re.compile(r"(best|last):(\d+)")


@dataclass(frozen=True)
class Keep:
    """Which checkpoints a run keeps: the *best* K by the monitor, the *last* N, or all."""

    best: int = 0
    last: int = 0
    all: bool = False

    def __str__(self) -> str:
        return "all" if self.all else f"best:{self.best},last:{self.last}"


def parse_keep(text: str | Keep) -> Keep:
    """Parse ``"best:2,last:1"``, ``"last:3"``, ``"best:1"`` or ``"all"`` into a :class:`Keep`.

    The newest checkpoint is always kept besides these (resuming needs it).

    Raises
    ------
    InvalidArgument
        The text is not in that form.
    """
    if isinstance(text, Keep):
        return text
    if not isinstance(text, str):
        raise InvalidArgument(f"keep must be a string like 'best:2,last:1', not {text!r}")
    if text.strip() == "all":
        return Keep(all=True)
    counts: dict[str, int] = {}
    for part in text.replace(" ", "").split(","):
        match = _KEEP_PART.fullmatch(part)
        if match is None or match[1] in counts:
            raise InvalidArgument(
                f"invalid keep policy {text!r}: write 'best:K,last:N' (e.g. 'best:2,last:1'), "
                "'last:3', 'best:1' or 'all'"
            )
        counts[match[1]] = int(match[2])
    return Keep(best=counts.get("best", 0), last=counts.get("last", 0))


def _by_step(cps: Sequence[CheckpointInfo]) -> list[int]:
    return sorted(range(len(cps)), key=lambda i: (cps[i].step, i))


def _ranked(cps: Sequence[CheckpointInfo], mode: str | None) -> list[int]:
    sign = -1.0 if mode == "max" else 1.0
    usable = [i for i, c in enumerate(cps)
              if c.kind == "epoch" and c.value is not None and math.isfinite(c.value)]
    return sorted(usable, key=lambda i: (sign * cps[i].value, cps[i].step, i))  # type: ignore[operator]


def _best(cps: Sequence[CheckpointInfo], mode: str | None) -> CheckpointInfo | None:
    ranked = _ranked(cps, mode)
    return cps[ranked[0]] if ranked else None


def _last(cps: Sequence[CheckpointInfo]) -> CheckpointInfo | None:
    order = _by_step(cps)
    return cps[order[-1]] if order else None


def _retained(cps: list[CheckpointInfo], keep: Keep, mode: str | None) -> list[CheckpointInfo]:
    """The checkpoints *keep* retains, in their order (the newest always)."""
    if keep.all or not cps:
        return cps
    order = _by_step(cps)
    kept = {order[-1], *order[len(order) - keep.last:]} if keep.last else {order[-1]}
    kept.update(_ranked(cps, mode)[:keep.best])
    return [c for i, c in enumerate(cps) if i in kept]
