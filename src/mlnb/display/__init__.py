"""Pure renderers for mlnb's result objects: plain text and static HTML; no IPython here.

:mod:`~mlnb.display.text` writes aligned tables and short values for terminals
and ``text/plain``; :mod:`~mlnb.display.html` (versions, models, audit,
reports), :mod:`~mlnb.display.graph` (lineage) and :mod:`~mlnb.display.diff`
write the ``text/html`` that the result objects' ``_repr_html_`` return, from
the pieces in :mod:`~mlnb.display.markup`.
"""

from __future__ import annotations

from mlnb.display.diff import diff_html
from mlnb.display.graph import lineage_html
from mlnb.display.html import (
    audit_html,
    evaluations_html,
    fsck_html,
    gc_html,
    model_html,
    models_html,
    to_html,
    version_html,
    versions_html,
)
from mlnb.display.text import (
    ago,
    diff_text,
    fmt_delta,
    fmt_metric,
    fmt_value,
    human_size,
    table,
    versions_text,
)

__all__ = [
    "ago",
    "audit_html",
    "diff_html",
    "diff_text",
    "evaluations_html",
    "fmt_delta",
    "fmt_metric",
    "fmt_value",
    "fsck_html",
    "gc_html",
    "human_size",
    "lineage_html",
    "model_html",
    "models_html",
    "table",
    "to_html",
    "version_html",
    "versions_html",
    "versions_text",
]
