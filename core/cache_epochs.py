"""Invalidation of in-process caches of database state across processes (issue 18).

Every Folio process (a worker of `--workers N`, or a node sharing PostgreSQL) keeps small
caches of database rows: access keys and plans (core.accounts), document-API keys
(core.doc_keys), buckets with their ACL and policy (s3proxy.store.engine), the accounts
that have a webhook (core.webhooks). Each cache belongs to a named *epoch*, a counter in
the `cache_epochs` table:

- a change to what a cache holds bumps its epoch with `bump(conn, name)` in the change's
  own write transaction (so the new epoch is visible exactly when the change is), and
  calls `announce()` once that transaction has committed, before its request answers;
- a process consults a cache only after `Watch.moved()`, which drops the cache's entries
  when its epoch moved since the cache last looked.

How a process learns that the epochs moved, cheaply enough for every request:

- SQLite (every process necessarily on one machine): `announce()` writes a fresh random
  value into 8 bytes of a file beside the database (`folio.db-epochs`), which every process
  maps into memory. A process reads the epochs table again only when that value differs
  from the one it saw at its last reading (a memory compare, well under a microsecond), and
  at least once a second whatever it says (so that a change whose process died between
  its commit and its announcement is still seen within a second).
- PostgreSQL (nodes on several machines, no shared memory): the epochs are read from the
  database at a request's first consultation (one small query) and reused by the request's
  asyncio task for up to `MEMO_SECONDS` (a request is one task under uvicorn and Hypercorn).

Either way, a change whose request has returned is seen by every process on its next
request. A request that was already running may finish with what it read at its start, as
it would with no cache at all. docs/scale-out.md states the guarantee.
"""

from __future__ import annotations

import asyncio
import mmap
import os
import sqlite3
import time
import weakref
from contextvars import ContextVar
from pathlib import Path

from core.db import Database, Migration

MIGRATIONS = [
    Migration(
        "core.cache_epochs",
        1,
        """
        CREATE TABLE cache_epochs (
            name TEXT PRIMARY KEY,
            epoch INTEGER NOT NULL
        );
        INSERT INTO cache_epochs (name, epoch) VALUES
            ('accounts', 0), ('buckets', 0), ('doc_keys', 0), ('webhooks', 0);
        """,
    )
]

ACCOUNTS = "accounts"  # accounts and their access keys (plans, revocations, deletions)
BUCKETS = "buckets"  # bucket rows: settings (ACL, policy, CORS, retention), versioning, existence
DOC_KEYS = "doc_keys"  # document-API keys
WEBHOOKS = "webhooks"  # which accounts have an active webhook

# How long one asyncio task reuses the epochs it read (PostgreSQL): a request is one task, so
# this bounds only long-lived background tasks (their caches follow changes within this long).
MEMO_SECONDS = 0.5
# SQLite: the epochs are read again at least this often, whatever the shared signal says.
REFRESH_SECONDS = 1.0
SIGNAL_SUFFIX = "-epochs"


def bump(conn: sqlite3.Connection, name: str) -> None:
    """Move the epoch `name` on, inside the transaction of the change it announces."""
    if conn.execute("UPDATE cache_epochs SET epoch = epoch + 1 WHERE name = ?", (name,)).rowcount == 0:
        conn.execute("INSERT INTO cache_epochs (name, epoch) VALUES (?, 1)", (name,))


# (task that read them, whose epochs, when, epochs by name): what the current task last read.
_memo: ContextVar[tuple[asyncio.Task, CacheEpochs, float, dict[str, int]] | None] = ContextVar(
    "folio_cache_epochs", default=None
)


class _Signal:
    """8 bytes of a file beside the SQLite database, mapped by every process that opens it:
    a new random value says "the epochs moved" (random, not a counter: two processes that
    announce at once can never write the same value a reader already holds)."""

    def __init__(self, path: Path) -> None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size < 8:
                os.ftruncate(fd, 8)  # a no-op on a file another process has just sized
            self._map = mmap.mmap(fd, 8)
        finally:
            os.close(fd)

    def value(self) -> bytes:
        return self._map[:8]

    def change(self) -> None:
        self._map[:8] = os.urandom(8)


class CacheEpochs:
    """The epochs of one database, read again only when they may have moved."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._signal = (
            _Signal(db.path.with_name(db.path.name + SIGNAL_SUFFIX)) if isinstance(db, Database) else None
        )
        # (signal value before the reading, when, epochs): one tuple, replaced whole, so that
        # a reader thread never sees half of an update.
        self._last: tuple[bytes, float, dict[str, int]] = (b"", 0.0, {})

    def _read(self) -> dict[str, int]:
        return dict(self.db.read(lambda c: c.execute("SELECT name, epoch FROM cache_epochs").fetchall()))

    def current(self) -> dict[str, int]:
        """The epochs by name. The same dict object as the last call's while they have not
        been read again (Watch relies on it to skip its comparison)."""
        if self._signal is not None:
            signal, last = self._signal.value(), self._last
            now = time.monotonic()
            if signal == last[0] and now - last[1] < REFRESH_SECONDS:
                return last[2]
            epochs = self._read()  # after reading the signal: a later announcement changes it again
            self._last = (signal, now, epochs)
            return epochs
        return self._memoized()

    def _memoized(self) -> dict[str, int]:
        try:
            task = asyncio.current_task()
        except RuntimeError:  # no event loop in this thread (the CLI, a reader thread)
            task = None
        if task is None:
            return self._read()
        now = time.monotonic()
        memo = _memo.get()
        # The task itself, not its id: a memo copied into a child task's context, or left
        # by a finished task whose id is reused, is never taken for this task's own.
        if memo is not None and memo[0] is task and memo[1] is self and now - memo[2] < MEMO_SECONDS:
            return memo[3]
        epochs = self._read()
        _memo.set((task, self, now, epochs))
        return epochs

    def announce(self) -> None:
        """Tell every process on this machine that epochs moved: call it once the transaction
        that bumped them has committed, before the change's request answers (on PostgreSQL,
        where every request reads the epochs, there is nothing to tell)."""
        if self._signal is not None:
            self._signal.change()

    def watch(self, name: str) -> Watch:
        return Watch(self, name)


class Watch:
    """One cache's view of one epoch."""

    __slots__ = ("epochs", "name", "_seen", "_checked")

    def __init__(self, epochs: CacheEpochs, name: str) -> None:
        self.epochs = epochs
        self.name = name
        self._seen: int | None = None
        self._checked: dict[str, int] | None = None  # the reading last compared

    def announce(self) -> None:
        """After a transaction that bumped this (or any) epoch committed: see CacheEpochs."""
        self.epochs.announce()

    def moved(self) -> bool:
        """True when the epoch moved on since this watch last looked (the cache must then
        drop every entry it holds). Call it before each use of the cache."""
        epochs = self.epochs.current()
        if epochs is self._checked:  # no new reading since the last call: nothing moved
            return False
        self._checked = epochs
        epoch = epochs.get(self.name, 0)
        # Only forwards: a task still holding an older reading (its memo) must not make
        # the cache forget what a newer reading already admitted.
        if self._seen is None or epoch > self._seen:
            self._seen = epoch
            return True
        return False


_by_db: weakref.WeakKeyDictionary[Database, CacheEpochs] = weakref.WeakKeyDictionary()


def epochs_of(db: Database) -> CacheEpochs:
    """The one CacheEpochs of `db` (shared by every cache on it, so that one request reads
    the epochs once for all of them)."""
    found = _by_db.get(db)
    if found is None:
        found = _by_db[db] = CacheEpochs(db)
    return found


def watch(db: Database, name: str) -> Watch:
    return epochs_of(db).watch(name)
