"""Code run in child processes by the storage tests (importable as ``storage.storage_workers``)."""

from __future__ import annotations

from typing import Any

from mlnb.storage import BlobStore


def put_same_content(root: str, path: str, data: bytes, barrier: Any, results: Any) -> None:
    """Wait for the others, then store one file and one bytes object, and report the blobs."""
    store = BlobStore(root)
    barrier.wait()
    blobs = [store.put_file(path), store.put_bytes(data), store.put_file(path)]
    results.put([(b.sha256, b.size) for b in blobs])
