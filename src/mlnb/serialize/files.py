"""The ``files`` format: a file or a directory stored as it is.

Staging never copies: it lists the original paths, and storage hashes them
while it copies them into blobs.  A directory is walked without following
symlinks; a symlink or special file inside it is refused rather than silently
followed or skipped, because either would store something other than what the
user sees in the directory.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from mlnb.errors import InvalidArgument, NotFound

__all__ = ["as_path", "load_files", "stage_files"]

FORMAT_VERSION = 1


def _looks_like_path(text: str) -> bool:
    return "/" in text or "\\" in text or text.startswith((".", "~"))


def as_path(obj: object) -> Path | None:
    """Return *obj* as an existing local path, or None when it is not path-like.

    A ``str`` or :class:`os.PathLike` always means a path: mlnb never pickles a
    plain string, so a string that names nothing on disk is an error rather
    than a silently stored text.

    Raises
    ------
    InvalidArgument
        *obj* is an empty string.
    NotFound
        *obj* is a string or path that does not exist.
    """
    if not isinstance(obj, (str, os.PathLike)):
        return None
    raw = os.fsdecode(os.fspath(obj))
    if not raw:
        # Path("") is ".", which would store the current directory.
        raise InvalidArgument("cannot store an empty path; pass a file or directory path")
    path = Path(os.path.expanduser(raw))
    if os.path.exists(path):
        return Path(os.path.abspath(path))
    if os.path.islink(path):
        raise NotFound(f"{raw!r} is a symlink to a path that does not exist: {os.readlink(path)!r}")
    if isinstance(obj, str) and not _looks_like_path(raw):
        raise NotFound(
            f"{raw!r} is not an existing file or directory (a string is always taken "
            "as a path and never pickled); check the path, or wrap the text in "
            "another object, e.g. {'text': ...}, to store it with pickle"
        )
    raise NotFound(f"path does not exist: {raw!r}; check the spelling and the working directory")


def _regular_files(root: Path) -> list[tuple[str, Path]]:
    """Every regular file under *root* as (posix relative path, absolute path)."""
    found: list[tuple[str, Path]] = []
    refused: list[str] = []
    pending = [root]
    while pending:
        folder = pending.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError as err:
            raise InvalidArgument(f"cannot read directory {str(folder)!r}: {err}") from err
        for entry in entries:
            full = Path(entry.path)
            rel = full.relative_to(root).as_posix()
            if entry.is_symlink():
                refused.append(f"{rel} (symlink)")
            elif entry.is_dir(follow_symlinks=False):
                pending.append(full)
            elif entry.is_file(follow_symlinks=False):
                found.append((rel, full))
            else:
                refused.append(f"{rel} (special file)")
    if refused:
        shown = ", ".join(sorted(refused)[:10])
        more = f" and {len(refused) - 10} more" if len(refused) > 10 else ""
        raise InvalidArgument(
            f"directory {str(root)!r} holds entries mlnb will not store: {shown}{more}; "
            "replace symlinks with the files they point to, or remove them"
        )
    for rel, _ in found:
        try:
            rel.encode("utf-8")
        except UnicodeEncodeError as err:
            raise InvalidArgument(
                f"file name {rel!r} in {str(root)!r} is not valid UTF-8; rename it"
            ) from err
    return sorted(found)


def stage_files(path: Path) -> tuple[list[tuple[str, Path]], dict[str, Any]]:
    """List the files to store for *path* (an existing file or directory), without copying.

    Returns
    -------
    files, metadata
        ``files`` as (relative posix path, absolute source path), sorted;
        ``metadata`` records whether the version is one file or a directory.

    Raises
    ------
    InvalidArgument
        The directory is empty or holds symlinks or special files, or *path*
        is neither a regular file nor a directory.
    """
    mode = os.stat(path).st_mode  # follows a symlink the user named directly
    if stat.S_ISREG(mode):
        return [(path.name, path)], {
            "format_version": FORMAT_VERSION,
            "layout": "file",
            "name": path.name,
        }
    if not stat.S_ISDIR(mode):
        raise InvalidArgument(
            f"{str(path)!r} is neither a regular file nor a directory; "
            "pass a file or a directory of files"
        )
    files = _regular_files(path)
    if not files:
        raise InvalidArgument(f"directory {str(path)!r} holds no files; there is nothing to store")
    return files, {"format_version": FORMAT_VERSION, "layout": "directory", "count": len(files)}


def load_files(root: Path, metadata: dict[str, Any]) -> Path:
    """Return the path a ``files`` version materialised at *root* stands for.

    A one-file version gives the path of that file, a directory version the
    directory itself.

    Raises
    ------
    NotFound
        The file or directory is not there.
    InvalidArgument
        The metadata names an unsafe file name.
    """
    root = Path(root)
    if metadata.get("layout") == "file":
        if root.is_file():
            return root
        name = metadata.get("name")
        if not isinstance(name, str) or name in ("", ".", "..") or "/" in name or "\\" in name:
            raise InvalidArgument(f"version metadata names an unsafe file name: {name!r}")
        target = root / name
        if not target.is_file():
            raise NotFound(f"file {name!r} is missing from {str(root)!r}")
        return target
    if not root.is_dir():
        raise NotFound(f"directory {str(root)!r} does not exist")
    return root
