"""The hot-path reads of a GET off the event loop (issue 18): Database.read_point runs inline on
SQLite and on a reader thread on PostgreSQL; CacheEpochs.refresh() shares one epoch reading
among the requests that arrive together, and a request never takes a reading that started
before it arrived (docs/scale-out.md: a change whose request has returned is seen by every
later request)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core import cache_epochs
from core.db import Database
from core.db_postgres import PostgresDatabase
from tests.pg import drop_database, new_database_url


@pytest.fixture
def pg() -> Iterator[PostgresDatabase]:
    url = new_database_url("epochs")
    db = PostgresDatabase(url, pool_size=4)
    db.open(cache_epochs.MIGRATIONS)
    yield db
    db.close()
    drop_database(url)


def _thread_name(conn: Any) -> str:
    conn.execute("SELECT 1").fetchone()
    return threading.current_thread().name


def test_read_point_is_inline_on_sqlite_and_off_the_loop_on_postgres(
    tmp_path: Path, pg: PostgresDatabase
) -> None:
    sqlite = Database(tmp_path / "folio.db")
    sqlite.open(cache_epochs.MIGRATIONS)
    try:

        async def names() -> tuple[str, str, str]:
            here = threading.current_thread().name
            return here, await sqlite.read_point(_thread_name), await pg.read_point(_thread_name)

        loop_thread, on_sqlite, on_postgres = asyncio.run(names())
    finally:
        sqlite.close()
    assert on_sqlite == loop_thread
    assert on_postgres.startswith("folio-pg-read")
    assert not cache_epochs.epochs_of(sqlite).needs_refresh
    assert cache_epochs.epochs_of(pg).needs_refresh


def test_requests_share_a_reading_that_started_after_they_arrived(pg: PostgresDatabase) -> None:
    epochs = cache_epochs.epochs_of(pg)
    readings: list[str] = []

    def slow_query(conn: Any) -> list[tuple[str, int]]:
        """Reads the epochs, then holds the reading in flight for a while."""
        readings.append(threading.current_thread().name)
        found = cache_epochs.CacheEpochs._query(conn)
        conn.execute("SELECT pg_sleep(0.3)").fetchone()
        return found

    epochs._query = slow_query  # type: ignore[method-assign]
    watch = epochs.watch(cache_epochs.BUCKETS)

    async def request() -> int:
        await epochs.refresh()
        return epochs.current()[cache_epochs.BUCKETS]

    async def scenario() -> tuple[list[int], list[int]]:
        # Ten requests arrive together: one reading.
        early = [asyncio.create_task(request()) for _ in range(10)]
        await asyncio.sleep(0.1)  # that reading has read the epochs and is in flight
        # A change commits and its request returns; then ten more requests arrive.
        await pg.write(lambda c: cache_epochs.bump(c, cache_epochs.BUCKETS))
        late = [asyncio.create_task(request()) for _ in range(10)]
        return list(await asyncio.gather(*early)), list(await asyncio.gather(*late))

    assert watch.moved()  # the first look
    before = epochs.current()[cache_epochs.BUCKETS]
    early, late = asyncio.run(scenario())
    # The early requests took the reading in flight; none of the late ones did, though it was
    # in flight when they arrived: they share one reading that started after them.
    assert early == [before] * 10
    assert late == [before + 1] * 10
    assert len([name for name in readings if name.startswith("folio-pg-read")]) == 2
    assert watch.moved()  # the cache drops what it held before the change


def test_a_failed_reading_fails_its_requests_and_the_next_one_reads_again(pg: PostgresDatabase) -> None:
    epochs = cache_epochs.epochs_of(pg)
    failures = [RuntimeError("the database went away")]

    def query(conn: Any) -> list[tuple[str, int]]:
        if failures:
            raise failures.pop()
        return cache_epochs.CacheEpochs._query(conn)

    epochs._query = query  # type: ignore[method-assign]

    async def request() -> dict[str, int]:
        await epochs.refresh()
        return epochs.current()

    async def scenario() -> tuple[list[Any], dict[str, int]]:
        first = await asyncio.gather(*(request() for _ in range(3)), return_exceptions=True)
        return first, await request()

    first, then = asyncio.run(scenario())
    assert all(isinstance(r, RuntimeError) for r in first)
    assert then[cache_epochs.BUCKETS] == 0
