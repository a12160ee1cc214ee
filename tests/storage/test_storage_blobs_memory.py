"""The BlobStore conformance suite on fsspec's ``memory://`` file system."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from storage.blobstore_suite import BlobStoreSuite

from mlnb.storage import BlobStore


class TestMemoryBlobStore(BlobStoreSuite):
    @pytest.fixture
    def store(self) -> Iterator[BlobStore]:
        store = BlobStore(f"memory://mlnb-test-{uuid.uuid4().hex}/blobs")
        yield store
        if store.fs.exists(store.root):
            store.fs.rm(store.root, recursive=True)


def test_memory_url_is_normalised() -> None:
    store = BlobStore("memory://bucket/some/prefix/")
    assert store.url == "memory:///bucket/some/prefix"
    assert BlobStore(store.url).url == store.url
