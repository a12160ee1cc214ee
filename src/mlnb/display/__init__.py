"""Pure renderers: text (and, later, HTML) for mlnb's result objects; no IPython here."""

from __future__ import annotations

from mlnb.display.text import ago, fmt_metric, table

__all__ = ["ago", "fmt_metric", "table"]
