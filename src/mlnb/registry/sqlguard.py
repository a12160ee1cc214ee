"""Run a user's SQL over the registry without letting it change anything.

Three fences, each enough on its own for the cases it covers:

1. DuckDB's parser must find exactly one ``SELECT`` statement (so no ``COPY``,
   ``ATTACH``, ``SET``, ``INSERT``, ``PRAGMA``...).
2. The connection has ``enable_external_access`` off (set by
   :class:`~mlnb.registry.db.RegistryDB` when it opens the file), so table functions cannot read or write files.
3. The query runs inside a transaction that is always rolled back, so even a
   side effect hidden in a SELECT (a sequence's ``nextval``) leaves no trace.

Results travel as plain JSON: column names, DuckDB type names and rows, with
timestamps as ISO strings; the client turns them into a DataFrame.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import math
import uuid
from typing import TYPE_CHECKING, Any

from mlnb.errors import InvalidArgument

if TYPE_CHECKING:
    import duckdb

__all__ = ["run"]


def _plain(value: Any) -> Any:
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return value
    return value


def run(con: duckdb.DuckDBPyConnection, query: str, limit: int) -> dict[str, Any]:
    """Run *query* read-only on *con*; return ``{"columns", "types", "rows", "truncated"}``."""
    import duckdb

    if not isinstance(query, str) or not query.strip():
        raise InvalidArgument("the SQL query is empty; write a SELECT over the registry views")
    try:
        statements = con.extract_statements(query)
    except duckdb.Error as err:
        raise InvalidArgument(f"SQL error: {err}") from err
    if len(statements) != 1:
        raise InvalidArgument(
            f"run one statement at a time (found {len(statements)}); registry SQL is read-only"
        )
    kind = statements[0].type
    if kind != duckdb.StatementType.SELECT:
        raise InvalidArgument(
            f"only SELECT queries may run on the registry, not {kind.name}: registry SQL is "
            "read-only; change the registry through mlnb (register, promote, retire, ...)"
        )
    con.execute("begin")
    try:
        cur = con.execute(query)
        columns = [d[0] for d in cur.description or []]
        types = [str(d[1]) for d in cur.description or []]
        rows = cur.fetchmany(limit + 1)
    except duckdb.PermissionException as err:
        raise InvalidArgument(
            f"registry SQL cannot read or write files or the network: {err}"
        ) from err
    except duckdb.Error as err:
        raise InvalidArgument(f"SQL error: {err}") from err
    finally:
        con.execute("rollback")
    return {
        "columns": columns,
        "types": types,
        "rows": [[_plain(v) for v in row] for row in rows[:limit]],
        "truncated": len(rows) > limit,
    }
