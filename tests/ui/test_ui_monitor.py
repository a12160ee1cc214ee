"""The training monitor in JupyterLab and Notebook 7, driven by headless Chromium: live, Stop.

A notebook cell runs ``mlnb.train`` (``progress="auto"``: the monitor widget in a kernel)
on a tiny model whose train loader sleeps per batch, so the run would take about 20 s.
The test waits for the monitor to move (updates reach the page while the cell runs),
clicks its Stop button (a kernel interrupt through Jupyter Server's REST API, which the
loop turns into "stop after this step, keep a checkpoint"), and checks that the cell ends
within seconds with the run ``stopped``, that the output is the static view, and that it
is still there after the notebook is saved and the page reloaded.  Screenshots go to
``test-artifacts/ui/monitor-{lab,notebook}-*.png`` (on failure too).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from ui.conftest import FRONT_ENDS, KERNEL_READY_JS, RUN_STATE_JS, chromium_page

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

CELL = '''\
import time
import torch
import torch.nn.functional as F
import mlnb


class SlowBatches:
    """400 batches of two blobs, 50 ms each: about 20 s unless stopped."""

    def __init__(self, n=400, delay=0.05):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n * 16, 2, generator=g)
        self.y = (self.x.sum(1) > 0).long()
        self.n, self.delay = n, delay

    def __len__(self):
        return self.n

    def __iter__(self):
        for i in range(self.n):
            time.sleep(self.delay)
            yield self.x[i * 16:(i + 1) * 16], self.y[i * 16:(i + 1) * 16]


torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
t0 = time.perf_counter()
run = mlnb.train(model, SlowBatches(), loss_fn=F.cross_entropy, epochs=2, device="cpu",
                 optimizer=torch.optim.SGD(model.parameters(), lr=0.1), log_every=5,
                 name="ui-monitor")
print("RUN", run.status, f"{time.perf_counter() - t0:.1f}s", len(run.checkpoints))
'''


def _notebook(path: Path) -> Path:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(CELL)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def _state(page) -> dict:
    return page.evaluate(RUN_STATE_JS)


@pytest.mark.parametrize("kind", ["lab", "notebook"])
def test_the_monitor_moves_and_its_stop_button_ends_the_run(kind, ui_tools, jupyter_server,
                                                           tmp_path):
    sync_playwright = ui_tools(FRONT_ENDS[kind].module, FRONT_ENDS[kind].major)
    url, _home = jupyter_server(kind, _notebook(tmp_path / "src" / "train_monitor.ipynb"))
    with chromium_page(sync_playwright, tmp_path, f"monitor-{kind}") as (page, shot):
        page.goto(url)
        page.wait_for_function(KERNEL_READY_JS, timeout=60_000, polling=200)
        # Not awaited: the command's promise settles only when the cell is done.
        page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")

        notebook = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
        monitor = notebook.locator(".mlnb-monitor")
        stop = monitor.get_by_role("button", name="Stop training")
        stop.wait_for(timeout=60_000)   # the kernel imports torch first
        bar = monitor.get_by_role("progressbar", name="Training progress")
        # Live: the bar moves while the cell is still running.
        page.wait_for_function(
            """() => {
              const bar = document.querySelector('.mlnb-monitor [role="progressbar"]');
              return bar && Number(bar.getAttribute('aria-valuenow')) > 0;
            }""", timeout=20_000, polling=100)
        first = float(bar.get_attribute("aria-valuenow"))
        assert "samples/s" in monitor.locator(".mlnb-monitor-facts").inner_text()
        page.wait_for_function(
            f"""() => Number(document.querySelector('.mlnb-monitor [role="progressbar"]')
                  .getAttribute('aria-valuenow')) > {first}""", timeout=10_000, polling=100)
        assert monitor.get_by_role("status").inner_text() == "training"
        assert _state(page)["done"] == 0   # the cell is still running
        monitor.scroll_into_view_if_needed()
        page.screenshot(path=f"{shot}-1-live.png")

        stop.click()
        clicked = time.monotonic()
        deadline = clicked + 15
        state = _state(page)
        while time.monotonic() < deadline:
            state = _state(page)
            if state["done"] == state["cells"] and state["kernel"] == "idle":
                break
            time.sleep(0.1)
        took = time.monotonic() - clicked
        assert state["kernel"] == "idle" and not state["errors"], state
        assert took < 5, f"the cell ran {took:.1f} s after Stop"

        output = notebook.locator(".jp-CodeCell .jp-OutputArea")
        output.get_by_text("RUN stopped").wait_for(timeout=5_000)
        printed = output.get_by_text("RUN stopped").inner_text()
        assert printed.split()[-1] == "1", printed   # one checkpoint kept
        # The monitor's place now holds the static view, with the final state.
        static = output.locator(".mlnb-train")
        static.wait_for()
        assert static.locator(".mlnb-status").inner_text() == "stopped"
        assert "a checkpoint is kept" in static.inner_text()
        assert output.locator(".mlnb-monitor").count() == 0
        assert output.get_by_text("model not found").count() == 0
        page.screenshot(path=f"{shot}-2-stopped.png")

        # Saved and opened again, the notebook shows the same static view.
        page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
        page.wait_for_function(
            "() => !window.jupyterapp.shell.currentWidget.context.model.dirty", timeout=10_000)
        page.reload()
        page.wait_for_function(KERNEL_READY_JS, timeout=60_000, polling=200)
        again = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .mlnb-train")
        again.wait_for()
        assert again.locator(".mlnb-status").inner_text() == "stopped"
        page.screenshot(path=f"{shot}-3-reopened.png")
