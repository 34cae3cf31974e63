"""Dashboard sessions: a random token in an HttpOnly cookie, stored only as its
SHA-256 (a stolen database holds no usable session), expiring after a while."""

from __future__ import annotations

import hashlib
import time

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
    )
]

SESSION_SECONDS = 14 * 86400.0


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


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
