"""The metadata database on PostgreSQL (issue 18): the same interface as core.db.Database, so the
transaction bodies written for SQLite (synchronous `fn(conn)` callbacks that call
`conn.execute(sql, params)`) run unchanged on either engine.

How it keeps SQLite's semantics:

- One writer at a time, across every node: each write transaction takes the same advisory
  lock (`pg_advisory_xact_lock`) before running its body, exactly the single writer the
  SQLite code was written for. Read-check-write bodies (quota admission, is_latest flips,
  "does the key exist") stay correct when two nodes race, with no retry loops. COMMIT
  returns once PostgreSQL has made it durable (its default synchronous_commit=on).
- Writes run on one thread of their own per process, in the order they were asked for: at
  most one pooled connection per process waits on the lock, so readers never starve for
  connections behind queued writers, and the event loop never blocks on a write.
- Reads run on the calling thread (point lookups on the loop, as with SQLite's per-thread
  readers), each statement in autocommit: a snapshot per statement, as SQLite gives a
  reader outside a transaction.
- The connection handed to the callbacks speaks sqlite3's dialect of the DB-API: `?`
  placeholders (translated to `%s`, once per distinct statement), tuples for rows, bytes for
  BLOBs, ints for booleans and integral aggregates (PostgreSQL's sum() of bigint is numeric).
  The statements themselves must be portable SQL.

Driver: psycopg 3's synchronous API with psycopg_pool. Folio's transaction bodies are
synchronous by design (they never await), and asyncpg has only an async API.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

import psycopg
from psycopg.adapt import Dumper, Loader
from psycopg.pq import Format, TransactionStatus
from psycopg_pool import ConnectionPool, PoolTimeout

from core.db import DatabaseUnavailable

if TYPE_CHECKING:
    from core.db import Migration

T = TypeVar("T")
log = logging.getLogger("folio.db")

# The advisory lock every write transaction of every node takes ("FolioWri" in ASCII), and the
# one that serializes migrations when several nodes start at once ("FolioMig").
WRITE_LOCK = 0x466F6C696F577269
MIGRATION_LOCK = 0x466F6C696F4D6967
# How long a read (on the event loop) and a write (on the writer thread) wait for a pooled
# connection, and how long an unreachable server is answered 503 before the next try.
READ_WAIT_SECONDS = 2.0
WRITE_WAIT_SECONDS = 10.0
DOWN_SECONDS = 1.0


# -- statements: sqlite3's `?` placeholders to psycopg's `%s` ---------------------------------


@functools.lru_cache(maxsize=4096)
def translate_placeholders(sql: str) -> str:
    """`?` to `%s` outside string literals, quoted identifiers and comments; every literal `%`
    doubled (psycopg reads `%` everywhere, literals included)."""
    out: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch == "?":
            out.append("%s")
        elif ch == "%":
            out.append("%%")
        elif ch in "'\"":
            end = sql.find(ch, i + 1)
            while end != -1 and end + 1 < n and sql[end + 1] == ch:  # '' or "" inside
                end = sql.find(ch, end + 2)
            end = n - 1 if end == -1 else end
            out.append(sql[i : end + 1].replace("%", "%%"))
            i = end
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            end = n - 1 if end == -1 else end
            out.append(sql[i : end + 1].replace("%", "%%"))
            i = end
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            end = n - 2 if end == -1 else end
            out.append(sql[i : end + 2].replace("%", "%%"))
            i = end + 1
        else:
            out.append(ch)
        i += 1
    return "".join(out)


# -- types: what sqlite3 would have returned ----------------------------------------------------


class _BoolAsInt(Dumper):
    """Python booleans as bigint: the columns are integers, as in SQLite (0 and 1)."""

    oid = psycopg.postgres.types["int8"].oid

    def dump(self, obj: bool) -> bytes:
        return b"1" if obj else b"0"


class _NumericLoader(Loader):
    """numeric as int when written without a fraction (sum() and count() of integers), else
    float (avg()): what SQLite returns for the same expressions."""

    def load(self, data: Any) -> int | float:
        text = bytes(data)
        if b"." in text:
            return float(text)
        try:
            return int(text)
        except ValueError:  # NaN, Infinity, an exponent
            return float(text)


class _BoolLoader(Loader):
    """A boolean expression's value as 0 or 1, as in SQLite."""

    def load(self, data: Any) -> int:
        return 1 if bytes(data) == b"t" else 0


class _BinaryBoolLoader(Loader):
    format = Format.BINARY

    def load(self, data: Any) -> int:
        return 1 if bytes(data) != b"\x00" else 0


def _configure(conn: psycopg.Connection) -> None:
    adapters = conn.adapters
    adapters.register_dumper(bool, _BoolAsInt)
    adapters.register_loader("numeric", _NumericLoader)
    adapters.register_loader("bool", _BoolLoader)
    adapters.register_loader("bool", _BinaryBoolLoader)


class PgConnection:
    """What a transaction body gets: the part of sqlite3.Connection Folio uses."""

    __slots__ = ("raw",)

    def __init__(self, raw: psycopg.Connection) -> None:
        self.raw = raw

    def execute(self, sql: str, params: Sequence[Any] = ()) -> psycopg.Cursor[Any]:
        return self.raw.execute(translate_placeholders(sql), params)

    def executemany(self, sql: str, seq_of_params: Iterable[Sequence[Any]]) -> psycopg.Cursor[Any]:
        cursor = self.raw.cursor()
        cursor.executemany(translate_placeholders(sql), seq_of_params)
        return cursor


# -- migrations: SQLite's schema, translated ---------------------------------------------------

# SQLite-only constructs the translation cannot express: such a migration needs `postgres=`.
_UNTRANSLATABLE = re.compile(
    r"\b(TRIGGER|NOCASE|AUTOINCREMENT|json_\w+|julianday|strftime|datetime|PRAGMA|GLOB)\b", re.IGNORECASE
)
_TYPE_WORDS = [
    # INTEGER PRIMARY KEY is SQLite's rowid alias: assigned when an insert leaves it out.
    (re.compile(r"\bINTEGER\s+PRIMARY\s+KEY\b", re.I), "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"),
    (re.compile(r"\bINTEGER\b", re.I), "BIGINT"),
    (re.compile(r"\bREAL\b", re.I), "DOUBLE PRECISION"),
    (re.compile(r"\bBLOB\b", re.I), "BYTEA"),
    # Byte order, as SQLite's BINARY collation, whatever the cluster's locale.
    (re.compile(r"\bTEXT\b", re.I), 'TEXT COLLATE "C"'),
    (re.compile(r"\)\s*WITHOUT\s+ROWID\b", re.I), ")"),
    # SQLite never enforced them (no PRAGMA foreign_keys): PostgreSQL would, and the code
    # deletes parents and children in whatever order suits it.
    (re.compile(r"\s+REFERENCES\s+\w+\s*\(\s*\w+\s*\)", re.I), ""),
]
_LITERALS_AND_COMMENTS = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|/\*.*?\*/", re.S)


def to_postgres(sql: str) -> str:
    """A SQLite migration script in PostgreSQL's dialect: column types (INTEGER -> BIGINT, REAL ->
    DOUBLE PRECISION, BLOB -> BYTEA, TEXT -> TEXT COLLATE "C"), INTEGER PRIMARY KEY as an
    identity column, WITHOUT ROWID and REFERENCES dropped. Literals and comments are left
    alone. Raises ValueError on what has no mechanical translation (triggers, NOCASE, SQLite's
    JSON and date functions): such a migration carries its own `postgres=` text."""
    pieces: list[str] = []
    last = 0
    for match in _LITERALS_AND_COMMENTS.finditer(sql):
        pieces.append(_translate_code(sql[last : match.start()]))
        pieces.append(match.group(0))
        last = match.end()
    pieces.append(_translate_code(sql[last:]))
    return "".join(pieces)


def _translate_code(code: str) -> str:
    found = _UNTRANSLATABLE.search(code)
    if found:
        raise ValueError(f"no PostgreSQL translation for {found.group(0)!r}: give the migration postgres=")
    for pattern, replacement in _TYPE_WORDS:
        code = pattern.sub(replacement, code)
    return code


def migration_sql(migration: Migration) -> str:
    """The script a migration runs on PostgreSQL."""
    if migration.postgres is not None:
        return migration.postgres
    try:
        return to_postgres(migration.sql)
    except ValueError as exc:
        raise ValueError(f"migration {migration.package}/{migration.version}: {exc}") from None


_SCHEMA_MIGRATIONS = to_postgres(
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " package TEXT NOT NULL, version INTEGER NOT NULL, applied_at REAL NOT NULL,"
    " PRIMARY KEY (package, version))"
)


def run_migrations(conn: psycopg.Connection, migrations: Iterable[Migration]) -> None:
    """Apply the migrations not yet applied, each in one transaction. Nodes starting together
    take turns (an advisory lock) and each skips what another applied first."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        conn.execute(_SCHEMA_MIGRATIONS)
    for migration in sorted(migrations, key=lambda m: (m.package, m.version)):
        script = migration_sql(migration)
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            applied = conn.execute(
                "SELECT 1 FROM schema_migrations WHERE package = %s AND version = %s",
                (migration.package, migration.version),
            ).fetchone()
            if applied:
                continue
            log.info("applying migration %s/%d", migration.package, migration.version)
            if script.strip():
                conn.execute(script)  # no parameters: several statements in one go
            conn.execute(
                "INSERT INTO schema_migrations (package, version, applied_at) VALUES (%s, %s, %s)",
                (migration.package, migration.version, time.time()),
            )


# -- the database ------------------------------------------------------------------------------


class PostgresDatabase:
    """Owns a pool of connections to one PostgreSQL database: `write()` runs a write and
    returns once it is committed (durable), `read()` runs on the calling thread."""

    engine = "postgresql"

    def __init__(self, url: str, *, pool_size: int = 10, sync: str = "full") -> None:
        self.url = url
        self.pool_size = pool_size
        # Durability is PostgreSQL's (synchronous_commit); kept for the interface.
        self.sync = sync
        # Told after each commit (one write each: no group commit here). For /metrics.
        self.on_sync: Callable[[int, float | None], None] | None = None
        self._pool: ConnectionPool | None = None
        self._writer: ThreadPoolExecutor | None = None
        # The write transaction's connection on the thread running it (read_own_writes).
        self._local = threading.local()
        self._closed = False
        # Until when PostgreSQL counts as unreachable (monotonic time; see _checkout).
        self._down_until = 0.0

    def open(self, migrations: Iterable[Migration]) -> None:
        # The migrations on a connection of their own: a wrong URL or a refused connection
        # fails here at once, with PostgreSQL's own message (the pool would retry for 30 s).
        with psycopg.connect(self.url, autocommit=True, connect_timeout=10) as conn:
            _configure(conn)
            run_migrations(conn, migrations)
        self._pool = ConnectionPool(
            self.url,
            min_size=1,
            # Two at least: a write body that reads (db.read) takes a second connection.
            max_size=max(2, self.pool_size),
            kwargs={"autocommit": True},
            configure=_configure,
            open=False,
            name="folio",
        )
        self._pool.open(wait=True, timeout=30)
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="folio-pg-write")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._writer is not None:
            self._writer.shutdown(wait=True)
        if self._pool is not None:
            self._pool.close()

    # -- writes -------------------------------------------------------------------------------

    async def write(self, fn: Callable[[PgConnection], T]) -> T:
        """Run `fn(conn)` in a transaction of its own, on the writer thread, after every write
        asked for before it; return its value once committed. If `fn` raises, its changes are
        rolled back and the exception propagates. `fn` must not touch the event loop."""
        if self._closed or self._writer is None:
            raise RuntimeError("database is closed")
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()  # as asyncio.to_thread does
        return await loop.run_in_executor(self._writer, context.run, self._transaction, fn)

    def write_blocking(self, fn: Callable[[PgConnection], T]) -> T:
        """The same on the calling thread, for code without an event loop (the CLI, start-up)."""
        if self._closed or self._pool is None:
            raise RuntimeError("database is closed")
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return self._transaction(fn)
        # Waiting for the writers' lock (another node's write) would stall every request.
        raise RuntimeError("write_blocking() would block the event loop: use write()")

    @contextlib.contextmanager
    def _checkout(self, timeout: float) -> Iterator[psycopg.Connection]:
        """A pooled connection, or DatabaseUnavailable at once while PostgreSQL is known to be
        unreachable. Reads run on the event loop: waiting the pool's 30 s for a server that is
        down would stall every request, so an unreachable server is remembered for a moment
        (DOWN_SECONDS) and meanwhile every request is answered 503 without waiting."""
        assert self._pool is not None
        if time.monotonic() < self._down_until:
            raise DatabaseUnavailable("the metadata database is unreachable")
        try:
            with self._pool.connection(timeout=timeout) as raw:
                yield raw
        except PoolTimeout as exc:
            if not self._reachable():
                self._down_until = time.monotonic() + DOWN_SECONDS
            raise DatabaseUnavailable(f"no connection to the metadata database: {exc}") from exc
        except psycopg.OperationalError as exc:
            state = exc.sqlstate or ""
            if state and not state.startswith("08") and state not in ("57P01", "57P02", "57P03"):
                raise  # a statement's own failure (a lock timeout, a full disk), not a lost server
            self._down_until = time.monotonic() + DOWN_SECONDS
            log.warning("the metadata database is unreachable: %s", exc)
            raise DatabaseUnavailable(f"the metadata database is unreachable: {exc}") from exc

    def _reachable(self) -> bool:
        """A pool timeout is either load (every connection busy) or a server that refuses new
        connections: one quick connection tells them apart."""
        try:
            psycopg.connect(self.url, connect_timeout=1).close()
        except psycopg.Error:
            return False
        return True

    def _transaction(self, fn: Callable[[PgConnection], T]) -> T:
        assert self._pool is not None
        with self._checkout(WRITE_WAIT_SECONDS) as raw:
            # One round trip: the transaction and the writers' lock.
            raw.execute(f"BEGIN ISOLATION LEVEL READ COMMITTED; SELECT pg_advisory_xact_lock({WRITE_LOCK})")
            self._local.conn = PgConnection(raw)
            try:
                value = fn(self._local.conn)
                if raw.info.transaction_status == TransactionStatus.INERROR:
                    # A statement failed and the body went on: PostgreSQL has aborted the
                    # transaction (SQLite would not have), and COMMIT would roll it back unseen.
                    raise psycopg.errors.InFailedSqlTransaction("a statement of this write failed")
            except BaseException:
                if not raw.broken:
                    raw.execute("ROLLBACK")
                raise
            finally:
                self._local.conn = None
            raw.execute("COMMIT")
        if self.on_sync is not None:
            try:
                self.on_sync(1, None)
            except Exception:  # noqa: BLE001 - an observer never fails a write
                log.exception("sync observer failed")
        return value

    def read_own_writes(self, fn: Callable[[PgConnection], T]) -> T:
        """Inside a write body: on its transaction (sees its changes so far). Elsewhere a plain
        read: every write is committed before write() returns."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            return fn(conn)
        return self.read(fn)

    async def read_in_write_order(self, fn: Callable[[PgConnection], T]) -> T:
        """A read on the writer thread, between two of this process's write transactions:
        it sees each of them either whole (committed, with what its body did in memory, such
        as handing back a quota reservation) or not at all. A read on another connection may
        come between a body's last statement and its COMMIT, and count the write twice or
        not at all (admission checks need it exact). `fn` must not touch the event loop."""
        if self._closed or self._writer is None:
            raise RuntimeError("database is closed")
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()
        return await loop.run_in_executor(self._writer, context.run, self.read, fn)

    # -- reads --------------------------------------------------------------------------------

    def read(self, fn: Callable[[PgConnection], T]) -> T:
        """Run a short read (point lookups) on the calling thread."""
        if self._pool is None:
            raise RuntimeError("database is closed")
        with self._checkout(READ_WAIT_SECONDS) as raw:
            return fn(PgConnection(raw))

    def health(self) -> dict[str, Any]:
        """For /healthz: whether a trivial query answers, and how fast."""
        started = time.perf_counter()
        try:
            self.read(lambda c: c.execute("SELECT 1").fetchone())
        except (DatabaseUnavailable, psycopg.Error) as exc:
            return {"engine": self.engine, "ok": False, "error": str(exc)[:200]}
        return {
            "engine": self.engine,
            "ok": True,
            "latencyMs": round((time.perf_counter() - started) * 1000, 2),
        }

    async def read_async(self, fn: Callable[[PgConnection], T]) -> T:
        """Run a longer read (listings) in a worker thread, off the event loop."""
        return await asyncio.to_thread(self.read, fn)
