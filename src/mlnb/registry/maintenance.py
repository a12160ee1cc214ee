"""``fsck`` and ``gc``: keeping the registry and its artifact store in agreement.

Both run in the client, which holds the store's credentials; the registry
server only says which blobs are referenced and which are held by
registrations in flight.  ``gc`` asks the server to *condemn* the orphans it
is about to delete: until it is done, a registration that wants one of them
waits, then uploads it again, so ``gc`` never deletes a blob that a
registration is about to reference.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING

from mlnb.registry.records import FsckReport, GcReport

if TYPE_CHECKING:
    from mlnb.registry.client import Registry

__all__ = ["fsck", "gc"]


def fsck(reg: Registry, *, deep: bool = True) -> FsckReport:
    """Report missing or corrupt files, orphaned blobs and leftover uploads."""
    store = reg.store
    referenced: dict[str, dict] = reg._call("referenced")
    stored = {b.sha256: b for b in store.iter_blobs()}
    missing, corrupt = [], []
    for sha, entry in sorted(referenced.items()):
        labels = entry["labels"]
        if sha not in stored:
            missing.extend(labels)
            continue
        problem = None
        if stored[sha].size != entry["size"]:
            problem = f"size {stored[sha].size} != {entry['size']}"
        elif deep:
            problem = store.verify(sha)
        if problem == "missing":  # deleted since the listing
            missing.extend(labels)
        elif problem:
            corrupt.extend(f"{label}: {problem}" for label in labels)
    held = set(reg._call("held"))
    orphans = sorted(set(stored) - set(referenced))
    return FsckReport(
        checked=sum(len(e["labels"]) for e in referenced.values()),
        missing=tuple(missing),
        corrupt=tuple(corrupt),
        orphans=tuple(orphans),
        held=tuple(sha for sha in orphans if sha in held),
        temp=tuple(str(t.path) for t in store.iter_temp()),
    )


def gc(reg: Registry, *, dry_run: bool = False, grace: float = 3600.0) -> GcReport:
    """Delete orphaned blobs and temporary uploads older than *grace* seconds."""
    store = reg.store
    listed = {b.sha256: b.size for b in store.iter_blobs()}
    now = time.time()
    stale = [t.path for t in store.iter_temp() if t.mtime is None or now - t.mtime > grace]
    token = uuid.uuid4().hex
    doomed: list[str] = reg._call("gc_begin", token=token, candidates=sorted(listed))
    try:
        if not dry_run:
            store.delete(doomed)
            store.delete_temp(stale)
    finally:
        reg._call("gc_end", token=token)
    return GcReport(
        blobs=tuple(doomed),
        bytes=sum(listed[s] for s in doomed),
        temp=tuple(str(p) for p in stale),
        dry_run=dry_run,
    )
