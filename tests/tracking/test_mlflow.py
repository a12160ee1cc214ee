"""MLflow: what a user finds in the tracking store after a run, read back with MlflowClient."""

from __future__ import annotations

import json
import os
import uuid
import warnings

import pytest
from tracking.runs import ROWS, STEPS, Scenario, needs_track

from mlnb.training.events import ObserverWarning

pytest.importorskip("mlflow")

pytestmark = [
    pytest.mark.usefixtures("mlflow_env"),
    # SQLAlchemy 2.1 deprecates a loader option MLflow 3.17 uses; not ours to fix
    pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning"),
]


def _client(home):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{home}/mlflow/mlflow.db")


def _find(client, run_id, experiment):
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"no experiment {experiment!r}"
    runs = client.search_runs([exp.experiment_id],
                              filter_string=f"tags.`mlnb.run_id` = '{run_id}'")
    assert len(runs) == 1, runs
    return runs[0]


def _history(client, run_id, key):
    return [(m.step, m.value) for m in sorted(client.get_metric_history(run_id, key),
                                               key=lambda m: m.step)]


def test_the_tracking_uri_is_mlflows_variable_else_sqlite_under_mlnb_home(
        mlflow_env, monkeypatch):
    from mlnb.tracking.mlflow_publisher import default_tracking_uri

    assert default_tracking_uri() == f"sqlite:///{mlflow_env}/mlflow/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking.example:5000")
    assert default_tracking_uri() == "http://tracking.example:5000"


def test_a_run_publishes_params_metrics_final_metrics_status_and_model(
        mlflow_env, scenario, model):
    import torch

    from mlnb.serialize import load
    from mlnb.tracking import make_publishers

    publisher, = make_publishers(["mlflow"])
    scenario.send(publisher)

    client = _client(mlflow_env)
    run = _find(client, scenario.run_id, experiment="blobs")  # experiment = run name
    assert run.info.run_name == scenario.run_id
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert params["lr"] == "0.1" and params["optimizer"] == "SGD" and params["seed"] == "None"
    assert params["opt.betas"] == "[0.9, 0.999]" and params["opt.nesterov"] == "False"
    tags = run.data.tags
    assert tags["mlnb.run_id"] == scenario.run_id and tags["mlnb.status"] == "finished"
    assert tags["mlnb.device"] == "cpu" and tags["mlflow.user"] == "tester"

    # per step at the global batch step; per epoch at the epoch number
    assert _history(client, run.info.run_id, "train_loss_step") == [
        (s, loss) for s, _, loss in STEPS]
    for column in ("train_loss", "val_loss", "val_accuracy", "lr", "samples_per_s"):
        assert _history(client, run.info.run_id, column) == [
            (r["epoch"], r[column]) for r in ROWS], column
    assert run.data.metrics["best_val_loss"] == 0.3
    assert run.data.metrics["best_epoch"] == 2 and run.data.metrics["epochs_run"] == 2
    assert run.data.metrics["val_accuracy"] == 0.9  # the final value

    listed = sorted(f.path for f in client.list_artifacts(run.info.run_id, "model"))
    assert listed == ["model/mlnb.json", "model/model.safetensors"]
    local = client.download_artifacts(run.info.run_id, "model", str(mlflow_env / "dl"))
    info = json.loads(open(os.path.join(local, "mlnb.json")).read())
    back = load(info["format"], local, info["metadata"],
                into=torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.ReLU(),
                                         torch.nn.Linear(16, 2)))
    assert all(torch.equal(back.state_dict()[k], v) for k, v in model.state_dict().items())
    # the artifacts live under MLNB_HOME, not in the current folder
    assert run.info.artifact_uri.startswith((mlflow_env / "mlflow" / "artifacts").as_uri())
    assert list(os.listdir(".")) == []


@pytest.mark.parametrize("status, expected", [
    ("stopped_early", "FINISHED"), ("stopped", "KILLED"), ("interrupted", "KILLED"),
    ("diverged", "FAILED"),
])
def test_mlnb_status_becomes_the_mlflow_run_status(mlflow_env, model, status, expected):
    from mlnb.tracking import MLflowPublisher

    scenario = Scenario(name="statuses", run_id=f"st-{uuid.uuid4().hex[:8]}", model=model,
                        status=status).build()
    scenario.send(MLflowPublisher(log_model=False))
    run = _find(_client(mlflow_env), scenario.run_id, "statuses")
    assert run.info.status == expected and run.data.tags["mlnb.status"] == status


def test_options_experiment_run_name_tags_and_tracking_uri(tmp_path, scenario):
    from mlflow import MlflowClient

    from mlnb.tracking import make_publishers

    uri = f"sqlite:///{tmp_path}/own.db"
    publisher, = make_publishers({"mlflow": {
        "experiment": "my-exp", "run_name": "first try", "tags": {"team": "vision"},
        "tracking_uri": uri, "log_model": False}})
    scenario.send(publisher)
    run = _find(MlflowClient(tracking_uri=uri), scenario.run_id, "my-exp")
    assert run.info.run_name == "first try" and run.data.tags["team"] == "vision"


def test_step_metrics_are_batched_until_the_epoch_ends(mlflow_env, scenario, monkeypatch):
    from mlnb.tracking import MLflowPublisher

    publisher = MLflowPublisher(log_model=False)
    calls = []
    scenario.send(publisher, until="step")
    real = publisher.client.log_batch
    monkeypatch.setattr(publisher.client, "log_batch",
                        lambda *a, **k: (calls.append(len(k.get("metrics", ()))), real(*a, **k)))
    steps = [e for kind, e in scenario.events if kind == "step"]
    publisher.step(steps[0])
    publisher.step(steps[1])
    assert calls == []  # two steps: no request yet
    publisher.epoch(next(e for kind, e in scenario.events if kind == "epoch"))
    assert calls == [2 + 6]  # one request: both steps and the epoch's six columns
    publisher.close("finished")


def test_a_user_active_fluent_run_is_left_alone(mlflow_env, scenario):
    import mlflow

    from mlnb.tracking import MLflowPublisher

    mlflow.set_tracking_uri(f"sqlite:///{mlflow_env}/mlflow/mlflow.db")
    try:
        with mlflow.start_run(run_name="users-own") as own:
            scenario.send(MLflowPublisher(log_model=False))
            assert mlflow.active_run().info.run_id == own.info.run_id
            mlflow.log_metric("mine", 1.0)
        got = mlflow.get_run(own.info.run_id)
        assert got.info.status == "FINISHED" and set(got.data.metrics) == {"mine"}
        ours = _find(_client(mlflow_env), scenario.run_id, "blobs")
        assert "mlflow.parentRunId" not in ours.data.tags and ours.info.status == "FINISHED"
    finally:
        mlflow.set_tracking_uri(None)


def test_a_resumed_run_continues_its_mlflow_run(mlflow_env, model):
    from mlnb.tracking import MLflowPublisher

    run_id = f"res-{uuid.uuid4().hex[:8]}"
    first = Scenario(name="resume", run_id=run_id, model=model, status="interrupted").build()
    # interrupted after epoch 1: keep its steps and first row, then the end event
    first.events = [e for e in first.events if not (
        e[0] == "step" and e[1].epoch == 2 or e[0] == "epoch" and e[1].row["epoch"] == 2)]
    first.send(MLflowPublisher(log_model=False))
    client = _client(mlflow_env)
    assert _find(client, run_id, "resume").info.status == "KILLED"

    Scenario(name="resume", run_id=run_id, model=model, resumed=True, done=1).build().send(
        MLflowPublisher())
    run = _find(client, run_id, "resume")  # still one MLflow run
    assert run.info.status == "FINISHED" and run.data.tags["mlnb.resumed"] == "true"
    assert _history(client, run.info.run_id, "train_loss_step") == [
        (s, loss) for s, _, loss in STEPS]
    assert _history(client, run.info.run_id, "val_loss") == [(1, 0.6), (2, 0.3)]


def test_a_resumed_run_without_an_earlier_mlflow_run_logs_the_whole_history(mlflow_env, model):
    from mlnb.tracking import MLflowPublisher

    run_id = f"late-{uuid.uuid4().hex[:8]}"
    Scenario(name="resume", run_id=run_id, model=model, resumed=True, done=1).build().send(
        MLflowPublisher(log_model=False))
    client = _client(mlflow_env)
    run = _find(client, run_id, "resume")
    assert [s for s, _ in _history(client, run.info.run_id, "train_loss_step")] == [5, 8, 13, 16]
    assert [s for s, _ in _history(client, run.info.run_id, "train_loss")] == [1, 2]


def test_long_params_and_odd_metric_names_are_made_acceptable(mlflow_env, model):
    from dataclasses import replace

    from mlnb.tracking import MLflowPublisher

    scenario = Scenario(name="odd", run_id=f"odd-{uuid.uuid4().hex[:8]}", model=model).build()
    kind, start = scenario.events[0]
    scenario.events[0] = (kind, replace(start, params={"note": "x" * 10_000, "k=v": 1}))
    kind, epoch = scenario.events[-2]
    scenario.events[-2] = (kind, replace(epoch, row={**epoch.row, "val_f1@0.5": 0.8}))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scenario.send(MLflowPublisher(log_model=False))
    assert not [w for w in caught if issubclass(w.category, ObserverWarning)]
    run = _find(_client(mlflow_env), scenario.run_id, "odd")
    assert len(run.data.params["note"]) == 6000 and run.data.params["note"].endswith("...")
    assert run.data.params["k_v"] == "1" and run.data.metrics["val_f1_0.5"] == 0.8


def test_a_failing_log_call_mid_run_warns_once_and_marks_the_run_failed(
        mlflow_env, scenario, monkeypatch):
    from mlnb.tracking import MLflowPublisher

    publisher = MLflowPublisher()
    scenario.send(publisher, until="step")

    def broken(*args, **kwargs):
        raise ConnectionError("MLflow server unreachable")

    monkeypatch.setattr(publisher.client, "log_batch", broken)
    with pytest.warns(ObserverWarning) as caught:
        scenario.events = scenario.events[1:]
        scenario.send(publisher)
    ours = [w for w in caught if issubclass(w.category, ObserverWarning)]
    assert len(ours) == 1 and "MLflowPublisher.epoch failed (ConnectionError" in str(
        ours[0].message)
    assert _find(_client(mlflow_env), scenario.run_id, "blobs").info.status == "FAILED"


def test_a_deleted_experiment_is_a_clear_error_at_start(mlflow_env, scenario):
    from dataclasses import replace

    from mlnb.tracking import MLflowPublisher

    client = _client(mlflow_env)
    client.delete_experiment(client.create_experiment("gone"))
    kind, start = scenario.events[0]
    scenario.events[0] = (kind, replace(start, name="gone"))
    with pytest.warns(ObserverWarning, match=r"MLflowPublisher\.start failed \(InvalidArgument: "
                      r"MLflow experiment 'gone' is deleted; restore it"):
        scenario.send(MLflowPublisher())


@needs_track
def test_train_with_track_mlflow_end_to_end(mlflow_env, model):
    import torch
    import torch.nn.functional as F
    from training.toydata import loader, make_blobs

    import mlnb

    x, y = make_blobs(96, seed=0)
    vx, vy = make_blobs(64, seed=1)
    val = [(vx[:32], vy[:32]), (vx[32:], vy[32:])]  # a list of batches works too
    run = mlnb.train(model, loader(x, y, batch_size=16), val_loader=val,
                     loss_fn=F.cross_entropy, optimizer=torch.optim.SGD(model.parameters(), 0.1),
                     epochs=2, log_every=4, name="e2e-mlflow", track=["mlflow"], progress=False)
    assert run.status == "finished"
    client = _client(mlflow_env)
    found = _find(client, run.run_id, "e2e-mlflow")
    assert found.info.status == "FINISHED" and found.data.params
    steps = _history(client, found.info.run_id, "train_loss_step")
    assert [s for s, _ in steps] == list(run.steps["step"])
    assert [v for _, v in steps] == pytest.approx(list(run.steps["loss"]))
    for column in ("train_loss", "val_loss", "val_accuracy"):
        assert _history(client, found.info.run_id, column) == [
            (e, pytest.approx(v)) for e, v in zip(run.history["epoch"], run.history[column])]
    assert found.data.metrics[f"best_{run.monitor}"] == pytest.approx(run.best_value)
    assert sorted(f.path for f in client.list_artifacts(found.info.run_id, "model")) == [
        "model/mlnb.json", "model/model.safetensors"]


@needs_track
def test_train_survives_a_tracker_that_fails_mid_run(mlflow_env, model, monkeypatch):
    import torch
    import torch.nn.functional as F
    from training.toydata import loader, make_blobs

    import mlnb
    from mlnb.tracking import MLflowPublisher

    class Flaky(MLflowPublisher):
        def log_metrics(self, metrics, *, step, axis):
            if axis == "epoch":
                raise ConnectionError("MLflow server unreachable")
            super().log_metrics(metrics, step=step, axis=axis)

    x, y = make_blobs(64, seed=0)
    with pytest.warns(ObserverWarning) as caught:
        run = mlnb.train(model, loader(x, y), loss_fn=F.cross_entropy,
                         optimizer=torch.optim.SGD(model.parameters(), 0.1), epochs=3,
                         name="e2e-flaky", track=[Flaky()], progress=False)
    assert run.status == "finished" and run.epochs_run == 3
    assert len([w for w in caught if issubclass(w.category, ObserverWarning)]) == 1
    found = _find(_client(mlflow_env), run.run_id, "e2e-flaky")
    assert found.info.status == "FAILED"
