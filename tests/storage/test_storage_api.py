"""mlnb.storage's public surface: an honest __all__, light imports, clear backend errors."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

import mlnb.storage
from mlnb.errors import InvalidArgument
from mlnb.storage import BlobStore, archive, blobs


def test_all_is_sorted_and_complete() -> None:
    assert mlnb.storage.__all__ == sorted(mlnb.storage.__all__)
    assert set(mlnb.storage.__all__) == set(blobs.__all__) | set(archive.__all__)
    for name in mlnb.storage.__all__:
        obj = getattr(mlnb.storage, name)
        assert inspect.getdoc(obj), f"{name} has no docstring"


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)


def test_import_does_not_load_s3_libraries() -> None:
    result = _run(
        "import sys, mlnb.storage\n"
        "mlnb.storage.BlobStore('memory://x').put_bytes(b'x')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'s3fs', 'botocore', 'aiobotocore', 'boto3'}))\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_s3_without_s3fs_names_the_extra() -> None:
    result = _run(
        "import sys\n"
        "sys.modules['s3fs'] = None  # as if not installed\n"
        "from mlnb.errors import MissingDependency\n"
        "from mlnb.storage import BlobStore\n"
        "try:\n"
        "    BlobStore('s3://bucket/prefix')\n"
        "except MissingDependency as err:\n"
        "    print(type(err).__name__, err.package, err.extra, err)\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("MissingDependency s3fs s3 ")
    assert 'pip install "mlnb[s3]"' in result.stdout


def test_unknown_protocol_is_invalid() -> None:
    with pytest.raises(InvalidArgument, match="nosuchproto"):
        BlobStore("nosuchproto://bucket/x")
