"""W&B offline: what a run writes to its ``.wandb`` file, read back record by record."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from tracking.runs import PARAMS, ROWS, STEPS, Scenario, needs_track
from tracking.wandb_records import finished_runs

from mlnb.training.events import ObserverWarning

pytest.importorskip("wandb")

pytestmark = pytest.mark.usefixtures("wandb_env")


def _only_run(wandb_dir: Path):
    runs = finished_runs(wandb_dir)
    assert len(runs) == 1, [r.path for r in runs]
    return runs[0]


def test_a_run_publishes_config_metrics_on_their_axes_summary_model_and_exit_code(
        wandb_env, scenario):
    from mlnb.tracking import make_publishers

    publisher, = make_publishers(["wandb"])
    scenario.send(publisher)

    run = _only_run(wandb_env)
    assert run.project == "blobs" and run.display_name == scenario.run_id
    assert "mlnb" in run.tags
    assert run.config["lr"] == PARAMS["lr"] and run.config["optimizer"] == "SGD"
    assert run.config["opt"] == {"betas": [0.9, 0.999], "nesterov": False}
    assert run.config["mlnb"]["run_id"] == scenario.run_id
    assert run.config["mlnb"]["monitor"] == "val_loss"

    # charts: the step loss against global_step, the epoch columns against epoch
    assert run.metrics["train_loss_step"] == "global_step"
    assert run.metrics["val_loss"] == "epoch" and run.metrics["lr"] == "epoch"
    assert run.series("train_loss_step", "global_step") == [(s, loss) for s, _, loss in STEPS]
    for column in ("train_loss", "val_loss", "val_accuracy", "samples_per_s"):
        assert run.series(column, "epoch") == [(r["epoch"], r[column]) for r in ROWS]

    assert run.summary["best_val_loss"] == 0.3 and run.summary["best_epoch"] == 2
    assert run.summary["status"] == "finished" and run.summary["val_accuracy"] == 0.9
    assert run.exit_code == 0

    artifact, = run.artifacts
    assert artifact.type == "model" and artifact.name == "blobs"
    files = {c.path: c for c in artifact.manifest.contents}
    assert sorted(files) == ["mlnb.json", "model.safetensors"]
    staged = Path(files["model.safetensors"].local_path)
    assert staged.is_file() and staged.stat().st_size == files["model.safetensors"].size


@pytest.mark.parametrize("status, code", [("stopped_early", 0), ("stopped", 255),
                                          ("interrupted", 255), ("diverged", 1)])
def test_mlnb_status_becomes_the_exit_code(wandb_env, model, status, code):
    from mlnb.tracking import WandbPublisher

    Scenario(name="st", run_id=f"st-{uuid.uuid4().hex[:6]}", model=model,
             status=status).build().send(WandbPublisher(log_model=False))
    run = _only_run(wandb_env)
    assert run.exit_code == code and run.summary["status"] == status
    assert run.artifacts == []


def test_without_wandb_dir_the_files_go_under_mlnb_home(wandb_env, scenario, monkeypatch,
                                                         tmp_path):
    from mlnb.tracking import WandbPublisher

    monkeypatch.delenv("WANDB_DIR")
    home = tmp_path / "home-for-wandb"
    monkeypatch.setenv("MLNB_HOME", str(home))
    monkeypatch.chdir(tmp_path)
    scenario.send(WandbPublisher(project="elsewhere"))
    run = _only_run(home)
    assert run.project == "elsewhere"
    assert [a.name for a in run.artifacts] == ["blobs"]  # the model keeps the run's name
    assert not (tmp_path / "wandb").exists()


def test_two_runs_in_one_kernel_and_a_users_own_run_stay_apart(wandb_env, scenario, model):
    import wandb

    from mlnb.tracking import WandbPublisher

    own = wandb.init(project="users-own", dir=str(wandb_env))  # becomes wandb.run
    try:
        scenario.send(WandbPublisher(log_model=False))
        Scenario(name="blobs", run_id="second", model=model).build().send(
            WandbPublisher(log_model=False))
        assert wandb.run is own  # the user's run is still the active one
        own.log({"mine": 1.0})
    finally:
        own.finish()
    runs = finished_runs(wandb_env)
    ours = [r for r in runs if r.project == "blobs"]
    assert sorted(r.display_name for r in ours) == sorted([scenario.run_id, "second"])
    assert all(r.exit_code == 0 and len(r.series("val_loss", "epoch")) == 2 for r in ours)
    users, = (r for r in runs if r.project == "users-own")
    assert [row for row in users.history] == [{"mine": 1.0}]


def test_a_resumed_run_logs_the_earlier_history_first(wandb_env, model):
    from mlnb.tracking import WandbPublisher

    Scenario(name="res", run_id="res-1", model=model, resumed=True, done=1).build().send(
        WandbPublisher(log_model=False))
    run = _only_run(wandb_env)
    assert [s for s, _ in run.series("train_loss_step", "global_step")] == [5, 8, 13, 16]
    assert [e for e, _ in run.series("val_loss", "epoch")] == [1, 2]
    assert run.config["mlnb"]["resumed"] == "true"


def test_a_failing_log_call_mid_run_warns_once_and_finishes_the_run(wandb_env, scenario,
                                                                    monkeypatch):
    from mlnb.tracking import WandbPublisher

    publisher = WandbPublisher()
    scenario.send(publisher, until="step")

    def broken(*args, **kwargs):
        raise ConnectionError("wandb service gone")

    monkeypatch.setattr(publisher.run, "log", broken)
    scenario.events = scenario.events[1:]
    with pytest.warns(ObserverWarning) as caught:
        scenario.send(publisher)
    ours = [w for w in caught if issubclass(w.category, ObserverWarning)]
    assert len(ours) == 1 and "WandbPublisher.step failed (ConnectionError" in str(
        ours[0].message)
    assert _only_run(wandb_env).exit_code == 1


def test_bad_options_are_clear_errors_before_training():
    from mlnb.errors import InvalidArgument
    from mlnb.tracking import make_publishers

    with pytest.raises(InvalidArgument, match="wandb mode must be one of online, offline"):
        make_publishers({"wandb": {"mode": "offlin"}})
    with pytest.raises(InvalidArgument, match="tags must be a list of strings, not 'a'"):
        make_publishers({"wandb": {"tags": "a"}})


@needs_track
def test_train_with_track_wandb_end_to_end(wandb_env, model):
    import torch
    import torch.nn.functional as F
    from training.toydata import loader, make_blobs

    import mlnb

    x, y = make_blobs(96, seed=0)
    vx, vy = make_blobs(64, seed=1)
    val = [(vx[:32], vy[:32]), (vx[32:], vy[32:])]  # a list of batches works too
    run = mlnb.train(model, loader(x, y, batch_size=16), val_loader=val,
                     loss_fn=F.cross_entropy, optimizer=torch.optim.SGD(model.parameters(), 0.1),
                     epochs=2, log_every=4, name="e2e-wandb", track=["wandb"], progress=False)
    assert run.status == "finished"
    found = _only_run(wandb_env)
    assert found.project == "e2e-wandb" and found.display_name == run.run_id
    assert found.config["mlnb"]["run_id"] == run.run_id
    steps = found.series("train_loss_step", "global_step")
    assert [s for s, _ in steps] == list(run.steps["step"])
    assert [v for _, v in steps] == pytest.approx(list(run.steps["loss"]))
    for column in ("train_loss", "val_loss", "val_accuracy"):
        assert found.series(column, "epoch") == [
            (e, pytest.approx(v)) for e, v in zip(run.history["epoch"], run.history[column])]
    assert found.summary[f"best_{run.monitor}"] == pytest.approx(run.best_value)
    assert found.exit_code == 0
    artifact, = found.artifacts
    assert sorted(c.path for c in artifact.manifest.contents) == [
        "mlnb.json", "model.safetensors"]
