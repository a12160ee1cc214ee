"""Quality gates on a model: set strictly, and checked by promote in the alias move's transaction."""

from __future__ import annotations

import threading
import time

import pytest

import mlnb
from mlnb.registry.db import RegistryDB

FP = "c3" * 32
OTHER = "d4" * 32
NO_EVAL = ("cannot promote m:2 to production: m:2 has no evaluation to check m's 1 gate "
           "against: run mlnb.evaluate('m:2', data) first, or promote(..., force=True, reason=...)")


@pytest.fixture
def three(anyreg, tmp_path):
    f = tmp_path / "w"
    for i in range(3):
        f.write_text(str(i))
        anyreg.register("m", f)
    return anyreg


def _evaluate(reg, ref, accuracy, fp=FP, lower=None):
    return reg.record_evaluation(ref, data_fingerprint=fp, task="classification",
                                 metrics={"accuracy": {"value": accuracy, "lower": lower,
                                                       "upper": None}})


def _moves(reg):
    return [(e.action, e.alias, e.from_version, e.to_version) for e in reg.audit("m") if e.alias]


# -- setting gates ---------------------------------------------------------------------

def test_set_get_and_clear_gates_each_audited(three):
    assert three.gates("m") == ()
    texts = three.set_gates("m", ["accuracy>=0.9", "accuracy.lower>=@production -0.01",
                                  "latency_p95_ms <= 20"], reason="launch bar")
    assert texts == ("accuracy >= 0.9", "accuracy.lower >= @production - 0.01",
                     "latency_p95_ms <= 20")
    assert three.gates("m") == texts
    entry = three.audit("m")[0]
    assert (entry.action, entry.reason, entry.version) == ("set_gates", "launch bar", None)
    assert entry.details == {"gates": list(texts), "previous": []}
    before = len(three.audit("m"))
    three.set_gates("m", list(texts))  # the same gates again: nothing changes
    assert len(three.audit("m")) == before
    assert three.set_gates("m", []) == ()
    assert three.gates("m") == ()
    assert three.audit("m")[0].details == {"gates": [], "previous": list(texts)}
    assert three.sql("select * from gates").empty


def test_gates_show_in_sql_and_survive_a_restart(tmp_path):
    path = str(tmp_path / "r.duckdb")
    db = RegistryDB(path)
    db.hold("r", ["0" * 64])
    db.register(request_id="r", name="m", format="files", metadata={}, metrics={}, params={},
                tags={}, description=None, parent=None, user="u",
                files=[{"path": "f", "sha256": "0" * 64, "size": 1, "media_type": "x/y"}])
    db.set_gates("m", ["accuracy >= 0.9", "log_loss <= @staging"], user="u")
    rows = db.sql("select name, gates, set_by from gates")["rows"]
    assert rows == [["m", ["accuracy >= 0.9", "log_loss <= @staging"], "u"]]
    db.close()
    again = RegistryDB(path)
    assert again.gates("m") == ["accuracy >= 0.9", "log_loss <= @staging"]
    with pytest.raises(mlnb.Conflict, match="has no evaluation"):
        again.promote("m:1", user="u")
    again.close()


@pytest.mark.parametrize(("gates", "message"), [
    (["accuracy == 0.9"], r"'==' is not allowed"),
    (["accuracy => 0.9"], r"did you mean '>='"),
    (["accuarcy >= 0.9"], r"unknown metric 'accuarcy'.*did you mean 'accuracy'"),
    (["my_score >= 0.5"], r"unknown metric 'my_score'"),
    (["accuracy >= @prod uction"], r"only '\+ NUMBER' or '- NUMBER' may follow an alias"),
    (["accuracy >= @"], r"'@' needs an alias name"),
    (["accuracy >= @canary-2"], r"ambiguous"),
    (["accuracy.low >= 0.9"], r"unknown bound '.low'"),
    (["confusion_matrix >= 1"], r"cannot be gated"),
    (["accuracy >= 95%"], r"percentages are not allowed"),
    (["accuracy >= 0.9", "accuracy>=0.90"], r"given twice"),
    ("accuracy >= 0.9", r"use \['accuracy >= 0.9'\]"),
    ([0.9], r"a gate must be a string"),
])
def test_bad_gates_are_refused_when_set(three, gates, message):
    three.set_gates("m", ["accuracy >= 0.5"])
    with pytest.raises(mlnb.InvalidArgument, match=message):
        three.set_gates("m", gates)
    assert three.gates("m") == ("accuracy >= 0.5",)


def test_parsed_gates_can_be_set_as_they_are(three):
    from mlnb.evaluation.gates import parse_gates

    parsed = parse_gates(["rmse<=2", "r2 >= @staging"], known_metrics=["rmse", "r2"])
    assert three.set_gates("m", list(parsed)) == ("rmse <= 2", "r2 >= @staging")


def test_a_metric_some_evaluation_recorded_can_be_gated(three):
    with pytest.raises(mlnb.NotFound, match="no model 'x'"):
        three.set_gates("x", ["accuracy >= 0.9"])
    three.record_evaluation("m:1", data_fingerprint=FP, task="classification",
                            metrics={"my_score": 0.7})
    assert three.set_gates("m", ["my_score >= 0.5"]) == ("my_score >= 0.5",)


# -- promote without gates, and what gates do not touch ------------------------------

def test_without_gates_promote_is_unchanged(three):
    three.promote("m:1")
    assert three.audit("m")[0].details is None
    three.set_gates("m", ["accuracy >= 0.9"])
    three.promote("m:1")  # already holds it: nothing to check, nothing written
    # staging is not gated (production only), and free aliases never are
    assert three.promote("m:3", "staging").aliases == ("staging",)
    assert three.set_alias("m:3", "candidate").aliases == ("candidate", "staging")
    with pytest.raises(mlnb.Conflict, match="protected"):
        three.set_alias("m:3", "production")


# -- refusals -------------------------------------------------------------------------

def test_refused_without_an_evaluation(three):
    three.promote("m:1")
    three.set_gates("m", ["accuracy >= 0.9"])
    before = three.audit("m")
    with pytest.raises(mlnb.Conflict) as info:
        three.promote("m:2")
    assert str(info.value) == NO_EVAL
    _evaluate(three, "m:3", 0.99)  # another version's evaluation does not count
    with pytest.raises(mlnb.Conflict, match="m:2 has no evaluation"):
        three.promote("m:2")
    assert three.get("m@production").version == 1
    assert [e.id for e in three.audit("m")][1:] == [e.id for e in before]


def test_refused_with_a_failing_evaluation(three):
    three.set_gates("m", ["accuracy >= 0.9", "accuracy.lower >= 0.85"])
    e = _evaluate(three, "m:2", 0.88, lower=0.86)
    with pytest.raises(mlnb.Conflict) as info:
        three.promote("m:2")
    assert str(info.value) == (
        f"cannot promote m:2 to production: its newest evaluation #{e.id} (data {FP[:12]}) "
        "does not pass m's gates: 2 gates: 1 passed, 1 failed: accuracy >= 0.9 (0.88); "
        "promote a better version or change the gates with set_gates('m', [...]); "
        "or promote(..., force=True, reason=...)")
    assert "\n" not in str(info.value)
    assert three.get("m:2").aliases == ()


def test_the_newest_evaluation_decides(three):
    three.set_gates("m", ["accuracy >= 0.9"])
    _evaluate(three, "m:2", 0.95)
    _evaluate(three, "m:2", 0.80, fp=OTHER)  # a later run, on other data, fails
    with pytest.raises(mlnb.Conflict, match=r"accuracy >= 0.9 \(0.8\)"):
        three.promote("m:2")
    newest = _evaluate(three, "m:2", 0.91, fp=OTHER)
    three.promote("m:2")
    assert three.audit("m")[0].details["evaluation_id"] == newest.id


def test_refused_when_a_relative_gate_cannot_be_decided(three):
    three.promote("m:1")
    three.set_gates("m", ["accuracy >= @production - 0.01"])
    e = _evaluate(three, "m:2", 0.95)  # production has no evaluation on this data
    with pytest.raises(mlnb.Conflict) as info:
        three.promote("m:2")
    assert str(info.value) == (
        f"cannot promote m:2 to production: its newest evaluation #{e.id} (data {FP[:12]}) "
        "does not pass m's gates: 1 gate: 0 passed, 1 not decided: "
        "accuracy >= @production - 0.01 (no evaluation of @production on this data: "
        f"evaluate it first); evaluate m:1 (@production) on data {FP[:12]} too; "
        "or promote(..., force=True, reason=...)")
    # evaluating production on *other* data does not help: the data must be the same
    _evaluate(three, "m:1", 0.5, fp=OTHER)
    with pytest.raises(mlnb.Conflict, match="not decided"):
        three.promote("m:2")
    assert three.get("m@production").version == 1


def test_a_missing_metric_is_not_decided(three):
    three.set_gates("m", ["accuracy >= 0.9", "ece <= 0.05"])
    _evaluate(three, "m:2", 0.95)
    with pytest.raises(mlnb.Conflict, match=r"ece is not in this evaluation.*evaluate m:2 with "
                                            r"the missing metrics; or promote"):
        three.promote("m:2")


# -- passing --------------------------------------------------------------------------

def test_allowed_with_a_passing_evaluation_and_audited(three):
    three.set_gates("m", ["accuracy >= 0.9", "accuracy.lower >= 0.85"])
    e = _evaluate(three, "m:2", 0.93, lower=0.9)
    v = three.promote("m:2", reason="passes the bar")
    assert v.aliases == ("production",)
    entry = three.audit("m")[0]
    assert (entry.action, entry.alias, entry.to_version, entry.reason) == (
        "promote", "production", 2, "passes the bar")
    assert entry.details == {
        "gates": "passed", "evaluation_id": e.id, "data_fingerprint": FP,
        "summary": "2 gates: 2 passed",
        "checked": ["accuracy >= 0.9", "accuracy.lower >= 0.85"]}


def test_relative_gate_against_production_on_the_same_data(three):
    three.set_gates("m", ["accuracy >= @production - 0.005"])
    _evaluate(three, "m:1", 0.90)
    three.promote("m:1")  # the first production version: nothing to compare with, passes
    first = three.audit("m")[0].details
    assert first["gates"] == "passed" and first["summary"] == "1 gate: 1 passed"
    _evaluate(three, "m:2", 0.80)  # worse than production by 0.1
    with pytest.raises(mlnb.Conflict, match=r"1 failed: accuracy >= @production - 0.005 "
                                            r"\(0.8 vs 0.895\)"):
        three.promote("m:2")
    _evaluate(three, "m:2", 0.897)  # within the margin, on the same data
    three.promote("m:2")
    assert _moves(three)[0] == ("promote", "production", 1, 2)
    # m:3 is better, but on data production was never evaluated on: refused
    _evaluate(three, "m:3", 0.99, fp=OTHER)
    with pytest.raises(mlnb.Conflict, match=rf"evaluate m:2 \(@production\) on data {OTHER[:12]}"):
        three.promote("m:3")
    _evaluate(three, "m:2", 0.95, fp=OTHER)
    three.promote("m:3")
    assert three.get("m@production").version == 3


def test_first_production_promotion_with_a_relative_gate_passes(three):
    three.set_gates("m", ["accuracy >= @production", "accuracy >= 0.5"])
    _evaluate(three, "m:3", 0.7)
    assert three.promote("m:3").aliases == ("production",)


# -- force ----------------------------------------------------------------------------

def test_force_needs_a_reason_and_is_audited(three):
    three.set_gates("m", ["accuracy >= 0.9"])
    for reason in (None, "", "   "):
        with pytest.raises(mlnb.InvalidArgument, match=r"force=True\) overrides quality gates "
                                                       r"and needs a reason"):
            three.promote("m:2", force=True, reason=reason)
    v = three.promote("m:2", force=True, reason="hotfix, evaluation tomorrow")
    assert v.aliases == ("production",)
    entry = three.audit("m")[0]
    assert entry.reason == "hotfix, evaluation tomorrow"
    assert entry.details == {"gates": "overridden", "evaluation_id": None,
                             "data_fingerprint": None, "summary": "m:2 has no evaluation",
                             "checked": ["accuracy >= 0.9"]}
    e = _evaluate(three, "m:3", 0.5)
    three.promote("m:3", force=True, reason="rollout needs it")
    assert three.audit("m")[0].details == {
        "gates": "overridden", "evaluation_id": e.id, "data_fingerprint": FP,
        "summary": "1 gate: 0 passed, 1 failed: accuracy >= 0.9 (0.5)",
        "checked": ["accuracy >= 0.9"]}
    assert three.rollback("m").version == 2  # rollback is not gated


# -- consistency under concurrency ----------------------------------------------------

def _race(promoter, evaluator, ref, lead):
    """Promote *ref* and record a failing evaluation of it at once, *lead* going 50 ms early."""
    start = threading.Barrier(2)
    outcome: dict[str, object] = {}

    def promote():
        start.wait()
        time.sleep(0.05 if lead == "evaluate" else 0)
        try:
            outcome["promote"] = promoter.promote(ref)
        except mlnb.Conflict as err:
            outcome["promote"] = err

    def evaluate():
        start.wait()
        time.sleep(0.05 if lead == "promote" else 0)
        outcome["failing"] = _evaluate(evaluator, ref, 0.5)

    threads = [threading.Thread(target=promote), threading.Thread(target=evaluate)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return outcome["promote"], outcome["failing"]


def test_a_promote_racing_a_failing_evaluation_is_never_gated_on_a_stale_view(reg, home):
    """Two clients: one promotes while the other records a failing evaluation of the version.

    Whichever the server runs first, the outcome must be consistent: either the
    promote ran first (its audit row names the passing evaluation, which was then
    the newest, and comes before the failing one's row), or it ran second and was
    refused by the failing evaluation.  Never a promote gated on an evaluation
    that was not the newest when it moved the alias.
    """
    f = home / "w"
    other = mlnb.Registry(home)
    try:
        for i in range(6):
            f.write_text(str(i))
            reg.register("m", f)
        reg.set_gates("m", ["accuracy >= 0.9"])
        for ver in range(1, 7):
            passing = _evaluate(reg, f"m:{ver}", 0.95)
            lead = "promote" if ver % 2 else "evaluate"  # a head start, not a guarantee
            promoted, failing = _race(reg, other, f"m:{ver}", lead)
            log = reg.audit("m")
            evaluated_at = next(e.id for e in log if e.action == "evaluate"
                                and e.details["evaluation_id"] == failing.id)
            if isinstance(promoted, mlnb.Conflict):
                assert "1 failed: accuracy >= 0.9 (0.5)" in str(promoted)
                assert f"evaluation #{failing.id}" in str(promoted)
                assert reg.get(f"m:{ver}").aliases == ()
            else:
                moved = next(e for e in log if e.action == "promote" and e.to_version == ver)
                assert moved.details["evaluation_id"] == passing.id
                assert moved.id < evaluated_at
                assert reg.get("m@production").version == ver
    finally:
        other.close()


def test_no_other_client_runs_between_the_gate_check_and_the_alias_move(tmp_path, monkeypatch):
    """Hold the check open: a second client's evaluation must wait until the move commits."""
    from mlnb.registry import gating

    db = RegistryDB(str(tmp_path / "r.duckdb"))
    db.hold("r", ["0" * 64])
    db.register(request_id="r", name="m", format="files", metadata={}, metrics={}, params={},
                tags={}, description=None, parent=None, user="u",
                files=[{"path": "f", "sha256": "0" * 64, "size": 1, "media_type": "x/y"}])
    db.set_gates("m", ["accuracy >= 0.9"], user="u")
    good = db.record_evaluation("m:1", data_fingerprint=FP, task="classification",
                                metrics={"accuracy": {"value": 0.95}}, user="u")
    real_check = gating.check_promotion
    racer = threading.Thread(target=lambda: db.record_evaluation(
        "m:1", data_fingerprint=FP, task="classification", metrics={"accuracy": {"value": 0.1}},
        user="other"))
    blocked = []

    def slow_check(*args, **kwargs):
        details = real_check(*args, **kwargs)
        racer.start()
        racer.join(0.3)
        blocked.append(racer.is_alive())  # still waiting for the lock
        return details

    monkeypatch.setattr(gating, "check_promotion", slow_check)
    db.promote("m:1", user="u")
    racer.join(10)
    assert blocked == [True]
    promote, evaluate = db.audit("m")[1], db.audit("m")[0]
    assert (promote["action"], promote["details"]["evaluation_id"]) == ("promote", good["id"])
    assert evaluate["action"] == "evaluate" and evaluate["id"] > promote["id"]
    db.close()
