"""Aliases, promotion, rollback, retirement, and the audit log that records them."""

from __future__ import annotations

import pytest

import mlnb


@pytest.fixture
def three(anyreg, tmp_path):
    f = tmp_path / "w"
    for i in range(3):
        f.write_text(str(i))
        anyreg.register("m", f, metrics={"acc": 0.8 + i / 100})
    return anyreg


def test_promote_moves_production_and_audits_each_move(three):
    three.promote("m:1", "production", reason="first")
    three.promote("m:2", "production", reason="beats v1")
    assert three.get("m@production").version == 2
    assert three.get("m:1").aliases == ()
    assert three.get("m:2").aliases == ("production",)
    moves = [(e.action, e.from_version, e.to_version, e.reason, e.user)
             for e in three.audit("m") if e.alias == "production"]
    assert moves == [("promote", 1, 2, "beats v1", "tester"), ("promote", None, 1, "first", "tester")]


def test_promoting_the_current_holder_again_changes_nothing(three):
    three.promote("m:2")
    before = len(three.audit("m"))
    three.promote("m:2")
    assert len(three.audit("m")) == before


def test_rollback_walks_back_through_history(three):
    for v in (1, 2, 3):
        three.promote(f"m:{v}")
    assert three.rollback("m").version == 2
    assert three.get("m@production").version == 2
    assert three.rollback("m").version == 1
    with pytest.raises(mlnb.Conflict, match="nothing to roll back"):
        three.rollback("m")
    rows = [(e.action, e.from_version, e.to_version) for e in three.audit("m") if e.alias]
    assert rows[:2] == [("rollback", 2, 1), ("rollback", 3, 2)]


def test_rollback_refuses_a_retired_previous_holder(three):
    three.promote("m:1")
    three.promote("m:2")
    three.retire("m:1")
    with pytest.raises(mlnb.Conflict, match="retired"):
        three.rollback("m")
    assert three.get("m@production").version == 2


def test_protected_aliases_move_only_through_promote(three):
    for alias in ("production", "staging"):
        with pytest.raises(mlnb.Conflict, match="protected"):
            three.set_alias("m:1", alias)
    three.set_alias("m:1", "champion")
    three.set_alias("m:3", "champion")
    assert three.get("m@champion").version == 3
    assert three.get("m:1").aliases == ()


def test_retire_takes_aliases_away_and_forbids_new_ones(three):
    three.promote("m:2", "production")
    three.set_alias("m:2", "champion")
    v = three.retire("m:2", reason="bad data")
    assert (v.status, v.aliases) == ("retired", ())
    with pytest.raises(mlnb.NotFound):
        three.get("m@production")
    with pytest.raises(mlnb.Conflict, match="retired"):
        three.promote("m:2")
    with pytest.raises(mlnb.Conflict, match="already retired"):
        three.retire("m:2")
    # a retired version stays readable and keeps its number
    assert three.get("m:2").status == "retired"
    assert three.get("m").version == 3


def test_latest_reference_skips_retired_versions(three):
    three.retire("m:3")
    assert three.get("m").version == 2


def test_alias_names_follow_the_name_rule(three):
    with pytest.raises(mlnb.InvalidName):
        three.set_alias("m:1", "bad alias")
    with pytest.raises(mlnb.InvalidName):
        three.promote("m:1", "../x")


def test_remove_alias(three):
    three.set_alias("m:1", "candidate")
    three.remove_alias("m", "candidate")
    with pytest.raises(mlnb.NotFound):
        three.get("m@candidate")
    with pytest.raises(mlnb.NotFound):
        three.remove_alias("m", "candidate")


def test_models_lists_counts_and_aliases(three):
    three.promote("m:3")
    (info,) = three.models()
    assert (info.name, info.versions, info.latest, info.aliases) == ("m", 3, 3, {"production": 3})


def test_audit_covers_every_kind_of_change_in_order(three):
    three.promote("m:1")
    three.set_alias("m:2", "champion")
    three.retire("m:3")
    actions = [e.action for e in reversed(three.audit("m"))]
    assert actions == ["register", "register", "register", "promote", "set_alias", "retire"]
    ids = [e.id for e in three.audit()]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == len(ids)
