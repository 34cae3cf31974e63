"""A test's own connection to a Folio server's metadata database, whichever engine the server
runs on: the SQLite file in its data directory, or the PostgreSQL database that
FOLIO_TEST_DATABASE=postgres gave it (tests/folio_process.py). Both take `?` placeholders and
return rows as tuples (PostgreSQL through core.db_postgres's adapter, the server's own), so a
test's SQL is written once and checks the same rows on either engine."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.folio_process import FolioProcess


@contextmanager
def server_db(server: FolioProcess, *, write: bool = False, timeout: float = 30.0) -> Iterator[Any]:
    """Committed when the block ends without an exception (SQLite's file is opened read-only
    unless `write`); closed afterwards either way."""
    if server.database_url:
        import psycopg

        from core.db_postgres import PgConnection, _configure

        with psycopg.connect(server.database_url, autocommit=not write, connect_timeout=int(timeout)) as raw:
            _configure(raw)
            yield PgConnection(raw)  # psycopg's `with` commits on success, rolls back on error
        return
    path = server.data_dir / "folio.db"
    conn = (
        sqlite3.connect(path, timeout=timeout)
        if write
        else sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=timeout)
    )
    try:
        with conn:  # commits on success, rolls back on error
            yield conn
    finally:
        conn.close()
