"""The model registry: a DuckDB file owned by a registry server, and its client API."""

from __future__ import annotations

from mlnb.registry.client import Registry
from mlnb.registry.records import (
    AuditEntry,
    AuditLog,
    Change,
    Diff,
    EvaluationList,
    EvaluationRecord,
    FileEntry,
    FsckReport,
    GcReport,
    Lineage,
    LineageEdge,
    ModelInfo,
    ModelList,
    StoredEstimate,
    Version,
    VersionList,
)

__all__ = [
    "AuditEntry",
    "AuditLog",
    "Change",
    "Diff",
    "EvaluationList",
    "EvaluationRecord",
    "FileEntry",
    "FsckReport",
    "GcReport",
    "Lineage",
    "LineageEdge",
    "ModelInfo",
    "ModelList",
    "Registry",
    "StoredEstimate",
    "Version",
    "VersionList",
]
