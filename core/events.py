"""The event outbox: every write path records what happened (object.created,
quota.warning, ...) in the same transaction as the write itself, so an event
exists exactly when its write committed. Delivery (webhooks) reads from here."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from core.db import Migration

MIGRATIONS = [
    Migration(
        "core.events",
        1,
        """
        CREATE TABLE events (
            id INTEGER PRIMARY KEY,
            account_id TEXT NOT NULL,
            type TEXT NOT NULL,
            payload TEXT NOT NULL,          -- JSON
            created_at REAL NOT NULL,
            delivered_at REAL
        );
        CREATE INDEX events_by_account ON events(account_id, id);
        CREATE INDEX events_undelivered ON events(id) WHERE delivered_at IS NULL;
        """,
    ),
    # Housekeeping deletes dispatched events by age: without this index every pass would
    # scan all the events retention keeps. Partial: rows not yet dispatched never enter it.
    Migration(
        "core.events",
        2,
        """
        CREATE INDEX events_dispatched ON events(delivered_at) WHERE delivered_at IS NOT NULL;
        """,
    ),
]


@dataclass(frozen=True)
class Event:
    id: int
    account_id: str
    type: str
    payload: dict[str, Any]
    created_at: float


def record_event(
    conn: sqlite3.Connection, account_id: str, event_type: str, payload: dict[str, Any], now: float
) -> None:
    """Call inside the transaction of the write the event describes."""
    conn.execute(
        "INSERT INTO events (account_id, type, payload, created_at) VALUES (?, ?, ?, ?)",
        (account_id, event_type, json.dumps(payload, separators=(",", ":")), now),
    )


def events_of(conn: sqlite3.Connection, account_id: str, event_type: str | None = None) -> list[Event]:
    sql = "SELECT id, account_id, type, payload, created_at FROM events WHERE account_id = ?"
    args: tuple = (account_id,)
    if event_type is not None:
        sql += " AND type = ?"
        args += (event_type,)
    return [
        Event(row[0], row[1], row[2], json.loads(row[3]), row[4])
        for row in conn.execute(sql + " ORDER BY id", args)
    ]


def prune_events(conn: sqlite3.Connection, dispatched_before: float, limit: int) -> int:
    """Delete up to `limit` events dispatched before `dispatched_before` (one batch of
    housekeeping); an event not yet dispatched to its webhooks (delivered_at NULL) is
    never touched. Returns how many went."""
    return conn.execute(
        "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE delivered_at < ? ORDER BY delivered_at LIMIT ?)",
        (dispatched_before, limit),
    ).rowcount
