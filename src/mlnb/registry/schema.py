"""The registry's DuckDB schema, as numbered migrations.

Tables live in the ``mlnb`` schema and are written only by :mod:`mlnb.registry.db`.
What users query (``reg.sql``, ``%%mlnb sql``) are the views in ``main``:
``models``, ``versions``, ``metrics``, ``params``, ``tags``, ``files``,
``aliases``, ``lineage``, ``audit``, and since migration 2 ``evaluations``,
``evaluation_metrics`` and ``gates``, which show names instead of ids.

A version's metrics, params, tags and files are JSON columns of its row, and
that row is also the registration's audit entry (the ``audit`` view unions it
with the table of other changes), so a registration is a single row insert:
about 1 ms with its commit, where the same data spread over normalised tables
cost 3-4 ms here.  The ``metrics``/``params``/``tags``/``files`` views present
them as one row per entry.  Versions are never physically deleted, which is
what keeps version numbers from being reused.

An evaluation (migration 2) is one row of ``mlnb.evaluations`` with its
estimates as a JSON object ``{metric: {"value", "lower", "upper", "note"}}``
(non-finite numbers as the strings versions use); its audit entry is an
ordinary ``evaluate`` row of ``mlnb.audit`` whose id the row keeps.  A
model's quality gates are one row of ``mlnb.gates``: the canonical texts of
:mod:`mlnb.evaluation.gates`, as a JSON list.

To change the schema, append a migration to :data:`MIGRATIONS`; never edit one
that has shipped.  ``tests/registry/test_schema.py`` checks that a database
created at every earlier step migrates to the latest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlnb.errors import Conflict

if TYPE_CHECKING:
    import duckdb

__all__ = ["LATEST", "MIGRATIONS", "migrate"]

_MAP = "'\"MAP(VARCHAR, {})\"'"
_FILE = (
    "'[{\"path\": \"VARCHAR\", \"sha256\": \"VARCHAR\", \"size\": \"BIGINT\","
    " \"media_type\": \"VARCHAR\"}]'"
)

_ESTIMATE = "STRUCT(value DOUBLE, lower DOUBLE, upper DOUBLE, note VARCHAR)"

_VIEWS_V1 = f"""
create or replace view models as
    select m.name, m.description, m.created_at, m.created_by,
           (select count(*) from mlnb.versions v where v.model_id = m.id) as versions
    from mlnb.models m;
create or replace view versions as
    select m.name, v.version, v.status, v.format, v.description, v.created_at,
           v.created_by, v.metrics, v.params, v.tags,
           (select list(a.alias order by a.alias) from mlnb.aliases a
             where a.model_id = v.model_id and a.version = v.version) as aliases
    from mlnb.versions v join mlnb.models m on m.id = v.model_id;
create or replace view metrics as
    select m.name, v.version, u.e.key as metric, u.e.value as value
    from mlnb.versions v join mlnb.models m on m.id = v.model_id
    cross join unnest(map_entries(from_json(v.metrics, {_MAP.format("DOUBLE")}))) as u(e);
create or replace view params as
    select m.name, v.version, u.e.key as param, u.e.value as value
    from mlnb.versions v join mlnb.models m on m.id = v.model_id
    cross join unnest(map_entries(from_json(v.params, {_MAP.format("JSON")}))) as u(e);
create or replace view tags as
    select m.name, v.version, u.e.key as tag, u.e.value as value
    from mlnb.versions v join mlnb.models m on m.id = v.model_id
    cross join unnest(map_entries(from_json(v.tags, {_MAP.format("VARCHAR")}))) as u(e);
create or replace view files as
    select m.name, v.version, u.f.path, u.f.sha256, u.f.size, u.f.media_type
    from mlnb.versions v join mlnb.models m on m.id = v.model_id
    cross join unnest(from_json(v.files, {_FILE})) as u(f);
create or replace view aliases as
    select m.name, a.alias, a.version, a.set_at, a.set_by
    from mlnb.aliases a join mlnb.models m on m.id = a.model_id;
create or replace view lineage as
    select m.name, l.version, l.kind, o.name as other_name, l.other_version,
           l.details, l.created_at
    from mlnb.lineage l join mlnb.models m on m.id = l.model_id
    join mlnb.models o on o.id = l.other_model_id;
create or replace view audit as
    select v.audit_id as id, v.created_at as "at", v.created_by as "user",
           'register' as action, m.name as model, v.version, null as alias,
           null as from_version, v.version as to_version, v.description as reason,
           v.register_details as details
    from mlnb.versions v join mlnb.models m on m.id = v.model_id
    union all
    select * from mlnb.audit;
"""

MIGRATIONS: list[str] = [
    # 1: the first schema.
    """
    create table mlnb.meta (key varchar primary key, value varchar not null);
    create table mlnb.models (
        id integer primary key,
        name varchar not null unique,
        description varchar,
        created_at timestamp not null,
        created_by varchar not null
    );
    -- metrics, params and tags are JSON objects, files a JSON list: one cheap row
    -- per registration.  Non-finite metrics are the strings "NaN", "Infinity",
    -- "-Infinity".  The row is also the registration's audit entry (audit_id).
    create table mlnb.versions (
        model_id integer not null,
        version integer not null,
        status varchar not null,
        format varchar not null,
        description varchar,
        created_at timestamp not null,
        created_by varchar not null,
        request_id varchar not null unique,
        audit_id bigint not null,
        metrics json not null,
        params json not null,
        tags json not null,
        files json not null,
        manifest json not null,
        register_details json,
        primary key (model_id, version)
    );
    create table mlnb.aliases (
        model_id integer not null,
        alias varchar not null,
        version integer not null,
        set_at timestamp not null,
        set_by varchar not null,
        primary key (model_id, alias)
    );
    create table mlnb.lineage (
        model_id integer not null,
        version integer not null,
        kind varchar not null,
        other_model_id integer not null,
        other_version integer not null,
        details json,
        created_at timestamp not null,
        primary key (model_id, version, kind, other_model_id, other_version)
    );
    -- every change but a registration (whose row in versions is its entry)
    create table mlnb.audit (
        id bigint primary key,
        "at" timestamp not null,
        "user" varchar not null,
        action varchar not null,
        model varchar not null,
        version integer,
        alias varchar,
        from_version integer,
        to_version integer,
        reason varchar,
        details json
    );
    """
    + _VIEWS_V1,
    # 2: evaluations of versions on data, and each model's quality gates.
    f"""
    create table mlnb.evaluations (
        id bigint primary key,
        model_id integer not null,
        version integer not null,
        data_fingerprint varchar not null,
        task varchar not null,
        -- {{metric: {{"value", "lower", "upper", "note"}}}}; non-finite numbers are
        -- the strings "NaN", "Infinity", "-Infinity", as in versions.metrics
        metrics json not null,
        -- n examples, device, batch size, seed, n_bootstrap, data description,
        -- the gate report when gates were given
        details json not null,
        created_at timestamp not null,
        created_by varchar not null,
        -- the client's id for this recording: a resent request records once
        request_id varchar unique,
        audit_id bigint not null
    );
    -- one row per model that has gates; no row means no gates
    create table mlnb.gates (
        model_id integer primary key,
        gates json not null,
        set_at timestamp not null,
        set_by varchar not null
    );
    create or replace view evaluations as
        select e.id, m.name, e.version, e.data_fingerprint, e.task, e.metrics, e.details,
               e.created_at, e.created_by
        from mlnb.evaluations e join mlnb.models m on m.id = e.model_id;
    create or replace view evaluation_metrics as
        select e.id as evaluation_id, m.name, e.version, e.data_fingerprint, e.task,
               u.e.key as metric, u.e.value.value as value, u.e.value.lower as lower,
               u.e.value.upper as upper, u.e.value.note as note
        from mlnb.evaluations e join mlnb.models m on m.id = e.model_id
        cross join unnest(map_entries(from_json(e.metrics, {_MAP.format(_ESTIMATE)}))) as u(e);
    create or replace view gates as
        select m.name, from_json(g.gates, '["VARCHAR"]') as gates, g.set_at, g.set_by
        from mlnb.gates g join mlnb.models m on m.id = g.model_id;
    """,
]

LATEST = len(MIGRATIONS)


def current_version(con: duckdb.DuckDBPyConnection) -> int:
    """Return the schema version of the database behind *con* (0 when empty)."""
    found = con.execute(
        "select count(*) from information_schema.tables "
        "where table_schema = 'mlnb' and table_name = 'meta'"
    ).fetchone()
    if not found or not found[0]:
        return 0
    row = con.execute("select value from mlnb.meta where key = 'schema_version'").fetchone()
    return int(row[0]) if row else 0


def migrate(con: duckdb.DuckDBPyConnection, *, upto: int = LATEST) -> int:
    """Bring the database to schema version *upto*, one transaction per step.

    Raises
    ------
    Conflict
        If the file was written by a newer mlnb than this one.
    """
    have = current_version(con)
    if have > LATEST:
        raise Conflict(
            f"the registry's schema is version {have}, newer than this mlnb knows ({LATEST}); "
            "upgrade mlnb: pip install -U mlnb"
        )
    con.execute("create schema if not exists mlnb")
    for step in range(have + 1, upto + 1):
        con.execute("begin")
        try:
            for statement in con.extract_statements(MIGRATIONS[step - 1]):
                con.execute(statement)
            con.execute(
                "insert or replace into mlnb.meta values ('schema_version', ?)", [str(step)]
            )
            con.execute("commit")
        except BaseException:
            con.execute("rollback")
            raise
    return upto
