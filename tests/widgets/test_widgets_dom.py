"""panel.js in a DOM (jsdom): what it draws, what it sends, and that its cleanup is complete.

Runs only where node can ``require("jsdom")`` (e.g. ``NODE_PATH=/x/node_modules``
after ``npm install --prefix /x jsdom``); a real browser test in JupyterLab
and Notebook 7 is another matter (``labextension/ui-tests``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from widgets.conftest import run_dom_harness

HERE = Path(__file__).resolve().parent
JS = HERE.parents[1] / "src" / "mlnb" / "widgets" / "static" / "panel.js"


@pytest.fixture(scope="module")
def seen(tmp_path_factory):
    return run_dom_harness(tmp_path_factory, JS)


def test_first_paint(seen):
    first = seen["first"]
    assert first["buttons"] == ["Refresh", "Promote (disabled)", "Rollback", "Retire (disabled)",
                                "Compare (disabled)", "Show churn:2", "Show churn:1"]
    assert first["options"] == [["churn2", "true"], ["<b>x</b>1", "false"]]  # text, not markup
    assert first["injected"] == 0
    assert first["rows"][0][1:3] + first["rows"][0][5:] == ["2", "active", "<script>x</script>",
                                                            "0.9", "nan"]
    assert first["rows"][1][3] == "@production"
    assert ["acc ▼", "descending"] in first["headers"] and ["loss", None] in first["headers"]
    assert first["bold"] == ["0.9"]
    assert first["head"] == "churn · 2 versions · sorted by acc"


def test_what_the_clicks_send(seen):
    assert seen["compareEnabled"] and seen["actionsEnabled"]
    assert seen["sent"] == [
        {"action": "sort", "key": "loss"},
        {"action": "select_model", "name": "churn"},
        {"action": "select_version", "version": 2},
        {"action": "compare", "a": "churn:2", "b": "churn:1"},
        {"action": "request", "op": "promote", "alias": "production", "version": 2},
        {"action": "confirm", "id": 7, "reason": "better acc"},
        {"saved": {"filter": "chu", "auto_refresh": 0}},  # typing is debounced: one update
        {"saved": {"filter": "chu", "auto_refresh": 5}},
    ]


def test_pending_error_detail_and_busy(seen):
    assert seen["selectedRow"] == "2"
    assert seen["prompt"] == "Promote churn:2 to production?"
    assert seen["focused"] == "Cancel"  # the safe choice has the focus
    assert seen["error"] == "Conflict: <b>no</b>"
    assert seen["detail"] == '<div class="mlnb">detail <em>ok</em></div>'
    assert seen["disabledWhileBusy"]


def test_one_poll_in_flight_and_a_complete_cleanup(seen):
    assert seen["polls"] == [0, 1, 2]  # none while the page is hidden
    assert (seen["listenersLeft"], seen["intervalsLeft"], seen["emptied"]) == (0, 0, True)
