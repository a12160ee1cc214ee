"""The objects registry calls return: versions, models, lineage, audit entries, reports.

They are frozen snapshots built from what the registry server sends; changing
the registry means calling :class:`~mlnb.registry.client.Registry` again.
Each has a short ``repr`` (the ``text/plain`` a notebook shows) and a
``_repr_html_`` that calls into :mod:`mlnb.display`, imported on first
display so that ``import mlnb`` stays light.
"""

from __future__ import annotations

import contextlib
import gc
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Mapping, NamedTuple

if TYPE_CHECKING:
    import pandas as pd

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
    "StoredEstimate",
    "Version",
    "VersionList",
    "sort_versions",
]


_new = object.__new__
_EMPTY: Mapping[str, Any] = MappingProxyType({})


def _ro(d: dict[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(d) if d else _EMPTY


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while building many acyclic objects.

    Decoding a listing of 10,000 versions allocates a few hundred thousand
    dicts, strings and snapshots; each allocation burst triggers collections
    that walk every tracked object in the process (torch, pandas...).  Measured
    here: 250 ms with the collector on, 50 ms paused.  Nothing built here forms
    a cycle, so nothing is missed; the collector resumes as it was.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _when(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, timezone.utc)


@dataclass(frozen=True)
class FileEntry:
    """One file of a version: where it sits in the version, and its blob."""

    path: str
    sha256: str
    size: int
    media_type: str = "application/octet-stream"


@dataclass(frozen=True)
class Version:
    """One registered version of a model."""

    name: str
    version: int
    status: str
    format: str
    description: str | None
    created_at: datetime
    created_by: str
    metrics: Mapping[str, float]
    params: Mapping[str, Any]
    tags: Mapping[str, str]
    aliases: tuple[str, ...]
    parent: str | None
    files: tuple[FileEntry, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_wire(cls, d: dict[str, Any]) -> Version:
        """Build from the server's JSON record (summaries carry no files/metadata).

        Listings build thousands of these, so this fills the instance directly
        (a third of the cost of the dataclass ``__init__``); the mappings are
        read-only, which lets a client share one snapshot between listings.
        """
        v = _new(cls)
        v.__dict__.update(
            name=d["name"],
            version=d["version"],
            status=d["status"],
            format=d["format"],
            description=d["description"],
            created_at=datetime.fromtimestamp(d["created_at"], timezone.utc),
            created_by=d["created_by"],
            metrics=_ro(d["metrics"]),
            params=_ro(d["params"]),
            tags=_ro(d["tags"]),
            aliases=tuple(d["aliases"]),
            parent=d["parent"],
            files=tuple(FileEntry(**f) for f in d["files"]) if "files" in d else (),
            metadata=_ro(d.get("metadata", {})),
        )
        return v

    @property
    def ref(self) -> str:
        """``name:version``, the reference that always means this version."""
        return f"{self.name}:{self.version}"

    @property
    def size(self) -> int:
        """Total bytes of the version's files."""
        return sum(f.size for f in self.files)

    def __repr__(self) -> str:
        bits = [self.ref]
        if self.aliases:
            bits.append(" ".join("@" + a for a in self.aliases))
        if self.status != "active":
            bits.append(f"[{self.status}]")
        bits.append(self.format)
        return f"<Version {' '.join(bits)}>"

    def _repr_html_(self) -> str:
        from mlnb.display.html import version_html

        return version_html(self)


def _sort_value(key: str) -> Callable[[Version], float | None]:
    if key == "version":
        return lambda v: float(v.version)
    if key == "created_at":
        return lambda v: v.created_at.timestamp()
    return lambda v: v.metrics.get(key)


def sort_versions(versions: Sequence[Version], key: str, desc: bool) -> list[Version]:
    """*versions* ordered by ``version``, ``created_at`` or a metric.

    Versions without a finite value (missing, NaN, ±inf) come last whichever
    the direction, in version order, as ``%mlnb versions --sort`` orders them.
    """
    value = _sort_value(key)
    finite: list[tuple[float, int, Version]] = []
    rest: list[Version] = []
    for v in versions:
        x = value(v)
        if x is not None and math.isfinite(x):
            finite.append((x, v.version, v))
        else:
            rest.append(v)
    # Ties keep version order (ascending) in both directions.
    finite.sort(key=lambda t: ((-t[0] if desc else t[0]), t[1]))
    return [t[2] for t in finite] + sorted(rest, key=lambda v: v.version)


class VersionList(list):
    """A list of :class:`Version` that also turns into a DataFrame."""

    def to_df(self) -> pd.DataFrame:
        """One row per version: name, version, status, aliases, created, metrics (one column each)."""
        import pandas as pd

        rows = []
        for v in self:
            row = {
                "name": v.name, "version": v.version, "status": v.status,
                "aliases": ",".join(v.aliases), "created_at": v.created_at,
                "created_by": v.created_by,
            }
            row.update(v.metrics)
            rows.append(row)
        return pd.DataFrame(rows)

    def _repr_html_(self) -> str:
        from mlnb.display.html import versions_html

        return versions_html(self)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        # IPython's text/plain for a list is the repr of every item (up to 1,000),
        # saved into the notebook; a table of both ends reads better.  IPython
        # ignores a _repr_mimebundle_'s text/plain for a list subclass (its list
        # printer wins), so this is the hook that reaches it.
        from mlnb.display.text import versions_text

        p.text(versions_text(self))


@dataclass(frozen=True)
class ModelInfo:
    """A model: its name, how many versions it has, its latest version and aliases."""

    name: str
    description: str | None
    created_at: datetime
    created_by: str
    versions: int
    latest: int | None
    aliases: dict[str, int]
    updated_at: datetime

    @classmethod
    def from_wire(cls, d: dict[str, Any]) -> ModelInfo:
        """Build from the server's JSON record."""
        return cls(
            name=d["name"], description=d["description"], created_at=_when(d["created_at"]),  # type: ignore[arg-type]
            created_by=d["created_by"], versions=d["versions"], latest=d["latest"],
            aliases=d["aliases"], updated_at=_when(d["updated_at"]),  # type: ignore[arg-type]
        )

    def __repr__(self) -> str:
        aliases = " ".join(f"@{a}={v}" for a, v in self.aliases.items())
        return f"<Model {self.name} versions={self.versions} {aliases}>".replace(" >", ">")

    def _repr_html_(self) -> str:
        from mlnb.display.html import model_html

        return model_html(self)


class ModelList(list):
    """A list of :class:`ModelInfo` that renders as one table."""

    def _repr_html_(self) -> str:
        from mlnb.display.html import models_html

        return models_html(self)


class AuditLog(list):
    """A list of :class:`AuditEntry`, newest first, that renders as one table."""

    def _repr_html_(self) -> str:
        from mlnb.display.html import audit_html

        return audit_html(self)


@dataclass(frozen=True)
class LineageEdge:
    """``source --kind--> target``, e.g. ``m:3 --parent--> m:2``."""

    source: str
    kind: str
    target: str
    details: dict[str, Any] | None = None


@dataclass(frozen=True)
class Lineage:
    """The lineage graph around one version: its ancestors and descendants."""

    root: str
    edges: tuple[LineageEdge, ...]

    def __repr__(self) -> str:
        lines = [f"<Lineage of {self.root}"]
        lines += [f"  {e.source} --{e.kind}--> {e.target}" for e in self.edges]
        return "\n".join(lines) + ">"

    def _repr_html_(self) -> str:
        from mlnb.display.graph import lineage_html

        return lineage_html(self)


@dataclass(frozen=True)
class AuditEntry:
    """One row of the audit log: who did what, when, from which version to which."""

    id: int
    at: datetime
    user: str
    action: str
    model: str
    version: int | None
    alias: str | None
    from_version: int | None
    to_version: int | None
    reason: str | None
    details: dict[str, Any] | None

    @classmethod
    def from_wire(cls, d: dict[str, Any]) -> AuditEntry:
        """Build from the server's JSON record."""
        return cls(**{**d, "at": _when(d["at"])})

    def __repr__(self) -> str:
        what = f"{self.model}:{self.version}" if self.version else self.model
        move = ""
        if self.alias:
            move = f" @{self.alias} {self.from_version or '-'} -> {self.to_version or '-'}"
        return f"<Audit #{self.id} {self.at:%Y-%m-%d %H:%M:%S} {self.user} {self.action} {what}{move}>"

    def _repr_html_(self) -> str:
        from mlnb.display.html import audit_html

        return audit_html([self])


@dataclass(frozen=True)
class StoredEstimate:
    """A stored metric: its value and 95% interval (None where none was computed).

    Has what a gate check reads (``value``, ``lower``, ``upper``), so a stored
    evaluation's ``metrics`` go straight to :func:`mlnb.evaluation.gates.check`.
    """

    value: float
    lower: float | None = None
    upper: float | None = None
    note: str = ""

    def __str__(self) -> str:
        from mlnb.display.text import fmt_metric

        if self.lower is None or self.upper is None:
            return fmt_metric(self.value)
        return f"{fmt_metric(self.value)} [{fmt_metric(self.lower)}, {fmt_metric(self.upper)}]"


@dataclass(frozen=True)
class EvaluationRecord:
    """One evaluation of a version on some data, as the registry stores it.

    ``data_fingerprint`` identifies the data; relative gates compare evaluations
    on the same fingerprint.  ``details`` holds how it was run (examples, device,
    batch size, seed, resamples, the data's description, the gate report).
    """

    id: int
    ref: str
    data_fingerprint: str
    task: str
    metrics: Mapping[str, StoredEstimate]
    details: Mapping[str, Any]
    created_at: datetime
    created_by: str

    @classmethod
    def from_wire(cls, d: dict[str, Any]) -> EvaluationRecord:
        """Build from the server's JSON record."""
        return cls(
            id=d["id"], ref=f"{d['name']}:{d['version']}", data_fingerprint=d["data_fingerprint"],
            task=d["task"], metrics=_ro({k: StoredEstimate(**v) for k, v in d["metrics"].items()}),
            details=_ro(d["details"]), created_at=_when(d["created_at"]),  # type: ignore[arg-type]
            created_by=d["created_by"],
        )

    @property
    def name(self) -> str:
        """The model's name."""
        return self.ref.rpartition(":")[0]

    @property
    def version(self) -> int:
        """The version number."""
        return int(self.ref.rpartition(":")[2])

    @property
    def data(self) -> str:
        """The data's short label, ``data:<first 12 characters of the fingerprint>``."""
        return f"data:{self.data_fingerprint[:12]}"

    def __repr__(self) -> str:
        shown = [f"{k}={v}" for k, v in list(self.metrics.items())[:3]]
        if len(self.metrics) > 3:
            shown.append(f"+{len(self.metrics) - 3} more")
        return (f"<EvaluationRecord #{self.id} {self.ref} on {self.data} {self.task}: "
                f"{', '.join(shown) or 'no metrics'}>")

    def _repr_html_(self) -> str:
        from mlnb.display.html import evaluations_html

        return evaluations_html([self])


class EvaluationList(list):
    """A list of :class:`EvaluationRecord`, newest first, that renders as one table."""

    def _repr_html_(self) -> str:
        from mlnb.display.html import evaluations_html

        return evaluations_html(self)


@dataclass(frozen=True)
class FsckReport:
    """What ``fsck`` found: problems in storage and in the registry's references."""

    checked: int
    missing: tuple[str, ...]        # labels of files whose blob is gone
    corrupt: tuple[str, ...]        # labels of files whose blob fails its hash or size
    orphans: tuple[str, ...]        # sha256 of blobs no version references
    held: tuple[str, ...]           # orphans a registration in flight is about to use
    temp: tuple[str, ...]           # leftover temporary uploads

    @property
    def ok(self) -> bool:
        """True when no file is missing or corrupt (orphans are only wasted space)."""
        return not (self.missing or self.corrupt)

    def __repr__(self) -> str:
        state = "ok" if self.ok else "PROBLEMS"
        return (
            f"<Fsck {state}: {self.checked} files checked, {len(self.missing)} missing, "
            f"{len(self.corrupt)} corrupt, {len(self.orphans)} orphaned blobs, "
            f"{len(self.temp)} temporary uploads>"
        )

    def _repr_html_(self) -> str:
        from mlnb.display.html import fsck_html

        return fsck_html(self)


@dataclass(frozen=True)
class GcReport:
    """What ``gc`` removed (or would remove, with ``dry_run``)."""

    blobs: tuple[str, ...]
    bytes: int
    temp: tuple[str, ...]
    dry_run: bool

    def __repr__(self) -> str:
        verb = "would remove" if self.dry_run else "removed"
        return (
            f"<Gc {verb} {len(self.blobs)} blobs ({self.bytes} bytes) and "
            f"{len(self.temp)} temporary uploads>"
        )

    def _repr_html_(self) -> str:
        from mlnb.display.html import gc_html

        return gc_html(self)


class Change(NamedTuple):
    """One key that differs between two versions: its value in ``a``, in ``b``, and the gap.

    ``None`` on a side means that version lacks the key.  ``delta`` is ``b - a``
    for a metric finite on both sides, the change in bytes for a file both
    versions hold, and ``None`` otherwise.
    """

    a: Any
    b: Any
    delta: float | None = None


@dataclass(frozen=True)
class Diff:
    """What differs from version ``a`` to version ``b``; anything equal is left out.

    Built by :func:`mlnb.registry.diff.diff_versions`.  Each mapping is sorted by
    key and holds a :class:`Change` per difference: ``fields`` for ``format``,
    ``status``, ``aliases``, ``description`` and ``parent``; ``files`` by path,
    with :class:`FileEntry` values.  ``len(diff)`` counts the differences, so an
    empty diff is false.
    """

    a: str
    b: str
    fields: Mapping[str, Change]
    metrics: Mapping[str, Change]
    params: Mapping[str, Change]
    tags: Mapping[str, Change]
    files: Mapping[str, Change]

    def __len__(self) -> int:
        return (len(self.fields) + len(self.metrics) + len(self.params) + len(self.tags)
                + len(self.files))

    def __repr__(self) -> str:
        from mlnb.display.text import diff_text

        return diff_text(self)

    def _repr_html_(self) -> str:
        from mlnb.display.diff import diff_html

        return diff_html(self)
