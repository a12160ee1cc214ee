"""The quickstart tutorial in a real JupyterLab, driven by headless Chromium.

Starts ``jupyter lab`` on 127.0.0.1 with a private ``MLNB_HOME``, opens
``notebooks/01_quickstart.ipynb``, runs all cells through the UI, checks what a person
would see (the HTML tables and the registry panel), promotes ``toy:2`` from the panel and
checks from this process that the registry changed.  Screenshots go to
``test-artifacts/ui/quickstart-*.png`` at the repository root (git-ignored), on failure
too.  The server, the browser and the checks live in ``conftest.py``, shared with the
Notebook 7 test.

Needs Python ``playwright`` (the wheel carries its driver; no ``playwright install``: the
browser is Debian's ``chromium``) and ``jupyterlab``.  Without them the test is skipped,
except under ``CI`` where it fails.
"""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def test_quickstart_runs_in_jupyterlab_and_panel_promotes(quickstart_ui):
    quickstart_ui("lab", "quickstart")
