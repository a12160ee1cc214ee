"""The copy engines under BlobStore: digests of what was written, fallbacks, buffer reuse."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import threading
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mlnb.storage import BlobStore, _hashcopy
from mlnb.storage._hashcopy import CHUNK, copy_file, copy_file_hashing, copy_hashing, hash_file

SIZES = [0, 1, CHUNK - 1, CHUNK, 3 * CHUNK + 5]
IDS = ["empty", "1B", "chunk-1", "chunk", "3chunks"]


@pytest.fixture
def files(tmp_path: Path) -> Callable[[int], tuple[bytes, int, int]]:
    """Make a source of ``size`` random bytes; return it and two open descriptors."""
    opened: list[int] = []

    def make(size: int) -> tuple[bytes, int, int]:
        data = os.urandom(size)
        (tmp_path / "src").write_bytes(data)
        src = os.open(tmp_path / "src", os.O_RDONLY)
        dst = os.open(tmp_path / "dst", os.O_RDWR | os.O_CREAT | os.O_EXCL)
        opened.extend((src, dst))
        return data, src, dst

    yield make
    for fd in opened:
        os.close(fd)


def _threads_settle(before: int) -> None:
    """The copy's worker thread is gone (it is joined before the copy returns)."""
    assert threading.active_count() == before


@pytest.mark.parametrize("size", SIZES, ids=IDS)
def test_copy_file_hashing(files: Callable[[int], tuple[bytes, int, int]],
                           tmp_path: Path, size: int) -> None:
    data, src, dst = files(size)
    threads = threading.active_count()

    assert copy_file_hashing(src, dst) == (hashlib.sha256(data).hexdigest(), size)

    assert (tmp_path / "dst").read_bytes() == data
    assert hash_file(dst) == hashlib.sha256(data).hexdigest()
    _threads_settle(threads)


def test_copy_without_hashing(files: Callable[[int], tuple[bytes, int, int]],
                              tmp_path: Path) -> None:
    data, src, dst = files(2 * CHUNK + 1)
    assert copy_file(src, dst) == len(data)
    assert (tmp_path / "dst").read_bytes() == data


def _failing(err: int) -> Callable[..., int]:
    def fail(*_args: object) -> int:
        raise OSError(err, os.strerror(err))
    return fail


# (hashing, the kernel calls to break): a hashed copy starts with sendfile, an
# unhashed one with copy_file_range; each must end up copying every byte.
FALLBACKS = [
    (True, []),
    (True, ["sendfile"]),
    (False, []),
    (False, ["copy_file_range"]),
    (False, ["copy_file_range", "sendfile"]),
]
FALLBACK_IDS = ["hashed", "hashed-no-sendfile", "unhashed", "unhashed-no-copy_file_range",
                "unhashed-no-kernel-copy"]


@pytest.mark.parametrize(("hashing", "broken"), FALLBACKS, ids=FALLBACK_IDS)
def test_falls_back_when_the_kernel_cannot_copy(
    files: Callable[[int], tuple[bytes, int, int]], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, hashing: bool, broken: list[str],
) -> None:
    for name in broken:  # as between file systems on old kernels, or on FUSE
        monkeypatch.setattr(os, name, _failing(errno.EXDEV), raising=False)
    data, src, dst = files(3 * CHUNK + 5)

    if hashing:
        assert copy_file_hashing(src, dst) == (hashlib.sha256(data).hexdigest(), len(data))
    else:
        assert copy_file(src, dst) == len(data)
    assert (tmp_path / "dst").read_bytes() == data


def _nth_call(name: str, n: int, then: Callable[..., int]) -> Callable[..., int]:
    """Wrap ``os.<name>``: calls before the ``n``-th go through, from then on ``then``."""
    real = getattr(os, name)
    calls = []

    def call(*args: int) -> int:
        calls.append(args)
        return real(*args) if len(calls) < n else then(*args)

    return call


@pytest.mark.parametrize(("hashing", "name"), [(True, "sendfile"), (False, "copy_file_range")])
def test_an_early_end_from_the_kernel_is_not_trusted(
    files: Callable[[int], tuple[bytes, int, int]], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, hashing: bool, name: str,
) -> None:
    monkeypatch.setattr(os, name, _nth_call(name, 2, lambda *_: 0))
    data, src, dst = files(3 * CHUNK + 5)

    if hashing:
        assert copy_file_hashing(src, dst) == (hashlib.sha256(data).hexdigest(), len(data))
    else:
        assert copy_file(src, dst) == len(data)
    assert (tmp_path / "dst").read_bytes() == data


@pytest.mark.parametrize("error", [OSError(errno.ENOSPC, "No space left"), KeyboardInterrupt()],
                         ids=["ENOSPC", "KeyboardInterrupt"])
def test_an_error_part_way_ends_the_worker_and_propagates(
    files: Callable[[int], tuple[bytes, int, int]], monkeypatch: pytest.MonkeyPatch,
    error: BaseException,
) -> None:
    def fail(*_args: int) -> int:
        raise error

    monkeypatch.setattr(os, "sendfile", _nth_call("sendfile", 3, fail))
    _data, src, dst = files(5 * CHUNK)
    threads = threading.active_count()

    with pytest.raises(type(error)):
        copy_file_hashing(src, dst)
    _threads_settle(threads)


@pytest.fixture
def warm() -> Iterator[None]:
    """Fill the buffer pool first, as any earlier copy in the process would."""
    copy_hashing(io.BytesIO(os.urandom(5 * CHUNK)), io.BytesIO())
    yield


def _peak_allocation(run: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_buffers_are_reused(warm: None) -> None:
    data = os.urandom(4 * CHUNK + 7)
    sink = io.BytesIO(bytearray(len(data)))

    def copy() -> None:
        sink.seek(0)
        assert copy_hashing(io.BytesIO(data), sink) == (
            hashlib.sha256(data).hexdigest(), len(data))

    assert _peak_allocation(copy) < CHUNK // 2


def test_a_tiny_file_costs_no_large_buffer(warm: None, tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    src = tmp_path / "tiny.bin"
    src.write_bytes(os.urandom(1024))
    blob = store.put_file(src)

    def again() -> None:
        assert store.put_file(src) == blob
        assert store.put_bytes(src.read_bytes()) == blob
        assert copy_hashing(io.BytesIO(b"x" * 1024), io.BytesIO())[1] == 1024

    assert _peak_allocation(again) < 64 * 1024


def test_the_pool_keeps_a_few_buffers(warm: None) -> None:
    bufs = [_hashcopy._POOL.take() for _ in range(_hashcopy._NBUF + 2)]
    assert all(len(b) == CHUNK for b in bufs)
    for buf in bufs:
        _hashcopy._POOL.give(buf)
    assert len(_hashcopy._POOL._free) == _hashcopy._NBUF


def test_a_hashed_copy_goes_through_the_page_cache(
    files: Callable[[int], tuple[bytes, int, int]], monkeypatch: pytest.MonkeyPatch,
) -> None:
    # copy_file_range may clone (btrfs, XFS) or copy on an NFS server: reading
    # such a copy back to hash it would go to the disk or the network.
    cloned: list[object] = []
    monkeypatch.setattr(os, "copy_file_range", lambda *args: cloned.append(args) or 0,
                        raising=False)
    data, src, dst = files(2 * CHUNK)
    assert copy_file_hashing(src, dst)[1] == len(data)
    assert cloned == []
