"""core/cache_epochs.py: two Database objects on one SQLite file stand for two processes
(each maps the signal file and reads the epochs table on its own connections); a stand-in
database without a file takes the PostgreSQL path (a reading per task)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from core import cache_epochs
from core.db import Database


@pytest.fixture
def two(tmp_path: Path):
    first, second = Database(tmp_path / "folio.db"), Database(tmp_path / "folio.db")
    first.open(cache_epochs.MIGRATIONS)
    second.open(cache_epochs.MIGRATIONS)
    yield first, second
    first.close()
    second.close()


def change(db: Database, name: str, *, announce: bool = True) -> None:
    db.write_blocking(lambda c: cache_epochs.bump(c, name))
    if announce:
        cache_epochs.epochs_of(db).announce()


def test_a_change_announced_by_one_process_is_seen_by_the_other_at_once(two) -> None:
    first, second = two
    buckets = cache_epochs.watch(second, cache_epochs.BUCKETS)
    accounts = cache_epochs.watch(second, cache_epochs.ACCOUNTS)
    assert buckets.moved() and accounts.moved()  # the first look: nothing is known yet
    assert not buckets.moved() and not accounts.moved()
    change(first, cache_epochs.BUCKETS)
    assert buckets.moved(), "the other process's change is seen on the next use"
    assert not accounts.moved(), "another epoch did not move"
    assert not buckets.moved()
    change(second, cache_epochs.BUCKETS)  # its own changes too
    assert buckets.moved()


def test_without_the_announcement_the_change_is_seen_within_a_second(
    two, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = two
    watch = cache_epochs.watch(second, cache_epochs.ACCOUNTS)
    watch.moved()
    change(first, cache_epochs.ACCOUNTS, announce=False)  # its process died before announcing
    assert not watch.moved(), "no signal, and the last reading is younger than a second"
    clock = cache_epochs.time.monotonic() + cache_epochs.REFRESH_SECONDS
    monkeypatch.setattr(cache_epochs.time, "monotonic", lambda: clock)
    assert watch.moved()


def test_an_epoch_row_missing_is_made_by_its_first_bump(two) -> None:
    first, second = two
    watch = cache_epochs.watch(second, "later")
    watch.moved()
    change(first, "later")
    assert watch.moved()
    with sqlite3.connect(first.path) as conn:
        assert conn.execute("SELECT epoch FROM cache_epochs WHERE name = 'later'").fetchone() == (1,)


class CountingDb:
    """A database without a signal file (PostgreSQL's path): counts the readings."""

    def __init__(self) -> None:
        self.epochs = {"buckets": 0}
        self.readings = 0

    def read(self, fn):
        self.readings += 1
        return list(self.epochs.items())


def test_without_a_signal_each_task_reads_once_and_new_tasks_read_again() -> None:
    db = CountingDb()
    epochs = cache_epochs.CacheEpochs(db)  # type: ignore[arg-type]
    watch = epochs.watch("buckets")

    async def request() -> list[bool]:
        return [watch.moved() for _ in range(3)]

    async def main() -> None:
        assert await asyncio.create_task(request()) == [True, False, False]
        assert db.readings == 1, "one reading for the whole request"
        db.epochs["buckets"] = 1  # a change made elsewhere
        assert await asyncio.create_task(request()) == [True, False, False]
        assert db.readings == 2, "the next request reads again and sees it"

    asyncio.run(main())
    # Without an event loop (the CLI, a reader thread): a reading every time.
    before = db.readings
    assert not watch.moved() and not watch.moved()
    assert db.readings == before + 2
