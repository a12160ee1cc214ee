"""The ``pickle`` format: any other Python object, refused on load unless trusted.

Unpickling runs whatever callables the pickle names, so a pickle from someone
else is code from someone else.  :func:`load_pickle` refuses before it opens
the file unless the caller passes ``trust=True``; nothing else in mlnb ever
unpickles an artifact.
"""

from __future__ import annotations

import pickle
import platform
import sys
from pathlib import Path
from typing import Any

from mlnb.errors import InvalidArgument, NotFound, UntrustedObject

__all__ = ["FILE_NAME", "load_pickle", "stage_pickle"]

FILE_NAME = "object.pkl"
FORMAT_VERSION = 1
PROTOCOL = 5


def _type_name(obj: object) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def _versions(obj: object) -> dict[str, str]:
    """Python's version and, when it says, the version of the package defining the object.

    Pickles often fail to load across versions of the library that made them
    (scikit-learn, pandas), so the version is worth recording.  Only modules
    already imported are asked: recording must never import anything.
    """
    versions = {"python": platform.python_version()}
    top = type(obj).__module__.partition(".")[0]
    version = getattr(sys.modules.get(top), "__version__", None)
    if top not in ("builtins", "__main__") and isinstance(version, str):
        versions[top] = version
    return versions


def stage_pickle(obj: object, workdir: Path) -> tuple[list[tuple[str, Path]], dict[str, Any]]:
    """Pickle *obj* (protocol 5) into ``workdir/object.pkl``.

    Raises
    ------
    InvalidArgument
        The object cannot be pickled (a lambda, an open file, a lock, ...).
    """
    target = Path(workdir) / FILE_NAME
    try:
        with open(target, "wb") as fh:
            pickle.dump(obj, fh, protocol=PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError) as err:
        target.unlink(missing_ok=True)
        raise InvalidArgument(
            f"cannot pickle object of type {_type_name(obj)}: {err}; store something "
            "picklable (module-level functions and classes, no open files or locks)"
        ) from err
    metadata = {
        "format_version": FORMAT_VERSION,
        "protocol": PROTOCOL,
        "type": _type_name(obj),
        "versions": _versions(obj),
    }
    return [(FILE_NAME, target)], metadata


def load_pickle(root: Path, metadata: dict[str, Any], *, trust: bool) -> object:
    """Unpickle the object stored at *root*, only when *trust* is true.

    Raises
    ------
    UntrustedObject
        *trust* is false; the file is not opened.
    NotFound
        ``object.pkl`` is missing from *root*.
    """
    kind = metadata.get("type", "an object")
    if trust is not True:
        raise UntrustedObject(
            f"this version holds a pickled {kind}; unpickling runs code chosen by whoever "
            "made the file, so mlnb does not do it by default. Pass trust=True only for "
            "artifacts you or your team created"
        )
    root = Path(root)
    path = root if root.is_file() else root / FILE_NAME
    if not path.is_file():
        raise NotFound(f"{FILE_NAME} is missing from {str(root)!r}")
    with open(path, "rb") as fh:
        return pickle.load(fh)
