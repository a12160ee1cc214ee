"""Several processes, one registry: real processes against a real registry server.

These are the guarantees of ARCHITECTURE.md "one writer process per registry
file": kernels and the CLI are clients of one server, which serialises every
change, survives being killed, and is started exactly once however many
clients race to start it.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from pathlib import Path

import pytest

import mlnb
from mlnb.registry import server

pytestmark = pytest.mark.slow

CTX = mp.get_context("spawn")  # a fresh interpreter per worker, like separate kernels


def _register_many(home: str, worker: int, n: int, out: mp.Queue) -> None:
    try:
        reg = mlnb.Registry(home)
        payload = Path(home) / f"payload-{worker}"
        got = []
        for i in range(n):
            payload.write_text(f"worker {worker} item {i}")
            got.append(reg.register("shared", payload, metrics={"w": worker, "i": i}).version)
        out.put(("ok", worker, got))
    except BaseException as err:  # report every failure to the parent
        out.put(("error", worker, repr(err)))


def _promote(home: str, version: int, barrier, out: mp.Queue) -> None:
    try:
        reg = mlnb.Registry(home)
        reg.get("m:1")  # connect before the barrier so the promotions really race
        barrier.wait()
        reg.promote(f"m:{version}", "production")
        out.put(("ok", version, None))
    except BaseException as err:
        out.put(("error", version, repr(err)))


def _collect(queue: mp.Queue, n: int, timeout: float = 240) -> list[tuple]:
    results = [queue.get(timeout=timeout) for _ in range(n)]
    errors = [r for r in results if r[0] == "error"]
    assert not errors, errors
    return results


def _seed(home: Path, versions: int) -> mlnb.Registry:
    reg = mlnb.Registry(home)
    f = home / "seed"
    for i in range(versions):
        f.write_text(f"seed {i}")
        reg.register("m", f)
    return reg


def test_eight_processes_registering_fifty_versions_each(home):
    queue = CTX.Queue()
    procs = [CTX.Process(target=_register_many, args=(str(home), w, 50, queue)) for w in range(8)]
    for p in procs:
        p.start()
    results = _collect(queue, 8)
    for p in procs:
        p.join(30)
    got = sorted(v for _, _, versions in results for v in versions)
    assert got == list(range(1, 401))
    reg = mlnb.Registry(home)
    listed = reg.versions("shared")
    assert [v.version for v in listed] == list(range(1, 401))
    # nothing lost: every (worker, item) pair is there exactly once
    pairs = sorted((v.metrics["w"], v.metrics["i"]) for v in listed)
    assert pairs == [(w, i) for w in range(8) for i in range(50)]
    assert reg.fsck().ok
    assert sum(1 for e in reg.audit("shared", limit=1000) if e.action == "register") == 400


def test_eight_processes_promoting_at_once_leave_one_holder_and_one_audit_row_each(home):
    reg = _seed(home, 8)
    queue, barrier = CTX.Queue(), CTX.Barrier(8)
    procs = [CTX.Process(target=_promote, args=(str(home), v, barrier, queue)) for v in range(1, 9)]
    for p in procs:
        p.start()
    _collect(queue, 8)
    for p in procs:
        p.join(30)
    holders = [v.version for v in reg.versions("m") if "production" in v.aliases]
    assert len(holders) == 1
    assert reg.get("m@production").version == holders[0]
    moves = [e for e in reg.audit("m") if e.alias == "production"]
    assert len(moves) == 8
    assert sorted(e.to_version for e in moves) == list(range(1, 9))
    # the moves chain: each one starts where the previous one ended
    chain = sorted(moves, key=lambda e: e.id)
    assert chain[0].from_version is None
    assert all(b.from_version == a.to_version for a, b in zip(chain, chain[1:]))
    assert chain[-1].to_version == holders[0]


def _storm(home: str, stop_at: float, out: mp.Queue) -> None:
    try:
        reg = mlnb.Registry(home)
        k = 0
        while time.time() < stop_at:
            reg.promote(f"m:{k % 5 + 1}", "production")
            k += 1
        out.put(("ok", k, None))
    except BaseException as err:
        out.put(("error", 0, repr(err)))


def test_reader_always_resolves_production_to_exactly_one_version_during_a_storm(home):
    reg = _seed(home, 5)
    reg.promote("m:1")
    queue = CTX.Queue()
    stop_at = time.time() + 4
    writers = [CTX.Process(target=_storm, args=(str(home), stop_at, queue)) for _ in range(2)]
    for p in writers:
        p.start()
    seen = set()
    reads = 0
    while time.time() < stop_at:
        v = reg.get("m@production")
        assert v.aliases.count("production") == 1 and 1 <= v.version <= 5
        listing = reg.versions("m")
        assert sum("production" in x.aliases for x in listing) == 1
        seen.add(v.version)
        reads += 1
    results = _collect(queue, 2)
    for p in writers:
        p.join(30)
    assert sum(r[1] for r in results) > 20, "the storm never got going"
    assert reads > 20 and len(seen) > 1


def test_killing_the_server_loses_nothing_and_a_retried_registration_is_not_doubled(home):
    reg = _seed(home, 3)
    reg.promote("m:2")
    db = str(home / "registry.duckdb")
    first = server.server_pid(db)
    os.kill(first, signal.SIGKILL)
    time.sleep(0.2)
    # the next call starts a new server, which sees everything committed
    assert reg.get("m@production").version == 2
    assert [v.version for v in reg.versions("m")] == [1, 2, 3]
    second = server.server_pid(db)
    assert second and second != first
    # a registration whose answer was lost is sent again with the same request id
    payload = home / "again"
    payload.write_text("retry me")
    entries = reg._put_files("req-fixed", [("again", payload)])
    args = dict(name="m", format="files", metadata={}, metrics={}, params={}, tags={},
                description=None, parent=None, files=entries, user="tester")
    v = reg._call("register", request_id="req-fixed", **args)
    os.kill(second, signal.SIGKILL)
    again = reg._call("register", request_id="req-fixed", **args)
    assert again["version"] == v["version"] == 4
    assert [x.version for x in reg.versions("m")] == [1, 2, 3, 4]


def _start(home: str, out: mp.Queue, barrier) -> None:
    try:
        barrier.wait()
        mlnb.Registry(home)
        out.put(("ok", server.server_pid(str(Path(home) / "registry.duckdb")), None))
    except BaseException as err:
        out.put(("error", 0, repr(err)))


def test_clients_racing_to_start_the_server_end_with_one(home):
    queue, barrier = CTX.Queue(), CTX.Barrier(6)
    procs = [CTX.Process(target=_start, args=(str(home), queue, barrier)) for _ in range(6)]
    for p in procs:
        p.start()
    results = _collect(queue, 6)
    for p in procs:
        p.join(30)
    pids = {r[1] for r in results}
    assert len(pids) == 1 and None not in pids
    log = (home / "registry.log").read_text()
    assert log.count("serving ") == 1


def test_server_exits_when_idle_and_the_next_call_starts_another(home, monkeypatch):
    monkeypatch.setenv("MLNB_IDLE", "0.5")
    reg = _seed(home, 1)
    db = str(home / "registry.duckdb")
    assert server.server_pid(db)
    deadline = time.time() + 10
    while server.server_pid(db) and time.time() < deadline:
        time.sleep(0.1)
    assert server.server_pid(db) is None, "an idle server must release the registry file"
    assert not server.paths_for(db)["socket"].exists()
    assert reg.get("m").version == 1


def test_stop_with_force_kills_a_server_that_does_not_exit(home):
    reg = _seed(home, 1)
    db = str(home / "registry.duckdb")
    with pytest.raises(TimeoutError):
        server.stop(db, timeout=0.2, sig=0)  # signal 0 asks nothing: the server stays
    assert server.server_pid(db)
    assert server.stop(db, timeout=0.2, sig=0, force=True)
    assert server.server_pid(db) is None
    assert reg.get("m").version == 1  # and the next call starts a new one
