"""Copy bytes while hashing them with SHA-256, the hashing overlapped with the copy.

Hashing and copying take about as long as each other, so doing them one after
the other runs at about half the speed of SHA-256 alone.  Both copies here put
the hashing on a second thread (``hashlib`` releases the GIL on buffers over
2 KiB, and so do reads, writes and kernel copies):

* :func:`copy_hashing` copies any stream in user space: the calling thread
  reads buffer *n + 1* and writes buffer *n* while a worker hashes buffer *n*.
  The digest is computed from the very buffers that were written.
* :func:`copy_file_hashing` copies one file to another with the kernel
  (``sendfile``, else ``read``/``write``), a step of :data:`CHUNK` at a time,
  while a worker reads back and hashes each step from the *destination* as
  soon as it has landed.  The digest therefore describes the destination's
  bytes exactly, whatever happens to the source meanwhile, and each step is
  hashed while it is still in the CPU cache.  On a 100 MiB file this takes
  about the time of SHA-256 alone.

Buffers come from a small per-process pool (:data:`_POOL`) because allocating
them per call is not free: a new ``bytearray`` is zero-filled and its pages
faulted in, and four 8 MiB ones took 15-25 ms, whatever the size of the file.
:data:`CHUNK` is 1 MiB because a buffer hashed while it is still in the CPU
cache hashes faster: with 1-2 MiB buffers a copy ran at the speed of SHA-256
alone, with 8 MiB ones 30% slower.  ``benchmarks/storage_throughput.py``
measures the result.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from collections.abc import Callable
from typing import Any

__all__ = [
    "CHUNK",
    "copy_file",
    "copy_file_hashing",
    "copy_hashing",
    "fill",
    "hash_file",
    "hash_stream",
    "write_all",
]

#: Size of one buffer and of one kernel copy step.
CHUNK = 2**20
# Buffers in flight: one being read into, one being written, two being hashed.
_NBUF = 4


class _BufferPool:
    """Reusable ``CHUNK``-sized buffers, at most ``keep`` of them kept between calls.

    Thread-safe without a lock: ``list.append`` and ``list.pop`` are atomic
    (Python FAQ, "What kinds of global value mutation are thread-safe?"); two
    threads racing in :meth:`give` can only keep a buffer or two more than
    ``keep``.  A buffer must be given back only once nothing reads or writes it.
    """

    def __init__(self, keep: int) -> None:
        self._keep = keep
        self._free: list[bytearray] = []

    def take(self) -> bytearray:
        try:
            return self._free.pop()
        except IndexError:
            return bytearray(CHUNK)

    def give(self, buf: bytearray) -> None:
        if len(self._free) < self._keep:
            self._free.append(buf)


_POOL = _BufferPool(_NBUF)


def fill(src: Any, buf: memoryview) -> int:
    """Read from ``src`` until ``buf`` is full or the stream ends; return the count."""
    pos = 0
    end = len(buf)
    while pos < end:
        readinto = getattr(src, "readinto", None)
        if readinto is not None:
            got = readinto(buf[pos:])
        else:
            data = src.read(end - pos)
            got = len(data)
            buf[pos : pos + got] = data
        if not got:
            break
        pos += got
    return pos


def write_all(dst: Any, data: memoryview) -> None:
    """Write all of ``data`` to ``dst``, looping over short writes of raw files."""
    while data:
        written = dst.write(data)
        if written is None or written >= len(data):
            return
        data = data[written:]


class _Hasher:
    """A worker thread that hashes buffers in the order they are submitted."""

    def __init__(self) -> None:
        self.sha = hashlib.sha256()
        self.free: queue.SimpleQueue[bytearray] = queue.SimpleQueue()
        self._todo: queue.SimpleQueue[tuple[bytearray, int] | None] = queue.SimpleQueue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="mlnb-sha256", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (item := self._todo.get()) is not None:
            buf, n = item
            try:
                if self._error is None:
                    self.sha.update(memoryview(buf)[:n])
            except BaseException as err:  # handed to the caller in stop()
                self._error = err
            finally:
                # Only now may the reader refill it; the writer is done with it
                # before the reader asks for another buffer (same thread).
                self.free.put(buf)

    def submit(self, buf: bytearray, n: int) -> None:
        self._todo.put((buf, n))

    def stop(self) -> None:
        """Hash what was submitted, end the thread and re-raise a hashing error."""
        self._todo.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error


def copy_hashing(src: Any, dst: Any) -> tuple[str, int]:
    """Copy ``src`` to ``dst`` in one pass; return ``(sha256 hex digest, size)``.

    ``src`` needs ``readinto`` or ``read``; ``dst`` needs ``write``, and must be
    done with the data when ``write`` returns (the buffer is reused).  A stream
    shorter than one :data:`CHUNK` is handled inline, without a thread.
    """
    first = _POOL.take()
    n = fill(src, memoryview(first))
    if n < CHUNK:
        view = memoryview(first)[:n]
        write_all(dst, view)
        digest = hashlib.sha256(view).hexdigest()
        view.release()
        _POOL.give(first)
        return digest, n

    owned = [first]
    hasher = _Hasher()
    size = 0
    buf = first
    try:
        while n:
            hasher.submit(buf, n)
            write_all(dst, memoryview(buf)[:n])
            size += n
            if n < CHUNK:
                break
            if len(owned) < _NBUF:
                buf = _POOL.take()
                owned.append(buf)
            else:
                buf = hasher.free.get()
            n = fill(src, memoryview(buf))
    finally:
        # Also on KeyboardInterrupt: the worker drains its queue and exits.
        hasher.stop()
    for buf in owned:  # the worker has ended: nothing uses them any more
        _POOL.give(buf)
    return hasher.sha.hexdigest(), size


class _NullSink:
    """A writable that drops everything."""

    def write(self, data: memoryview) -> int:
        return len(data)


def hash_stream(src: Any) -> tuple[str, int]:
    """Read ``src`` to the end; return ``(sha256 hex digest, size)``."""
    return copy_hashing(src, _NullSink())


# -- kernel copies -------------------------------------------------------------


def _copy_file_range(src: int, dst: int) -> int:
    return os.copy_file_range(src, dst, CHUNK)


def _sendfile(src: int, dst: int) -> int:
    return os.sendfile(dst, src, None, CHUNK)


def _read_write(src: int, dst: int) -> int:
    buf = _POOL.take()
    try:
        with memoryview(buf) as view:
            n = os.readv(src, [view])
            pos = 0
            while pos < n:
                pos += os.write(dst, view[pos:n])
    finally:
        _POOL.give(buf)
    return n


def _methods(*names: str) -> tuple[Callable[[int, int], int], ...]:
    """The copy methods this platform has, in the order given, then read/write."""
    found = {"copy_file_range": _copy_file_range, "sendfile": _sendfile}
    return (*(found[name] for name in names if hasattr(os, name)), _read_write)


# Tried in this order; one that fails before copying anything hands over to the
# next (no copy_file_range between file systems on older kernels, no sendfile
# to files on macOS, neither on some FUSE file systems, ...).  sendfile always
# copies through the page cache, so the copy is read back from memory when it
# is hashed; copy_file_range may clone (btrfs, XFS) or copy on the server
# (NFS 4.2), which is best when the copy is not read back.
_HASHED_METHODS = _methods("sendfile")
_UNHASHED_METHODS = _methods("copy_file_range", "sendfile")


def _kernel_copy(src: int, dst: int, methods: tuple[Callable[[int, int], int], ...],
                 progress: Callable[[int], None] | None) -> int:
    """Copy ``src`` to ``dst`` from their current offsets to the end; return the count.

    ``progress(copied)`` is called after each step.  The end is always
    confirmed with a plain ``read``: ``copy_file_range`` has returned 0 early
    on some file systems, which would otherwise cut the copy short silently.
    """
    remaining = list(methods)
    copied = 0
    while True:
        method = remaining[0]
        try:
            n = method(src, dst)
        except OSError:
            if copied or len(remaining) == 1:
                raise
            remaining.pop(0)
            continue
        if n:
            copied += n
            if progress is not None:
                progress(copied)
        elif method is _read_write:
            return copied
        else:
            remaining = [_read_write]


class _FileHasher:
    """Hashes a file's first bytes as they are reported written, on a worker thread.

    The thread starts only once a second step is reported, so a file of one
    step is hashed inline.
    """

    def __init__(self, fd: int) -> None:
        self.sha = hashlib.sha256()
        self._fd = fd
        self._done = 0  # bytes hashed by the thread, or inline
        self._written = 0
        self._todo: queue.SimpleQueue[int | None] | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._aborted = False

    def advance(self, written: int) -> None:
        """The file now holds ``written`` bytes that will not change."""
        if self._todo is None and self._written:
            self._todo = queue.SimpleQueue()
            self._todo.put(self._written)
            self._thread = threading.Thread(target=self._run, name="mlnb-sha256", daemon=True)
            self._thread.start()
        self._written = written
        if self._todo is not None:
            self._todo.put(written)

    def _hash_to(self, end: int) -> None:
        buf = _POOL.take()
        try:
            with memoryview(buf) as view:
                while self._done < end:
                    n = os.preadv(self._fd, [view[: end - self._done]], self._done)
                    if not n:
                        raise OSError(f"file shrank while it was being hashed, at {self._done}")
                    self.sha.update(view[:n])
                    self._done += n
        finally:
            _POOL.give(buf)

    def _run(self) -> None:
        assert self._todo is not None
        while (end := self._todo.get()) is not None:
            try:
                if self._error is None and not self._aborted:
                    self._hash_to(end)
            except BaseException as err:  # handed to the caller in stop()
                self._error = err

    def stop(self) -> None:
        """Hash what was reported, end the thread and re-raise a hashing error."""
        if self._todo is None:
            self._hash_to(self._written)
            return
        self._end()
        if self._error is not None:
            raise self._error

    def abort(self) -> None:
        """End the thread without hashing what is left."""
        self._aborted = True
        if self._todo is not None:
            self._end()

    def _end(self) -> None:
        assert self._todo is not None and self._thread is not None
        self._todo.put(None)
        self._thread.join()


def copy_file(src: int, dst: int) -> int:
    """Copy file descriptor ``src`` to ``dst`` with the kernel, from their offsets; return the size.

    A clone (``copy_file_range`` on btrfs or XFS) is welcome here.
    """
    return _kernel_copy(src, dst, _UNHASHED_METHODS, None)


def copy_file_hashing(src: int, dst: int) -> tuple[str, int]:
    """Copy file descriptor ``src`` to ``dst`` with the kernel; return ``(sha256, size)``.

    Both descriptors start at their current offsets; ``dst`` must be a new,
    empty regular file opened for reading and writing, which nothing else
    writes.  The digest is SHA-256 of what was written to ``dst``.
    """
    hasher = _FileHasher(dst)
    try:
        size = _kernel_copy(src, dst, _HASHED_METHODS, hasher.advance)
    except BaseException:
        hasher.abort()  # also on KeyboardInterrupt: the worker exits
        raise
    hasher.stop()
    return hasher.sha.hexdigest(), size


def hash_file(fd: int) -> str:
    """SHA-256 of everything in the file ``fd``, read with ``pread`` (the offset stays)."""
    hasher = _FileHasher(fd)
    hasher.advance(os.fstat(fd).st_size)
    hasher.stop()
    return hasher.sha.hexdigest()
