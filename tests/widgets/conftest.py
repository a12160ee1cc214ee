"""Fixtures for the panel tests: a seeded registry, a frontend stand-in, an IPython shell."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

HOSTILE = "<img src=x onerror=alert(1)>"


def seed(reg, tmp_path) -> None:
    """Models ``churn`` (4 versions: acc with a NaN, loss, lineage) and ``fraud-detector``."""
    f = tmp_path / "weights.bin"
    rows = [(0.80, 0.50), (0.95, 0.20), (float("nan"), 9.0), (0.90, 0.30)]
    for i, (acc, loss) in enumerate(rows, 1):
        f.write_text(f"weights {i}")
        reg.register("churn", f, metrics={"acc": acc, "loss": loss},
                     params={"lr": 0.1 * i}, tags={"team": "growth"},
                     description=HOSTILE if i == 2 else f"try {i}",
                     parent="churn:1" if i == 2 else None)
    f.write_text("fraud")
    reg.register("fraud-detector", f, metrics={"auc": 0.7})


@pytest.fixture
def seeded(memreg, tmp_path):
    """An in-process registry holding the seeded models."""
    seed(memreg, tmp_path)
    return memreg


@dataclass
class Frontend:
    """Plays the browser's side of one panel: sends what panel.js sends, records replies."""

    panel: Any
    sent: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        # Record what the kernel would send over the comm, as JSON (NaN refused).
        def record(data=None, metadata=None, buffers=None):  # noqa: ANN001, ARG001
            self.sent.append(json.loads(json.dumps(data, allow_nan=False)))

        self.panel.comm.send = record

    def msg(self, **content: Any) -> None:
        """A custom message, as ``model.send(content)`` delivers it."""
        self.panel._handle_msg({"content": {"data": {"method": "custom", "content": content}},
                                "buffers": []})

    def set(self, **state: Any) -> None:
        """A trait change, as ``model.set(...); model.save_changes()`` delivers it."""
        self.panel._handle_msg({"content": {"data": {"method": "update", "state": state,
                                                     "buffer_paths": []}}, "buffers": []})

    def updates(self) -> list[dict[str, Any]]:
        return [m["state"] for m in self.sent if m.get("method") == "update"]

    def replies(self) -> list[dict[str, Any]]:
        return [m["content"] for m in self.sent if m.get("method") == "custom"]


@pytest.fixture
def panel(seeded):
    """A panel on the seeded registry."""
    from mlnb.widgets import RegistryPanel

    p = RegistryPanel(seeded)
    yield p
    p.close()


@pytest.fixture
def frontend():
    """Attach a :class:`Frontend` to any panel."""
    return Frontend


@pytest.fixture
def ui(panel):
    """The panel with a frontend stand-in attached."""
    return Frontend(panel)


def run_dom_harness(tmp_path_factory, js: Path, *scenario: str) -> dict[str, Any]:
    """Run *js* (a widget's ES module) in jsdom through ``dom_harness.mjs``; return what it saw.

    Skips when node or its jsdom package is missing (``make test`` installs both).
    """
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    found = subprocess.run([node, "-e", "require.resolve('jsdom')"], capture_output=True,
                           timeout=30)
    if found.returncode != 0:
        pytest.skip("jsdom is not installed for node (set NODE_PATH)")
    module = tmp_path_factory.mktemp("js") / f"{js.stem}.mjs"  # an ES module whatever node's default
    module.write_text(js.read_text())
    harness = Path(__file__).resolve().parent / "dom_harness.mjs"
    done = subprocess.run([node, str(harness), str(module), *scenario],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])
