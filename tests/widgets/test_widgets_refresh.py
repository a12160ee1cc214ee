"""Refresh shows what other kernels changed: a second client on the same registry file."""

from __future__ import annotations

import pytest

pytest.importorskip("anywidget")


@pytest.fixture
def two(reg, home, tmp_path):
    """A panel on one client of a registry file, and a second client ("another kernel")."""
    import mlnb
    from mlnb.widgets import RegistryPanel

    f = tmp_path / "w.bin"
    f.write_text("1")
    reg.register("churn", f, metrics={"acc": 0.8})
    panel = RegistryPanel(reg, "churn")
    other = mlnb.Registry(home)
    yield panel, other, f
    panel.close()
    other.close()


def test_refresh_shows_versions_and_aliases_from_another_client(two):
    panel, other, f = two
    panel.select_version(1)
    f.write_text("2")
    other.register("churn", f, metrics={"acc": 0.9})
    other.register("spam", f)
    other.promote("churn:1")
    assert [r["version"] for r in panel.versions] == [1]  # not until asked
    panel.refresh()
    assert [r["version"] for r in panel.versions] == [2, 1]
    assert panel.versions[1]["aliases"] == ["production"]
    assert [m["name"] for m in panel.models] == ["churn", "spam"]
    assert "@production" in panel.detail_html


def test_poll_is_cheap_throttled_and_updates_what_changed(two, monkeypatch):
    panel, other, f = two
    panel.select_version(1)
    panel._last_refresh = 0.0
    assert panel.poll() is True
    assert panel.poll() is False  # within a second of the last: skipped
    calls = []
    monkeypatch.setattr("mlnb.widgets._views.detail_html",
                        lambda reg, ref: calls.append(ref) or f"<p>{ref}</p>")
    panel._last_refresh = 0.0
    f.write_text("2")
    other.register("churn", f)  # a new version; version 1 itself is unchanged
    assert panel.poll() is True
    assert panel.version_count == 2 and calls == []  # the detail was not re-rendered
    other.promote("churn:1")
    panel._last_refresh = 0.0
    panel.poll()
    assert calls == ["churn:1"]  # its aliases changed: re-rendered
    panel.busy = True
    panel._last_refresh = 0.0
    assert panel.poll() is False  # never while an action runs


def test_a_poll_from_the_browser_is_answered_and_keeps_the_last_message(two, frontend):
    panel, other, f = two
    ui = frontend(panel)
    panel.message = "Promoted churn:1 to production."
    f.write_text("2")
    other.register("churn", f)
    panel._last_refresh = 0.0
    ui.msg(action="poll")
    assert panel.version_count == 2
    assert panel.message == "Promoted churn:1 to production."
    assert ui.replies() == [{"type": "done", "action": "poll", "ok": True}]


def test_auto_refresh_is_off_unless_asked(two, reg):
    from mlnb.errors import InvalidArgument
    from mlnb.widgets import RegistryPanel

    panel, _, _ = two
    assert panel.auto_refresh == 0
    p = RegistryPanel(reg, auto_refresh=5)
    assert p.auto_refresh == 5.0
    p.close()
    with pytest.raises(InvalidArgument, match="auto_refresh"):
        RegistryPanel(reg, auto_refresh=-1)
