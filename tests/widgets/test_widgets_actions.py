"""Promote, rollback and retire from the panel: two steps, checked through the registry."""

from __future__ import annotations

import pytest

pytest.importorskip("anywidget")


@pytest.fixture
def churn(panel, ui):
    ui.msg(action="select_model", name="churn")
    return panel


def test_promote_waits_for_confirm(churn, ui, seeded):
    ui.msg(action="select_version", version=2)
    ui.msg(action="request", op="promote", version=2, alias="production")
    assert churn.pending["prompt"] == "Promote churn:2 to production?"
    assert seeded.get("churn:2").aliases == ()  # nothing happened yet
    ui.msg(action="confirm", id=churn.pending["id"], reason="best acc")
    assert seeded.get("churn@production").version == 2
    assert seeded.audit("churn")[0].reason == "best acc"
    assert churn.pending == {} and churn.error == ""
    assert churn.message == "Promoted churn:2 to production."
    # The panel shows the new state without a manual refresh.
    assert churn.models[0]["aliases"] == {"production": 2}
    assert churn.versions[2]["aliases"] == ["production"]
    assert "@production" in churn.detail_html


def test_cancel_drops_the_pending_action(churn, ui, seeded):
    ui.msg(action="request", op="promote", version=3, alias="staging")
    assert churn.pending["ref"] == "churn:3"
    ui.msg(action="cancel")
    assert churn.pending == {}
    ui.msg(action="confirm", id=1)
    assert churn.error.startswith("InvalidArgument: nothing to confirm")
    assert seeded.get("churn:3").aliases == ()


def test_confirm_of_a_stale_question_does_nothing(churn, ui, seeded):
    ui.msg(action="request", op="promote", version=1)
    first = churn.pending["id"]
    ui.msg(action="request", op="retire", version=1)  # the question changed meanwhile
    ui.msg(action="confirm", id=first)
    assert "now: Retire churn:1?" in churn.error
    assert seeded.get("churn:1").status == "active" and seeded.get("churn:1").aliases == ()
    assert churn.pending["op"] == "retire"  # still waiting


def test_rollback_and_retire_need_confirm_too(churn, ui, seeded):
    seeded.promote("churn:1")
    seeded.promote("churn:2")
    ui.msg(action="refresh")
    ui.msg(action="request", op="rollback", alias="production")
    assert churn.pending["prompt"] == (
        "Roll back churn@production (now churn:2) to the version that held it before?")
    assert seeded.get("churn@production").version == 2
    ui.msg(action="confirm", id=churn.pending["id"])
    assert seeded.get("churn@production").version == 1
    assert churn.message == "Rolled back churn@production to churn:1."

    ui.msg(action="select_version", version=1)
    ui.msg(action="request", op="retire")  # the selected version
    assert churn.pending["prompt"].startswith("Retire churn:1?")
    assert seeded.get("churn:1").status == "active"
    ui.msg(action="confirm", id=churn.pending["id"])
    assert seeded.get("churn:1").status == "retired"
    assert churn.versions[-1]["status"] == "retired"
    assert churn.models[0]["aliases"] == {}


def test_a_refused_action_is_one_line_and_raises_nothing(churn, ui, seeded):
    ui.msg(action="request", op="rollback")
    ui.msg(action="confirm", id=churn.pending["id"])  # production was never set
    assert churn.error == (
        "Conflict: churn@production is not set, so there is nothing to roll back")
    assert "\n" not in churn.error and churn.message == ""
    assert ui.replies()[-1] == {"type": "done", "action": "confirm", "ok": False}
    assert not churn.busy
    ui.msg(action="request", op="promote", alias="Bad Alias!")
    assert churn.error.startswith("InvalidName: invalid alias 'Bad Alias!'")
    ui.msg(action="request", op="launch")
    assert churn.error.startswith("InvalidArgument: unknown action 'launch'")
    ui.msg(action="select_version", version="2")  # a malformed message
    assert churn.error == "InvalidArgument: version must be a whole number, not '2'"
    ui.msg(action="frobnicate")
    assert churn.error.startswith("InvalidArgument: unknown panel message")


def test_the_next_action_clears_the_last_message(churn, ui, seeded):
    ui.msg(action="request", op="rollback")
    ui.msg(action="confirm", id=churn.pending["id"])
    assert churn.error
    ui.msg(action="refresh")
    assert churn.error == ""


def test_a_bug_says_so_and_keeps_its_traceback(churn, monkeypatch):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(churn.registry, "models", broken)
    with pytest.raises(ZeroDivisionError):
        churn._on_msg(churn, {"action": "refresh"}, [])
    assert churn.error.startswith("ZeroDivisionError: boom (a bug in mlnb")
    assert not churn.busy


def test_request_needs_a_selection(panel, ui):
    ui.msg(action="request", op="promote")
    assert panel.error == "InvalidArgument: select a model first"
    ui.msg(action="select_model", name="churn")
    ui.msg(action="request", op="retire")
    assert panel.error == "InvalidArgument: select a version to retire first"
