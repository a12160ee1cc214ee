"""The quickstart tutorial in a real Jupyter Notebook 7, driven by headless Chromium.

The registry panel must render "in JupyterLab 4 and Notebook 7"; this is the Notebook 7
half (``test_ui_quickstart.py`` is the JupyterLab half, with the same checks from
``conftest.py``).  Starts ``jupyter notebook`` on 127.0.0.1 with a private ``MLNB_HOME``
and ``--JupyterNotebookApp.expose_app_in_browser`` (Notebook 7 then sets
``window.jupyterapp`` as JupyterLab does), opens ``/notebooks/01_quickstart.ipynb``, runs
all cells once the kernel is connected and idle, checks the HTML tables and the registry
panel, promotes ``toy:2`` from the panel and checks from this process that
``toy@production`` moved.  Screenshots: ``test-artifacts/ui/notebook7-*.png``.

Needs Python ``playwright``, Debian's ``chromium`` and ``notebook>=7``.  Without them the
test is skipped, except under ``CI`` where it fails.
"""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def test_quickstart_runs_in_notebook7_and_panel_promotes(quickstart_ui):
    quickstart_ui("notebook", "notebook7")
