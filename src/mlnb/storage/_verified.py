"""Verified reads of local blob files, remembering which files were already verified.

Verifying a blob on every read costs a full SHA-256 pass.  Like git's index,
this module remembers, per process and in memory only, the metadata of each
local blob file whose hash was checked: ``(st_dev, st_ino, st_size,
st_mtime_ns, st_ctime_ns)``.  A later read that finds the same metadata before
and after it copied the bytes skips the hash.  Writing to a file, truncating
it, replacing it or changing its mode all move its ctime (and a replacement
its inode), so any of them makes the next read hash again.

What this cannot see: a change within the same timestamp tick as the metadata
that was remembered (the "racy git" problem), and media corruption that does
not touch the metadata.  For the first, a file is remembered only if its ctime
and mtime were at least :data:`_SETTLE_NS` old when its verifying read began,
which covers coarse clocks and file systems with 1-2 s timestamps (ext3, FAT,
HFS+); a blob published moments ago is therefore hashed on each read until it
has settled, and one this process has just written is not remembered at all.
The second is left to ``mlnb fsck``: :func:`hash_blob`, behind
:meth:`~mlnb.storage.BlobStore.verify`, always hashes, and forgets a file that
fails.  Tests: ``tests/storage/test_storage_verified.py``.
"""

from __future__ import annotations

import hashlib
import os
import time
from typing import Any

from mlnb.storage._hashcopy import copy_file, copy_file_hashing, hash_file, hash_stream

__all__ = ["clear", "copy_blob", "forget", "hash_blob", "read_blob"]

# A file changed this recently may change again without moving its timestamps.
_SETTLE_NS = 2_000_000_000
# Forget everything past this many files: re-hashing is the only cost.
_MAX_ENTRIES = 10_000

# path -> metadata.  Plain dict operations are atomic in CPython, and clearing
# instead of evicting one by one needs no lock (safe after fork, too).
_entries: dict[str, tuple[int, int, int, int, int]] = {}


def _key(st: os.stat_result) -> tuple[int, int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _is_verified(path: str, *stats: os.stat_result) -> bool:
    """Whether ``path`` was verified with the metadata in each of ``stats``."""
    known = _entries.get(path)
    return known is not None and all(_key(st) == known for st in stats)


def _record(path: str, sound: bool, before: os.stat_result, after: os.stat_result,
            started_ns: int) -> None:
    """After hashing ``path`` between two ``fstat`` s: remember it if it was sound.

    ``started_ns`` is ``time.time_ns()`` taken before ``before``.  Nothing is
    remembered if the file changed during the read, or changed too recently.
    """
    if not sound or _key(before) != _key(after):
        forget(path)
        return
    if max(before.st_mtime_ns, before.st_ctime_ns) > started_ns - _SETTLE_NS:
        return
    if len(_entries) >= _MAX_ENTRIES:
        _entries.clear()
    _entries[path] = _key(before)


def copy_blob(path: str, src: int, dst: int, sha256: str) -> tuple[str, int]:
    """Copy the blob file ``path``, open as ``src``, to ``dst``; return the copy's digest, size.

    ``dst`` is a new file open for reading and writing.  The copy is hashed
    unless the blob was verified before and its metadata stayed the same until
    the copy was done; then ``sha256`` itself is returned.
    """
    started = time.time_ns()
    before = os.fstat(src)
    if _is_verified(path, before):
        size = copy_file(src, dst)
        after = os.fstat(src)
        if _is_verified(path, after):
            return sha256, size
        digest = hash_file(dst)  # the blob changed during the copy: check the copy
    else:
        digest, size = copy_file_hashing(src, dst)
        after = os.fstat(src)
    _record(path, digest == sha256, before, after, started)
    return digest, size


def read_blob(path: str, src: Any, sha256: str) -> tuple[str, bytes]:
    """Read the blob file ``path``, open as ``src``; return its digest and bytes, as copy_blob."""
    started = time.time_ns()
    before = os.fstat(src.fileno())
    data = src.read()
    after = os.fstat(src.fileno())
    if _is_verified(path, before, after):
        return sha256, data
    digest = hashlib.sha256(data).hexdigest()
    _record(path, digest == sha256, before, after, started)
    return digest, data


def hash_blob(path: str, src: Any, sha256: str) -> tuple[str, int]:
    """Hash the blob file ``path``, open as ``src``, whatever is remembered; return digest, size."""
    started = time.time_ns()
    before = os.fstat(src.fileno())
    digest, size = hash_stream(src)
    _record(path, digest == sha256, before, os.fstat(src.fileno()), started)
    return digest, size


def forget(path: str) -> None:
    """Make the next read of ``path`` hash it again."""
    _entries.pop(path, None)


def clear() -> None:
    """Forget every file (the next read of each is hashed)."""
    _entries.clear()
