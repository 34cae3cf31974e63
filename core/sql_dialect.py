"""The few places where one SQL text cannot serve both metadata engines.

Queries are written once, in the SQL both SQLite and PostgreSQL accept (`?` placeholders,
which the PostgreSQL adapter translates). Where the portable form would be slower on SQLite
(JSON walked in SQL, lists passed as one parameter), the caller picks the engine's own text
with `is_sqlite`; the SQLite text stays what it always was.
"""

from __future__ import annotations

import sqlite3


def is_sqlite(conn: object) -> bool:
    """SQLite's own connection; anything else is the PostgreSQL adapter (core.db_postgres)."""
    return isinstance(conn, sqlite3.Connection)


def in_json_strings(conn: object) -> str:
    """`IN (...)` over a JSON array of strings given as one parameter (`json.dumps(list)`):
    one statement text however many there are, so it stays in each engine's statement cache."""
    if is_sqlite(conn):
        return "IN (SELECT value FROM json_each(?))"
    return "IN (SELECT jsonb_array_elements_text(?::jsonb))"
