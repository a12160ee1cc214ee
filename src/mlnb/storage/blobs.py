"""Content-addressed blob store over fsspec: a local directory, ``memory://`` or ``s3://``.

Layout under the root URL::

    objects/<sha256[:2]>/<sha256>   published blobs, named by the hash of their bytes
    tmp/<uuid>                      uploads in progress, or left over by a crash

Writing (:meth:`BlobStore.put_file`) takes one of three paths:

* a small file (under :data:`SMALL_FILE`), and every :meth:`~BlobStore.put_bytes`:
  the bytes are read into memory once and hashed, ``hold(sha256)`` is called,
  and if a blob of that size is already published nothing is written at all
  (identical files are stored once); otherwise they go to ``tmp/<uuid>`` and
  are published as below;
* a larger file on a local store: the kernel copies it to ``tmp/<uuid>``
  (``sendfile``) while a second thread hashes the temporary file behind the
  copy (:func:`~mlnb.storage._hashcopy.copy_file_hashing`), so the hash
  always describes the bytes that were stored;
* anything else (object stores, pipes): one pass in user space, each buffer
  hashed on a worker thread while it is written to ``tmp/<uuid>``.

Then ``hold(sha256)`` lets the registry protect the blob from garbage
collection, and only then is the final name looked at: if a blob of the same
size is already published the temporary copy is dropped, otherwise it is
published atomically:

* local disk: ``os.replace`` of the temporary file, which sits on the same file
  system, after it was made read-only;
* object stores (S3, memory, ...): the upload goes to the ``tmp/`` key and is
  then moved with ``fs.mv``, which on S3 is a server-side CopyObject (a managed
  multipart copy past 5 GB) and a delete.  S3 makes an object visible only when
  its PUT, copy or multipart upload completes, so a partly written final key
  can never be seen.  The other option, hashing the local file first and then
  putting the final key directly, reads the file twice and could store bytes
  that differ from the hash if the file changed in between; the copy costs
  time on the server instead, never a second pass over the local bytes.

A source file whose size, mtime or ctime differs after it was read is refused
with :class:`~mlnb.errors.InvalidArgument` (a checkpoint still being written);
a change within one timestamp tick can go unseen, but the stored bytes always
match their hash.

Every read checks the bytes against their hash before handing them over:
:meth:`BlobStore.get_file` writes a temporary file beside ``dest`` (on a local
store by kernel copy, hashing the copy behind it) and renames it into place only
after the check.  On a local store each process remembers the blobs it has
verified, with their inode, size, mtime and ctime
(:mod:`mlnb.storage._verified`); a later read of an unchanged file skips the
hash, while any write, truncation, chmod or replacement changes the ctime and
brings the hash back.  So a blob is verified on its first read in each process
and whenever its metadata changes, as git's index does; media corruption that
leaves the metadata alone is found by ``mlnb fsck``, whose
:meth:`BlobStore.verify` always hashes.  Blobs are not fsync'ed: after a power
loss a published blob may be truncated, which verified reads report as
:class:`~mlnb.errors.IntegrityError` and ``mlnb fsck`` repairs.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from mlnb.errors import IntegrityError, InvalidArgument, MissingDependency, NotFound
from mlnb.storage import _verified
from mlnb.storage._fsutil import abandon, mtime_of
from mlnb.storage._hashcopy import copy_file_hashing, copy_hashing, hash_stream, write_all

__all__ = ["Blob", "BlobInfo", "BlobStore", "TempInfo"]

#: Files below this size are read into memory once, and not copied at all when
#: their blob exists; larger ones are copied while they are hashed.
SMALL_FILE = 8 * 2**20

_SHA256 = re.compile(r"[0-9a-f]{64}")
_TEMP_NAME = re.compile(r"[0-9a-f]{32}")
# fsspec protocol -> (package to install, mlnb extra that installs it)
_BACKEND_PACKAGES = {"s3": ("s3fs", "s3"), "s3a": ("s3fs", "s3")}


@dataclass(frozen=True)
class Blob:
    """A stored blob: the SHA-256 of its bytes (its name) and its size."""

    sha256: str
    size: int


@dataclass(frozen=True)
class BlobInfo:
    """A published blob as listed by :meth:`BlobStore.iter_blobs`."""

    sha256: str
    size: int
    mtime: float | None


@dataclass(frozen=True)
class TempInfo:
    """A temporary upload, in progress or left by a crash (see :meth:`BlobStore.iter_temp`)."""

    path: str
    size: int
    mtime: float | None


def check_sha256(sha256: object) -> str:
    """Return ``sha256`` if it is 64 lowercase hex digits, else raise :class:`InvalidArgument`."""
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
        raise InvalidArgument(
            f"not a sha256 digest: {sha256!r}; expected 64 lowercase hex characters"
        )
    return sha256


class BlobStore:
    """Content-addressed blobs under one root URL, written atomically and read verified.

    Parameters
    ----------
    url
        A local path or any fsspec URL: ``"/abs/dir"``, ``"file:///x"``,
        ``"memory://bucket/x"``, ``"s3://bucket/prefix"``.
    block_size
        Upload part size for object stores (s3fs uploads in parts above twice
        this size); ``None`` keeps the backend's default.
    **storage_options
        Passed to the fsspec file system: ``key``, ``secret``,
        ``endpoint_url``, ``client_kwargs``, ...

    Raises
    ------
    MissingDependency
        The URL's protocol needs a package that is not installed (``s3fs``).
    InvalidArgument
        The protocol is unknown.
    """

    def __init__(self, url: str | os.PathLike[str], *, block_size: int | None = None,
                 **storage_options: Any) -> None:
        url = os.fspath(url)
        protocol = fsspec.core.split_protocol(url)[0] or "file"
        try:
            fs, root = fsspec.core.url_to_fs(url, **storage_options)
        except ImportError as err:
            if protocol in _BACKEND_PACKAGES:
                package, extra = _BACKEND_PACKAGES[protocol]
                raise MissingDependency(package, extra, f"use {protocol}:// storage") from err
            raise InvalidArgument(f"cannot use storage {url!r}: {err}") from err
        except ValueError as err:
            raise InvalidArgument(
                f"cannot use storage {url!r}: {err}; use a local path or an fsspec URL "
                "such as s3://bucket/prefix"
            ) from err
        self.fs: fsspec.AbstractFileSystem = fs
        self.root: str = root.rstrip("/") or "/"
        self.url: str = fs.unstrip_protocol(self.root)
        self._local = isinstance(fs, LocalFileSystem)
        # Kernel copies are read back with preadv, which Windows lacks.
        self._copy_files = self._local and hasattr(os, "preadv")
        self._block_size = block_size

    def __repr__(self) -> str:
        return f"BlobStore({self.url!r})"

    # -- paths -------------------------------------------------------------

    def _join(self, *parts: str) -> str:
        return "/".join((self.root.rstrip("/"), *parts))

    def _object_path(self, sha256: str) -> str:
        return self._join("objects", sha256[:2], sha256)

    def _label(self, sha256: str, label: str) -> str:
        return label or f"blob {sha256[:12]}"

    # -- writing -----------------------------------------------------------

    def put_file(self, path: str | os.PathLike[str], *,
                 hold: Callable[[str], object] | None = None) -> Blob:
        """Store a local file; return its :class:`Blob`.

        Parameters
        ----------
        path
            The local file to store.
        hold
            Called with the SHA-256 once the bytes are hashed and before the
            final name is looked at or created, so the caller can protect the
            blob from garbage collection.  If it raises, nothing is published.

        Raises
        ------
        InvalidArgument
            The file changed while it was being stored.
        """
        with open(path, "rb", buffering=0) as src:
            before = os.fstat(src.fileno())
            regular = stat.S_ISREG(before.st_mode)
            if regular and before.st_size < SMALL_FILE:
                data = _read_small(src)
                _check_unchanged(path, src.fileno(), before)
                return self._put_in_memory(memoryview(data), hold)

            def write(dst: Any) -> tuple[str, int]:
                if regular and self._copy_files:
                    digest, size = copy_file_hashing(src.fileno(), dst.fileno())
                else:
                    digest, size = copy_hashing(src, dst)
                if regular:
                    _check_unchanged(path, src.fileno(), before)
                return digest, size

            return self._put(write, hold)

    def put_bytes(self, data: bytes, *, hold: Callable[[str], object] | None = None) -> Blob:
        """Store ``data``; return its :class:`Blob` (``hold`` as in :meth:`put_file`)."""
        return self._put_in_memory(memoryview(data).cast("B"), hold)

    def _put_in_memory(self, data: memoryview, hold: Callable[[str], object] | None) -> Blob:
        """Store bytes already in memory; write nothing if their blob is published."""
        sha256, size = hashlib.sha256(data).hexdigest(), len(data)
        if hold is not None:
            hold(sha256)
        # Held first, so gc cannot delete the blob that is found here.
        if self._published_size(sha256) == size:
            return Blob(sha256, size)

        def write(dst: Any) -> tuple[str, int]:
            write_all(dst, data)
            return sha256, size

        return self._put(write, None)

    def _put(self, write: Callable[[Any], tuple[str, int]],
             hold: Callable[[str], object] | None) -> Blob:
        """Write a temporary file with ``write``, hold its hash, publish it."""
        temp = self._join("tmp", uuid.uuid4().hex)
        pending = True
        try:
            with self._open_temp(temp) as dst:
                sha256, size = write(dst)
            if hold is not None:
                hold(sha256)
            self._publish(temp, sha256, size)
            pending = False
        finally:
            if pending:
                self._remove_quietly(temp)
        return Blob(sha256, size)

    @contextmanager
    def _open_temp(self, temp: str) -> Iterator[Any]:
        if self._local:
            os.makedirs(os.path.dirname(temp), exist_ok=True)
            # Readable too: copy_file_hashing hashes what landed in it.
            fd = os.open(temp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
            with open(fd, "r+b", buffering=0) as dst:
                yield dst
            return
        kwargs = {"block_size": self._block_size} if self._block_size else {}
        try:
            dst = self.fs.open(temp, "wb", **kwargs)
            try:
                yield dst
            except BaseException:
                abandon(dst)
                raise
            dst.close()
        except FileNotFoundError as err:  # s3fs: the bucket does not exist
            raise NotFound(
                f"cannot write to {self.url}: {err}; create the bucket or fix the "
                "storage URL"
            ) from err

    def _published_size(self, sha256: str) -> int | None:
        """Size of the published blob ``sha256``, or ``None`` if there is none."""
        final = self._object_path(sha256)
        try:
            if self._local:
                return os.stat(final).st_size
            self.fs.invalidate_cache(final)
            return int(self.fs.info(final)["size"])
        except FileNotFoundError:
            return None

    def _publish(self, temp: str, sha256: str, size: int) -> None:
        final = self._object_path(sha256)
        existing = self._published_size(sha256)
        if existing == size:
            self._remove_quietly(temp)
            return
        # A different size means a damaged copy: the new bytes replace it.
        if self._local:
            os.makedirs(os.path.dirname(final), exist_ok=True)
            # Strip the write bits the umask left, keep its read bits.
            os.chmod(temp, stat.S_IMODE(os.stat(temp).st_mode) & 0o444)
            os.replace(temp, final)
        else:
            self.fs.mv(temp, final)

    def _remove_quietly(self, path: str) -> None:
        with suppress(OSError):
            if self._local:
                os.unlink(path)
            else:
                self.fs.rm_file(path)

    # -- reading -----------------------------------------------------------

    def exists(self, sha256: str) -> bool:
        """Whether a blob is published under ``sha256`` (its bytes are not checked)."""
        final = self._object_path(check_sha256(sha256))
        if self._local:
            return os.path.isfile(final)
        self.fs.invalidate_cache(final)
        return bool(self.fs.isfile(final))

    @contextmanager
    def _open_blob(self, sha256: str, label: str) -> Iterator[Any]:
        final = self._object_path(check_sha256(sha256))
        try:
            if self._local:
                src = open(final, "rb", buffering=0)
            else:
                self.fs.invalidate_cache(final)
                kwargs = {"block_size": self._block_size} if self._block_size else {}
                src = self.fs.open(final, "rb", **kwargs)
        except (FileNotFoundError, IsADirectoryError) as err:
            raise NotFound(
                f"{self._label(sha256, label)}: blob {sha256[:12]}… is missing from "
                f"{self.url}; run `mlnb fsck` to list what is damaged"
            ) from err
        with src:
            yield src

    def _check(self, sha256: str, actual: str, size: int | None, actual_size: int,
               label: str) -> None:
        problems = []
        if actual != sha256:
            problems.append(f"expected sha256 {sha256[:12]}…, got {actual[:12]}…")
        if size is not None and actual_size != size:
            problems.append(f"expected {size} bytes, got {actual_size}")
        if problems:
            raise IntegrityError(
                f"{self._label(sha256, label)}: stored blob is corrupt "
                f"({'; '.join(problems)}) in {self.url}; run `mlnb fsck` to find and "
                "repair damaged blobs"
            )

    def get_file(self, sha256: str, dest: str | os.PathLike[str], *, size: int | None = None,
                 label: str = "") -> Path:
        """Copy a blob to the local path ``dest`` after checking its hash (and ``size``).

        The bytes go to a temporary file beside ``dest``, which replaces
        ``dest`` only once they match; on a mismatch nothing is written.

        Parameters
        ----------
        sha256
            The blob to read.
        dest
            Local file to create or replace; its parent directory is created.
        size
            Expected size in bytes, checked too if given.
        label
            What the blob is to the user (``"mnist-mlp:3 file weights.pt"``),
            named in error messages.

        Raises
        ------
        NotFound
            No blob is stored under ``sha256``.
        IntegrityError
            The stored bytes do not match ``sha256`` or ``size``.
        InvalidArgument
            ``sha256`` is not a SHA-256 hex digest.
        """
        dest = Path(dest)
        with self._open_blob(sha256, label) as src:
            dest.parent.mkdir(parents=True, exist_ok=True)
            temp = dest.parent / f".{dest.name}.{uuid.uuid4().hex}.tmp"
            try:
                fd = os.open(temp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
                with open(fd, "r+b", buffering=0) as dst:
                    if self._copy_files:
                        actual, actual_size = _verified.copy_blob(
                            self._object_path(sha256), src.fileno(), dst.fileno(), sha256)
                    else:
                        actual, actual_size = copy_hashing(src, dst)
                self._check(sha256, actual, size, actual_size, label)
                os.replace(temp, dest)
            finally:
                with suppress(FileNotFoundError):
                    os.unlink(temp)
        return dest

    def read_bytes(self, sha256: str, *, size: int | None = None, label: str = "") -> bytes:
        """Return a blob's bytes after checking its hash (and ``size``); raises as get_file."""
        with self._open_blob(sha256, label) as src:
            if self._local:
                actual, data = _verified.read_blob(self._object_path(sha256), src, sha256)
            else:
                data = src.read()
                actual = hashlib.sha256(data).hexdigest()
        self._check(sha256, actual, size, len(data), label)
        return data

    def verify(self, sha256: str, *, size: int | None = None) -> str | None:
        """Check one stored blob; return ``None`` if it is sound, else a short problem.

        Always reads and hashes the whole blob, even one that this process has
        verified before: this is how ``mlnb fsck`` finds damage that left the
        file's metadata alone.  The problem is ``"missing"``, ``"size <actual>
        != <expected>"`` (only when ``size`` is given) or ``"hash mismatch"``.
        """
        try:
            with self._open_blob(sha256, "") as src:
                if self._local:
                    actual, actual_size = _verified.hash_blob(
                        self._object_path(sha256), src, sha256)
                else:
                    actual, actual_size = hash_stream(src)
        except NotFound:
            return "missing"
        if size is not None and actual_size != size:
            return f"size {actual_size} != {size}"
        if actual != sha256:
            return "hash mismatch"
        return None

    # -- listing and deleting ------------------------------------------------

    def _walk(self, top: str) -> Iterator[tuple[str, int, float | None]]:
        """Yield ``(path, size, mtime)`` of every file under ``top``."""
        if self._local:
            for dirpath, _dirs, files in os.walk(top):
                for name in files:
                    path = os.path.join(dirpath, name)
                    with suppress(FileNotFoundError):  # deleted while listing
                        st = os.stat(path)
                        yield path, st.st_size, st.st_mtime
            return
        self.fs.invalidate_cache(top)
        try:
            found = self.fs.find(top, detail=True)
        except FileNotFoundError:
            return
        for path, info in found.items():
            if info.get("type", "file") == "file":
                yield path, int(info.get("size") or 0), mtime_of(info)

    def iter_blobs(self) -> Iterator[BlobInfo]:
        """List every published blob (names outside the layout are skipped)."""
        for path, size, mtime in self._walk(self._join("objects")):
            parent, _, name = path.rpartition("/")
            if _SHA256.fullmatch(name) and parent.endswith("/" + name[:2]):
                yield BlobInfo(name, size, mtime)

    def iter_temp(self) -> Iterator[TempInfo]:
        """List temporary uploads: those in progress and those a crash left behind."""
        for path, size, mtime in self._walk(self._join("tmp")):
            if _TEMP_NAME.fullmatch(path.rpartition("/")[2]):
                yield TempInfo(path, size, mtime)

    def delete(self, sha256s: Iterable[str]) -> int:
        """Delete blobs; return how many existed.  Missing ones are ignored.

        On object stores the deletes are sent in batches (S3 DeleteObjects).
        """
        wanted = sorted({check_sha256(s) for s in sha256s})
        if self._local:
            count = 0
            for sha256 in wanted:
                _verified.forget(self._object_path(sha256))
                with suppress(FileNotFoundError):
                    os.unlink(self._object_path(sha256))
                    count += 1
            return count
        # One listing per prefix tells which exist, so the count is right even
        # though a bulk delete of a missing key succeeds silently.
        existing: list[str] = []
        by_prefix: dict[str, list[str]] = {}
        for sha256 in wanted:
            by_prefix.setdefault(sha256[:2], []).append(sha256)
        for prefix, shas in by_prefix.items():
            folder = self._join("objects", prefix)
            self.fs.invalidate_cache(folder)
            try:
                names = {p.rpartition("/")[2] for p in self.fs.ls(folder, detail=False)}
            except FileNotFoundError:
                continue
            existing += [self._object_path(s) for s in shas if s in names]
        if existing:
            self.fs.rm(existing)
        return len(existing)

    def delete_temp(self, paths: Iterable[str | TempInfo]) -> int:
        """Delete temporary uploads listed by :meth:`iter_temp`; return how many existed."""
        temp_root = self._join("tmp")
        checked = []
        for item in paths:
            path = item.path if isinstance(item, TempInfo) else item
            parent, _, name = str(path).rpartition("/")
            if parent != temp_root or not _TEMP_NAME.fullmatch(name):
                raise InvalidArgument(
                    f"not a temporary upload of {self.url}: {path!r}; pass paths from "
                    "iter_temp()"
                )
            checked.append(str(path))
        if self._local:
            count = 0
            for path in checked:
                with suppress(FileNotFoundError):
                    os.unlink(path)
                    count += 1
            return count
        present = {path for path, _size, _mtime in self._walk(temp_root)}
        existing = sorted(present.intersection(checked))
        if existing:
            self.fs.rm(existing)
        return len(existing)


def _read_small(src: Any) -> bytes:
    """Read a small file to its end (a function of its own so tests can change the file)."""
    return src.readall()


def _check_unchanged(path: str | os.PathLike[str], fd: int, before: os.stat_result) -> None:
    """Raise :class:`InvalidArgument` if the file ``fd`` changed since ``before``."""
    after = os.fstat(fd)
    if (after.st_size, after.st_mtime_ns, after.st_ctime_ns) != (
            before.st_size, before.st_mtime_ns, before.st_ctime_ns):
        raise InvalidArgument(
            f"file changed while it was being stored: {os.fspath(path)!r}; store it again "
            "once nothing is writing to it"
        )
