"""Choosing a format, staging an object into files, and loading it back.

Three formats, picked by :func:`describe` from the object alone:

``files``
    an existing file or directory path (``str`` or ``os.PathLike``), stored
    as it is; a ``str`` is always a path and never pickled.
``torch``
    a ``torch.nn.Module``: safetensors weights plus how to rebuild it.
``pickle``
    anything else, refused on load unless ``trust=True``.

The check for ``torch`` looks in ``sys.modules`` instead of importing torch,
so staging a path or a plain object never pays for torch: an object cannot be
an ``nn.Module`` unless torch is already imported.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlnb.errors import Conflict, InvalidArgument
from mlnb.serialize.files import as_path, load_files, stage_files
from mlnb.serialize.pickled import load_pickle, stage_pickle

__all__ = ["FORMATS", "Staged", "describe", "load", "stage"]

FORMATS = ("files", "pickle", "torch")
_NEWEST = {"files": 1, "pickle": 1, "torch": 1}


@dataclass(frozen=True)
class Staged:
    """The files that store one object, ready to be copied into storage.

    Attributes
    ----------
    format
        ``"torch"``, ``"files"`` or ``"pickle"``.
    files
        ``(relative posix path inside the version, absolute local path to read)``,
        sorted by relative path.
    metadata
        JSON data that :func:`load` needs, plus framework versions.
    """

    format: str
    files: list[tuple[str, Path]]
    metadata: dict[str, Any]


def _is_torch_module(obj: object) -> bool:
    torch = sys.modules.get("torch")
    nn = getattr(torch, "nn", None)
    return nn is not None and isinstance(obj, nn.Module)


def describe(obj: object) -> str:
    """Return the format :func:`stage` would pick for *obj*, without staging it.

    ``"files"`` for an existing path, ``"torch"`` for an ``nn.Module``,
    ``"pickle"`` for anything else.

    Raises
    ------
    NotFound
        *obj* is a string or path that does not exist.
    InvalidArgument
        *obj* is an empty string.
    """
    if as_path(obj) is not None:
        return "files"
    if _is_torch_module(obj):
        return "torch"
    return "pickle"


def stage(obj: object, workdir: Path | None, *, init_kwargs: dict | None = None) -> Staged:
    """Turn *obj* into the files to store, writing any new file into *workdir*.

    Paths are not copied: a file or directory is returned as its original
    paths.  A model's weights or a pickle are written into *workdir*, an empty
    directory the caller owns and removes after storing the files.

    Parameters
    ----------
    obj
        A file or directory path, an ``nn.Module``, or any picklable object.
    workdir
        Existing empty directory for the files this call creates; may be None
        when *obj* is a path (nothing is written then).
    init_kwargs
        For an ``nn.Module`` only: the JSON arguments that rebuild it,
        ``type(obj)(**init_kwargs)``.  None records that they are unknown.

    Raises
    ------
    InvalidArgument
        Unstorable input: an empty directory or one holding symlinks, an
        unpicklable object, non-JSON ``init_kwargs``, ``init_kwargs`` for a
        non-torch object.
    NotFound
        *obj* is a string or path that does not exist.
    MissingDependency
        safetensors is needed for a torch model and is not installed.
    """
    path = as_path(obj)
    fmt = "files" if path is not None else describe(obj)
    if workdir is None and path is None:
        raise InvalidArgument(f"staging a {fmt} object needs a work directory")
    if init_kwargs is not None and fmt != "torch":
        raise InvalidArgument(
            f"init_kwargs applies only to torch models, but this object is stored as {fmt}"
        )
    if path is not None:
        files, metadata = stage_files(path)
    elif fmt == "torch":
        from mlnb.serialize.torch_model import stage_torch

        files, metadata = stage_torch(obj, Path(workdir).absolute(), init_kwargs)
    else:
        files, metadata = stage_pickle(obj, Path(workdir).absolute())
    return Staged(format=fmt, files=files, metadata=metadata)


def load(
    format: str,
    root: Path,
    metadata: dict,
    *,
    device: str | None = None,
    trust: bool = False,
    model_class: type | None = None,
    into: Any = None,
) -> object:
    """Rebuild the object stored in *format* from its files under *root*.

    Parameters
    ----------
    format
        The ``Staged.format`` recorded when it was stored.
    root
        Local directory holding the version's files at their relative paths.
    metadata
        The ``Staged.metadata`` recorded when it was stored.
    device
        torch only: where to place the model (default ``"cpu"``).
    trust
        pickle only: True to unpickle, for artifacts you or your team created.
    model_class, into
        torch only: the class to build with the recorded ``init_kwargs``, or
        an instance to load the weights into (strict).

    Returns
    -------
    object
        ``files``: the file's path (one-file versions) or the directory;
        ``torch``: the ``nn.Module`` in eval mode; ``pickle``: the object.

    Raises
    ------
    UntrustedObject
        A pickle without ``trust=True``.
    NotFound
        A file is missing, or a model's class cannot be found without importing.
    InvalidArgument
        Unknown format, options that do not apply to it, bad device, or
        weights that do not fit the model.
    Conflict
        The version was written by a newer mlnb.
    """
    if format not in FORMATS:
        raise InvalidArgument(f"unknown format {format!r}; expected one of {', '.join(FORMATS)}")
    if not isinstance(metadata, dict):
        raise InvalidArgument(f"metadata must be a dict, not {type(metadata).__name__}")
    version = metadata.get("format_version", 1)
    if not isinstance(version, int) or version > _NEWEST[format]:
        raise Conflict(
            f"this {format} version was written in format_version {version!r}, newer than this "
            f"mlnb reads ({_NEWEST[format]}); upgrade mlnb: pip install -U mlnb"
        )
    if format != "torch":
        given = [
            name
            for name, value in (("device", device), ("model_class", model_class), ("into", into))
            if value is not None
        ]
        if given:
            raise InvalidArgument(
                f"{', '.join(given)} apply only to torch models; this version is {format}"
            )
    root = Path(root)
    if format == "files":
        return load_files(root, metadata)
    if format == "pickle":
        return load_pickle(root, metadata, trust=trust)
    from mlnb.serialize.torch_model import load_torch

    return load_torch(root, metadata, device=device, model_class=model_class, into=into)
