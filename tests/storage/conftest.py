"""Fixtures for the storage tests: a real moto_server for the whole session, a bucket per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from s3server import MotoServer, moto_server_executable


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoServer]:
    """One moto_server on 127.0.0.1 for the session; killed at the end."""
    # s3fs and moto[server] are in the dev extra: a missing one is a broken
    # set-up, and must fail the run rather than skip the S3 half of the suite.
    import s3fs  # noqa: F401
    if moto_server_executable() is None:
        pytest.fail('moto_server is not installed: pip install -e ".[dev]"')
    with MotoServer() as server:
        yield server


@pytest.fixture
def s3_bucket(moto: MotoServer) -> str:
    """A new, empty bucket on the session's moto_server."""
    return moto.new_bucket()
