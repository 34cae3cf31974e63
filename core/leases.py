"""Leases: which node (a worker process, or a Folio node on another machine) runs a piece
of work that must run on one node at a time: the multipart sweep, retention pruning,
housekeeping, the scrub, and each document job.

A lease is a row `(name, holder, expires_at)`. Its holder renews it well before it
expires (server/cluster.py renews every lease a node holds with one statement, with its
heartbeat); another node takes it only once it has expired, so when a holder dies the
work moves to another node within one lease period (at once when the dead holder was a
process on the same machine: server/cluster.py releases its leases as it sees it gone).

Take and renew are conditional statements run inside a write transaction, so two nodes
racing for one lease cannot both win on SQLite (one writer at a time) or PostgreSQL (the
row lock of the UPDATE, the unique key of the INSERT). The SQL is what both engines
accept: `?` placeholders, `RETURNING`, `ON CONFLICT ... DO NOTHING`, no engine-only
function. Times are wall-clock seconds (`time.time()`): nodes sharing a database must
keep their clocks in step (NTP), a skew shortens or lengthens a lease by as much.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass

from core.db import Migration

MIGRATIONS = [
    # DOUBLE PRECISION, not REAL: PostgreSQL's REAL is 4 bytes, which rounds a Unix time to
    # minutes. SQLite reads both as its REAL.
    Migration(
        "core.leases",
        1,
        """
        CREATE TABLE leases (
            name TEXT PRIMARY KEY,
            holder TEXT NOT NULL,
            expires_at DOUBLE PRECISION NOT NULL
        );
        CREATE INDEX leases_by_holder ON leases(holder);
        """,
    ),
]


@dataclass(frozen=True)
class Lease:
    name: str
    holder: str
    expires_at: float


def take(conn: sqlite3.Connection, name: str, holder: str, now: float, seconds: float) -> bool:
    """Take `name` for `seconds` if it is free, expired or already ours; False while another
    holder's lease runs. Call inside a write transaction."""
    expires = now + seconds
    row = conn.execute(
        "UPDATE leases SET holder = ?, expires_at = ? WHERE name = ? AND (holder = ? OR expires_at < ?)"
        " RETURNING name",
        (holder, expires, name, holder, now),
    ).fetchone()
    if row is not None:
        return True
    row = conn.execute(
        "INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING"
        " RETURNING name",
        (name, holder, expires),
    ).fetchone()
    return row is not None


def renew(conn: sqlite3.Connection, holder: str, now: float, seconds: float) -> set[str]:
    """Extend every lease `holder` still has; the names it has (one that another node took
    after it expired is not among them)."""
    rows = conn.execute(
        "UPDATE leases SET expires_at = ? WHERE holder = ? RETURNING name", (now + seconds, holder)
    ).fetchall()
    return {row[0] for row in rows}


def release(conn: sqlite3.Connection, name: str, holder: str) -> bool:
    """Give `name` up (nothing happens unless `holder` has it)."""
    row = conn.execute(
        "DELETE FROM leases WHERE name = ? AND holder = ? RETURNING name", (name, holder)
    ).fetchone()
    return row is not None


def release_all(conn: sqlite3.Connection, holder: str) -> int:
    """Give up every lease of `holder` (a node leaving, or found dead)."""
    return len(conn.execute("DELETE FROM leases WHERE holder = ? RETURNING name", (holder,)).fetchall())


def forget_expired(conn: sqlite3.Connection, before: float) -> int:
    """Delete leases that expired before `before`: nobody renews them any more (a finished
    document job's lease is released, but one whose node died stays until taken or this)."""
    return len(conn.execute("DELETE FROM leases WHERE expires_at < ? RETURNING name", (before,)).fetchall())


def all_leases(conn: sqlite3.Connection) -> list[Lease]:
    return [Lease(*row) for row in conn.execute("SELECT name, holder, expires_at FROM leases ORDER BY name")]


@dataclass(frozen=True)
class Claims:
    """One node's claims on individual pieces of work (a document job), inside the
    caller's write transaction. The node's heartbeat renews them (`renew` covers every
    lease of a holder) until they are released; a node that dies stops renewing, and
    another claims the work once the lease has expired."""

    holder: str
    seconds: float

    def take(self, conn: sqlite3.Connection, name: str) -> bool:
        return take(conn, name, self.holder, time.time(), self.seconds)

    def release(self, conn: sqlite3.Connection, name: str) -> None:
        release(conn, name, self.holder)
