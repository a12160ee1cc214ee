"""reg.sql: read-only SQL over the registry views; nothing can write or read files."""

from __future__ import annotations

import pytest

import mlnb


@pytest.fixture
def filled(anyreg, tmp_path):
    f = tmp_path / "w"
    for name, n in (("a", 2), ("b", 3)):
        for i in range(n):
            f.write_text(f"{name}{i}")
            anyreg.register(name, f, metrics={"acc": i / 10, "loss": float("nan")},
                            params={"layers": [64, i]}, tags={"owner": "me"})
    anyreg.promote("b:2")
    return anyreg


def test_query_returns_a_dataframe_over_the_views(filled):
    df = filled.sql("select name, count(*) as n from versions group by 1 order by 1")
    assert df.to_dict("records") == [{"name": "a", "n": 2}, {"name": "b", "n": 3}]
    best = filled.sql(
        "select name, version, value from metrics where metric = 'acc' "
        "order by value desc, name limit 1"
    )
    assert best.to_dict("records") == [{"name": "b", "version": 3, "value": 0.2}]
    assert filled.sql("select alias, version from aliases").to_dict("records") == [
        {"alias": "production", "version": 2}
    ]
    assert set(filled.sql("select * from files")["name"]) == {"a", "b"}
    assert filled.sql("select value from params where name='a' and version=2")["value"][0] == "[64,1]"
    assert str(filled.sql("select created_at from versions")["created_at"].dtype).startswith("datetime64")


@pytest.mark.parametrize("query, match", [
    ("insert into mlnb.models values (99, 'x', null, now(), 'u')", "only SELECT"),
    ("delete from mlnb.versions", "only SELECT"),
    ("update mlnb.aliases set version = 1", "only SELECT"),
    ("drop table mlnb.audit", "only SELECT"),
    ("attach '/tmp/other.duckdb' as o", "only SELECT"),
    ("copy (select 1) to '/tmp/mlnb-sql-leak.csv'", "only SELECT"),
    ("set enable_external_access = true", "only SELECT"),
    ("select 1; delete from mlnb.versions", "one statement"),
    ("select * from read_csv('/etc/passwd')", "cannot read or write files"),
    ("select * from read_text('/etc/hostname')", "cannot read or write files"),
    ("", "empty"),
    ("selec 1", "SQL error"),
])
def test_writes_file_access_and_stacked_statements_are_refused(filled, query, match):
    before = filled.sql("select count(*) as n from versions")["n"][0]
    with pytest.raises(mlnb.InvalidArgument, match=match):
        filled.sql(query)
    assert filled.sql("select count(*) as n from versions")["n"][0] == before
    assert filled.get("b@production").version == 2


def test_side_effects_inside_a_select_are_rolled_back(filled):
    # a SELECT that advances a sequence would change state; it must leave no trace
    with pytest.raises(mlnb.InvalidArgument):
        filled.sql("create sequence s")
    assert filled.sql("select count(*) as n from audit")["n"][0] == 6
