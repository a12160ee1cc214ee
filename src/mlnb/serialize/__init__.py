"""Model <-> files: turn a Python object into files to store, and files back into it.

:func:`stage` picks a format with :func:`describe` (``files`` for an existing
path, ``torch`` for an ``nn.Module``, ``pickle`` for anything else) and returns
a :class:`Staged` listing the files and their metadata; :func:`load` rebuilds
the object from those files.  ``import mlnb.serialize`` does not import torch
or safetensors; the functions that need them do (``tests/serialize/
test_serialize_api.py`` checks it in a subprocess).
"""

from __future__ import annotations

from mlnb.serialize.formats import Staged, describe, load, stage

__all__ = ["Staged", "describe", "load", "stage"]
