"""Fixtures shared by every test: a private MLNB_HOME, registries, server clean-up."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test may touch the real ~/.mlnb or inherit mlnb settings."""
    for var in ("MLNB_HOME", "MLNB_REGISTRY", "MLNB_STORAGE", "MLNB_USER", "MLNB_IDLE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MLNB_HOME", str(tmp_path / "default-home"))
    monkeypatch.setenv("MLNB_USER", "tester")
    # Subprocesses (servers, workers, the CLI) must import this source tree.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        p for p in (str(SRC), os.environ.get("PYTHONPATH")) if p
    ))


@pytest.fixture
def home(tmp_path: Path):
    """A fresh MLNB_HOME; its registry server, if one started, is stopped afterwards."""
    from mlnb.registry import server

    path = tmp_path / "home"
    path.mkdir()
    yield path
    server.stop(str(path / "registry.duckdb"), timeout=15, force=True)


@pytest.fixture
def reg(home: Path):
    """A registry on a DuckDB file, reached through its registry server."""
    import mlnb

    r = mlnb.Registry(home)
    yield r
    r.close()


@pytest.fixture
def memreg(tmp_path: Path):
    """An in-process ``:memory:`` registry with a local artifact folder."""
    import mlnb

    r = mlnb.Registry(tmp_path / "mem-home", registry=":memory:", storage=tmp_path / "mem-art")
    yield r
    r.close()


@pytest.fixture(params=["memory", "file"])
def anyreg(request: pytest.FixtureRequest):
    """Each registry kind in turn: behaviour must not depend on the transport."""
    return request.getfixturevalue("memreg" if request.param == "memory" else "reg")


@pytest.fixture
def make_mlp():
    """Build a tiny torch MLP with deterministic weights for a given seed."""
    torch = pytest.importorskip("torch")

    def make(seed: int = 0):
        torch.manual_seed(seed)
        return torch.nn.Sequential(
            torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3)
        )

    return make


@pytest.fixture
def ip(home, tmp_path, monkeypatch):
    """A real IPython shell with ``%load_ext mlnb`` done, history off, on a fresh MLNB_HOME."""
    from IPython.core.interactiveshell import InteractiveShell

    monkeypatch.setenv("MLNB_HOME", str(home))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    # History off: the shell must not write a sqlite file between tests.
    shell = InteractiveShell.instance(history_length=0)
    shell.history_manager.enabled = False
    shell.run_line_magic("load_ext", "mlnb")
    yield shell
    shell.run_line_magic("unload_ext", "mlnb")
    magics = shell.magics_manager.registry.get("MlnbMagics")
    if magics is not None and magics._registry is not None:
        magics._registry.close()
    InteractiveShell.clear_instance()
