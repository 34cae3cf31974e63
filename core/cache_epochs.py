"""Invalidation of in-process caches of database state across processes (issue 18).

Every Folio process (a worker of `--workers N`, or a node sharing PostgreSQL) keeps small
caches of database rows: access keys and plans (core.accounts), document-API keys
(core.doc_keys), buckets with their ACL and policy (s3proxy.store.engine), the accounts
that have a webhook (core.webhooks). Each cache belongs to a named *epoch*, a counter in
the `cache_epochs` table:

- a change to what a cache holds bumps its epoch with `bump(conn, name)` in the change's
  own write transaction, so the new epoch is visible exactly when the change is;
- a process consults a cache only after reading the epochs (`Watch.moved()`), and drops
  the cache's entries when its epoch moved since it last looked.

So a change whose request has returned is seen by every process on its next request:
that request reads the epochs after the change committed. The read is one small query
(about 7 µs on SQLite here), done at most once per request: the epochs read by an asyncio
task are reused by that task for up to `MEMO_SECONDS` (a request is one task under both
uvicorn and Hypercorn). A request that started before the change may still finish with
what it saw at its start, as it would with no cache at all. docs/scale-out.md states the
guarantee.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
import weakref
from contextvars import ContextVar

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

# How long one asyncio task reuses the epochs it read: a request is one task, so this bounds
# only long-lived background tasks (their caches follow changes within this long).
MEMO_SECONDS = 0.5


def bump(conn: sqlite3.Connection, name: str) -> None:
    """Move the epoch `name` on, inside the transaction of the change it announces."""
    if conn.execute("UPDATE cache_epochs SET epoch = epoch + 1 WHERE name = ?", (name,)).rowcount == 0:
        conn.execute("INSERT INTO cache_epochs (name, epoch) VALUES (?, 1)", (name,))


# (task that read them, whose epochs, when, epochs by name): what the current task last read.
_memo: ContextVar[tuple[asyncio.Task, CacheEpochs, float, dict[str, int]] | None] = ContextVar(
    "folio_cache_epochs", default=None
)


class CacheEpochs:
    """The epochs of one database, read at most once per task and `MEMO_SECONDS`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def _read(self) -> dict[str, int]:
        return dict(self.db.read(lambda c: c.execute("SELECT name, epoch FROM cache_epochs").fetchall()))

    def current(self) -> dict[str, int]:
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

    def watch(self, name: str) -> Watch:
        return Watch(self, name)


class Watch:
    """One cache's view of one epoch."""

    __slots__ = ("epochs", "name", "_seen")

    def __init__(self, epochs: CacheEpochs, name: str) -> None:
        self.epochs = epochs
        self.name = name
        self._seen: int | None = None

    def moved(self) -> bool:
        """True when the epoch moved on since this watch last looked (the cache must then
        drop every entry it holds). Call it before each use of the cache."""
        epoch = self.epochs.current().get(self.name, 0)
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
