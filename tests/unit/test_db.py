"""The metadata database's write path: group commit, isolation of failing writes,
durability across a reopen, migrations applied once."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from core.db import Database, Migration

MIGRATIONS = [Migration("test", 1, "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);")]


def _insert(name: str):
    def fn(conn: sqlite3.Connection) -> int:
        return conn.execute("INSERT INTO items (name) VALUES (?)", (name,)).lastrowid

    return fn


def _names(db: Database) -> list[str]:
    return db.read(lambda c: [r[0] for r in c.execute("SELECT name FROM items ORDER BY name")])


def test_concurrent_writes_all_commit_and_a_failing_one_does_not_undo_its_neighbours(tmp_path: Path) -> None:
    db = Database(tmp_path / "t.db")
    db.open(MIGRATIONS)

    async def scenario() -> list[object]:
        return await asyncio.gather(
            db.write(_insert("a")),
            db.write(_insert("b")),
            db.write(_insert("a")),  # violates UNIQUE: only this one fails
            db.write(_insert("c")),
            return_exceptions=True,
        )

    results = asyncio.run(scenario())
    assert isinstance(results[2], sqlite3.IntegrityError)
    assert all(isinstance(r, int) for i, r in enumerate(results) if i != 2)
    assert _names(db) == ["a", "b", "c"]
    db.close()


def test_acknowledged_writes_are_there_after_reopening(tmp_path: Path) -> None:
    db = Database(tmp_path / "t.db")
    db.open(MIGRATIONS)

    async def scenario() -> None:
        await asyncio.gather(*(db.write(_insert(f"k{i:03d}")) for i in range(200)))

    asyncio.run(scenario())
    db.close()
    again = Database(tmp_path / "t.db")
    again.open(MIGRATIONS)  # already applied: a no-op
    assert len(_names(again)) == 200
    assert again.read(lambda c: c.execute("SELECT count(*) FROM schema_migrations").fetchone()[0]) == 1
    again.close()


def test_write_blocking_is_refused_once_the_loop_owns_the_writer(tmp_path: Path) -> None:
    db = Database(tmp_path / "t.db")
    db.open(MIGRATIONS)
    db.write_blocking(_insert("before"))

    async def scenario() -> None:
        await db.write(_insert("during"))

    asyncio.run(scenario())
    with pytest.raises(RuntimeError):
        db.write_blocking(_insert("after"))
    assert _names(db) == ["before", "during"]
    db.close()
