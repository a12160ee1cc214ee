"""Where mlnb keeps bytes: a content-addressed blob store and safe archives.

:class:`BlobStore` stores files under the SHA-256 of their bytes on a local
disk or any fsspec URL (``s3://bucket/prefix``), publishes them atomically and
verifies them on every read.  :func:`pack` and :func:`unpack` write
deterministic ``.tar.gz`` files and extract them without ever writing outside
the target.
"""

from __future__ import annotations

from mlnb.storage.archive import pack, unpack
from mlnb.storage.blobs import Blob, BlobInfo, BlobStore, TempInfo

__all__ = ["Blob", "BlobInfo", "BlobStore", "TempInfo", "pack", "unpack"]
