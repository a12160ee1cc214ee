"""The BlobStore conformance suite on S3: real s3fs against a real moto_server."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from s3server import MotoServer
from storage.blobstore_suite import BlobStoreSuite, object_path, sha

from mlnb.errors import NotFound
from mlnb.storage import BlobStore, blobs

pytestmark = pytest.mark.s3

BLOCK = 5 * 2**20  # the smallest part S3 accepts


class TestS3BlobStore(BlobStoreSuite):
    @pytest.fixture
    def store(self, moto: MotoServer, s3_bucket: str) -> BlobStore:
        return BlobStore(f"s3://{s3_bucket}/artifacts", block_size=BLOCK,
                         **moto.storage_options)


def _count_calls(store: BlobStore, *operations: str) -> dict[str, int]:
    """Count the S3 API calls the store's client makes, by operation name."""
    counts = dict.fromkeys(operations, 0)
    for op in operations:
        def seen(op: str = op, **_: object) -> None:
            counts[op] += 1
        store.fs.s3.meta.events.register(f"before-call.s3.{op}", seen)
    return counts


def test_large_object_goes_up_in_parts(moto: MotoServer, s3_bucket: str,
                                       tmp_path: Path) -> None:
    store = BlobStore(f"s3://{s3_bucket}/artifacts", block_size=BLOCK, **moto.storage_options)
    store.fs.connect()
    calls = _count_calls(store, "CreateMultipartUpload", "UploadPart",
                         "CompleteMultipartUpload", "PutObject")
    data = os.urandom(12_000_000)
    src = tmp_path / "big.bin"
    src.write_bytes(data)

    blob = store.put_file(src)

    assert calls["CreateMultipartUpload"] == 1
    assert calls["UploadPart"] >= 2
    assert calls["CompleteMultipartUpload"] == 1
    assert calls["PutObject"] == 0
    # Another client sees exactly the published object, at the documented key.
    other = moto.s3fs()
    assert other.find(s3_bucket) == [object_path(store, blob.sha256)]
    assert other.cat_file(object_path(store, blob.sha256)) == data
    store.get_file(blob.sha256, tmp_path / "back.bin", size=len(data))
    assert (tmp_path / "back.bin").read_bytes() == data


def test_missing_bucket_is_reported(moto: MotoServer) -> None:
    store = BlobStore("s3://no-such-bucket-mlnb/x", **moto.storage_options)
    with pytest.raises(NotFound, match="no-such-bucket-mlnb"):
        store.put_bytes(b"data")


def test_s3_url_is_normalised(moto: MotoServer, s3_bucket: str) -> None:
    store = BlobStore(f"s3://{s3_bucket}/a/b/", **moto.storage_options)
    assert store.url == f"s3://{s3_bucket}/a/b"
    blob = store.put_bytes(b"x")
    assert moto.s3fs().cat_file(f"{s3_bucket}/a/b/objects/{blob.sha256[:2]}/{blob.sha256}") == b"x"
    assert blob.sha256 == sha(b"x")


def test_interrupted_upload_leaves_no_key_and_no_pending_parts(
    moto: MotoServer, s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = BlobStore(f"s3://{s3_bucket}/artifacts", block_size=BLOCK, **moto.storage_options)
    real_copy = blobs.copy_hashing

    def copy_then_interrupt(src: object, dst: object) -> tuple[str, int]:
        real_copy(src, dst)  # 12 MB: two parts are already uploaded
        raise KeyboardInterrupt

    monkeypatch.setattr(blobs, "copy_hashing", copy_then_interrupt)
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(12_000_000))

    with pytest.raises(KeyboardInterrupt):
        store.put_file(src)

    other = moto.s3fs()
    assert other.find(s3_bucket) == []
    uploads = other.call_s3("list_multipart_uploads", Bucket=s3_bucket)
    assert uploads.get("Uploads", []) == []
