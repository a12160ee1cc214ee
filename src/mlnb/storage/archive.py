"""Deterministic ``.tar.gz`` packing and an unpacker that refuses anything unsafe.

:func:`pack` makes the same bytes from the same tree: members sorted by path,
owner, times and the gzip header zeroed, modes reduced to 0o644/0o755.

:func:`unpack` reads the archive as a stream and extracts the members itself
(never ``TarFile.extract``, so it neither depends on tarfile's ``filter=`` nor
triggers its DeprecationWarning).  Each header is checked before anything is
written: only regular files and directories with relative paths free of
``..`` pass, within ``max_members`` and a total declared size of
``max_bytes``.  The decompressed stream itself is capped as well, at
``max_bytes`` plus 64 KiB and at 64 KiB of headers per member, so headers that
lie about sizes (huge PAX or GNU long-name records, which tarfile reads into
memory) cannot inflate it.  Members are written into a fresh
directory beside the target, which is renamed to the target only when the
whole archive has been read; on any refusal it is deleted.
"""

from __future__ import annotations

import gzip
import os
import shutil
import stat
import tarfile
import uuid
import zlib
from pathlib import Path, PurePosixPath
from typing import IO, Any

from mlnb.errors import InvalidArgument, NotFound, UnsafeArchive

__all__ = ["pack", "unpack"]

_COPY_CHUNK = 2**20
# Decompressed bytes allowed per member on top of its declared size: its
# header, PAX/long-name records and padding.  tarfile reads such records into
# memory, so they must stay small whatever max_bytes is.
_HEADER_ALLOWANCE = 64 * 2**10


# -- pack -----------------------------------------------------------------


def pack(src_dir: str | os.PathLike[str], dest: str | os.PathLike[str]) -> None:
    """Write the tree under ``src_dir`` to the ``.tar.gz`` file ``dest``, deterministically.

    Member names are relative to ``src_dir``.  The archive is written under a
    temporary name beside ``dest`` and renamed at the end.

    Raises
    ------
    InvalidArgument
        ``src_dir`` is not a directory, or holds a symlink or special file.
    """
    src_dir = Path(src_dir)
    dest = Path(dest)
    if not src_dir.is_dir():
        raise InvalidArgument(f"cannot pack {src_dir}: not a directory")
    entries = _scan(src_dir)
    temp = dest.parent / f".{dest.name}.{uuid.uuid4().hex}.tmp"
    try:
        with open(temp, "xb") as raw, gzip.GzipFile(
            filename="", mode="wb", fileobj=raw, compresslevel=6, mtime=0
        ) as gz, tarfile.open(fileobj=gz, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for rel, path, st in entries:
                info = tarfile.TarInfo(rel)
                info.mtime = 0
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                if stat.S_ISDIR(st.st_mode):
                    info.type = tarfile.DIRTYPE
                    info.mode = 0o755
                    tar.addfile(info)
                    continue
                info.mode = 0o755 if st.st_mode & 0o111 else 0o644
                info.size = st.st_size
                with open(path, "rb") as f:
                    tar.addfile(info, f)
        os.replace(temp, dest)
    finally:
        temp.unlink(missing_ok=True)


def _scan(src_dir: Path) -> list[tuple[str, Path, os.stat_result]]:
    """Every directory and file under ``src_dir`` as ``(posix name, path, stat)``, sorted."""
    found = []
    for dirpath, dirnames, filenames in os.walk(src_dir):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            st = path.lstat()
            if not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
                kind = "a symlink" if stat.S_ISLNK(st.st_mode) else "a special file"
                raise InvalidArgument(
                    f"cannot pack {path}: it is {kind}; archives hold only regular "
                    "files and directories"
                )
            found.append((path.relative_to(src_dir).as_posix(), path, st))
    # A parent sorts before its children: its name is their prefix.
    found.sort(key=lambda entry: entry[0])
    return found


# -- unpack -----------------------------------------------------------------


class _TooBigError(Exception):
    """Internal: the decompressed stream passed its cap."""


class _CappedReader:
    """Reads a decompressed stream and raises :class:`_TooBigError` past ``limit`` bytes."""

    def __init__(self, raw: IO[bytes], limit: int) -> None:
        self._raw = raw
        self.limit = limit
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        room = self.limit - self.count + 1
        data = self._raw.read(room if size is None or size < 0 else min(size, room))
        self.count += len(data)
        if self.count > self.limit:
            raise _TooBigError
        return data


def unpack(archive: str | os.PathLike[str], target: str | os.PathLike[str], *,
           max_bytes: int = 20 * 2**30, max_members: int = 100_000) -> list[str]:
    """Extract the ``.tar.gz`` file ``archive`` into the new directory ``target``.

    Parameters
    ----------
    archive
        A gzip-compressed tar file.
    target
        Directory to create; it may exist only if empty.
    max_bytes
        Limit on the total declared size of the members, and on the
        decompressed stream (headers included, plus 64 KiB of slack).
    max_members
        Limit on the number of members.

    Returns
    -------
    list[str]
        The extracted members' relative POSIX paths, in archive order.

    Raises
    ------
    UnsafeArchive
        A member is a link, device or FIFO, has an absolute path or a ``..``
        component, or the archive has too many members or expands past
        ``max_bytes``.  Nothing is left behind.
    InvalidArgument
        The file is not a readable ``.tar.gz`` or ``target`` is not empty.
    NotFound
        ``archive`` does not exist.
    """
    archive = Path(archive)
    target = Path(target)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise InvalidArgument(
            f"cannot unpack into {target}: it exists and is not an empty directory"
        )
    if not archive.is_file():
        raise NotFound(f"archive {archive} does not exist or is not a file")
    target.parent.mkdir(parents=True, exist_ok=True)
    work = target.parent / f".{target.name}.{uuid.uuid4().hex}.unpack"
    work.mkdir()
    done = False
    try:
        with open(archive, "rb") as raw:
            if raw.read(2) != b"\x1f\x8b":
                raise InvalidArgument(f"{archive} is not a gzip file; expected a .tar.gz archive")
            raw.seek(0)
            with gzip.GzipFile(fileobj=raw, mode="rb") as gz:
                names = _extract(archive, _CappedReader(gz, _HEADER_ALLOWANCE), work,
                                 max_bytes, max_members)
        if target.exists():
            target.rmdir()  # empty, checked above
        os.rename(work, target)
        done = True
        return names
    finally:
        if not done:
            shutil.rmtree(work, ignore_errors=True)


def _extract(archive: Path, stream: _CappedReader, work: Path, max_bytes: int,
             max_members: int) -> list[str]:
    names: list[str] = []
    kinds: dict[str, str] = {}  # extracted path -> "file" | "dir"
    declared = 0
    previous = "the first member"
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:  # type: ignore[call-overload]
            for member in tar:
                name = _check_member(archive, member)
                if len(names) >= max_members:
                    raise UnsafeArchive(
                        f"{archive}: member {member.name!r} is past the limit of "
                        f"{max_members} members; refusing to unpack"
                    )
                if member.isreg():
                    declared += member.size
                    if declared > max_bytes:
                        raise UnsafeArchive(
                            f"{archive}: member {member.name!r} ({member.size} bytes) takes "
                            f"the declared size past max_bytes={max_bytes}; refusing to unpack"
                        )
                _check_conflict(archive, member.name, name, "file" if member.isreg() else "dir",
                                kinds)
                # Room for this member's data and the next member's headers,
                # and never more than max_bytes in all (plus one allowance).
                stream.limit = min(stream.count + member.size + _HEADER_ALLOWANCE,
                                   max_bytes + _HEADER_ALLOWANCE)
                _write_member(tar, member, work / name)
                names.append(name)
                previous = f"the member after {member.name!r}"
    except _TooBigError:
        if stream.count > max_bytes:
            why = f"decompresses to more than max_bytes={max_bytes} bytes"
        else:
            why = f"has over {_HEADER_ALLOWANCE} bytes of headers"
        raise UnsafeArchive(
            f"{archive}: {previous} {why} (its headers lie about the sizes: "
            "a gzip bomb or a corrupt archive); refusing to unpack"
        ) from None
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise InvalidArgument(
            f"{archive} is not a valid .tar.gz archive ({err}); re-create or re-download it"
        ) from err
    return names


def _check_member(archive: Path, member: tarfile.TarInfo) -> str:
    """Return the member's normalised relative path, or raise :class:`UnsafeArchive`."""

    def refuse(why: str) -> UnsafeArchive:
        return UnsafeArchive(f"{archive}: member {member.name!r} {why}; refusing to unpack")

    if member.issym():
        raise refuse(f"is a symbolic link (to {member.linkname!r})")
    if member.islnk():
        raise refuse(f"is a hard link (to {member.linkname!r})")
    if member.ischr() or member.isblk():
        raise refuse("is a device file")
    if member.isfifo():
        raise refuse("is a FIFO")
    if not (member.isreg() or member.isdir()):
        raise refuse(f"has unsupported type {member.type!r}")
    raw = member.name
    if "\\" in raw:
        raise refuse("contains a backslash")
    if raw.startswith("/") or (len(raw) > 1 and raw[1] == ":" and raw[0].isalpha()):
        raise refuse("has an absolute path")
    parts = [p for p in PurePosixPath(raw).parts if p != "."]
    if ".." in parts:
        raise refuse("has a '..' component")
    if not parts:
        raise refuse("has an empty path")
    return "/".join(parts)


def _check_conflict(archive: Path, raw: str, name: str, kind: str, kinds: dict[str, str]) -> None:
    """Refuse a member that repeats a path or puts a file where a directory is."""
    parts = name.split("/")
    for i in range(1, len(parts)):
        if kinds.get("/".join(parts[:i])) == "file":
            raise UnsafeArchive(f"{archive}: member {raw!r} lies under a file; refusing to unpack")
    if name in kinds and not (kind == "dir" == kinds[name]):
        raise UnsafeArchive(f"{archive}: member {raw!r} appears twice; refusing to unpack")
    kinds[name] = kind
    for i in range(1, len(parts)):
        kinds.setdefault("/".join(parts[:i]), "dir")


def _write_member(tar: tarfile.TarFile, member: tarfile.TarInfo, path: Path) -> None:
    if member.isdir():
        path.mkdir(parents=True, exist_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = 0o755 if member.mode & 0o111 else 0o644
    # O_EXCL and O_NOFOLLOW: only ever a new regular file inside our own directory.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), mode)
    src: Any = tar.extractfile(member)
    with open(fd, "wb") as dst:
        if src is not None:
            while chunk := src.read(_COPY_CHUNK):
                dst.write(chunk)
