"""The quickstart's results survive being saved and exported: `jupyter nbconvert --to html`."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "01_quickstart.ipynb"


def test_saved_and_exported_quickstart_keeps_readable_tables(home, tmp_path, monkeypatch):
    from mlnb.registry import server

    monkeypatch.setenv("MLNB_HOME", str(home))
    executed = tmp_path / "executed.ipynb"
    try:
        subprocess.run(
            [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
             str(NOTEBOOK), "--output", str(executed)],
            check=True, capture_output=True, timeout=300,
        )
        subprocess.run(
            [sys.executable, "-m", "jupyter", "nbconvert", "--to", "html", str(executed),
             "--output", str(tmp_path / "quickstart.html")],
            check=True, capture_output=True, timeout=300,
        )
    finally:
        server.stop(str(home / "registry.duckdb"))
    # The saved notebook holds mlnb's HTML outputs: tables, badges, the diff, the audit.
    outputs = [o for c in json.loads(executed.read_text())["cells"] for o in c.get("outputs", [])]
    html = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    joined = "".join("".join(h) if isinstance(h, list) else h for h in html)
    for expected in ("toy:1", "toy:2", "@production", "val_acc", "rollback", "lower val_loss"):
        assert expected in joined, expected
    assert "<script" not in joined.lower()  # readable with JavaScript off (GitHub, nbviewer)
    assert all("text/plain" in o["data"] for o in outputs if "data" in o)
    # ...and the exported page carries them as text a reader sees.
    page = (tmp_path / "quickstart.html").read_text()
    text = re.sub(r"<[^>]+>", " ", page)
    for expected in ("toy:1", "@production", "rollback", "val_loss"):
        assert expected in text, expected
