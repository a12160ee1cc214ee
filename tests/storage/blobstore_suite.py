"""The behaviour every BlobStore backend must show (as fsspec/tests/abstract does).

A backend's test module subclasses :class:`BlobStoreSuite` and provides the
``store`` fixture; pytest collects the inherited tests for it.  Damage and
crash leftovers are made through ``store.fs``, the same fsspec file system the
store uses, at the documented layout ``objects/<sha[:2]>/<sha>`` and ``tmp/``.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

import pytest

from mlnb.errors import IntegrityError, InvalidArgument, NotFound
from mlnb.storage import Blob, BlobStore, blobs
from mlnb.storage._hashcopy import CHUNK
from mlnb.storage.blobs import SMALL_FILE

LABEL = "mnist-mlp:3 file weights.safetensors"


def object_path(store: BlobStore, sha256: str) -> str:
    return f"{store.root}/objects/{sha256[:2]}/{sha256}"


def overwrite_blob(store: BlobStore, sha256: str, data: bytes) -> None:
    """Replace a published blob's bytes, as disk rot or a careless user would."""
    path = object_path(store, sha256)
    if store.url.startswith("file://"):
        os.chmod(path, 0o644)  # published blobs are read-only
    store.fs.pipe_file(path, data)


def leave_temp(store: BlobStore, data: bytes) -> str:
    """Write what a crashed upload leaves behind: a file under tmp/."""
    path = f"{store.root}/tmp/{uuid.uuid4().hex}"
    store.fs.makedirs(f"{store.root}/tmp", exist_ok=True)
    store.fs.pipe_file(path, data)
    return path


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def leftovers(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


def count_temp_files(store: BlobStore, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the temporary uploads the store opens from now on."""
    opened: list[str] = []
    real = store._open_temp

    def spy(temp: str):  # type: ignore[no-untyped-def]
        opened.append(temp)
        return real(temp)

    monkeypatch.setattr(store, "_open_temp", spy)
    return opened


# Sizes that take each path of put_file: in memory (under SMALL_FILE), and
# copied while hashed (kernel copy on local disks, user space elsewhere) in
# one step or in several, on a worker thread.
SIZES = [0, 1, 100_000, SMALL_FILE - 1, SMALL_FILE, SMALL_FILE + 2 * CHUNK + 123]
SIZE_IDS = ["empty", "1B", "100kB", "small-max", "large-min", "large"]


class BlobStoreSuite:
    """Conformance tests; subclasses provide the ``store`` fixture."""

    @pytest.fixture
    def store(self) -> BlobStore:
        raise NotImplementedError

    @pytest.fixture
    def payload(self) -> bytes:
        return os.urandom(100_000)

    # -- round trips ---------------------------------------------------------

    @pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
    def test_round_trip_file(self, store: BlobStore, tmp_path: Path, size: int) -> None:
        data = os.urandom(size)
        src = tmp_path / "model.bin"
        src.write_bytes(data)

        blob = store.put_file(src)

        assert blob == Blob(sha(data), size)
        assert store.exists(blob.sha256)
        out = store.get_file(blob.sha256, tmp_path / "out" / "model.bin", size=size)
        assert out == tmp_path / "out" / "model.bin"
        assert out.read_bytes() == data
        assert store.read_bytes(blob.sha256, size=size) == data
        assert store.verify(blob.sha256, size=size) is None
        assert [(b.sha256, b.size) for b in store.iter_blobs()] == [(blob.sha256, size)]
        assert list(store.iter_temp()) == []

    def test_put_bytes_round_trip(self, store: BlobStore, payload: bytes) -> None:
        blob = store.put_bytes(payload)
        assert blob == Blob(sha(payload), len(payload))
        assert store.read_bytes(blob.sha256) == payload

    def test_get_file_replaces_existing_dest(self, store: BlobStore, tmp_path: Path,
                                             payload: bytes) -> None:
        dest = tmp_path / "dest" / "w.bin"
        dest.parent.mkdir()
        dest.write_bytes(b"old contents")
        blob = store.put_bytes(payload)
        store.get_file(blob.sha256, dest)
        assert dest.read_bytes() == payload
        assert leftovers(dest.parent) == ["w.bin"]

    def test_iter_blobs_reports_mtime(self, store: BlobStore, payload: bytes) -> None:
        store.put_bytes(payload)
        (info,) = store.iter_blobs()
        assert isinstance(info.mtime, float)
        assert info.mtime > 1.6e9

    # -- dedup and hold ----------------------------------------------------------

    def test_identical_content_is_stored_once(self, store: BlobStore, tmp_path: Path,
                                              payload: bytes) -> None:
        a, b = tmp_path / "a.bin", tmp_path / "b.bin"
        a.write_bytes(payload)
        b.write_bytes(payload)

        blobs = [store.put_file(a), store.put_file(b), store.put_bytes(payload)]

        assert blobs[0] == blobs[1] == blobs[2] == Blob(sha(payload), len(payload))
        assert [i.sha256 for i in store.iter_blobs()] == [blobs[0].sha256]
        assert list(store.iter_temp()) == []

    def test_hold_is_called_with_sha_before_publish(self, store: BlobStore,
                                                    payload: bytes) -> None:
        seen = []

        def hold(sha256: str) -> None:
            seen.append((sha256, store.exists(sha256), len(list(store.iter_temp()))))

        blob = store.put_bytes(payload, hold=hold)

        # Called once, with the hash, before anything is written: small bytes
        # are hashed in memory and go to tmp/ only if the blob is not there.
        assert seen == [(sha(payload), False, 0)]
        assert store.exists(blob.sha256)

    def test_hold_of_a_large_file_comes_after_the_upload(self, store: BlobStore,
                                                         tmp_path: Path) -> None:
        data = os.urandom(SMALL_FILE + CHUNK)
        src = tmp_path / "big.bin"
        src.write_bytes(data)
        seen = []

        def hold(sha256: str) -> None:
            seen.append((sha256, store.exists(sha256), len(list(store.iter_temp()))))

        blob = store.put_file(src, hold=hold)

        # Hashed while uploaded, so held once the bytes sit in tmp/, unpublished.
        assert seen == [(sha(data), False, 1)]
        assert store.read_bytes(blob.sha256) == data
        assert list(store.iter_temp()) == []

    @pytest.mark.parametrize("size", [1024, SMALL_FILE + CHUNK], ids=["1KiB", "large"])
    def test_storing_a_stored_blob_again(self, store: BlobStore, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch, size: int) -> None:
        data = os.urandom(size)
        src = tmp_path / "model.bin"
        src.write_bytes(data)
        first = store.put_file(src)
        opened = count_temp_files(store, monkeypatch)
        held: list[str] = []

        assert store.put_file(src, hold=held.append) == first
        assert store.put_bytes(data, hold=held.append) == first

        assert held == [first.sha256] * 2
        # Small ones are compared in memory, without writing a byte; a large
        # file was uploaded while it was hashed, then dropped.
        assert len(opened) == (0 if size < SMALL_FILE else 1)
        assert list(store.iter_temp()) == []
        assert [b.sha256 for b in store.iter_blobs()] == [first.sha256]

    @pytest.mark.parametrize("size", [1024, SMALL_FILE + CHUNK], ids=["1KiB", "large"])
    def test_file_changed_while_stored_is_refused(self, store: BlobStore, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  size: int) -> None:
        src = tmp_path / "checkpoint.pt"
        src.write_bytes(os.urandom(size))

        def then_append(read):  # type: ignore[no-untyped-def]
            def wrapper(*args):  # type: ignore[no-untyped-def]
                result = read(*args)
                with open(src, "ab") as f:  # a training loop still writing
                    f.write(b"more")
                return result
            return wrapper

        for name in ("_read_small", "copy_file_hashing", "copy_hashing"):
            monkeypatch.setattr(blobs, name, then_append(getattr(blobs, name)))
        held: list[str] = []

        with pytest.raises(InvalidArgument, match="changed while it was being stored") as info:
            store.put_file(src, hold=held.append)

        assert "checkpoint.pt" in str(info.value)
        assert held == []
        assert list(store.iter_blobs()) == []
        assert list(store.iter_temp()) == []

    def test_hold_is_called_for_a_duplicate_too(self, store: BlobStore, payload: bytes) -> None:
        store.put_bytes(payload)
        seen: list[str] = []
        store.put_bytes(payload, hold=seen.append)
        assert seen == [sha(payload)]

    @pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
    def test_failing_hold_publishes_nothing_and_leaves_no_temp(
        self, store: BlobStore, payload: bytes, error: type[BaseException]
    ) -> None:
        def hold(sha256: str) -> None:
            raise error("registry said no")

        with pytest.raises(error):
            store.put_bytes(payload, hold=hold)
        assert not store.exists(sha(payload))
        assert list(store.iter_blobs()) == []
        assert list(store.iter_temp()) == []

    # -- damaged and missing blobs -------------------------------------------------

    def test_corrupted_blob_is_refused(self, store: BlobStore, tmp_path: Path,
                                       payload: bytes) -> None:
        blob = store.put_bytes(payload)
        rotten = bytearray(payload)
        rotten[500] ^= 0xFF
        overwrite_blob(store, blob.sha256, bytes(rotten))
        dest = tmp_path / "out" / "weights.safetensors"

        with pytest.raises(IntegrityError) as info:
            store.get_file(blob.sha256, dest, size=blob.size, label=LABEL)

        message = str(info.value)
        assert LABEL in message
        assert blob.sha256[:12] in message
        assert sha(bytes(rotten))[:12] in message
        assert "mlnb fsck" in message
        assert leftovers(dest.parent) == []  # no dest, no temp beside it
        with pytest.raises(IntegrityError, match=r"weights\.safetensors"):
            store.read_bytes(blob.sha256, label=LABEL)
        assert store.verify(blob.sha256, size=blob.size) == "hash mismatch"

    def test_truncated_blob_is_refused(self, store: BlobStore, tmp_path: Path,
                                       payload: bytes) -> None:
        blob = store.put_bytes(payload)
        overwrite_blob(store, blob.sha256, payload[:-10])
        dest = tmp_path / "dest" / "w.bin"
        dest.parent.mkdir()
        dest.write_bytes(b"previous good copy")

        with pytest.raises(IntegrityError, match=f"expected {blob.size} bytes"):
            store.get_file(blob.sha256, dest, size=blob.size, label=LABEL)

        assert dest.read_bytes() == b"previous good copy"
        assert leftovers(dest.parent) == ["w.bin"]
        with pytest.raises(IntegrityError):
            store.read_bytes(blob.sha256)  # the hash alone catches it, too
        assert store.verify(blob.sha256, size=blob.size) == f"size {blob.size - 10} != {blob.size}"
        assert store.verify(blob.sha256) == "hash mismatch"

    def test_putting_again_repairs_a_truncated_blob(self, store: BlobStore,
                                                    payload: bytes) -> None:
        blob = store.put_bytes(payload)
        overwrite_blob(store, blob.sha256, payload[:-10])
        assert store.put_bytes(payload) == blob
        assert store.verify(blob.sha256, size=blob.size) is None

    def test_missing_blob(self, store: BlobStore, tmp_path: Path) -> None:
        absent = sha(b"never stored")
        dest = tmp_path / "out" / "w.bin"
        with pytest.raises(NotFound) as info:
            store.get_file(absent, dest, label=LABEL)
        assert LABEL in str(info.value)
        assert absent[:12] in str(info.value)
        assert not dest.parent.exists()
        with pytest.raises(NotFound, match="mnist-mlp:3"):
            store.read_bytes(absent, label=LABEL)
        assert store.verify(absent) == "missing"
        assert not store.exists(absent)

    @pytest.mark.parametrize("bad", [
        "", "abc", "A" * 64, "g" * 64, "0" * 63, "0" * 65, "0" * 64 + "\n",
        "../" + "0" * 61, "00/" + "0" * 61, None, 123,
    ])
    def test_invalid_sha_is_refused(self, store: BlobStore, tmp_path: Path, bad: object) -> None:
        calls = [
            lambda: store.exists(bad),
            lambda: store.get_file(bad, tmp_path / "x"),
            lambda: store.read_bytes(bad),
            lambda: store.verify(bad),
            lambda: store.delete([bad]),
        ]
        for call in calls:
            with pytest.raises(InvalidArgument, match="sha256"):
                call()
        assert not (tmp_path / "x").exists()

    # -- listing and deleting ----------------------------------------------------------

    def test_iter_blobs_and_delete(self, store: BlobStore) -> None:
        blobs = [store.put_bytes(f"blob {i}".encode()) for i in range(3)]
        assert {b.sha256: b.size for b in store.iter_blobs()} == {
            b.sha256: b.size for b in blobs
        }
        missing = sha(b"not there")

        assert store.delete([blobs[0].sha256, blobs[1].sha256, missing, blobs[0].sha256]) == 2

        assert [b.sha256 for b in store.iter_blobs()] == [blobs[2].sha256]
        assert not store.exists(blobs[0].sha256)
        assert store.delete([blobs[0].sha256]) == 0
        assert store.delete([]) == 0

    def test_leftover_temp_is_listed_apart_from_blobs(self, store: BlobStore,
                                                      payload: bytes) -> None:
        blob = store.put_bytes(payload)
        path = leave_temp(store, b"half an upload")

        temps = list(store.iter_temp())
        assert [(t.path, t.size) for t in temps] == [(path, 14)]
        assert temps[0].mtime is not None
        assert [b.sha256 for b in store.iter_blobs()] == [blob.sha256]

        assert store.delete_temp(temps) == 1
        assert list(store.iter_temp()) == []
        assert store.delete_temp([path]) == 0
        assert store.read_bytes(blob.sha256) == payload

    def test_delete_temp_refuses_other_paths(self, store: BlobStore, payload: bytes) -> None:
        blob = store.put_bytes(payload)
        for path in (object_path(store, blob.sha256), f"{store.root}/tmp/../objects",
                     f"{store.root}/tmp/not-a-temp-name"):
            with pytest.raises(InvalidArgument, match="iter_temp"):
                store.delete_temp([path])
        assert store.verify(blob.sha256) is None
