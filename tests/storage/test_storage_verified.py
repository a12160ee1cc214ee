"""The per-process memory of verified local blobs: what it may skip, and what it never may.

A later read may skip hashing a local blob this process verified before, but
only while the file's metadata is unchanged; any write, truncation or
replacement must bring the hash back, and ``verify`` (``mlnb fsck``) hashes
every time.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from storage.blobstore_suite import LABEL, leftovers, object_path, overwrite_blob, sha

from mlnb.errors import IntegrityError
from mlnb.storage import BlobStore, _verified
from mlnb.storage.blobs import SMALL_FILE


@pytest.fixture(autouse=True)
def _fresh_memory() -> Iterator[None]:
    _verified.clear()
    yield
    _verified.clear()


@pytest.fixture
def settled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Trust files changed any time before a read (the real rule wants 2 s)."""
    monkeypatch.setattr(_verified, "_SETTLE_NS", 0)


@pytest.fixture
def hashes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record each full hash of a blob: ``"copy"`` (get_file), ``"rehash"``, ``"verify"``."""
    seen: list[str] = []
    real_copy, real_hash_file, real_hash_stream = (
        _verified.copy_file_hashing, _verified.hash_file, _verified.hash_stream)

    def copy_file_hashing(src: int, dst: int) -> Any:
        seen.append("copy")
        return real_copy(src, dst)

    def hash_file(fd: int) -> str:
        seen.append("rehash")
        return real_hash_file(fd)

    def hash_stream(src: Any) -> Any:
        seen.append("verify")
        return real_hash_stream(src)

    monkeypatch.setattr(_verified, "copy_file_hashing", copy_file_hashing)
    monkeypatch.setattr(_verified, "hash_file", hash_file)
    monkeypatch.setattr(_verified, "hash_stream", hash_stream)
    return seen


def after_a_clock_tick(path: str) -> None:
    """Wait until a change to a file gets a newer ctime than ``path`` has now."""
    probe = Path(path).parent / "probe"
    reference = os.stat(path).st_ctime_ns
    deadline = time.monotonic() + 5
    while True:
        probe.write_bytes(b"")
        if os.stat(probe).st_ctime_ns > reference:
            probe.unlink()
            return
        assert time.monotonic() < deadline, "the file system clock does not move"
        time.sleep(0.005)


@pytest.fixture
def store(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "blobs")


@pytest.fixture(params=[100_000, SMALL_FILE + 123], ids=["small", "large"])
def payload(request: pytest.FixtureRequest) -> bytes:
    return os.urandom(request.param)


def test_second_read_skips_the_hash(store: BlobStore, tmp_path: Path, payload: bytes,
                                    settled: None, hashes: list[str]) -> None:
    blob = store.put_bytes(payload)
    assert store.get_file(blob.sha256, tmp_path / "a.bin").read_bytes() == payload
    assert hashes == ["copy"]

    assert store.get_file(blob.sha256, tmp_path / "b.bin").read_bytes() == payload
    assert store.read_bytes(blob.sha256) == payload
    assert hashes == ["copy"]  # copied, but not hashed again


def test_a_blob_changed_moments_ago_is_hashed_on_every_read(
    store: BlobStore, tmp_path: Path, payload: bytes, hashes: list[str]
) -> None:
    # Under the real 2 s rule: another change within the same timestamp tick
    # as the publish would leave the metadata as it is.
    blob = store.put_bytes(payload)
    for name in ("a", "b", "c"):
        store.get_file(blob.sha256, tmp_path / name)
    assert hashes == ["copy"] * 3


@pytest.mark.parametrize("damage", ["overwrite", "truncate", "replace"])
def test_damage_after_a_verified_read_is_refused(
    store: BlobStore, tmp_path: Path, payload: bytes, settled: None, hashes: list[str],
    damage: str,
) -> None:
    blob = store.put_bytes(payload)
    store.get_file(blob.sha256, tmp_path / "good.bin")  # verified, and remembered
    path = object_path(store, blob.sha256)
    after_a_clock_tick(path)
    rotten = bytearray(payload)
    rotten[len(payload) // 2] ^= 0xFF
    if damage == "overwrite":  # same size, same inode: only the ctime tells
        overwrite_blob(store, blob.sha256, bytes(rotten))
        assert os.stat(path).st_size == blob.size
    elif damage == "truncate":
        overwrite_blob(store, blob.sha256, payload[:-10])
    else:
        (tmp_path / "other").write_bytes(rotten)
        os.replace(tmp_path / "other", path)
    dest = tmp_path / "out" / "weights.safetensors"

    with pytest.raises(IntegrityError) as info:
        store.get_file(blob.sha256, dest, size=blob.size, label=LABEL)

    assert LABEL in str(info.value)
    assert leftovers(dest.parent) == []
    with pytest.raises(IntegrityError, match=r"weights\.safetensors"):
        store.read_bytes(blob.sha256, label=LABEL)
    assert store.verify(blob.sha256) == "hash mismatch"
    assert hashes == ["copy", "copy", "verify"]


def test_verify_always_hashes(store: BlobStore, tmp_path: Path, settled: None,
                              hashes: list[str]) -> None:
    blob = store.put_bytes(b"weights" * 1000)
    store.get_file(blob.sha256, tmp_path / "w.bin")
    assert store.verify(blob.sha256) is None
    assert store.verify(blob.sha256, size=blob.size) is None
    assert hashes == ["copy", "verify", "verify"]


def test_damage_without_a_metadata_change_is_found_by_verify(
    store: BlobStore, tmp_path: Path, payload: bytes, settled: None
) -> None:
    blob = store.put_bytes(payload)
    store.get_file(blob.sha256, tmp_path / "good.bin")
    path = object_path(store, blob.sha256)
    rotten = bytearray(payload)
    rotten[7] ^= 0xFF
    overwrite_blob(store, blob.sha256, bytes(rotten))
    # As if the disk had flipped the bit itself: the metadata looks as verified.
    st = os.stat(path)
    _verified._record(path, True, st, st, time.time_ns() + 10**10)
    # This is the blind spot the module docstring owns up to ...
    assert store.read_bytes(blob.sha256) == bytes(rotten)

    # ... and fsck's verify() is what closes it: it hashes, and forgets the blob.
    assert store.verify(blob.sha256) == "hash mismatch"
    with pytest.raises(IntegrityError, match="mlnb fsck"):
        store.get_file(blob.sha256, tmp_path / "again.bin", label=LABEL)


def test_a_blob_changed_during_a_trusted_copy_is_hashed(
    store: BlobStore, tmp_path: Path, settled: None, hashes: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    payload = os.urandom(SMALL_FILE + 123)
    blob = store.put_bytes(payload)
    store.get_file(blob.sha256, tmp_path / "good.bin")
    path = object_path(store, blob.sha256)
    after_a_clock_tick(path)
    real_copy = _verified.copy_file

    def copy_then_chmod(src: int, dst: int) -> int:
        size = real_copy(src, dst)
        os.chmod(path, 0o400)  # moves the ctime during the (trusted) copy
        return size

    monkeypatch.setattr(_verified, "copy_file", copy_then_chmod)
    out = store.get_file(blob.sha256, tmp_path / "out.bin", size=blob.size)

    assert out.read_bytes() == payload
    assert hashes == ["copy", "rehash"]


def test_delete_forgets(store: BlobStore, tmp_path: Path, settled: None) -> None:
    blob = store.put_bytes(b"x" * 100)
    store.read_bytes(blob.sha256)
    assert _verified._is_verified(object_path(store, blob.sha256),
                                  os.stat(object_path(store, blob.sha256)))
    store.delete([blob.sha256])
    assert _verified._entries == {}


def test_only_local_stores_are_remembered(tmp_path: Path, settled: None) -> None:
    store = BlobStore(f"memory://mlnb-verified-{sha(os.urandom(8))[:8]}/blobs")
    blob = store.put_bytes(b"weights")
    store.get_file(blob.sha256, tmp_path / "w.bin")
    store.read_bytes(blob.sha256)
    assert store.verify(blob.sha256) is None
    assert _verified._entries == {}
    store.fs.rm(store.root, recursive=True)
