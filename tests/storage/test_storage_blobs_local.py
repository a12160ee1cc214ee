"""The BlobStore conformance suite on a local directory, plus what only local disks show.

Local-only: permissions, the on-disk layout, several processes storing the same
file at once, and real crashes (SIGKILL, Ctrl-C) in the middle of an upload.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from storage.blobstore_suite import BlobStoreSuite, leftovers
from storage.storage_workers import put_same_content

from mlnb.storage import Blob, BlobStore
from mlnb.storage._hashcopy import CHUNK
from mlnb.storage.blobs import SMALL_FILE


class TestLocalBlobStore(BlobStoreSuite):
    @pytest.fixture
    def store(self, tmp_path: Path) -> BlobStore:
        return BlobStore(tmp_path / "blobs")


def test_layout_and_read_only_blobs(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        store = BlobStore(tmp_path / "blobs")
        blob = store.put_bytes(b"weights")
        out = store.get_file(blob.sha256, tmp_path / "copy.bin")
    finally:
        os.umask(old)
    path = tmp_path / "blobs" / "objects" / blob.sha256[:2] / blob.sha256
    assert path.read_bytes() == b"weights"
    # Read-only, and no wider than the umask allowed.
    assert stat.S_IMODE(path.stat().st_mode) == 0o440
    assert stat.S_IMODE(out.stat().st_mode) == 0o640  # the user's copy stays writable
    assert leftovers(tmp_path / "blobs") == ["objects", "tmp"]
    assert leftovers(tmp_path / "blobs" / "tmp") == []


def test_local_urls_are_normalised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert BlobStore(tmp_path / "b").url == f"file://{tmp_path}/b"
    assert BlobStore(f"file://{tmp_path}/b/").url == f"file://{tmp_path}/b"
    monkeypatch.chdir(tmp_path)
    store = BlobStore("relative/dir")
    assert store.url == f"file://{tmp_path}/relative/dir"
    blob = store.put_bytes(b"x")
    assert (tmp_path / "relative/dir/objects" / blob.sha256[:2] / blob.sha256).exists()


@pytest.mark.parametrize("size", [CHUNK + 4321, SMALL_FILE + CHUNK + 4321],
                         ids=["in-memory", "kernel-copy"])
def test_concurrent_puts_from_processes_leave_one_valid_object(tmp_path: Path,
                                                               size: int) -> None:
    data = os.urandom(size)
    src = tmp_path / "model.bin"
    src.write_bytes(data)
    root = str(tmp_path / "blobs")
    ctx = multiprocessing.get_context("spawn")
    n = 4
    barrier = ctx.Barrier(n)
    results = ctx.Queue()
    procs = [ctx.Process(target=put_same_content, args=(root, str(src), data, barrier, results))
             for _ in range(n)]
    for p in procs:
        p.start()
    reports = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert [p.exitcode for p in procs] == [0] * n

    expected = (hashlib.sha256(data).hexdigest(), len(data))
    assert reports == [[expected] * 3] * n
    store = BlobStore(root)
    assert [(b.sha256, b.size) for b in store.iter_blobs()] == [expected]
    assert store.verify(expected[0], size=len(data)) is None
    assert list(store.iter_temp()) == []


_PUT_FROM = (
    "import sys\n"
    "from mlnb.storage import BlobStore\n"
    "BlobStore(sys.argv[1]).put_file(sys.argv[2])\n"
)


def _start_put_from_fifo(tmp_path: Path) -> tuple[subprocess.Popen[bytes], int, BlobStore]:
    """Start a process storing a FIFO, feed it more than one buffer and wait for its temp."""
    fifo = tmp_path / "feed"
    os.mkfifo(fifo)
    store = BlobStore(tmp_path / "blobs")
    proc = subprocess.Popen([sys.executable, "-c", _PUT_FROM, str(tmp_path / "blobs"), str(fifo)],
                            stderr=subprocess.PIPE)
    writer = os.open(fifo, os.O_WRONLY)  # blocks until the child opens it
    os.write(writer, os.urandom(CHUNK + 1000))
    deadline = time.monotonic() + 30
    while not [t for t in store.iter_temp() if t.size >= CHUNK]:
        assert time.monotonic() < deadline, "the upload never started"
        time.sleep(0.02)
    return proc, writer, store


def test_killed_upload_leaves_only_a_temp(tmp_path: Path) -> None:
    proc, writer, store = _start_put_from_fifo(tmp_path)
    proc.kill()
    proc.communicate(timeout=30)
    os.close(writer)

    (temp,) = store.iter_temp()
    assert temp.size >= CHUNK
    assert list(store.iter_blobs()) == []
    assert store.delete_temp([temp]) == 1
    assert list(store.iter_temp()) == []


def test_interrupted_upload_leaves_nothing(tmp_path: Path) -> None:
    proc, writer, store = _start_put_from_fifo(tmp_path)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    os.close(writer)

    assert proc.returncode != 0
    assert b"KeyboardInterrupt" in err
    assert list(store.iter_temp()) == []
    assert list(store.iter_blobs()) == []


def test_put_file_of_missing_source_leaves_nothing(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    with pytest.raises(FileNotFoundError):
        store.put_file(tmp_path / "nope.bin")
    assert list(store.iter_temp()) == []
    assert list(store.iter_blobs()) == []


def test_blob_is_frozen() -> None:
    blob = Blob("0" * 64, 1)
    with pytest.raises(AttributeError):
        blob.size = 2  # type: ignore[misc]


def test_without_kernel_copies_the_user_space_path_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delattr(os, "preadv")  # as on Windows
    store = BlobStore(tmp_path / "blobs")
    data = os.urandom(SMALL_FILE + CHUNK + 1)
    src = tmp_path / "big.bin"
    src.write_bytes(data)

    blob = store.put_file(src)

    assert blob.sha256 == hashlib.sha256(data).hexdigest()
    assert store.get_file(blob.sha256, tmp_path / "out.bin").read_bytes() == data
    assert store.verify(blob.sha256, size=len(data)) is None
