"""core.db_postgres.PostgresDatabase against a real PostgreSQL (issue 18): the Database contract
of tests/unit/test_db.py (isolated failing writes, acknowledged writes kept, migrations once),
what the adapter promises the SQLite-era transaction bodies (placeholders, types), and the single
writer across processes: two databases in two processes racing read-check-write on one counter
never lose an update."""

from __future__ import annotations

import asyncio
import contextvars
import multiprocessing
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from core.db import DATABASE_ERRORS, Migration
from core.db_postgres import PostgresDatabase, translate_placeholders
from tests.pg import drop_database, new_database_url

MIGRATIONS = [
    Migration(
        "test",
        1,
        "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, data BLOB, ratio REAL);"
        "CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL);"
        "INSERT INTO counter (id, n) VALUES (1, 0);",
    )
]


@pytest.fixture
def url() -> Iterator[str]:
    made = new_database_url("dbtest")
    yield made
    drop_database(made)


@pytest.fixture
def db(url: str) -> Iterator[PostgresDatabase]:
    opened = PostgresDatabase(url, pool_size=4)
    opened.open(MIGRATIONS)
    yield opened
    opened.close()


def _insert(name: str):
    def fn(conn: Any) -> int:
        return conn.execute("INSERT INTO items (name) VALUES (?) RETURNING id", (name,)).fetchone()[0]

    return fn


def _names(db: PostgresDatabase) -> list[str]:
    return db.read(lambda c: [r[0] for r in c.execute("SELECT name FROM items ORDER BY name")])


def test_concurrent_writes_all_commit_and_a_failing_one_does_not_undo_its_neighbours(
    db: PostgresDatabase,
) -> None:
    async def scenario() -> list[object]:
        return await asyncio.gather(
            db.write(_insert("a")),
            db.write(_insert("b")),
            db.write(_insert("a")),  # violates UNIQUE: only this one fails
            db.write(_insert("c")),
            return_exceptions=True,
        )

    results = asyncio.run(scenario())
    assert isinstance(results[2], psycopg.errors.UniqueViolation)
    assert isinstance(results[2], DATABASE_ERRORS)
    assert all(isinstance(r, int) for i, r in enumerate(results) if i != 2)
    assert _names(db) == ["a", "b", "c"]


def test_acknowledged_writes_are_there_after_reopening(db: PostgresDatabase, url: str) -> None:
    async def scenario() -> None:
        await asyncio.gather(*(db.write(_insert(f"k{i:03d}")) for i in range(200)))

    asyncio.run(scenario())
    db.close()
    again = PostgresDatabase(url)
    again.open(MIGRATIONS)  # already applied: a no-op
    try:
        assert len(_names(again)) == 200
        assert again.read(lambda c: c.execute("SELECT count(*) FROM schema_migrations").fetchone()[0]) == 1
        assert again.read(lambda c: c.execute("SELECT n FROM counter").fetchone()[0]) == 0
    finally:
        again.close()


def test_a_body_that_raises_leaves_nothing_behind(db: PostgresDatabase) -> None:
    def half_then_fail(conn: Any) -> None:
        conn.execute("INSERT INTO items (name) VALUES ('half')")
        raise ValueError("changed my mind")

    with pytest.raises(ValueError):
        db.write_blocking(half_then_fail)
    assert _names(db) == []


def test_a_body_that_swallows_a_failed_statement_is_not_committed_silently(db: PostgresDatabase) -> None:
    db.write_blocking(_insert("taken"))

    def swallow(conn: Any) -> None:
        conn.execute("INSERT INTO items (name) VALUES ('before')")
        try:
            conn.execute("INSERT INTO items (name) VALUES ('taken')")
        except DATABASE_ERRORS:
            pass  # SQLite would go on; PostgreSQL has aborted the transaction

    with pytest.raises(psycopg.errors.InFailedSqlTransaction):
        db.write_blocking(swallow)
    assert _names(db) == ["taken"]


def test_read_own_writes_sees_the_transaction_inside_a_write(db: PostgresDatabase) -> None:
    seen: dict[str, int] = {}

    def body(conn: Any) -> None:
        conn.execute("INSERT INTO items (name) VALUES ('x')")
        seen["own"] = db.read_own_writes(lambda c: c.execute("SELECT count(*) FROM items").fetchone()[0])
        seen["others"] = db.read(lambda c: c.execute("SELECT count(*) FROM items").fetchone()[0])

    asyncio.run(db.write(body))
    assert seen == {"own": 1, "others": 0}
    assert db.read_own_writes(lambda c: c.execute("SELECT count(*) FROM items").fetchone()[0]) == 1


def test_the_adapter_speaks_sqlite3s_dialect(db: PostgresDatabase) -> None:
    def body(conn: Any) -> tuple[Any, ...]:
        conn.execute(
            "INSERT INTO items (name, data, ratio) VALUES (?, ?, ?)", ("50% ?", memoryview(b"\x00\xff"), 0.5)
        )
        conn.execute("INSERT INTO items (name, data) VALUES (?, ?)", ("two", bytearray(b"ab")))
        return conn.execute(
            "SELECT name, data, ratio, ? AS flag, '?', 'it''s 100%' FROM items WHERE name LIKE '50%' AND id > ?",
            (True, 0),
        ).fetchone()

    assert db.write_blocking(body) == ("50% ?", b"\x00\xff", 0.5, 1, "?", "it's 100%")
    sums = db.read(
        lambda c: c.execute(
            "SELECT sum(length(name)), avg(length(name)), count(*), name IS NOT NULL FROM items GROUP BY 4"
        ).fetchone()
    )
    assert sums == (8, 4.0, 2, 1) and type(sums[0]) is int and type(sums[1]) is float
    updated = db.write_blocking(
        lambda c: c.execute("UPDATE items SET ratio = ? WHERE ratio IS NULL", (False,)).rowcount
    )
    assert updated == 1
    assert db.read(lambda c: list(c.execute("SELECT name, ratio FROM items ORDER BY name"))) == [
        ("50% ?", 0.5),
        ("two", 0.0),
    ]
    executed = db.write_blocking(
        lambda c: c.executemany("INSERT INTO items (name) VALUES (?)", [("m1",), ("m2",)]).rowcount
    )
    assert executed == 2


def test_placeholders_outside_literals_and_comments_only() -> None:
    assert translate_placeholders("SELECT ? -- what?\n, '?%', \"a?\" /* ? */ WHERE x LIKE ?") == (
        "SELECT %s -- what?\n, '?%%', \"a?\" /* ? */ WHERE x LIKE %s"
    )


def test_writes_see_the_callers_context_variables(db: PostgresDatabase) -> None:
    who: contextvars.ContextVar[str] = contextvars.ContextVar("who", default="nobody")

    async def scenario() -> str:
        who.set("request-42")
        return await db.write(lambda conn: who.get())

    assert asyncio.run(scenario()) == "request-42"


def test_write_blocking_is_refused_on_a_running_event_loop(db: PostgresDatabase) -> None:
    async def scenario() -> None:
        db.write_blocking(_insert("blocking"))

    with pytest.raises(RuntimeError):
        asyncio.run(scenario())
    db.write_blocking(_insert("after"))  # fine without a loop (the CLI, start-up)
    assert _names(db) == ["after"]


# -- two processes, one counter ---------------------------------------------------------------


def _race(url: str, writes: int, start: Any) -> None:
    """Read the counter, wait a little (wide open for a lost update), write it back plus one."""
    db = PostgresDatabase(url, pool_size=2)
    db.open(MIGRATIONS)

    def increment(conn: Any) -> None:
        (n,) = conn.execute("SELECT n FROM counter WHERE id = 1").fetchone()
        time.sleep(0.001)
        conn.execute("UPDATE counter SET n = ? WHERE id = 1", (n + 1,))

    async def run() -> None:
        start.wait()
        await asyncio.gather(*(db.write(increment) for _ in range(writes)))

    try:
        asyncio.run(run())
    finally:
        db.close()


def test_two_processes_racing_read_check_write_never_lose_an_update(db: PostgresDatabase, url: str) -> None:
    spawn = multiprocessing.get_context("spawn")
    start = spawn.Event()
    racers = [spawn.Process(target=_race, args=(url, 150, start)) for _ in range(2)]
    for racer in racers:
        racer.start()
    start.set()
    for racer in racers:
        racer.join(120)
        assert racer.exitcode == 0
    assert db.read(lambda c: c.execute("SELECT n FROM counter WHERE id = 1").fetchone()[0]) == 300
