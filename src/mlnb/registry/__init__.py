"""The model registry: a DuckDB file owned by a registry server, and its client API."""

from __future__ import annotations

from mlnb.registry.client import Registry
from mlnb.registry.records import (
    AuditEntry,
    AuditLog,
    Change,
    Diff,
    FileEntry,
    FsckReport,
    GcReport,
    Lineage,
    LineageEdge,
    ModelInfo,
    ModelList,
    Version,
    VersionList,
)

__all__ = [
    "AuditEntry",
    "AuditLog",
    "Change",
    "Diff",
    "FileEntry",
    "FsckReport",
    "GcReport",
    "Lineage",
    "LineageEdge",
    "ModelInfo",
    "ModelList",
    "Registry",
    "Version",
    "VersionList",
]
