"""Listing versions: what a client shows always matches the registry, however it changed."""

from __future__ import annotations

import os
import signal

import mlnb
from mlnb.registry import server


def _put(reg, tmp_path, name, n, start=0):
    f = tmp_path / f"{name}.bin"
    for i in range(start, start + n):
        f.write_text(f"{name} {i}")
        reg.register(name, f, metrics={"i": i})


def _view(reg, name):
    return [(v.version, v.status, v.aliases, dict(v.metrics)) for v in reg.versions(name)]


def test_a_second_client_sees_every_kind_of_change_made_by_the_first(home, tmp_path):
    writer, reader = mlnb.Registry(home), mlnb.Registry(home)
    _put(writer, tmp_path, "m", 5)
    assert [v for v, *_ in _view(reader, "m")] == [1, 2, 3, 4, 5]
    _put(writer, tmp_path, "m", 2, start=5)
    writer.promote("m:3")
    writer.set_alias("m:4", "champion")
    writer.retire("m:2")
    fresh = mlnb.Registry(home)
    assert _view(reader, "m") == _view(fresh, "m")  # the delta equals a full listing
    assert _view(reader, "m")[2][2] == ("production",)
    writer.promote("m:6")
    writer.rollback("m")
    assert _view(reader, "m") == _view(mlnb.Registry(home), "m")
    assert reader.get("m@production").version == 3


def test_listing_after_a_server_restart_is_whole(home, tmp_path):
    reg = mlnb.Registry(home)
    _put(reg, tmp_path, "m", 4)
    before = _view(reg, "m")
    os.kill(server.server_pid(str(home / "registry.duckdb")), signal.SIGKILL)
    other = mlnb.Registry(home)  # starts a new server, whose counters start again
    _put(other, tmp_path, "m", 1, start=4)
    other.promote("m:1")
    after = _view(reg, "m")
    assert after[:1] == [(1, "active", ("production",), {"i": 0})]
    assert after[1:4] == before[1:4] and len(after) == 5


def test_listings_of_different_models_do_not_mix(memreg, tmp_path):
    _put(memreg, tmp_path, "a", 3)
    _put(memreg, tmp_path, "b", 2)
    assert [v.name for v in memreg.versions("a")] == ["a"] * 3
    assert [v.name for v in memreg.versions("b")] == ["b"] * 2


def test_the_change_token_moves_exactly_when_the_registry_changes(home, tmp_path):
    writer, watcher = mlnb.Registry(home), mlnb.Registry(home)
    _put(writer, tmp_path, "m", 2)
    token = watcher.changes()
    assert watcher.changes() == token  # reading changes nothing
    watcher.versions("m"), watcher.get("m:1"), watcher.audit("m")
    assert watcher.changes() == token
    seen = {token}
    for change in (lambda: writer.promote("m:1"), lambda: writer.set_alias("m:2", "champion"),
                   lambda: writer.retire("m:2"), lambda: _put(writer, tmp_path, "m", 1, 5),
                   lambda: writer.promote("m:3"), lambda: writer.rollback("m")):
        change()
        now = watcher.changes()
        assert now not in seen
        seen.add(now)
    writer.promote("m:1")  # already the holder: a no-op, no audit row
    assert watcher.changes() == now
    os.kill(server.server_pid(writer.settings.registry), signal.SIGKILL)
    assert watcher.changes() not in seen  # a new server: a new epoch, reload everything
