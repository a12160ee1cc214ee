"""The model registry: a DuckDB file owned by a registry server, and its client API."""

from __future__ import annotations

from mlnb.registry.client import Registry
from mlnb.registry.records import (
    AuditEntry,
    FileEntry,
    FsckReport,
    GcReport,
    Lineage,
    LineageEdge,
    ModelInfo,
    Version,
    VersionList,
)

__all__ = [
    "AuditEntry",
    "FileEntry",
    "FsckReport",
    "GcReport",
    "Lineage",
    "LineageEdge",
    "ModelInfo",
    "Registry",
    "Version",
    "VersionList",
]
