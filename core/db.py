"""The metadata database: SQLite in WAL mode, one writer thread with group commit,
reader connections per thread, and versioned migrations owned by each package.

Why a writer thread of our own rather than one connection per request: SQLite
allows one writer at a time, and a durable commit costs an fsync. Queueing every
write to one thread lets it commit whatever has piled up during the previous
fsync as one transaction (group commit), so N concurrent writes cost one fsync.
Each write runs inside a SAVEPOINT, so one failing write never undoes its
neighbours in the group.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
log = logging.getLogger("folio.db")

MAX_GROUP = 512


@dataclass(frozen=True)
class Migration:
    """One schema step of one package; versions count up from 1 per package."""

    package: str
    version: int
    sql: str


def _connect(path: Path, sync: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={'FULL' if sync == 'full' else 'NORMAL'}")
    conn.execute("PRAGMA busy_timeout=30000")
    conn.execute("PRAGMA cache_size=-65536")
    conn.execute("PRAGMA temp_store=MEMORY")
    return conn


def _run_migrations(conn: sqlite3.Connection, migrations: Iterable[Migration]) -> None:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " package TEXT NOT NULL, version INTEGER NOT NULL, applied_at REAL NOT NULL,"
        " PRIMARY KEY (package, version))"
    )
    applied = {(p, v) for p, v in conn.execute("SELECT package, version FROM schema_migrations")}
    for migration in sorted(migrations, key=lambda m: (m.package, m.version)):
        if (migration.package, migration.version) in applied:
            continue
        log.info("applying migration %s/%d", migration.package, migration.version)
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _split_sql(migration.sql):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations (package, version, applied_at) VALUES (?, ?, ?)",
                (migration.package, migration.version, time.time()),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


def _split_sql(script: str) -> list[str]:
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    if current.strip():
        statements.append(current.strip())
    return statements


class _WriteItem:
    __slots__ = ("fn", "loop", "future")

    def __init__(
        self, fn: Callable[[sqlite3.Connection], Any], loop: asyncio.AbstractEventLoop | None, future: Any
    ):
        self.fn = fn
        self.loop = loop
        self.future = future


def _deliver(results: list[tuple[asyncio.Future, Any, BaseException | None]]) -> None:
    for future, value, error in results:
        if future.cancelled():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)


class Database:
    """Owns the SQLite file: `write()` goes through the group-commit writer,
    `read()` uses this thread's own reader connection."""

    def __init__(self, path: Path, *, sync: str = "full") -> None:
        self.path = path
        self.sync = sync
        self._queue: queue.SimpleQueue[_WriteItem | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._writer_conn: sqlite3.Connection | None = None
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._closed = False

    def open(self, migrations: Iterable[Migration]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer_conn = _connect(self.path, self.sync)
        _run_migrations(self._writer_conn, migrations)
        self._writer = threading.Thread(target=self._write_loop, name="folio-db-writer", daemon=True)
        self._writer.start()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._writer is not None:
            self._queue.put(None)
            self._writer.join()
        with self._readers_lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()
        if self._writer_conn is not None:
            # A clean close checkpoints the WAL into the main file.
            self._writer_conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._writer_conn.close()
            self._writer_conn = None

    # -- writes -------------------------------------------------------------------------------

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(conn)` in the next commit group; returns once it is durably committed."""
        if self._closed:
            raise RuntimeError("database is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_WriteItem(fn, loop, future))
        return await future

    def write_blocking(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """The same for code without an event loop (the CLI, start-up)."""
        if self._closed:
            raise RuntimeError("database is closed")
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._queue.put(_WriteItem(fn, None, future))
        return future.result()

    def _write_loop(self) -> None:
        conn = self._writer_conn
        assert conn is not None
        stopping = False
        while not stopping:
            item = self._queue.get()
            if item is None:
                break
            batch = [item]
            while len(batch) < MAX_GROUP:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stopping = True
                    break
                batch.append(nxt)
            self._commit_group(conn, batch)

    def _commit_group(self, conn: sqlite3.Connection, batch: list[_WriteItem]) -> None:
        outcomes: list[tuple[_WriteItem, Any, BaseException | None]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for item in batch:
                conn.execute("SAVEPOINT op")
                try:
                    value = item.fn(conn)
                except BaseException as exc:  # noqa: BLE001 - handed to the waiting caller
                    conn.execute("ROLLBACK TO op")
                    conn.execute("RELEASE op")
                    outcomes.append((item, None, exc))
                else:
                    conn.execute("RELEASE op")
                    outcomes.append((item, value, None))
            conn.execute("COMMIT")
        except BaseException as exc:  # noqa: BLE001 - the whole group failed to commit
            log.exception("commit group failed")
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            outcomes = [(item, None, exc) for item in batch]
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future, Any, BaseException | None]]] = {}
        for item, value, error in outcomes:
            if item.loop is None:
                if error is not None:
                    item.future.set_exception(error)
                else:
                    item.future.set_result(value)
            else:
                by_loop.setdefault(item.loop, []).append((item.future, value, error))
        for loop, results in by_loop.items():
            try:
                loop.call_soon_threadsafe(_deliver, results)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                pass

    # -- reads --------------------------------------------------------------------------------

    def reader(self) -> sqlite3.Connection:
        """This thread's reader connection (created on first use)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = _connect(self.path, self.sync)
            conn.execute("PRAGMA query_only=ON")
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run a short read (point lookups) on the calling thread: cheaper than a thread hop."""
        return fn(self.reader())

    async def read_async(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run a longer read (listings) in a worker thread, off the event loop."""
        return await asyncio.to_thread(lambda: fn(self.reader()))
