"""Document-API keys (`X-API-Key: cl-...`, as cloudlayer.io's): one opaque token per
key, shown once, stored only as its SHA-256, at most five active per account. They
are listed and revoked beside the S3 key pairs (`/api/keys`) and record the same
key.created / key.revoked events."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import sqlite3
import time
import uuid
from dataclasses import dataclass

from core import cache_epochs
from core.accounts import Account, Accounts
from core.db import Database, Migration
from core.events import record_event

MIGRATIONS = [
    Migration(
        "core.doc_keys",
        1,
        """
        CREATE TABLE doc_keys (
            id TEXT PRIMARY KEY,
            account_id TEXT NOT NULL,
            name TEXT NOT NULL,
            token_hash TEXT NOT NULL UNIQUE,
            hint TEXT NOT NULL,             -- the token's last characters, to tell keys apart
            created_at REAL NOT NULL,
            revoked_at REAL
        ) WITHOUT ROWID;
        CREATE INDEX doc_keys_by_account ON doc_keys(account_id, created_at);
        """,
    )
]

PREFIX = "cl-"
MAX_KEYS = 5
_CACHE_SECONDS = 5.0


class TooManyDocKeys(ValueError):
    pass


@dataclass(frozen=True)
class DocKeyInfo:
    id: str
    name: str
    hint: str
    created_at: float


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class DocKeys:
    def __init__(self, db: Database, accounts: Accounts) -> None:
        self.db = db
        self.accounts = accounts
        # token hash -> (valid until, account id or None)
        self._cache: dict[str, tuple[float, str | None]] = {}
        # Every process drops its cache when any of them creates or revokes a key.
        self._epoch = cache_epochs.watch(db, cache_epochs.DOC_KEYS)

    async def create(self, account_id: str, name: str, max_keys: int = MAX_KEYS) -> tuple[DocKeyInfo, str]:
        token = PREFIX + secrets.token_hex(24)
        info = DocKeyInfo("dk_" + uuid.uuid4().hex[:20], name, token[-4:], time.time())

        def insert(conn: sqlite3.Connection) -> DocKeyInfo:
            active = conn.execute(
                "SELECT count(*) FROM doc_keys WHERE account_id = ? AND revoked_at IS NULL", (account_id,)
            ).fetchone()[0]
            if active >= max_keys:
                raise TooManyDocKeys(max_keys)
            conn.execute(
                "INSERT INTO doc_keys (id, account_id, name, token_hash, hint, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                (info.id, account_id, name, _hash(token), info.hint, info.created_at),
            )
            payload = {"id": info.id, "name": name, "type": "docgen"}
            record_event(conn, account_id, "key.created", payload, info.created_at)
            cache_epochs.bump(conn, cache_epochs.DOC_KEYS)  # a process may remember it as unknown
            return info

        created = await self.db.write(insert)
        self._epoch.announce()
        return created, token

    def create_blocking(self, account_id: str, name: str) -> tuple[DocKeyInfo, str]:
        """For `folio admin create-api-key` (no event loop of its own)."""
        return asyncio.run(self.create(account_id, name))

    def list(self, account_id: str) -> list[DocKeyInfo]:
        rows = self.db.read(
            lambda c: c.execute(
                "SELECT id, name, hint, created_at FROM doc_keys WHERE account_id = ? AND revoked_at IS NULL"
                " ORDER BY created_at, id",
                (account_id,),
            ).fetchall()
        )
        return [DocKeyInfo(*row) for row in rows]

    async def revoke(self, account_id: str, key_id: str) -> bool:
        now = time.time()

        def revoke(conn: sqlite3.Connection) -> bool:
            done = conn.execute(
                "UPDATE doc_keys SET revoked_at = ? WHERE id = ? AND account_id = ? AND revoked_at IS NULL",
                (now, key_id, account_id),
            ).rowcount
            if done:
                record_event(conn, account_id, "key.revoked", {"id": key_id, "type": "docgen"}, now)
                cache_epochs.bump(conn, cache_epochs.DOC_KEYS)  # every process forgets it
            return bool(done)

        revoked = await self.db.write(revoke)
        self._epoch.announce()  # every process forgets it before this answers
        self._cache.clear()
        return revoked

    def account_of(self, token: str) -> Account | None:
        if not token.startswith(PREFIX):
            return None
        digest = _hash(token)
        if self._epoch.moved():
            self._cache.clear()
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is None or cached[0] < now:
            row = self.db.read(
                lambda c: c.execute(
                    "SELECT account_id FROM doc_keys WHERE token_hash = ? AND revoked_at IS NULL", (digest,)
                ).fetchone()
            )
            cached = (now + _CACHE_SECONDS, row[0] if row else None)
            if len(self._cache) > 10000:
                self._cache.clear()
            self._cache[digest] = cached
        return self.accounts.get(cached[1]) if cached[1] else None
