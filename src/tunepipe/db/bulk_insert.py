"""Multi-row ``INSERT … VALUES (…), (…), …`` at the driver level, for the log writer's batches.

Why not ``conn.execute(insert(table), rows)``: that is an ``executemany``, and SQLite's driver
steps the statement once per row, releasing and re-taking the GIL at every step. The log writer
runs on its own thread, and under load every re-take waited for the request thread: the writer
fell behind 3,000 calls/s and its queue filled (docs/performance.md). One statement per chunk
of rows takes the GIL once. SQLAlchemy's own multi-row form (``insert(table).values(rows)``)
compiles the statement on every call, which costs more than it saves, so the SQL text is built
here, once per table, columns and chunk size.

Values reach the driver as they are: SQLite (``?``) and psycopg (``%s``) both take Python's
``str``, ``int``, ``float``, ``bool``, ``bytes`` and ``None`` unconverted.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.sql.compiler import IdentifierPreparer

# 50 rows of logged_calls' 16 columns stay under the 999 parameters of SQLite before 3.32.
ROWS_PER_STATEMENT = 50

_PLACEHOLDERS = {"qmark": "?", "format": "%s", "pyformat": "%s"}


@functools.lru_cache(maxsize=256)
def _insert_sql(
    preparer: IdentifierPreparer, table: str, columns: tuple[str, ...], rows: int, placeholder: str
) -> str:
    names = ", ".join(preparer.quote(c) for c in columns)
    row = "(" + ", ".join([placeholder] * len(columns)) + ")"
    return f"INSERT INTO {preparer.quote(table)} ({names}) VALUES " + ", ".join([row] * rows)


def insert_rows(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert ``rows`` (mappings with the same keys, named after ``table``'s columns)."""
    if not rows:
        return
    placeholder = _PLACEHOLDERS.get(conn.dialect.paramstyle)
    if placeholder is None:
        raise NotImplementedError(f"unsupported driver parameter style {conn.dialect.paramstyle!r}")
    columns = tuple(rows[0])
    preparer = conn.dialect.identifier_preparer
    for start in range(0, len(rows), ROWS_PER_STATEMENT):
        chunk = rows[start : start + ROWS_PER_STATEMENT]
        sql = _insert_sql(preparer, table.name, columns, len(chunk), placeholder)
        conn.exec_driver_sql(sql, tuple(row[c] for row in chunk for c in columns))
