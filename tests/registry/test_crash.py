"""Crash safety, shown by killing real processes at random points.

A registration killed at any moment leaves either the whole version or
nothing; the registry server killed at any moment loses nothing committed, and
the client's retry never registers a version twice.  Afterwards ``fsck`` finds
no missing or corrupt file, and ``gc`` removes only what no version uses.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import mlnb
from mlnb.registry import server

pytestmark = pytest.mark.slow

WORKER = Path(__file__).with_name("crashworker.py")
BATCH = 100  # registrations per worker while the server is being killed
KILLS = 12   # server kills the test insists on
sys.path.insert(0, str(WORKER.parent))
from crashworker import content  # noqa: E402


def _check_every_version_is_whole(reg: mlnb.Registry, skip: dict | None = None) -> list[int]:
    """Load every version (but those in *skip*) and compare its bytes with what was written."""
    seen = []
    for v in reg.versions("crash"):
        if skip is not None and v.version in skip:
            seen.append(skip[v.version])
            continue
        full = reg.get(v.ref)
        i = int(full.metrics["i"])
        assert sorted(f.path for f in full.files) == ["part0.bin", "part1.bin", "part2.bin"]
        root = reg.load(v.ref)
        for k in range(3):
            assert (Path(root) / f"part{k}.bin").read_bytes() == content(i, k), v.ref
        seen.append(i)
        if skip is not None:
            skip[v.version] = i
    assert len(seen) == len(set(seen)), f"a registration was recorded twice: {seen}"
    return seen


def test_killing_registering_clients_at_random_points_leaves_whole_versions_or_nothing(home):
    rng = random.Random(int(os.environ.get("MLNB_CRASH_SEED", time.time())))
    reg = mlnb.Registry(home)
    trials, killed_mid, checked = 32, 0, {}
    for _ in range(trials):
        proc = subprocess.Popen(
            [sys.executable, str(WORKER), str(home), "1000"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        time.sleep(rng.uniform(0.3, 0.8))  # interpreter start-up is about 0.25 s
        proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate(timeout=30)
        assert "Traceback" not in err, err
        killed_mid += 1
        committed = [int(line.split()[1]) for line in out.splitlines()
                     if line.startswith("committed")]
        seen = _check_every_version_is_whole(reg, checked)
        # every registration the worker saw returning is there (a kill between the
        # commit and the print may add one more, never fewer)
        assert set(committed) <= set(seen)
    report = reg.fsck()
    assert report.ok, report
    assert killed_mid == trials >= 30
    # what the kills left behind is only unreferenced data, which gc removes
    gc = reg.gc(grace=0)
    after = reg.fsck()
    assert after.ok and after.orphans == () and after.temp == ()
    assert set(gc.blobs) == set(report.orphans)
    _check_every_version_is_whole(reg)


def _answers(db: str) -> bool:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(server.paths_for(db)["socket"]))
        return True
    except OSError:
        return False
    finally:
        sock.close()


def test_killing_the_server_at_random_points_never_loses_or_doubles_a_registration(home):
    rng = random.Random(int(os.environ.get("MLNB_CRASH_SEED", time.time())))
    db = str(home / "registry.duckdb")
    kills, total = 0, 0
    deadline = time.time() + 180
    # Workers register in batches (numbering on from what exists) until the server
    # has been killed often enough, however fast registrations have become.
    while kills < KILLS:
        assert time.time() < deadline, f"only {kills} kills in 180 s"
        proc = subprocess.Popen(
            [sys.executable, str(WORKER), str(home), str(BATCH)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        while proc.poll() is None and time.time() < deadline:
            pid = server.server_pid(db)
            if pid is None or not _answers(db):  # the client is starting a new one
                time.sleep(0.01)
                continue
            time.sleep(rng.uniform(0.0, 0.2))  # let it serve for a while, then kill it mid-work
            try:
                os.kill(pid, signal.SIGKILL)
                kills += 1
            except ProcessLookupError:
                pass
            while server.server_pid(db) == pid and time.time() < deadline:
                time.sleep(0.005)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        total += BATCH
    reg = mlnb.Registry(home)
    seen = _check_every_version_is_whole(reg)
    assert sorted(seen) == list(range(total))
    assert [v.version for v in reg.versions("crash")] == list(range(1, total + 1))
    assert reg.fsck().ok
