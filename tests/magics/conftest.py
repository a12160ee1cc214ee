"""A real IPython shell with mlnb loaded, history off, errors re-raised."""

from __future__ import annotations

import pytest


@pytest.fixture
def ip(home, tmp_path, monkeypatch):
    """An InteractiveShell with ``%load_ext mlnb`` done, on a fresh MLNB_HOME."""
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
