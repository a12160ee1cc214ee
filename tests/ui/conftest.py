"""Shared pieces of the real-browser tests: a Jupyter server, Chromium, the quickstart checks.

``jupyter_server`` starts JupyterLab or Jupyter Notebook 7 on 127.0.0.1 with a private
``MLNB_HOME`` on a temp copy of ``notebooks/01_quickstart.ipynb``; ``ui_tools`` checks for
Chromium, Python ``playwright`` and the Jupyter front end (skip, or fail under ``CI``);
``quickstart_ui`` drives the opened notebook: Run All, the HTML tables, the registry panel
and its Promote.  See the test modules for what each front end adds.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "01_quickstart.ipynb"
ARTIFACTS = ROOT / "test-artifacts" / "ui"
CHROMIUM = os.environ.get("MLNB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
RUN_ALL_TIMEOUT_S = 120

# User settings for the test's Jupyter (JUPYTERLAB_SETTINGS_DIR, read by JupyterLab and by
# Notebook 7 alike): no news toast over the page, and no notebook windowing, so every
# cell's output stays in the DOM.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false", "checkForUpdates": False,
    },
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}

# How each front end is started and where it shows the notebook.
FRONT_ENDS = {
    "lab": SimpleNamespace(
        title="jupyter lab", module="jupyterlab",
        expose="--LabApp.expose_app_in_browser=True", path="/lab/tree/{name}", major=0,
    ),
    "notebook": SimpleNamespace(
        title="jupyter notebook", module="notebook",
        expose="--JupyterNotebookApp.expose_app_in_browser=True", path="/notebooks/{name}",
        major=7,  # notebook 6 is the classic server, with no anywidget-capable front end
    ),
}


def _missing(reason: str) -> None:
    """Under CI a missing browser or package is a failure; elsewhere a skip."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (required when CI is set)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def ui_tools():
    """``require(module, major)``: skip (fail under CI) without Chromium, playwright or
    *module* at version *major* or later; returns playwright's ``sync_playwright``."""

    def require(module: str, major: int = 0):
        if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
            _missing(f"no Chromium at {CHROMIUM}: apt-get install chromium")
        try:
            from playwright.sync_api import sync_playwright
        except ImportError:
            _missing("Python playwright is not installed: pip install -e '.[dev]'")
        try:
            mod = importlib.import_module(module)
        except ImportError:
            _missing(f"{module} is not installed: pip install -e '.[dev]'")
        found = str(getattr(mod, "__version__", "0"))
        if int(found.split(".")[0]) < major:
            _missing(f"{module} {found} is older than {major}: pip install -e '.[dev]'")
        return sync_playwright

    return require


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def jupyter_server(tmp_path: Path):
    """``start(kind, notebook=NOTEBOOK, seed=None)`` with kind ``"lab"`` or ``"notebook"``:
    a Jupyter server on a copy of *notebook*; ``seed(home)`` runs first, to fill the
    registry.  Returns (notebook_url, mlnb_home).  Stopped, with the registry server its
    kernel started, when the test ends."""
    from mlnb.registry import server

    started: list = []

    def start(kind: str, notebook: Path = NOTEBOOK, seed=None):
        front = FRONT_ENDS[kind]
        home = tmp_path / "mlnb-home"
        home.mkdir()
        workdir = tmp_path / "notebooks"
        workdir.mkdir()
        shutil.copy(notebook, workdir / notebook.name)
        if seed is not None:
            seed(home)
            server.stop(str(home / "registry.duckdb"), timeout=15, force=True)
        settings = tmp_path / "lab-settings"
        for rel, value in LAB_SETTINGS.items():
            (settings / rel).parent.mkdir(parents=True, exist_ok=True)
            (settings / rel).write_text(json.dumps(value))

        port, token = _free_port(), uuid.uuid4().hex
        env = dict(os.environ)
        env.update({
            "MLNB_HOME": str(home),  # wins over the notebook's os.environ.setdefault
            "JUPYTERLAB_SETTINGS_DIR": str(settings),
            "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "lab-workspaces"),
            "JUPYTER_RUNTIME_DIR": str(tmp_path / "jupyter-runtime"),
        })
        log = open(tmp_path / f"{front.title.replace(' ', '-')}.log", "w+b")
        proc = subprocess.Popen(
            [sys.executable, "-m", front.module, "--no-browser", "--ip", "127.0.0.1",
             "--port", str(port), "--port-retries", "0", "--allow-root",
             f"--ServerApp.token={token}", front.expose,
             f"--ServerApp.root_dir={workdir}"],
            cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        started.append((proc, log, home))
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                log.seek(0)
                pytest.fail(f"{front.title} exited:\n"
                            + log.read().decode(errors="replace")[-4000:])
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"{front.title} did not answer /api/status within 60 s")
            time.sleep(0.25)
        url = base + front.path.format(name=notebook.name) + f"?token={token}"
        return url, home

    yield start

    for proc, log, home in started:
        proc.send_signal(signal.SIGTERM)  # the server shuts its kernels down
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
        server.stop(str(home / "registry.duckdb"), timeout=15, force=True)


# JavaScript run in the page (needs expose_app_in_browser).  In JupyterLab and in
# Notebook 7 alike, shell.currentWidget is the open notebook's panel.
KERNEL_READY_JS = """() => {
  const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const ctx = w && w.sessionContext;
  const k = ctx && ctx.session && ctx.session.kernel;
  return Boolean(ctx && ctx.isReady && k && k.connectionStatus === "connected"
                 && k.status === "idle");
}"""

RUN_STATE_JS = """() => {
  const w = window.jupyterapp.shell.currentWidget;
  const k = w.sessionContext.session && w.sessionContext.session.kernel;
  const code = w.content.widgets.filter((c) => c.model.type === "code");
  return {kernel: k ? k.status : "none", cells: code.length,
          done: code.filter((c) => c.model.executionCount !== null).length,
          errors: code.filter((c) => c.model.outputs.toJSON().some(
            (o) => o.output_type === "error")).map((c) => c.model.sharedModel.getSource())};
}"""


def run_all_cells(page) -> None:
    """Wait for an idle, connected kernel, run every cell, wait until all have run."""
    # Run All only once the kernel's websocket is up and idle (RECIPES: flaky trap).
    page.wait_for_function(KERNEL_READY_JS, timeout=60_000, polling=200)
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")

    deadline = time.monotonic() + RUN_ALL_TIMEOUT_S
    state: dict = {}
    while time.monotonic() < deadline:
        state = page.evaluate(RUN_STATE_JS)
        if state["errors"]:
            break
        if state["cells"] and state["done"] == state["cells"] and state["kernel"] == "idle":
            break
        time.sleep(0.25)
    assert not state.get("errors"), f"cells raised: {state['errors']}"
    assert state.get("done") == state.get("cells"), f"run-all unfinished: {state}"


def check_quickstart_and_promote(page, home: Path, shot: str) -> None:
    """After Run All: the HTML tables and the registry panel as a person sees them, then
    promote toy:2 from the panel and check the registry from this process."""
    import mlnb

    notebook = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
    # The panel is an anywidget view: it appears once its module has loaded.
    panel = notebook.locator(".mlnb-panel")
    panel.get_by_role("button", name="Refresh").wait_for()
    panel.scroll_into_view_if_needed()
    page.screenshot(path=f"{shot}-1-run-all.png", full_page=True)

    def output_of(source: str):
        """The output area of the code cell whose source contains *source*."""
        cell = notebook.locator(".jp-CodeCell").filter(has_text=source)
        return cell.locator(".jp-OutputArea-output")

    # The HTML tables, as rendered: the versions table lists toy:1 and toy:2
    # (run before any promote, so no alias yet) ...
    versions = output_of("%mlnb versions toy").get_by_role("table")
    for ref in ("toy:1", "toy:2"):
        assert versions.get_by_role("cell", name=ref, exact=True).is_visible(), ref
    # ... the rollback leaves toy:1 @production ...
    rolled = output_of("%mlnb rollback toy")
    assert rolled.get_by_text("toy:1", exact=True).first.is_visible()
    assert rolled.get_by_text("@production", exact=True).is_visible()
    # ... and the audit table shows both promotes and the rollback, with reasons.
    audit = output_of("%mlnb audit toy").get_by_role("table")
    for text in ("rollback", "demo", "lower val_loss", "first model"):
        assert audit.get_by_role("cell", name=text, exact=True).is_visible(), text
    assert audit.get_by_role("row").filter(has_text="rollback").get_by_text(
        "@production", exact=True).is_visible()

    # The registry panel: title, the model, its versions; production is at toy:1.
    assert panel.get_by_text("mlnb registry").is_visible()
    assert panel.get_by_role("option", name="toy").is_visible()
    rows = panel.get_by_role("table", name="Versions").locator("tbody tr")
    assert rows.count() == 2
    row1, row2 = (panel.locator(f"tbody tr[data-version='{v}']") for v in (1, 2))
    assert row1.get_by_text("@production").is_visible()
    assert row2.get_by_text("@production").count() == 0
    assert mlnb.Registry(home).get("toy@production").version == 1
    panel.screenshot(path=f"{shot}-2-panel-before.png")

    # Select toy:2, Promote (alias box says production), Confirm.
    panel.get_by_role("button", name="Show toy:2").click()
    # The table is redrawn on every change: wait on a selector, not on an element.
    panel.locator("tbody tr[data-version='2'][aria-selected='true']").wait_for()
    alias = panel.get_by_role("combobox", name="Alias")  # a text input with a datalist
    assert alias.input_value() == "production"
    panel.get_by_role("button", name="Promote").click()
    confirm = panel.get_by_role("group", name="Confirm action")
    confirm.wait_for()
    assert "Promote toy:2 to production?" in confirm.inner_text()
    confirm.get_by_role("textbox", name="Reason").fill("promoted from the UI test")
    confirm.get_by_role("button", name="Confirm").click()

    message = panel.locator(".mlnb-panel-message")
    message.get_by_text("Promoted toy:2 to production.").wait_for()
    confirm.wait_for(state="hidden")
    panel.locator("tbody tr[data-version='2']").get_by_text("@production").wait_for()
    assert panel.locator(".mlnb-panel-error").inner_text().strip() == ""
    panel.screenshot(path=f"{shot}-3-panel-after.png")

    # The change is in the registry, seen by a fresh client in this process.
    reg = mlnb.Registry(home)
    try:
        assert reg.get("toy@production").version == 2
    finally:
        reg.close()


@contextmanager
def chromium_page(sync_playwright, tmp_path: Path, prefix: str, height: int = 1000,
                  **context_args):
    """A page in headless Chromium, and the path prefix of its screenshots
    ``test-artifacts/ui/<prefix>-*.png`` (old ones removed; a ``-failure`` one on error)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = str(ARTIFACTS / prefix)
    for old in ARTIFACTS.glob(f"{prefix}-*.png"):
        old.unlink()
    with sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1400, "height": height}, **context_args,
        )
        page = ctx.pages[0] if ctx.pages else ctx.new_page()
        page.set_default_timeout(30_000)
        try:
            yield page, shot
        except BaseException:
            try:
                page.screenshot(path=f"{shot}-failure.png", full_page=True)
            except Exception:
                pass
            raise
        finally:
            ctx.close()


@pytest.fixture
def quickstart_ui(ui_tools, jupyter_server, tmp_path: Path):
    """``drive(kind, shot_prefix)``: the whole quickstart check in one front end, with
    screenshots ``test-artifacts/ui/<shot_prefix>-*.png`` (on failure too)."""

    def drive(kind: str, prefix: str) -> None:
        sync_playwright = ui_tools(FRONT_ENDS[kind].module, FRONT_ENDS[kind].major)
        url, home = jupyter_server(kind)
        with chromium_page(sync_playwright, tmp_path, prefix, height=1600) as (page, shot):
            page.goto(url)
            run_all_cells(page)
            check_quickstart_and_promote(page, home, shot)

    return drive
