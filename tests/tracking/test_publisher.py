"""The Publisher base class: how a run's events become a tracker's calls, and its failures."""

from __future__ import annotations

import json
import warnings

import pytest
from tracking.runs import PARAMS, ROWS, STEPS, Scenario, make_run

from mlnb.tracking import Publisher
from mlnb.training.events import ObserverWarning


class Recorder(Publisher):
    """A tracker that keeps every call in memory."""

    name = "recorder"

    def __init__(self, fail_on: str | None = None, fail_after: int = 0, **options):
        super().__init__(**options)
        self.calls: list[tuple] = []
        self.fail_on, self.fail_after = fail_on, fail_after
        self.continue_run = False

    def _call(self, *call):
        self.calls.append(call)
        if call[0] == self.fail_on:
            if self.fail_after == 0:
                raise ConnectionError("tracker server went away")
            self.fail_after -= 1

    def open(self, start, params, tags):
        self._call("open", start.run_id, params, tags)
        return self.continue_run

    def log_metrics(self, metrics, *, step, axis):
        self._call("metrics", axis, step, dict(metrics))

    def log_summary(self, metrics, tags):
        self._call("summary", dict(metrics), dict(tags))

    def log_model_files(self, directory, info):
        files = sorted(p.name for p in directory.iterdir())
        loaded = json.loads((directory / "mlnb.json").read_text())
        self._call("model", files, info, loaded, directory)

    def close(self, status):
        self._call("close", status)

    def of(self, kind):
        return [c[1:] for c in self.calls if c[0] == kind]


def test_a_run_maps_to_params_steps_epochs_summary_model_and_status(scenario):
    rec = Recorder()
    scenario.send(rec)

    (run_id, params, tags), = rec.of("open")
    assert run_id == scenario.run_id
    assert params["opt"] == {"betas": [0.9, 0.999], "nesterov": False}  # JSON data, nesting kept
    assert params["lr"] == 0.1 and params["seed"] is None
    assert tags["mlnb.run_id"] == scenario.run_id and tags["mlnb.resumed"] == "false"
    assert tags["mlnb.monitor"] == "val_loss" and tags["mlnb.device"] == "cpu"

    steps = [(step, m) for axis, step, m in rec.of("metrics") if axis == "step"]
    assert steps == [(s, {"train_loss_step": loss}) for s, _, loss in STEPS]
    epochs = [(step, m) for axis, step, m in rec.of("metrics") if axis == "epoch"]
    assert epochs == [(r["epoch"], {k: v for k, v in r.items() if k != "epoch"}) for r in ROWS]

    (metrics, end_tags), = rec.of("summary")
    assert metrics == {"best_val_loss": 0.3, "best_epoch": 2.0, "epochs_run": 2.0,
                       "elapsed_s": 1.5}
    assert end_tags == {"mlnb.status": "finished"}
    assert rec.calls[-1] == ("close", "finished")


def test_the_model_is_staged_as_safetensors_with_what_load_needs(scenario, model, tmp_path):
    import torch

    from mlnb.serialize import load

    kept = {}

    class Keeper(Recorder):
        def log_model_files(self, directory, info):
            super().log_model_files(directory, info)
            kept.update({p.name: p.read_bytes() for p in directory.iterdir()})

    rec = Keeper()
    scenario.send(rec)
    (files, info, loaded, _), = rec.of("model")
    assert files == ["mlnb.json", "model.safetensors"]
    assert loaded == json.loads(json.dumps(info)) and info["format"] == "torch"
    assert info["run_id"] in (None, scenario.run_id) and info["status"] == "finished"
    assert not any(name.endswith((".pkl", ".pt")) for name in kept)  # no pickle
    for name, data in kept.items():
        (tmp_path / name).write_bytes(data)
    back = load(info["format"], tmp_path, info["metadata"],
                into=torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.ReLU(),
                                         torch.nn.Linear(16, 2)))
    for key, value in model.state_dict().items():
        assert torch.equal(back.state_dict()[key], value)


@pytest.mark.parametrize("status", ["interrupted", "diverged"])
def test_no_model_is_published_for_a_run_whose_weights_are_not_usable(model, status):
    rec = Recorder()
    Scenario(name="blobs", run_id="r1", model=model, status=status).build().send(rec)
    assert rec.of("model") == []
    assert rec.calls[-1] == ("close", status)


def test_log_model_false_publishes_no_model(scenario):
    rec = Recorder(log_model=False)
    scenario.send(rec)
    assert rec.of("model") == [] and rec.calls[-1] == ("close", "finished")


def test_a_registered_run_tags_its_version(scenario):
    from types import SimpleNamespace

    kind, end = scenario.events[-1]
    version = SimpleNamespace(name="blobs", version=3)
    scenario.events[-1] = (kind, type(end)(run=make_run(version=version), model=None))
    rec = Recorder()
    scenario.send(rec)
    (_, tags), = rec.of("summary")
    assert tags == {"mlnb.status": "finished", "mlnb.version": "blobs:3"}


def test_a_resumed_run_in_a_new_tracker_run_gets_the_earlier_history_first(model):
    resumed = Scenario(name="blobs", run_id="r2", model=model, resumed=True, done=1).build()
    rec = Recorder()
    resumed.send(rec)
    logged = [(axis, step) for axis, step, _ in rec.of("metrics")]
    # epoch 1's steps and row replayed from RunStart, then epoch 2 as it trains
    assert logged == [("step", 5), ("step", 8), ("epoch", 1), ("step", 13), ("step", 16),
                      ("epoch", 2)]
    assert rec.of("open")[0][2]["mlnb.resumed"] == "true"


def test_a_resumed_run_that_continues_its_tracker_run_is_not_replayed(model):
    resumed = Scenario(name="blobs", run_id="r2", model=model, resumed=True, done=1).build()
    rec = Recorder()
    rec.continue_run = True
    resumed.send(rec)
    assert [(axis, step) for axis, step, _ in rec.of("metrics")] == [
        ("step", 13), ("step", 16), ("epoch", 2)]


def test_a_failure_mid_run_warns_once_closes_the_tracker_run_as_failed_and_stops_calls(
        scenario):
    rec = Recorder(fail_on="metrics", fail_after=2)  # steps 5 and 8 pass, epoch 1 fails
    with pytest.warns(ObserverWarning) as caught:
        scenario.send(rec)
    ours = [w for w in caught if issubclass(w.category, ObserverWarning)]
    assert len(ours) == 1
    assert "Recorder.epoch failed (ConnectionError: tracker server went away)" in str(
        ours[0].message)
    assert rec.calls[-1] == ("close", "failed")
    assert len(rec.of("metrics")) == 3 and rec.of("summary") == []  # nothing after the failure


def test_a_failure_at_start_is_isolated_too(scenario):
    rec = Recorder(fail_on="open")
    with pytest.warns(ObserverWarning, match=r"Recorder\.start failed"):
        scenario.send(rec)
    assert [c[0] for c in rec.calls] == ["open", "close"]
    assert rec.calls[-1] == ("close", "failed")


def test_a_failure_while_logging_the_model_still_closes_with_the_run_status(scenario):
    rec = Recorder(fail_on="model")
    with pytest.warns(ObserverWarning, match=r"Recorder\.end failed"):
        scenario.send(rec)
    assert rec.calls[-1] == ("close", "finished")


def test_keyboard_interrupt_is_not_swallowed_and_leaves_the_run_open(scenario):
    class Interrupted(Recorder):
        def log_metrics(self, metrics, *, step, axis):
            raise KeyboardInterrupt

    rec = Interrupted()
    with pytest.raises(KeyboardInterrupt):
        scenario.send(rec)
    assert rec.of("close") == []  # the loop ends the run and sends "end" itself
    kind, end = scenario.events[-1]
    rec.end(type(end)(run=make_run("interrupted"), model=None))
    assert rec.calls[-1] == ("close", "interrupted")


def test_a_publisher_reused_for_a_second_run_closes_a_run_that_never_ended(scenario, model):
    rec = Recorder()
    scenario.send(rec, until="end")  # the cell crashed: no "end"
    again = Scenario(name="blobs", run_id="second", model=model).build()
    again.send(rec)
    closes = rec.of("close")
    assert closes == [("failed",), ("finished",)]
    assert [c[1] for c in rec.calls if c[0] == "open"] == [scenario.run_id, "second"]


def test_only_the_observer_methods_the_loop_knows_are_defined():
    # no "progress": trackers get every logged loss from "step", and the loop skips
    # building progress events nobody listens to.
    from mlnb.training.events import Observers

    group = Observers([Recorder()])
    assert [e for e in ("start", "progress", "step", "epoch", "end") if group.wants(e)] == [
        "start", "step", "epoch", "end"]


def test_the_base_hooks_must_be_implemented(scenario):
    class Bare(Publisher):
        pass

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scenario.send(Bare())
    assert [str(w.message).split(" (")[0] for w in caught] == ["Bare.start failed"]


def test_bad_log_model_is_an_invalid_argument():
    from mlnb.errors import InvalidArgument

    with pytest.raises(InvalidArgument, match="log_model must be True or False, not 'yes'"):
        Recorder(log_model="yes")


def test_params_helpers():
    from mlnb.tracking.base import flatten_params, plain_params

    plain = plain_params(PARAMS | {"dtype": object(), "n": True})
    assert plain["opt"]["betas"] == [0.9, 0.999] and plain["n"] is True
    assert plain["dtype"].startswith("<object object")
    assert flatten_params(plain)["opt.betas"] == [0.9, 0.999]
    assert flatten_params({"a": {}, "b": {"c": {"d": 1}}}) == {"a": {}, "b.c.d": 1}


def test_abort_closes_an_open_run_once_and_ignores_errors(scenario):
    rec = Recorder(fail_on="close")
    scenario.send(rec, until="step")
    rec.abort()
    rec.abort()
    assert rec.of("close") == [("failed",)]
    Recorder().abort()  # nothing open: nothing to do


def test_a_subclass_that_skips_super_init_still_works(scenario):
    class NoInit(Recorder):
        def __init__(self):
            self.calls, self.fail_on, self.continue_run = [], None, False

    rec = NoInit()
    scenario.send(rec)
    assert rec.calls[-1] == ("close", "finished") and len(rec.of("model")) == 1
