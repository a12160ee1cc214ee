"""The JupyterLab "Models" sidebar, as a person uses it, in headless Chromium.

JupyterLab runs with mlnb installed as a user has it (the lab extension from the
wheel's shared data, the server extension enabled by its config file), on a
registry seeded before the server starts.  The test opens the sidebar from its
tab, finds the models, checks a hostile description shows as text, promotes a
version through the confirmation dialog, sees the badge move, checks the
registry from outside, copies the load snippet, inserts ``%mlnb show`` into the
notebook and runs it, and sees a change made by another client appear without
pressing Refresh.
Screenshots: ``test-artifacts/ui/sidebar-*.png``.
"""

from __future__ import annotations

import time
from pathlib import Path

import nbformat
import pytest
from ui.conftest import FRONT_ENDS, chromium_page, run_all_cells

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

HOSTILE = '<img src=x onerror="document.title=\'pwned\'">'


def _seed(home: Path) -> None:
    import mlnb

    reg = mlnb.Registry(home)
    f = home.parent / "weights.bin"
    for i, acc in enumerate((0.81, 0.9), 1):
        f.write_text(f"weights {i}")
        reg.register("toy", f, metrics={"val_acc": acc, "loss": 1 - acc},
                     description=f"try {i}")
    reg.promote("toy:1", reason="first")
    f.write_text("evil")
    reg.register("evil", f, description=HOSTILE, metrics={"acc": 0.5})
    reg.close()


def _notebook(tmp_path: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("%load_ext mlnb")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    path = tmp_path / "sidebar.ipynb"
    nbformat.write(nb, path)
    return path


def test_models_sidebar_browses_promotes_and_follows_changes(ui_tools, jupyter_server, tmp_path):
    import mlnb

    sync_playwright = ui_tools(FRONT_ENDS["lab"].module, FRONT_ENDS["lab"].major)
    url, home = jupyter_server("lab", notebook=_notebook(tmp_path), seed=_seed)
    with chromium_page(sync_playwright, tmp_path, "sidebar",
                       permissions=["clipboard-read", "clipboard-write"]) as (page, shot):
        page.goto(url)
        page.locator(".jp-NotebookPanel").first.wait_for()

        # The sidebar's tab, as a person clicks it.
        page.locator(".jp-SideBar .lm-TabBar-tab[data-id='mlnb-models']").click()
        panel = page.locator(".mlnb-models-panel")
        toy = panel.locator("li.mlnb-model[data-name='toy']")
        toy.wait_for()
        assert panel.locator("li.mlnb-model").count() == 2
        # toy is summed up by its production version (1), not its latest (2)
        assert toy.locator(".mlnb-main-metric").inner_text().split() == ["val_acc", "0.81"]

        # The search box narrows the list.
        panel.locator("input.mlnb-search").fill("EV")
        panel.locator("li.mlnb-model[data-name='toy']").wait_for(state="detached")
        assert panel.locator("li.mlnb-model").count() == 1
        panel.locator("input.mlnb-search").fill("")
        toy.wait_for()

        # A hostile description is text, never markup.
        evil = panel.locator("li.mlnb-model[data-name='evil']")
        evil.locator("button.mlnb-model-row").click()
        evil.locator("li.mlnb-version[data-ref='evil:1'] button.mlnb-version-open").click()
        detail = panel.locator(".mlnb-detail")
        detail.wait_for()
        assert detail.locator(".mlnb-description").inner_text() == HOSTILE
        assert panel.locator("img").count() == 0
        assert page.title() != "pwned"
        page.screenshot(path=f"{shot}-1-hostile-as-text.png")
        detail.locator("button.mlnb-back").click()

        # toy's versions, production on 1.
        toy.locator("button.mlnb-model-row").click()
        v1 = panel.locator("li.mlnb-version[data-ref='toy:1']")
        v2 = panel.locator("li.mlnb-version[data-ref='toy:2']")
        v2.wait_for()
        assert v1.locator(".mlnb-alias-badge").all_inner_texts() == ["production"]
        assert v2.locator(".mlnb-alias-badge").count() == 0
        page.screenshot(path=f"{shot}-2-versions.png")

        # Promote toy:2 through the confirmation dialog.
        v2.locator("button.mlnb-action[data-action='promote']").click()
        dialog = page.locator(".jp-Dialog")
        dialog.wait_for()
        assert "Promote toy:2 to production?" in dialog.inner_text()
        dialog.locator("input.mlnb-reason").fill("promoted from the sidebar")
        page.screenshot(path=f"{shot}-3-confirm.png")
        dialog.locator("button.jp-mod-accept").click()
        v2.locator(".mlnb-alias-badge", has_text="production").wait_for()
        assert v1.locator(".mlnb-alias-badge").count() == 0
        assert panel.locator(".mlnb-error").is_hidden()
        page.screenshot(path=f"{shot}-4-promoted.png")

        # The registry changed, seen by a client outside JupyterLab.
        reg = mlnb.Registry(home)
        assert reg.get("toy@production").version == 2
        last = reg.audit("toy")[0]
        assert (last.action, last.reason) == ("promote", "promoted from the sidebar")

        # Copy load puts the snippet on the system clipboard.
        v2.locator("button.mlnb-action[data-action='copy-load']").click()
        assert page.evaluate("() => navigator.clipboard.readText()") == \
            "m = %mlnb load toy:2"

        # Insert %mlnb show toy:2 below the active cell, run the notebook, read it.
        page.locator(".jp-NotebookPanel .jp-Cell").first.click()
        v2.locator("button.mlnb-action[data-action='insert-show']").click()
        notebook = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
        cell = notebook.locator(".jp-CodeCell").filter(has_text="%mlnb show toy:2")
        cell.wait_for()
        run_all_cells(page)
        shown = cell.locator(".jp-OutputArea-output")
        shown.get_by_text("@production").first.wait_for()
        assert "toy:2" in shown.inner_text()
        page.screenshot(path=f"{shot}-5-show-in-notebook.png")

        # A change from another client (a kernel, the CLI) appears on its own.
        reg.set_alias("toy:1", "champion")
        reg.close()
        started = time.monotonic()
        v1.locator(".mlnb-alias-badge", has_text="champion").wait_for(timeout=15_000)
        followed_s = time.monotonic() - started
        assert followed_s < 10, followed_s
        page.screenshot(path=f"{shot}-6-followed.png")
