"""The panel's ES module and style sheet: shipped, valid, and within the panel's rules."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

STATIC = Path(__file__).resolve().parents[2] / "src" / "mlnb" / "widgets" / "static"
JS = STATIC / "panel.js"
CSS = STATIC / "panel.css"


def test_the_module_is_valid_javascript():
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    # .js is read as CommonJS unless a package.json says otherwise; this file is an ES module.
    done = subprocess.run([node, "--check", "--input-type=module"], input=JS.read_text(),
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    done = subprocess.run([node, "--check", str(JS)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr


def test_the_module_exports_render_and_returns_a_cleanup():
    js = JS.read_text()
    assert re.search(r"^export default \{ render \};$", js, re.M)
    assert "return () => {" in js and "abort.abort()" in js and "clearInterval(timer)" in js


def test_the_module_fetches_nothing_and_injects_only_server_rendered_html():
    js = JS.read_text()
    for banned in ("fetch(", "XMLHttpRequest", "WebSocket", "import(", "eval(", "http://",
                   "https://", "outerHTML", "insertAdjacentHTML", "document.write"):
        assert banned not in js, banned
    assignments = re.findall(r"(\w+)\.innerHTML = (\w+)", js)
    assert assignments == [("detail", "html"), ("diff", "html")]
    assert js.count('get("detail_html")') == 1 and js.count('get("diff_html")') >= 1


def test_the_buttons_have_the_names_a_browser_test_looks_for():
    js = " ".join(JS.read_text().split())
    for name in ("Promote", "Rollback", "Retire", "Confirm", "Cancel", "Refresh", "Compare"):
        assert re.search(rf'h\("button", \{{[^}}]*text: "{name}", "aria-label": "{name}"', js), name


def test_every_css_rule_is_scoped_to_the_panel():
    css = re.sub(r"/\*.*?\*/", "", CSS.read_text(), flags=re.S)
    selectors = [s.strip() for block in re.findall(r"([^{}]+)\{[^{}]*\}", css)
                 for s in block.split(",")]
    assert selectors
    assert all(s.startswith(".mlnb-panel") for s in selectors), selectors


def test_the_widget_ships_these_files():
    pytest.importorskip("anywidget")
    from mlnb.widgets.panel import RegistryPanel

    assert str(RegistryPanel._esm) == JS.read_text()
    assert str(RegistryPanel._css) == CSS.read_text()
