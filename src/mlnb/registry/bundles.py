"""Export bundles: one version, its files and its metadata in a portable ``.tar.gz``.

Layout inside the archive::

    mlnb-bundle.json     {"schema": 1, "name", "version", "format", "metrics", "params",
                          "tags", "description", "metadata", "files": [...], ...}
    files/<path>         each file of the version

Packing is deterministic (the same version gives the same bytes); unpacking goes
through :func:`mlnb.storage.archive.unpack`, which refuses anything that could
write outside its target.  On import every file is checked against the hash
the bundle records.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlnb.errors import IntegrityError, InvalidArgument
from mlnb.refs import check_name
from mlnb.registry.records import Version

if TYPE_CHECKING:
    from mlnb.registry.client import Registry

__all__ = ["BUNDLE_SCHEMA", "export", "import_bundle"]

BUNDLE_SCHEMA = 1
_INDEX = "mlnb-bundle.json"


def export(reg: Registry, ref: str, path: Path) -> Path:
    """Write *ref* to the bundle *path* (``.tar.gz``) and return the path."""
    from mlnb import __version__
    from mlnb.storage.archive import pack

    v = reg.get(ref)
    with tempfile.TemporaryDirectory(prefix="mlnb-export-") as work:
        root = Path(work)
        reg.checkout(v.ref, root / "files")
        index = {
            "schema": BUNDLE_SCHEMA,
            "name": v.name,
            "version": v.version,
            "format": v.format,
            "description": v.description,
            "metrics": dict(v.metrics),
            "params": dict(v.params),
            "tags": dict(v.tags),
            "metadata": dict(v.metadata),
            "files": [f.__dict__ for f in v.files],
            "created_by": v.created_by,
            "created_at": v.created_at.isoformat(),
            "mlnb_version": __version__,
        }
        (root / _INDEX).write_text(json.dumps(index, indent=1, sort_keys=True))
        path.parent.mkdir(parents=True, exist_ok=True)
        pack(root, path)
    return path


def _read_index(root: Path) -> dict[str, Any]:
    try:
        index = json.loads((root / _INDEX).read_text())
    except (OSError, ValueError) as err:
        raise InvalidArgument(f"not an mlnb bundle: {_INDEX} is missing or unreadable ({err})") from err
    if not isinstance(index, dict) or index.get("schema") != BUNDLE_SCHEMA:
        raise InvalidArgument(
            f"unsupported bundle schema {index.get('schema') if isinstance(index, dict) else index!r}; "
            f"this mlnb reads schema {BUNDLE_SCHEMA}"
        )
    for key in ("name", "version", "format", "files", "metadata"):
        if key not in index:
            raise InvalidArgument(f"the bundle's {_INDEX} lacks {key!r}")
    return index


def import_bundle(reg: Registry, path: Path, *, name: str | None = None) -> Version:
    """Register the version stored in the bundle *path*; return the new version."""
    from mlnb.registry.client import _check_metrics, _check_params, _check_tags
    from mlnb.storage.archive import unpack

    if not path.is_file():
        raise InvalidArgument(f"no bundle file at {path}")
    work = Path(tempfile.mkdtemp(prefix="mlnb-import-"))
    try:
        unpack(path, work / "b")
        root = work / "b"
        index = _read_index(root)
        target = check_name(name or index["name"])
        files: list[tuple[str, Path]] = []
        for f in index["files"]:
            rel = f["path"]
            local = (root / "files" / rel).resolve()
            if not local.is_relative_to((root / "files").resolve()) or not local.is_file():
                raise InvalidArgument(f"the bundle lists {rel!r} but does not contain it")
            files.append((rel, local))
        request_id = uuid.uuid4().hex
        try:
            entries = reg._put_files(request_id, files)
            for f, entry in zip(index["files"], entries):
                if entry["sha256"] != f["sha256"] or entry["size"] != f["size"]:
                    raise IntegrityError(
                        f"bundle {path.name}: file {f['path']} does not match its recorded hash "
                        f"({entry['sha256'][:12]} != {str(f['sha256'])[:12]}); the bundle is "
                        "damaged: export it again"
                    )
            return reg._commit(
                request_id, files, entries,
                name=target, format=index["format"], metadata=index["metadata"],
                metrics=_check_metrics(index.get("metrics")),
                params=_check_params(index.get("params")),
                tags=_check_tags(index.get("tags")), description=index.get("description"),
                parent=None,
                details={"imported_from": f"{index['name']}:{index['version']}",
                         "bundle": path.name},
            )
        except BaseException:
            reg._call("release", request_id=request_id)
            raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
