"""fsck and gc: finding what is wrong in storage, and removing only what nobody uses."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

import mlnb


def _blob_path(reg: mlnb.Registry, sha: str) -> Path:
    return Path(reg.storage_url) / "objects" / sha[:2] / sha


@pytest.fixture
def two(anyreg, tmp_path):
    for i in range(2):
        f = tmp_path / f"w{i}.bin"
        f.write_bytes(bytes([i]) * 5000)
        anyreg.register("m", f)
    return anyreg


def test_fsck_is_clean_on_a_healthy_registry(two):
    report = two.fsck()
    assert report.ok and report.checked == 2
    assert report.missing == report.corrupt == report.orphans == ()


def test_fsck_reports_corrupt_truncated_and_missing_blobs_by_version_and_file(two):
    v1, v2 = two.get("m:1"), two.get("m:2")
    p1, p2 = _blob_path(two, v1.files[0].sha256), _blob_path(two, v2.files[0].sha256)
    for p in (p1, p2):
        p.chmod(0o644)
    p1.write_bytes(b"\xff" * 5000)          # same size, other bytes
    p2.unlink()                              # a dangling row
    report = two.fsck()
    assert not report.ok
    assert report.missing == ("m:2 file w1.bin",)
    assert len(report.corrupt) == 1 and report.corrupt[0].startswith("m:1 file w0.bin")
    quick = two.fsck(deep=False)
    assert quick.missing == ("m:2 file w1.bin",) and quick.corrupt == ()
    p1.write_bytes(b"\x00" * 10)             # truncated: even the quick check sees it
    assert two.fsck(deep=False).corrupt[0].startswith("m:1 file w0.bin: size")


def test_gc_removes_orphans_and_stale_uploads_but_no_referenced_blob(two, tmp_path):
    orphan = two.store.put_bytes(b"nobody references me")
    temp_dir = Path(two.storage_url) / "tmp"
    temp_dir.mkdir(exist_ok=True)
    (temp_dir / ("ab" * 16)).write_bytes(b"half")  # as a killed upload leaves it
    report = two.fsck()
    assert report.orphans == (orphan.sha256,) and len(report.temp) == 1
    dry = two.gc(dry_run=True, grace=0)
    assert dry.blobs == (orphan.sha256,) and two.store.exists(orphan.sha256)
    young = two.gc()  # the default grace period keeps a fresh upload
    assert young.blobs == (orphan.sha256,) and young.temp == ()
    old = two.gc(grace=0)
    assert len(old.temp) == 1
    after = two.fsck()
    assert after.ok and after.orphans == () and after.temp == ()
    assert isinstance(two.load("m:1"), (str, Path))


def test_gc_never_deletes_a_blob_held_by_a_registration_in_flight(two, tmp_path):
    f = tmp_path / "inflight.bin"
    f.write_bytes(b"about to be registered")
    entries = two._put_files("req-1", [("inflight.bin", f)])
    sha = entries[0]["sha256"]
    report = two.fsck()
    assert sha in report.orphans and sha in report.held
    assert sha not in two.gc(grace=0).blobs
    assert two.store.exists(sha)
    v = two._commit("req-1", [("inflight.bin", f)], entries, name="m", format="files",
                    metadata={"layout": "file", "name": "inflight.bin", "format_version": 1},
                    metrics={}, params={}, tags={}, description=None, parent=None)
    assert Path(two.load(v.ref)).read_bytes() == b"about to be registered"
    assert two.fsck().ok


def test_a_registration_waits_for_a_gc_that_is_deleting_its_blob_then_uploads_it_again(two, tmp_path):
    data = b"orphaned, then wanted again"
    orphan = two.store.put_bytes(data)
    doomed = two._call("gc_begin", token="t1", candidates=[orphan.sha256])
    assert doomed == [orphan.sha256]
    f = tmp_path / "again.bin"
    f.write_bytes(data)
    done: list = []
    t = threading.Thread(target=lambda: done.append(two.register("late", f)))
    t.start()
    time.sleep(0.5)
    assert not done, "the registration must wait while gc is deleting its blob"
    two.store.delete([orphan.sha256])  # the gc goes on deleting
    two._call("gc_end", token="t1")
    t.join(10)
    assert done and Path(two.load(done[0].ref)).read_bytes() == data
    assert two.fsck().ok


def test_a_server_restart_between_upload_and_commit_cannot_leave_a_dangling_version(reg, tmp_path):
    import os
    import signal

    from mlnb.registry import server

    f = tmp_path / "w.bin"
    f.write_bytes(b"uploaded before the restart")
    files = [("w.bin", f)]
    entries = reg._put_files("req-r", files)
    os.kill(server.server_pid(str(reg.settings.registry)), signal.SIGKILL)
    # The new server holds nothing, so a gc now removes the upload...
    assert entries[0]["sha256"] in reg.gc(grace=0).blobs
    # ...and the commit notices, uploads again, and records a whole version.
    v = reg._commit("req-r", files, entries, name="m", format="files",
                    metadata={"layout": "file", "name": "w.bin", "format_version": 1},
                    metrics={}, params={}, tags={}, description=None, parent=None)
    assert Path(reg.load(v.ref)).read_bytes() == b"uploaded before the restart"
    assert reg.fsck().ok


def test_holds_of_a_client_that_went_away_are_dropped(home, tmp_path):
    f = tmp_path / "w.bin"
    f.write_bytes(b"abandoned upload")
    gone = mlnb.Registry(home)
    sha = gone._put_files("req-gone", [("w.bin", f)])[0]["sha256"]
    other = mlnb.Registry(home)
    assert sha in other.fsck().held
    gone.close()  # as when its process dies: the server sees the connection close
    deadline = time.time() + 5
    while sha in other.fsck().held and time.time() < deadline:
        time.sleep(0.05)
    assert sha in other.gc(grace=0).blobs
