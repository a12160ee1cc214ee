"""Small helpers that paper over differences between fsspec backends."""

from __future__ import annotations

from contextlib import suppress
from datetime import datetime
from typing import Any

__all__ = ["abandon", "mtime_of"]


def abandon(f: Any) -> None:
    """Throw away a half-written fsspec file without committing it."""
    discard = getattr(f, "discard", None)
    if discard is None:
        with suppress(Exception):
            f.close()
        return
    try:
        discard()  # s3fs: aborts the multipart upload
    finally:
        # Keep close() (also the one in __del__) from committing the buffer.
        # Files that are BytesIO (memory://) have a read-only `closed`.
        with suppress(AttributeError):
            f.closed = True


def mtime_of(info: dict[str, Any]) -> float | None:
    """Modification time from an fsspec info dict, whatever the backend calls it."""
    for key in ("mtime", "LastModified", "last_modified", "created", "updated"):
        value = info.get(key)
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, datetime):
            return value.timestamp()
        if isinstance(value, str):
            with suppress(ValueError):
                return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    return None
