"""The panel costs nothing until used, and says how to install anywidget when it is missing."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

WIDGET_MODULES = ["anywidget", "ipywidgets", "traitlets", "comm", "mlnb.widgets.panel"]

# Run first in the child: make `import anywidget` fail as if it were not installed.
_NO_ANYWIDGET = "import sys; sys.modules['anywidget'] = None\n"


def _run(code: str, tmp_path) -> dict:
    env = {**os.environ, "IPYTHONDIR": str(tmp_path / "ipython"),
           "MLNB_HOME": str(tmp_path / "home"), "MLNB_REGISTRY": ":memory:"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60, env=env).stdout
    return json.loads(out.splitlines()[-1])


def test_import_mlnb_load_ext_and_the_widgets_package_import_no_widget_library(tmp_path):
    loaded = _run(
        "import sys, json, mlnb, mlnb.widgets\n"
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "InteractiveShell.instance().run_line_magic('load_ext', 'mlnb')\n"
        # IPython itself imports traitlets; only what mlnb adds counts.
        f"mods = [m for m in {WIDGET_MODULES!r} if m != 'traitlets']\n"
        "print(json.dumps({'loaded': [m for m in mods if m in sys.modules]}))",
        tmp_path,
    )["loaded"]
    assert loaded == []


def test_missing_anywidget_is_a_missing_dependency_with_the_install_hint(tmp_path):
    found = _run(
        _NO_ANYWIDGET
        + "import json, mlnb.widgets\n"
        "from mlnb.errors import MissingDependency\n"
        "try:\n"
        "    mlnb.widgets.RegistryPanel\n"
        "except MissingDependency as err:\n"
        "    print(json.dumps({'error': str(err)}))\n",
        tmp_path,
    )
    assert found == {"error": "anywidget is needed to show the registry panel but is not "
                              'installed; run: pip install "mlnb[notebook]"'}


def test_missing_anywidget_in_the_magic_is_one_line(tmp_path):
    found = _run(
        _NO_ANYWIDGET
        + "import json\n"
        "from IPython.core.error import UsageError\n"
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "ip = InteractiveShell.instance(history_length=0)\n"
        "ip.history_manager.enabled = False\n"
        "ip.run_line_magic('load_ext', 'mlnb')\n"
        "try:\n"
        "    ip.run_line_magic('mlnb', 'panel')\n"
        "except UsageError as err:\n"
        "    print(json.dumps({'error': str(err)}))\n",
        tmp_path,
    )
    assert found["error"].startswith("MissingDependency: anywidget is needed")


def test_the_package_exports_resolve():
    pytest.importorskip("anywidget")
    import mlnb.widgets
    from mlnb.widgets.panel import RegistryPanel

    assert mlnb.widgets.__all__ == sorted(mlnb.widgets.__all__) == ["RegistryPanel", "TrainingMonitor"]
    assert mlnb.widgets.RegistryPanel is RegistryPanel
    assert "RegistryPanel" in dir(mlnb.widgets)
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        mlnb.widgets.Nope  # noqa: B018


def test_mlnb_widgets_is_an_attribute_of_mlnb():
    import mlnb
    from mlnb.widgets import RegistryPanel

    assert mlnb.widgets.RegistryPanel is RegistryPanel
