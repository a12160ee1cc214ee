"""pytest-jupyter's server fixtures (``jp_fetch``, ``jp_serverapp``, ...) for these tests only.

Loaded here rather than as a global plugin: its autouse fixtures build and tear
down a Jupyter ServerApp around every test, which the rest of the suite must
not pay for.  Star imports bring its fixtures and its async-test hooks into this
directory's scope.
"""

from __future__ import annotations

import pytest
from pytest_jupyter.jupyter_core import *  # noqa: F403
from pytest_jupyter.jupyter_server import *  # noqa: F403
from pytest_jupyter.pytest_tornasync import *  # noqa: F403


@pytest.fixture
def jp_server_config():
    """A Jupyter server with mlnb's extension, found the way an installed one is."""
    return {"ServerApp": {"jpserver_extensions": {"mlnb": True}}}
