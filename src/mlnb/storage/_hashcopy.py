"""Copy a stream while hashing it with SHA-256, the hashing overlapped with the I/O.

A single thread that reads, hashes and writes each buffer in turn runs at about
half the speed of SHA-256 alone, because hashing and copying take about as long
as each other.  :func:`copy_hashing` moves the hashing to a worker thread:
``hashlib`` releases the GIL on buffers over 2 KiB and so do file reads and
writes, so the calling thread reads buffer *n + 1* and writes buffer *n* while
the worker hashes buffer *n*.  A small pool of large buffers bounds the memory
(``_NBUF * _CHUNK``) and makes the reader wait when the hasher falls behind.

The digest is computed from the very buffers that were written, so it always
describes the bytes at the destination, even if the source changes meanwhile.
``benchmarks/storage_throughput.py`` measures the result against plain hashing.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from typing import Any

__all__ = ["CHUNK", "copy_hashing", "fill", "hash_stream", "write_all"]

#: Size of one buffer; large enough that the per-buffer overhead is negligible.
CHUNK = 8 * 2**20
# Buffers in flight: one being read into, one being written, two being hashed.
_NBUF = 4


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

    def __init__(self, nbuf: int, chunk: int) -> None:
        self.sha = hashlib.sha256()
        self.free: queue.SimpleQueue[bytearray] = queue.SimpleQueue()
        self._todo: queue.SimpleQueue[tuple[bytearray, int] | None] = queue.SimpleQueue()
        self._error: BaseException | None = None
        for _ in range(nbuf):
            # calloc'ed by CPython: pages cost nothing until a read touches them.
            self.free.put(bytearray(chunk))
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


def copy_hashing(src: Any, dst: Any, *, chunk: int = CHUNK) -> tuple[str, int]:
    """Copy ``src`` to ``dst`` in one pass; return ``(sha256 hex digest, size)``.

    ``src`` needs ``readinto`` or ``read``; ``dst`` needs ``write``.  A stream
    shorter than one ``chunk`` is handled inline, without a thread.
    """
    first = bytearray(chunk)
    n = fill(src, memoryview(first))
    if n < chunk:
        view = memoryview(first)[:n]
        write_all(dst, view)
        return hashlib.sha256(view).hexdigest(), n

    hasher = _Hasher(_NBUF - 1, chunk)
    size = 0
    buf = first
    try:
        while n:
            hasher.submit(buf, n)
            write_all(dst, memoryview(buf)[:n])
            size += n
            if n < chunk:
                break
            buf = hasher.free.get()
            n = fill(src, memoryview(buf))
    finally:
        # Also on KeyboardInterrupt: the worker drains its queue and exits.
        hasher.stop()
    return hasher.sha.hexdigest(), size


class _NullSink:
    """A writable that drops everything."""

    def write(self, data: memoryview) -> int:
        return len(data)


def hash_stream(src: Any) -> tuple[str, int]:
    """Read ``src`` to the end; return ``(sha256 hex digest, size)``."""
    return copy_hashing(src, _NullSink())
