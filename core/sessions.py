"""Dashboard sessions: a random token in an HttpOnly cookie, stored only as its
SHA-256 (a stolen database holds no usable session), expiring after a while."""

from __future__ import annotations

import hashlib
import sqlite3
import time
from dataclasses import dataclass

from core.db import Database, Migration
from core.secrets import random_token

MIGRATIONS = [
    Migration(
        "core.sessions",
        1,
        """
        CREATE TABLE sessions (
            token_hash TEXT PRIMARY KEY,
            account_id TEXT NOT NULL,
            created_at REAL NOT NULL,
            expires_at REAL NOT NULL
        ) WITHOUT ROWID;
        CREATE INDEX sessions_by_account ON sessions(account_id);
        """,
    ),
    # Housekeeping finds expired sessions by their expiry, not by a scan of them all.
    Migration(
        "core.sessions",
        2,
        """
        CREATE INDEX sessions_by_expiry ON sessions(expires_at);
        """,
    ),
]

SESSION_SECONDS = 14 * 86400.0
# A session's id on the settings page: the start of its token's hash. The hash is
# one-way, so the id gives nothing towards the token, and 64 bits never collide
# among one account's sessions (no migration, no second column to keep in step).
ID_LENGTH = 16


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def session_id(token: str) -> str:
    """The opaque id the settings page shows for the session of this token."""
    return _hash(token)[:ID_LENGTH]


@dataclass(frozen=True)
class SessionInfo:
    id: str
    created_at: float
    expires_at: float


def remove_account_sessions(conn: sqlite3.Connection, account_id: str) -> None:
    """Inside the transaction that deletes the account."""
    conn.execute("DELETE FROM sessions WHERE account_id = ?", (account_id,))


def prune_sessions(conn: sqlite3.Connection, expired_before: float, limit: int) -> int:
    """Delete up to `limit` sessions that expired before `expired_before` (one batch of
    housekeeping; an expired session already logs nobody in). Returns how many went."""
    return conn.execute(
        "DELETE FROM sessions WHERE token_hash IN"
        " (SELECT token_hash FROM sessions WHERE expires_at < ? ORDER BY expires_at LIMIT ?)",
        (expired_before, limit),
    ).rowcount


class Sessions:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def open(self, account_id: str) -> str:
        """A new session for the account; returns the token for the cookie."""
        token = random_token(32)
        now = time.time()
        await self.db.write(
            lambda c: c.execute(
                "INSERT INTO sessions (token_hash, account_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
                (_hash(token), account_id, now, now + SESSION_SECONDS),
            )
        )
        return token

    def account_of(self, token: str) -> str | None:
        row = self.db.read(
            lambda c: c.execute(
                "SELECT account_id, expires_at FROM sessions WHERE token_hash = ?", (_hash(token),)
            ).fetchone()
        )
        if row is None or row[1] < time.time():
            return None
        return row[0]

    async def close(self, token: str) -> None:
        await self.db.write(lambda c: c.execute("DELETE FROM sessions WHERE token_hash = ?", (_hash(token),)))

    def list(self, account_id: str) -> list[SessionInfo]:
        """The account's sessions that have not expired, newest first."""
        rows = self.db.read(
            lambda c: c.execute(
                "SELECT token_hash, created_at, expires_at FROM sessions WHERE account_id = ? AND expires_at > ?"
                " ORDER BY created_at DESC",
                (account_id, time.time()),
            ).fetchall()
        )
        return [SessionInfo(row[0][:ID_LENGTH], row[1], row[2]) for row in rows]

    async def end(self, account_id: str, session: str) -> bool:
        """End one of the account's sessions by its id; False when it has none such."""
        if len(session) != ID_LENGTH or not all(c in "0123456789abcdef" for c in session):
            return False

        def remove(c: sqlite3.Connection) -> int:
            sql = "DELETE FROM sessions WHERE account_id = ? AND substr(token_hash, 1, ?) = ?"
            return c.execute(sql, (account_id, ID_LENGTH, session)).rowcount

        return bool(await self.db.write(remove))

    async def end_others(self, account_id: str, keep_token: str | None) -> int:
        """End every session of the account but the one of `keep_token` (all of them
        when None); returns how many ended (expired ones not counted)."""
        keep = _hash(keep_token) if keep_token else ""
        now = time.time()

        def remove(c: sqlite3.Connection) -> int:
            sql = "DELETE FROM sessions WHERE account_id = ? AND token_hash != ? RETURNING expires_at > ?"
            return [row[0] for row in c.execute(sql, (account_id, keep, now))].count(1)

        return await self.db.write(remove)
