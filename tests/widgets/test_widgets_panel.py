"""RegistryPanel on a real registry: listing, filtering, sorting, details, diffs.

The browser is played by ``Frontend`` (conftest): it delivers the same comm
messages panel.js sends and records what the kernel sends back, as JSON.
"""

from __future__ import annotations

import math

import pytest

pytest.importorskip("anywidget")

HOSTILE = "<img src=x onerror=alert(1)>"  # the description conftest gives churn:2


def _versions(panel):
    return [r["version"] for r in panel.versions]


def test_the_panel_lists_models_and_reprs_cheaply(panel):
    assert [m["name"] for m in panel.models] == ["churn", "fraud-detector"]
    churn = panel.models[0]
    assert (churn["versions"], churn["latest"], churn["aliases"]) == (4, 4, {})
    assert (panel.model_count, panel.model_total) == (2, 2)
    assert repr(panel) == "<RegistryPanel model=- versions=0>"
    data, _ = panel._repr_mimebundle_()
    assert data["text/plain"] == repr(panel)
    assert "application/vnd.jupyter.widget-view+json" in data


def test_the_filter_box_narrows_the_list(panel, ui):
    ui.set(filter="FRAUD")
    assert [m["name"] for m in panel.models] == ["fraud-detector"]
    assert (panel.model_count, panel.model_total) == (1, 2)
    ui.set(filter="churn fraud")  # every word must match
    assert [m["name"] for m in panel.models] == []
    panel.filter = ""  # the same from Python
    assert len(panel.models) == 2


def test_selecting_a_model_fills_its_versions_newest_first(panel, ui):
    ui.msg(action="select_model", name="churn")
    assert panel.selected_model == "churn"
    assert _versions(panel) == [4, 3, 2, 1]
    assert panel.metric_names == ["acc", "loss"]
    assert panel.version_count == 4
    row = panel.versions[2]
    assert (row["ref"], row["status"], row["created_by"]) == ("churn:2", "active", "tester")
    assert row["metrics"] == {"acc": 0.95, "loss": 0.2}
    assert row["best"] == ["acc", "loss"]  # bold in both columns
    assert panel.versions[1]["metrics"]["acc"] == "nan"  # JSON has no NaN
    assert repr(panel) == "<RegistryPanel model=churn versions=4>"


def test_sorting_by_a_metric_puts_nan_last_either_way(panel, ui):
    panel.select_model("churn")
    ui.msg(action="sort", key="acc")  # higher is better: best first
    assert (panel.sort_metric, panel.sort_desc) == ("acc", True)
    assert _versions(panel) == [2, 4, 1, 3]
    ui.msg(action="sort", key="acc")  # again: flips
    assert _versions(panel) == [1, 4, 2, 3]
    ui.msg(action="sort", key="loss")  # lower is better: lowest first
    assert (panel.sort_desc, _versions(panel)) == (False, [2, 4, 1, 3])
    panel.sort_metric, panel.sort_desc = "version", False  # from Python
    assert _versions(panel) == [1, 2, 3, 4]
    ui.msg(action="sort", key="f1")
    assert panel.error.startswith("InvalidArgument: cannot sort by 'f1'")
    assert _versions(panel) == [1, 2, 3, 4]
    panel.sort_by("acc")
    panel.select_model("fraud-detector")  # has no acc: back to newest first
    assert (panel.sort_metric, panel.sort_desc) == ("version", True)
    panel.sort_by("auc")
    panel.select_model("churn")
    assert (panel.sort_metric, _versions(panel)) == ("version", [4, 3, 2, 1])


def test_max_rows_caps_what_goes_to_the_browser(seeded):
    from mlnb.widgets import RegistryPanel

    p = RegistryPanel(seeded, "churn", max_rows=2)
    assert (_versions(p), p.version_count) == ([4, 3], 4)
    p.sort_by("acc")
    assert _versions(p) == [2, 4]
    p.close()


def test_selecting_a_version_shows_its_details_escaped(panel, ui):
    panel.select_model("churn")
    ui.msg(action="select_version", version=2)
    html = panel.detail_html
    for expected in ("churn:2", "0.95", "lr", "growth", "weights.bin",  # metrics, params, tags, files
                     "Lineage", "churn:1", "Audit", "register"):
        assert expected in html, expected
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert HOSTILE not in html and "<img" not in html
    ui.msg(action="select_version", version=None)
    assert panel.detail_html == ""


def test_compare_two_versions_shows_the_metric_deltas(panel, ui):
    panel.select_model("churn")
    ui.msg(action="compare", a="churn:1", b="churn:2")
    assert panel.compare == ["churn:1", "churn:2"]
    assert "▲ +0.15" in panel.diff_html and "▼ -0.3" in panel.diff_html
    panel.compare_versions(4, "fraud-detector:1")  # numbers mean the selected model
    assert panel.compare == ["churn:4", "fraud-detector:1"] and "auc" in panel.diff_html
    ui.msg(action="compare")  # Close diff
    assert (panel.compare, panel.diff_html) == ([], "")


def test_selecting_another_model_clears_version_diff_and_pending(panel):
    panel.select_model("churn")
    panel.select_version(2)
    panel.compare_versions(1, 2)
    panel.request("promote")
    panel.select_model("fraud-detector")
    assert (panel.selected_version, panel.detail_html, panel.compare, panel.diff_html,
            panel.pending) == (0, "", [], "", {})
    assert _versions(panel) == [1]


def test_every_message_gets_a_done_reply_and_state_is_plain_json(panel, ui):
    ui.msg(action="select_model", name="churn")
    ui.msg(action="select_model", name="nope")
    assert ui.replies() == [{"type": "done", "action": "select_model", "ok": True},
                            {"type": "done", "action": "select_model", "ok": False}]
    assert panel.error.startswith("NotFound: ")
    assert all(math.isfinite(x) for r in panel.versions for x in r["metrics"].values()
               if not isinstance(x, str))


def test_an_action_sends_its_changes_as_one_update(panel, ui):
    ui.msg(action="select_model", name="churn")
    updates = ui.updates()
    # "busy" goes out first, on its own, so the buttons disable at once; the rest together.
    assert updates[0] == {"busy": True}
    assert len(updates) == 2
    assert {"selected_model", "versions", "metric_names", "busy"} <= set(updates[1])
    assert updates[1]["busy"] is False


def test_unknown_model_at_construction_is_not_found(seeded):
    from mlnb.errors import NotFound
    from mlnb.widgets import RegistryPanel

    with pytest.raises(NotFound, match="did you mean 'churn'"):
        RegistryPanel(seeded, "chrun")
