"""The run store: manifests, checkpoint retention, verified loads, resume and re-run safety."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from s3server import MotoServer, moto_server_executable

from mlnb.errors import Conflict, IntegrityError, InvalidArgument, InvalidName, NotFound
from mlnb.training import runs as runs_module
from mlnb.training.runs import Keep, RunStore, parse_keep

STATE = {"w": [1.0, 2.0], "loop": {"epoch": 1}}


@pytest.fixture
def store(tmp_path: Path) -> RunStore:
    return RunStore(tmp_path / "artifacts")


def files(handle) -> list[str]:
    return sorted(os.listdir(handle.url.removeprefix("file://")))


def save(handle, epoch, value=None, kind="epoch", keep="best:2,last:1", **kw):
    return handle.save_checkpoint({**STATE, "epoch": epoch}, epoch=epoch, step=10 * epoch,
                                  kind=kind, value=value, keep=keep, **kw)


def rewrite(handle, **fields) -> None:
    """Edit a run's manifest on disk, as another process would have written it."""
    path = Path(handle.url.removeprefix("file://"), "run.json")
    doc = json.loads(path.read_text())
    doc.update(fields)
    path.write_text(json.dumps(doc))


def test_create_lays_out_a_manifest_in_a_new_folder(store, tmp_path):
    run = store.create("mnist-mlp", signature="sig-1", monitor="val_loss", mode="min",
                       params={"lr": 0.1, "layers": [4, 8]})
    folder = tmp_path / "artifacts" / "runs" / "mnist-mlp" / run.run_id
    assert run.url == f"file://{folder}"
    assert os.listdir(folder) == ["run.json"]
    doc = json.loads((folder / "run.json").read_text())
    assert doc["format"] == "mlnb.run" and doc["format_version"] == 1
    assert (doc["name"], doc["status"], doc["signature"]) == ("mnist-mlp", "running", "sig-1")
    assert (doc["host"], doc["pid"], doc["user"]) == (socket.gethostname(), os.getpid(), "tester")
    assert doc["params"] == {"lr": 0.1, "layers": [4, 8]} and doc["checkpoints"] == []
    assert run.record.monitor == "val_loss" and run.record.mode == "min"
    assert len(run.run_id) == 22 and run.run_id[8] == "-" and run.run_id[15] == "-"


def test_create_refuses_bad_names_modes_and_params(store):
    with pytest.raises(InvalidName):
        store.create("../escape", signature="s")
    with pytest.raises(InvalidArgument, match="mode"):
        store.create("m", signature="s", mode="lowest")
    with pytest.raises(InvalidArgument, match="params"):
        store.create("m", signature="s", params={"f": print})


def test_store_sits_beside_the_registry_blobs(memreg, monkeypatch, tmp_path):
    runs = RunStore.from_registry(memreg)
    assert runs.url == f"{memreg.store.url}/runs"
    monkeypatch.setenv("MLNB_STORAGE", str(tmp_path / "elsewhere"))
    assert RunStore.default().url == f"file://{tmp_path}/elsewhere/runs"


def test_keep_policy_parsing():
    assert parse_keep("best:2,last:1") == Keep(best=2, last=1)
    assert parse_keep(" last:3 ") == Keep(last=3)
    assert parse_keep("best:1") == Keep(best=1)
    assert parse_keep("all") == Keep(all=True)
    assert str(parse_keep("last:1, best:4")) == "best:4,last:1"
    for bad in ("best", "best:-1", "best:1,best:2", "first:2", "", "best:1;last:1", 3):
        with pytest.raises(InvalidArgument, match="best:2,last:1"):
            parse_keep(bad)


def test_keep_best_and_last_prunes_files_and_manifest(store):
    run = store.create("m", signature="s", monitor="val_loss", mode="min")
    for epoch, value in enumerate([0.5, 0.3, 0.4, 0.2, math.nan, 0.6], start=1):
        save(run, epoch, value)
    kept = [(c.epoch, c.value) for c in run.checkpoints]
    assert kept == [(2, 0.3), (4, 0.2), (6, 0.6)]  # best two, then the last
    assert files(run) == sorted(["run.json", *(c.file for c in run.checkpoints)])
    reopened = store.open("m", run.run_id)
    assert [c.file for c in reopened.checkpoints] == [c.file for c in run.checkpoints]
    assert reopened.best_checkpoint().epoch == 4 and reopened.last_checkpoint().epoch == 6


def test_ties_go_to_the_earlier_and_nan_is_never_best(store):
    run = store.create("m", signature="s", monitor="acc", mode="max")
    save(run, 1, math.nan, keep="best:1,last:0")
    assert [c.epoch for c in run.checkpoints] == [1]  # the newest always stays
    assert run.best_checkpoint() is None
    for epoch, value in [(2, 0.9), (3, 0.9), (4, 0.5)]:
        save(run, epoch, value, keep="best:1,last:0")
    assert [c.epoch for c in run.checkpoints] == [2, 4]
    assert run.best_checkpoint().epoch == 2


def test_a_stop_checkpoint_counts_as_a_last_one(store):
    run = store.create("m", signature="s", monitor="val_loss", mode="min")
    save(run, 1, 0.5, keep="best:1,last:1")
    save(run, 2, 0.7, keep="best:1,last:1")
    stop = run.save_checkpoint(STATE, epoch=3, step=25, batch=5, kind="stop", keep="best:1,last:1")
    assert [c.file for c in run.checkpoints] == [run.checkpoints[0].file, stop.file]
    assert (stop.kind, stop.batch, stop.value) == ("stop", 5, None)
    assert run.last_checkpoint() == stop and run.best_checkpoint().epoch == 1


def test_keep_all_and_keep_nothing_but_the_newest(store):
    run = store.create("m", signature="s", mode="min")
    for epoch in range(1, 4):
        save(run, epoch, 1.0 / epoch, keep="all")
    assert len(run.checkpoints) == 3
    save(run, 4, 9.0, keep="best:0,last:0")
    assert [c.epoch for c in run.checkpoints] == [4]
    assert files(run) == sorted(["run.json", run.checkpoints[0].file])


def test_save_checks_its_arguments(store):
    run = store.create("m", signature="s")
    for kw in ({"kind": "final"}, {"keep": "best"}, {"value": "low"}, {"epoch": -1}):
        with pytest.raises(InvalidArgument):
            save(run, **{"epoch": 1, **kw})
    with pytest.raises(InvalidArgument, match=r"cannot store loop\.fn"):
        run.save_checkpoint({"loop": {"fn": print}}, epoch=1, step=1)
    assert files(run) == ["run.json"] and run.checkpoints == ()


def test_save_sets_manifest_fields_in_the_same_write(store, monkeypatch):
    run = store.create("m", signature="s", mode="min")
    writes = []
    real = store._write_atomic
    monkeypatch.setattr(store, "_write_atomic", lambda *a: (writes.append(a[0]), real(*a)))
    save(run, 1, 0.5, history=[{"epoch": 1, "val_loss": 0.5}], best_epoch=1, best_value=0.5)
    assert len(writes) == 1
    rec = store.runs("m")[0]
    assert (rec.history, rec.best_epoch, len(rec.checkpoints)) == (
        [{"epoch": 1, "val_loss": 0.5}], 1, 1)
    with pytest.raises(InvalidArgument, match="cannot update"):
        save(run, 2, colour="red")
    assert len(store.runs("m")[0].checkpoints) == 1 and len(files(run)) == 2


def test_the_same_step_saved_twice_gets_two_files(store):
    run = store.create("m", signature="s")
    a, b = save(run, 1, keep="all"), save(run, 1, keep="all")
    assert a.file != b.file and len(files(run)) == 3


def test_load_verifies_the_sha256(store):
    run = store.create("m", signature="s", mode="min")
    first = save(run, 1, 0.1, keep="all")
    last = save(run, 2, 0.2, keep="all")
    assert run.load()["epoch"] == 2 and run.load("best")["epoch"] == 1
    assert run.load(first) == {**STATE, "epoch": 1}
    assert (first.size, len(first.sha256)) == (os.path.getsize(
        Path(run.url.removeprefix("file://"), first.file)), 64)
    path = Path(run.url.removeprefix("file://"), last.file)
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="corrupt .*load another checkpoint"):
        run.load()
    path.unlink()
    with pytest.raises(NotFound, match=last.file):
        run.load()
    with run.local_file("best") as local:
        assert local.name == first.file


def test_update_and_close_write_the_manifest(store):
    run = store.create("m", signature="s", params={"lr": 1})
    run.update(history=[{"epoch": 1, "val_loss": math.nan}], steps=[{"step": 5, "loss": 0.3}],
               best_epoch=1, best_value=0.3, extra={"device": "cpu"})
    run.update(extra={"precision": "fp32"})
    run.close("stopped")
    rec = store.runs("m")[0]
    assert rec.status == "stopped" and math.isnan(rec.history[0]["val_loss"])
    assert rec.extra == {"device": "cpu", "precision": "fp32"}
    assert (rec.best_epoch, rec.best_value, rec.steps) == (1, 0.3, [{"step": 5, "loss": 0.3}])
    assert rec.updated >= rec.created
    with pytest.raises(InvalidArgument, match="status"):
        run.update(status="done")
    with pytest.raises(InvalidArgument, match="signature"):
        run.update(signature="other")
    with pytest.raises(InvalidArgument, match="history"):
        run.update(history=[object()])


def test_an_opened_run_is_read_only_until_resumed(store):
    run = store.create("m", signature="s")
    save(run, 1)
    other = store.open("m", run.run_id)
    for act in (lambda: save(other, 2), lambda: other.update(status="finished"),
                lambda: other.close("finished"), lambda: other.heartbeat(0)):
        with pytest.raises(Conflict, match="read-only"):
            act()
    with pytest.raises(NotFound):
        store.open("m", "20260101-000000-abcdef")
    with pytest.raises(InvalidArgument, match="run id"):
        store.open("m", "../../x")


def test_runs_are_listed_newest_first_and_broken_manifests_are_skipped(store, tmp_path):
    a = store.create("m", signature="s")
    b = store.create("m", signature="s")
    c = store.create("other", signature="s")
    bad = store.create("m", signature="s")
    Path(bad.url.removeprefix("file://"), "run.json").write_text("{not json")
    evil = store.create("m", signature="s")
    rewrite(evil, checkpoints=[{"file": "../../../x.safetensors", "epoch": 1, "step": 1,
                                "batch": 0, "kind": "epoch", "value": None, "size": 1,
                                "sha256": "0" * 64, "created": "x"}])
    (tmp_path / "artifacts" / "runs" / "m" / "not-a-run").mkdir()
    assert [r.run_id for r in store.runs("m")] == [b.run_id, a.run_id]
    assert [r.run_id for r in store.runs()] == [c.run_id, b.run_id, a.run_id]
    listing = store.scan("m")
    assert sorted(s.path.rsplit("/", 2)[1] for s in listing.skipped) == sorted(
        [bad.run_id, evil.run_id])
    assert any("JSONDecodeError" in s.reason for s in listing.skipped)
    assert any("checkpoint entry" in s.reason for s in listing.skipped)
    with pytest.raises(IntegrityError, match="cannot be read"):
        store.open("m", bad.run_id)
    assert store.runs("nothing-yet") == []


def test_find_resumable_takes_the_newest_unfinished_run_of_the_same_model(store):
    assert store.find_resumable("m", signature="s") is None
    old = store.create("m", signature="s")
    save(old, 1)
    old.close("interrupted")
    found = store.find_resumable("m", signature="s")
    assert found.run_id == old.run_id and found.status == "interrupted"
    empty = store.create("m", signature="s")  # died before its first checkpoint
    empty.close("interrupted")
    other = store.create("m", signature="another model")
    save(other, 1)
    other.close("stopped")
    assert store.find_resumable("m", signature="s").run_id == old.run_id
    assert store.find_resumable("m", signature="another model").run_id == other.run_id
    done = store.create("m", signature="s")
    save(done, 1)
    done.close("finished")
    assert store.find_resumable("m", signature="s") is None
    for status in ("stopped", "diverged", "stopped_early"):
        run = store.create("m", signature="s")
        save(run, 1)
        run.close(status)
        found = store.find_resumable("m", signature="s")
        assert (found and found.run_id) == (run.run_id if status != "stopped_early" else None)


def test_an_unclosed_run_of_this_process_is_resumable(store):
    run = store.create("m", signature="s")
    save(run, 1)
    assert store.find_resumable("m", signature="s").run_id == run.run_id


def _finished_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_running_run_whose_process_died_is_resumed_and_claimed(store):
    run = store.create("m", signature="s")
    save(run, 1)
    save(run, 2)
    rewrite(run, pid=_finished_pid(), pid_start=None)
    folder = Path(run.url.removeprefix("file://"))
    (folder / "ckpt-e0003-s00000030-epoch.safetensors").write_bytes(b"left by a crash")
    (folder / ".run.json.tmp").write_bytes(b"{")
    found = store.find_resumable("m", signature="s")
    assert found.run_id == run.run_id and not found.record.is_alive()
    found.resume()
    rec = store.runs("m")[0]
    assert (rec.status, rec.pid, len(rec.resumes)) == ("running", os.getpid(), 1)
    assert files(found) == sorted(["run.json", *(c.file for c in found.checkpoints)])
    assert found.load()["epoch"] == 2
    save(found, 3)
    found.close("finished")
    assert store.find_resumable("m", signature="s") is None


def test_a_reused_pid_does_not_keep_a_dead_run_alive(store):
    run = store.create("m", signature="s")
    save(run, 1)
    rewrite(run, pid=os.getppid(), pid_start=1)  # a live process, but not the one that ran it
    assert store.find_resumable("m", signature="s").run_id == run.run_id


CHILD = """
import sys, time
from mlnb.training.runs import RunStore
run = RunStore(sys.argv[1]).create("m", signature="s")
run.save_checkpoint({"w": [1]}, epoch=1, step=4, value=0.5)
print(run.run_id, flush=True)
time.sleep(120)
"""


def test_a_run_training_in_another_live_process_is_a_conflict(store, tmp_path):
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path / "artifacts")],
                             stdout=subprocess.PIPE, text=True)
    try:
        run_id = child.stdout.readline().strip()
        with pytest.raises(Conflict, match=f"run m/{run_id} is still training in process "
                                           f"{child.pid} on {socket.gethostname()}; stop it"):
            store.find_resumable("m", signature="s")
        handle = store.open("m", run_id)
        with pytest.raises(Conflict, match="still training"):
            handle.resume()
    finally:
        child.kill()
        child.wait()
    assert store.find_resumable("m", signature="s").run_id == run_id


def test_a_run_on_another_host_counts_as_dead_once_stale(store):
    run = store.create("m", signature="s")
    save(run, 1)
    rewrite(run, host="gpu-node-7", pid=1)
    with pytest.raises(Conflict, match="on gpu-node-7 \\(last update"):
        store.find_resumable("m", signature="s")
    rewrite(run, updated="2020-01-01T00:00:00.000000+00:00")
    assert store.find_resumable("m", signature="s").run_id == run.run_id


def test_heartbeat_rewrites_the_manifest_at_most_once_an_interval(store):
    run = store.create("m", signature="s")
    assert run.heartbeat(min_interval=3600) is False
    before = run.record.updated
    assert run.heartbeat(min_interval=0) is True
    assert store.runs("m")[0].updated > before


def test_a_crash_at_any_point_leaves_a_manifest_naming_only_complete_files(store, monkeypatch):
    run = store.create("m", signature="s", mode="min")
    good = save(run, 1, 0.5, keep="last:1")

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(store, "_write_atomic", crash)  # dies after the file, before the manifest
    with pytest.raises(KeyboardInterrupt):
        save(run, 2, 0.4, keep="last:1")
    assert [c.file for c in store.open("m", run.run_id).checkpoints] == [good.file]
    monkeypatch.undo()
    monkeypatch.setattr(store, "_remove", crash)  # dies after the manifest, before pruning
    with pytest.raises(KeyboardInterrupt):
        save(run, 3, 0.3, keep="last:1")
    monkeypatch.undo()
    reopened = store.open("m", run.run_id)
    assert [c.epoch for c in reopened.checkpoints] == [3]
    assert len(files(run)) == 4  # epochs 1, 2 and 3 on disk
    reopened.resume()  # the leftovers go
    assert files(run) == sorted(["run.json", reopened.checkpoints[0].file])
    assert reopened.load()["epoch"] == 3


def test_runs_never_touch_each_other(store):
    a = store.create("m", signature="s")
    save(a, 1)
    before = {f: Path(a.url.removeprefix("file://"), f).read_bytes() for f in files(a)}
    b = store.create("m", signature="s")
    for epoch in range(1, 4):
        save(b, epoch, keep="last:1")
    b.close("finished")
    assert {f: Path(a.url.removeprefix("file://"), f).read_bytes() for f in files(a)} == before


CREATOR = """
import sys
from mlnb.training.runs import RunStore
store = RunStore(sys.argv[1])
print(" ".join(store.create("m", signature="s").run_id for _ in range(15)))
"""


def test_processes_creating_runs_at_once_get_distinct_runs(store, tmp_path):
    procs = [subprocess.Popen([sys.executable, "-c", CREATOR, str(tmp_path / "artifacts")],
                              stdout=subprocess.PIPE, text=True) for _ in range(3)]
    ids = [i for p in procs for i in p.communicate()[0].split()]
    assert all(p.returncode == 0 for p in procs)
    assert len(ids) == len(set(ids)) == 45
    assert sorted(r.run_id for r in store.runs("m")) == sorted(ids)


def test_memory_store_round_trip():
    store = RunStore("memory://mlnb-runs-test/art")
    run = store.create("m", signature="s", mode="min")
    for epoch in (1, 2, 3):
        save(run, epoch, 1.0 / epoch, keep="last:1")
    assert store.fs.ls(store.root + "/m/" + run.run_id, detail=False) == sorted(
        f"/mlnb-runs-test/art/runs/m/{run.run_id}/{n}"
        for n in ("run.json", run.checkpoints[0].file))
    assert run.load()["epoch"] == 3
    assert store.find_resumable("m", signature="s").run_id == run.run_id
    store.fs.rm("/mlnb-runs-test", recursive=True)


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    import s3fs  # noqa: F401

    if moto_server_executable() is None:
        pytest.fail('moto_server is not installed: pip install -e ".[dev]"')
    with MotoServer() as server:
        yield server


@pytest.mark.s3
def test_s3_store_saves_prunes_loads_and_lists(moto):
    bucket = moto.new_bucket()
    store = RunStore(f"s3://{bucket}/art", **moto.storage_options)
    run = store.create("m", signature="s", monitor="val_loss", mode="min")
    for epoch, value in [(1, 0.3), (2, 0.5), (3, 0.4)]:
        save(run, epoch, value, keep="best:1,last:1")
    s3 = moto.s3fs()  # another client
    names = sorted(p.rsplit("/", 1)[1] for p in s3.find(f"{bucket}/art/runs"))
    assert names == sorted(["run.json", *(c.file for c in run.checkpoints)])
    assert [c.epoch for c in run.checkpoints] == [1, 3]
    assert run.load()["epoch"] == 3 and run.load("best")["epoch"] == 1
    other = RunStore(f"s3://{bucket}/art", **moto.storage_options)
    assert [r.run_id for r in other.runs("m")] == [run.run_id]
    assert other.find_resumable("m", signature="s").run_id == run.run_id
    key = f"{bucket}/art/runs/m/{run.run_id}/{run.checkpoints[-1].file}"
    s3.pipe_file(key, b"tampered")
    with pytest.raises(IntegrityError, match="corrupt"):
        other.open("m", run.run_id).load()
    s3.pipe_file(f"{bucket}/art/runs/m/{run.run_id}/run.json", b"[]")
    assert other.runs("m") == [] and len(other.scan("m").skipped) == 1


def test_module_names_its_public_api():
    assert sorted(runs_module.__all__) == runs_module.__all__


def test_a_manifest_copied_into_another_folder_is_not_trusted(store, tmp_path):
    run = store.create("m", signature="s")
    save(run, 1)
    src = Path(run.url.removeprefix("file://"))
    copy = src.parent / "20200101-000000-abcdef"
    copy.mkdir()
    (copy / "run.json").write_bytes((src / "run.json").read_bytes())
    with pytest.raises(IntegrityError, match="describes run"):
        store.open("m", copy.name)
    assert [s.path.rsplit("/", 2)[1] for s in store.scan("m").skipped] == [copy.name]
