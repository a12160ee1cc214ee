"""Stored evaluations: record, list, audit, lineage edges, SQL views, and the migration that adds them."""

from __future__ import annotations

import math

import duckdb
import pytest

import mlnb
from mlnb.registry import schema
from mlnb.registry.db import RegistryDB
from mlnb.registry.records import EvaluationList, EvaluationRecord, StoredEstimate

FP_A = "a1" * 32
FP_B = "b2" * 32


@pytest.fixture
def two(anyreg, tmp_path):
    f = tmp_path / "w"
    for i in range(2):
        f.write_text(str(i))
        anyreg.register("m", f, parent="m:1" if i else None)
    return anyreg


def _acc(value, lower=None, upper=None):
    return {"accuracy": {"value": value, "lower": lower, "upper": upper}}


def test_record_returns_the_stored_evaluation(two):
    before = two.changes()
    e = two.record_evaluation(
        "m:1", data_fingerprint=FP_A, task="classification",
        metrics={"accuracy": {"value": 0.93, "lower": 0.91, "upper": 0.95, "note": "n=1000"},
                 "log_loss": float("nan"), "latency_p95_ms": {"value": float("inf")}},
        details={"n": 1000, "device": "cpu", "seed": 0, "ratio": float("nan")},
    )
    assert isinstance(e, EvaluationRecord)
    assert (e.ref, e.name, e.version, e.task, e.created_by) == ("m:1", "m", 1, "classification",
                                                                "tester")
    assert e.data_fingerprint == FP_A and e.data == "data:" + FP_A[:12]
    assert e.metrics["accuracy"] == StoredEstimate(0.93, 0.91, 0.95, "n=1000")
    assert math.isnan(e.metrics["log_loss"].value) and e.metrics["log_loss"].lower is None
    assert e.metrics["latency_p95_ms"].value == math.inf
    # non-finite numbers inside details come back as the strings they are stored as
    assert dict(e.details) == {"n": 1000, "device": "cpu", "seed": 0, "ratio": "NaN"}
    assert two.changes() != before
    entry = two.audit("m")[0]
    assert (entry.action, entry.version, entry.user) == ("evaluate", 1, "tester")
    assert entry.details == {"evaluation_id": e.id, "data_fingerprint": FP_A,
                             "task": "classification"}
    assert repr(e) == (f"<EvaluationRecord #{e.id} m:1 on data:{FP_A[:12]} classification: "
                       "accuracy=0.93 [0.91, 0.95], log_loss=nan, latency_p95_ms=inf>")


def test_a_version_keeps_every_evaluation_newest_first(two):
    first = two.record_evaluation("m:1", data_fingerprint=FP_A, task="classification",
                                  metrics=_acc(0.90))
    again = two.record_evaluation("m:1", data_fingerprint=FP_A, task="classification",
                                  metrics=_acc(0.91))
    other = two.record_evaluation("m:1", data_fingerprint=FP_B, task="classification",
                                  metrics=_acc(0.80))
    v2 = two.record_evaluation("m:2", data_fingerprint=FP_A, task="classification",
                               metrics=_acc(0.95))
    assert first.id < again.id < other.id < v2.id
    listed = two.evaluations("m:1")
    assert isinstance(listed, EvaluationList)
    assert [e.id for e in listed] == [other.id, again.id, first.id]
    assert [e.id for e in two.evaluations("m:1", data_fingerprint=FP_A)] == [again.id, first.id]
    assert [e.id for e in two.evaluations(name="m")] == [v2.id, other.id, again.id, first.id]
    assert [e.id for e in two.evaluations()] == [v2.id, other.id, again.id, first.id]
    assert [e.id for e in two.evaluations("m")] == [v2.id]  # "m" is the latest version
    assert two.evaluations(name="m", data_fingerprint="nope") == []


def test_estimate_objects_numbers_and_numpy_scalars_are_accepted(two):
    np = pytest.importorskip("numpy")
    from mlnb.evaluation.metrics import Estimate

    e = two.record_evaluation(
        "m:2", data_fingerprint=FP_A, task="regression",
        metrics={"mse": Estimate("mse", 0.5, 0.4, 0.6), "r2": np.float32(0.75), "mae": 2},
        details={"n": np.int64(7), "sizes": np.array([1, 2])},
    )
    assert e.metrics["mse"] == StoredEstimate(0.5, 0.4, 0.6, "")
    assert e.metrics["r2"].value == 0.75 and e.metrics["mae"].value == 2.0
    assert dict(e.details) == {"n": 7, "sizes": [1, 2]}


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"metrics": {"accuracy": "high"}}, "must be an estimate"),
    ({"metrics": {"accuracy": {"value": "0.9"}}}, "value must be a number"),
    ({"metrics": {"accuracy": {"value": 0.9, "lower": "x"}}}, "lower must be a number or None"),
    ({"metrics": {"accuracy": {"value": 0.9, "stderr": 1}}}, "unknown fields"),
    ({"metrics": {"": 0.9}}, "invalid metric name"),
    ({"metrics": [0.9]}, "must map metric names"),
    ({"details": {"when": object()}}, "details must be JSON-like"),
    ({"data_fingerprint": ""}, "invalid data fingerprint"),
    ({"task": ""}, "invalid task"),
])
def test_bad_records_are_refused_and_store_nothing(two, kwargs, message):
    args = {"data_fingerprint": FP_A, "task": "classification", "metrics": _acc(0.9)} | kwargs
    with pytest.raises(mlnb.InvalidArgument, match=message):
        two.record_evaluation("m:1", **args)
    assert two.evaluations() == []


def test_unknown_versions_and_ambiguous_filters_are_refused(two):
    with pytest.raises(mlnb.NotFound, match="no version 9"):
        two.record_evaluation("m:9", data_fingerprint=FP_A, task="classification",
                              metrics=_acc(0.9))
    with pytest.raises(mlnb.NotFound, match="no model 'x'"):
        two.evaluations(name="x")
    with pytest.raises(mlnb.InvalidArgument, match="not both"):
        two._call("evaluations", ref="m:1", name="m")


def test_a_resent_recording_is_stored_once(two):
    args = {"ref": "m:1", "data_fingerprint": FP_A, "task": "classification",
            "metrics": _acc(0.9), "details": {}, "user": "tester", "request_id": "req-1"}
    first = two._call("record_evaluation", **args)
    again = two._call("record_evaluation", **args)
    assert first == again
    assert len(two.evaluations()) == 1
    assert [a.action for a in two.audit("m")].count("evaluate") == 1


def test_evaluations_are_lineage_edges_to_their_data(two):
    two.record_evaluation("m:1", data_fingerprint=FP_A, task="classification", metrics=_acc(0.9))
    e = two.record_evaluation("m:1", data_fingerprint=FP_A, task="classification",
                              metrics=_acc(0.91))
    two.record_evaluation("m:2", data_fingerprint=FP_B, task="classification", metrics=_acc(0.8))
    edges = {(x.source, x.kind, x.target): x.details for x in two.lineage("m:2").edges}
    assert ("m:2", "parent", "m:1") in edges
    assert edges[("m:2", "evaluated_on", f"data:{FP_B[:12]}")]["evaluations"] == 1
    # the parent's evaluations come along with the parent, one edge per data set
    assert edges[("m:1", "evaluated_on", f"data:{FP_A[:12]}")] == {
        "data_fingerprint": FP_A, "evaluation_id": e.id, "evaluations": 2,
        "task": "classification"}
    assert "data:" in repr(two.lineage("m:1"))
    assert two.lineage("m:1")._repr_html_().count(f"data:{FP_A[:12]}") >= 1


def test_sql_views_show_evaluations_with_names(two):
    two.record_evaluation("m:2", data_fingerprint=FP_A, task="classification",
                          metrics={**_acc(0.9, 0.88, 0.92), "log_loss": 0.3})
    rows = two.sql("select name, version, data_fingerprint, task from evaluations")
    assert rows.values.tolist() == [["m", 2, FP_A, "classification"]]
    metrics = two.sql("select metric, value, lower, upper from evaluation_metrics order by metric")
    assert metrics["metric"].tolist() == ["accuracy", "log_loss"]
    assert metrics.iloc[0, 1:].tolist() == [0.9, 0.88, 0.92]
    assert math.isnan(metrics.iloc[1]["lower"])
    with pytest.raises(mlnb.InvalidArgument, match="only SELECT"):
        two.sql("delete from mlnb.evaluations")


def test_evaluations_render_as_html(two, tmp_path):
    from mlnb.display import to_html

    two.record_evaluation("m:1", data_fingerprint=FP_A, task="classification",
                          metrics={"<b>x</b>": 1.0})
    listed = two.evaluations("m:1")
    for markup in (listed._repr_html_(), listed[0]._repr_html_(), to_html(listed),
                   to_html(listed[0])):
        assert markup.startswith('<div class="mlnb mlnb-evaluations">')
        assert "&lt;b&gt;x&lt;/b&gt; 1" in markup and "<b>x" not in markup
    assert "no evaluations" in EvaluationList()._repr_html_()


def test_the_registry_knows_every_built_in_metric():
    from mlnb.evaluation.metrics import METRICS_BY_TASK
    from mlnb.registry.gating import BUILTIN_METRICS

    assert {m for names in METRICS_BY_TASK.values() for m in names} == BUILTIN_METRICS


def test_a_file_from_migration_1_gets_migration_2_on_open_and_keeps_its_history(tmp_path):
    path = str(tmp_path / "old.duckdb")
    con = duckdb.connect(path)  # a registry file as an mlnb before evaluations left it
    schema.migrate(con, upto=1)
    con.execute("insert into mlnb.models values (1, 'm', null, now()::timestamp, 'u')")
    con.execute(
        "insert into mlnb.versions values (1, 1, 'active', 'files', null, now()::timestamp, 'u',"
        " 'req', 1, '{\"acc\": 0.5}', '{}', '{}', '[]', '{}', null)")
    con.execute("insert into mlnb.aliases values (1, 'production', 1, now()::timestamp, 'u')")
    con.close()
    db = RegistryDB(path)
    assert schema.current_version(db.con) == schema.LATEST == 2
    assert db.get("m@production")["metrics"] == {"acc": 0.5}
    assert db.gates("m") == [] and db.evaluations() == []
    assert db.promote("m:1", "staging", user="u")["aliases"] == ["production", "staging"]
    e = db.record_evaluation("m:1", data_fingerprint=FP_A, task="classification",
                             metrics=_acc(0.9), user="u")
    db.set_gates("m", ["accuracy >= 0.8"], user="u")
    assert [a["action"] for a in db.audit("m")] == ["set_gates", "evaluate", "promote",
                                                   "register"]
    db.close()
    again = RegistryDB(path)
    assert [x["id"] for x in again.evaluations("m:1")] == [e["id"]]
    assert again.gates("m") == ["accuracy >= 0.8"]
    again.close()
