"""Schema migrations: numbered, idempotent, and refusing a newer file."""

from __future__ import annotations

import duckdb
import pytest

import mlnb
from mlnb.registry import schema
from mlnb.registry.db import RegistryDB


def test_every_earlier_step_migrates_to_the_latest(tmp_path):
    for start in range(0, schema.LATEST):
        path = str(tmp_path / f"at-{start}.duckdb")
        con = duckdb.connect(path)
        con.execute("create schema if not exists mlnb")
        if start:
            schema.migrate(con, upto=start)
        con.close()
        db = RegistryDB(path)
        assert schema.current_version(db.con) == schema.LATEST
        db.close()


def test_reopening_keeps_everything_and_migrates_nothing(tmp_path):
    path = str(tmp_path / "r.duckdb")
    db = RegistryDB(path)
    db.hold("r1", ["0" * 64])
    db.register(request_id="r1", name="m", format="files", metadata={}, metrics={"a": 1.0},
                params={"p": [1, 2]}, tags={"t": "x"}, description=None, parent=None,
                user="u", files=[{"path": "f", "sha256": "0" * 64, "size": 1,
                                  "media_type": "text/plain"}])
    db.promote("m:1", user="u")
    db.close()
    again = RegistryDB(path)
    v = again.get("m@production")
    assert (v["version"], v["metrics"], v["params"], v["tags"]) == (1, {"a": 1.0}, {"p": [1, 2]}, {"t": "x"})
    assert [a["action"] for a in again.audit("m")] == ["promote", "register"]
    again.close()


def test_a_registry_from_a_newer_mlnb_is_refused(tmp_path):
    path = str(tmp_path / "new.duckdb")
    RegistryDB(path).close()
    con = duckdb.connect(path)
    con.execute("update mlnb.meta set value = '999' where key = 'schema_version'")
    con.close()
    with pytest.raises(mlnb.Conflict, match="upgrade mlnb"):
        RegistryDB(path)
