"""Accounts and their S3 access keys. Secrets are stored encrypted (core.secrets)
and handed out once, at creation."""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import sqlite3
import time
import uuid
from dataclasses import dataclass, replace

from core import cache_epochs
from core.db import Database, Migration
from core.events import record_event
from core.secrets import SecretBox, hash_password

MIGRATIONS = [
    Migration(
        "core.accounts",
        1,
        """
        CREATE TABLE accounts (
            id TEXT PRIMARY KEY,
            canonical_id TEXT NOT NULL UNIQUE,
            email TEXT NOT NULL UNIQUE COLLATE NOCASE,
            display_name TEXT NOT NULL,
            password_hash TEXT,
            plan TEXT NOT NULL DEFAULT 'default',
            is_admin INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL
        );
        CREATE TABLE access_keys (
            access_key TEXT PRIMARY KEY,
            account_id TEXT NOT NULL REFERENCES accounts(id),
            name TEXT NOT NULL DEFAULT '',
            secret_enc BLOB NOT NULL,
            created_at REAL NOT NULL,
            revoked_at REAL
        );
        CREATE INDEX access_keys_by_account ON access_keys(account_id);
        """,
        # SQLite's NOCASE email (equal and unique whatever the case) is an ICU collation that
        # ignores case: Debian's and the official PostgreSQL builds have ICU.
        postgres="""
        CREATE COLLATION IF NOT EXISTS folio_nocase
            (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
        CREATE TABLE accounts (
            id TEXT COLLATE "C" PRIMARY KEY,
            canonical_id TEXT COLLATE "C" NOT NULL UNIQUE,
            email TEXT COLLATE folio_nocase NOT NULL UNIQUE,
            display_name TEXT COLLATE "C" NOT NULL,
            password_hash TEXT COLLATE "C",
            plan TEXT COLLATE "C" NOT NULL DEFAULT 'default',
            is_admin BIGINT NOT NULL DEFAULT 0,
            created_at DOUBLE PRECISION NOT NULL
        );
        CREATE TABLE access_keys (
            access_key TEXT COLLATE "C" PRIMARY KEY,
            account_id TEXT COLLATE "C" NOT NULL,
            name TEXT COLLATE "C" NOT NULL DEFAULT '',
            secret_enc BYTEA NOT NULL,
            created_at DOUBLE PRECISION NOT NULL,
            revoked_at DOUBLE PRECISION
        );
        CREATE INDEX access_keys_by_account ON access_keys(account_id);
        """,
    ),
    Migration(
        "core.accounts",
        2,
        """
        -- The bucket REST uploads go to when they name none (made on first use).
        ALTER TABLE accounts ADD COLUMN default_bucket TEXT;
        """,
    ),
    Migration(
        "core.accounts",
        3,
        """
        -- The first-start admin now has a plan of its own, without rate limits ([accounts]
        -- admin_plan, shipped as "admin"). An admin made before that, still on the shipped
        -- default plan, moves to it once; one moved elsewhere by an operator stays there.
        UPDATE accounts SET plan = 'admin' WHERE is_admin = 1 AND plan = 'default';
        """,
    ),
]

MAX_ACCESS_KEYS = 5
# Lookups are cached: SigV4 needs the secret on every request, and decrypting it each
# time would cost more than the signature check itself. Every change to a key or an
# account bumps the `accounts` cache epoch (core.cache_epochs), which every process checks
# before using its cache: the time limit only bounds how long an entry lives unused.
KEY_CACHE_SECONDS = 30.0


class AccountExists(ValueError):
    """An account with this email already exists."""


@dataclass(frozen=True)
class Account:
    id: str
    canonical_id: str
    email: str
    display_name: str
    plan: str
    is_admin: bool


@dataclass(frozen=True)
class NewAccount:
    """What account creation hands out once: the secret and password are never shown again."""

    account: Account
    access_key: str
    secret_key: str
    password: str | None

    def as_json(self) -> dict[str, str | None]:
        return {
            "accountId": self.account.id,
            "canonicalId": self.account.canonical_id,
            "displayName": self.account.display_name,
            "email": self.account.email,
            "accessKey": self.access_key,
            "secretKey": self.secret_key,
            **({"password": self.password} if self.password else {}),
        }


def new_access_key() -> str:
    # 20 characters like AWS's, upper-case base32.
    return "FK" + base64.b32encode(os.urandom(15)).decode()[:18]


def new_secret_key() -> str:
    return secrets.token_urlsafe(30)[:40]


_ACCOUNT_COLUMNS = "id, canonical_id, email, display_name, plan, is_admin"


def _account(row: tuple) -> Account:
    return Account(row[0], row[1], row[2], row[3], row[4], bool(row[5]))


def remove_account_rows(conn: sqlite3.Connection, account_id: str) -> None:
    """The account and all its access keys (revoked ones too), inside the transaction
    that deletes the account (restapi.account_removal)."""
    conn.execute("DELETE FROM access_keys WHERE account_id = ?", (account_id,))
    conn.execute("DELETE FROM accounts WHERE id = ?", (account_id,))
    cache_epochs.bump(conn, cache_epochs.ACCOUNTS)


class UnknownAccount(LookupError):
    """No account has this email."""


@dataclass(frozen=True)
class PasswordHash:
    """A password already hashed (off the event loop)."""

    value: str


class TooManyKeys(ValueError):
    """The account has as many active access keys as its plan allows."""


@dataclass(frozen=True)
class AccessKeyInfo:
    """An access key as listings show it: never the secret."""

    access_key: str
    name: str
    created_at: float


class Accounts:
    def __init__(self, db: Database, box: SecretBox, default_plan: str = "default") -> None:
        self.db = db
        self.box = box
        self.default_plan = default_plan
        self._key_cache: dict[str, tuple[float, Account, str] | tuple[float, None, None]] = {}
        self._plan_cache: dict[str, tuple[float, str]] = {}
        self._epoch = cache_epochs.watch(db, cache_epochs.ACCOUNTS)

    def _check_epoch(self) -> None:
        """Drop both caches when any process changed a key or an account since we looked."""
        if self._epoch.moved():
            self._key_cache.clear()
            self._plan_cache.clear()

    def plan_name(self, account_id: str) -> str:
        """The account's plan name (cached: every write consults the quota)."""
        self._check_epoch()
        now = time.monotonic()
        cached = self._plan_cache.get(account_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        row = self.db.read(
            lambda c: c.execute("SELECT plan FROM accounts WHERE id = ?", (account_id,)).fetchone()
        )
        plan = row[0] if row else self.default_plan
        if len(self._plan_cache) > 10000:
            self._plan_cache.clear()
        self._plan_cache[account_id] = (now + KEY_CACHE_SECONDS, plan)
        return plan

    # -- access keys ----------------------------------------------------------------------------

    def list_keys(self, account_id: str) -> list[AccessKeyInfo]:
        rows = self.db.read(
            lambda c: c.execute(
                "SELECT access_key, name, created_at FROM access_keys"
                " WHERE account_id = ? AND revoked_at IS NULL ORDER BY created_at, access_key",
                (account_id,),
            ).fetchall()
        )
        return [AccessKeyInfo(row[0], row[1], row[2]) for row in rows]

    def key_names(self, account_id: str) -> dict[str, str]:
        """Every key the account ever had, revoked ones included, by access key id: the
        history names the key that wrote a version long after it was revoked."""
        rows = self.db.read(
            lambda c: c.execute(
                "SELECT access_key, name FROM access_keys WHERE account_id = ?", (account_id,)
            ).fetchall()
        )
        return dict(rows)

    async def create_key(self, account_id: str, name: str, max_keys: int) -> tuple[AccessKeyInfo, str]:
        """A new key pair (the secret is returned once, stored encrypted); at most
        `max_keys` active keys (0: no limit). Records `key.created`."""
        access_key, secret_key = new_access_key(), new_secret_key()
        secret_enc = self.box.encrypt(secret_key, access_key)
        now = time.time()

        def insert(conn: sqlite3.Connection) -> AccessKeyInfo:
            active = conn.execute(
                "SELECT count(*) FROM access_keys WHERE account_id = ? AND revoked_at IS NULL", (account_id,)
            ).fetchone()[0]
            if max_keys and active >= max_keys:
                raise TooManyKeys(max_keys)
            conn.execute(
                "INSERT INTO access_keys (access_key, account_id, name, secret_enc, created_at) VALUES (?, ?, ?, ?, ?)",
                (access_key, account_id, name, secret_enc, now),
            )
            record_event(conn, account_id, "key.created", {"accessKey": access_key, "name": name}, now)
            cache_epochs.bump(conn, cache_epochs.ACCOUNTS)  # a process may remember it as unknown
            return AccessKeyInfo(access_key, name, now)

        created = await self.db.write(insert)
        self._epoch.announce()
        return created, secret_key

    async def revoke_key(self, account_id: str, access_key: str) -> bool:
        """Revoke one of the account's keys at once, for every API (the cache forgets
        it). Records `key.revoked`. False when the account has no such active key."""
        now = time.time()

        def revoke(conn: sqlite3.Connection) -> bool:
            done = conn.execute(
                "UPDATE access_keys SET revoked_at = ? WHERE access_key = ? AND account_id = ? AND revoked_at IS NULL",
                (now, access_key, account_id),
            ).rowcount
            if done:
                record_event(conn, account_id, "key.revoked", {"accessKey": access_key}, now)
                cache_epochs.bump(conn, cache_epochs.ACCOUNTS)  # every process forgets it
            return bool(done)

        revoked = await self.db.write(revoke)
        self._epoch.announce()  # every process forgets it before this answers
        self.forget_key(access_key)
        return revoked

    def password_hash(self, email: str) -> str | None:
        row = self.db.read(
            lambda c: c.execute("SELECT password_hash FROM accounts WHERE email = ?", (email,)).fetchone()
        )
        return row[0] if row else None

    def password_hash_of(self, account_id: str) -> str | None:
        row = self.db.read(
            lambda c: c.execute("SELECT password_hash FROM accounts WHERE id = ?", (account_id,)).fetchone()
        )
        return row[0] if row else None

    async def set_password(self, account_id: str, password: str) -> None:
        # scrypt takes tens of milliseconds on purpose: hash off the event loop.
        hashed = await asyncio.get_running_loop().run_in_executor(None, hash_password, password)
        await self.db.write(
            lambda c: c.execute("UPDATE accounts SET password_hash = ? WHERE id = ?", (hashed, account_id))
        )

    def forget_account(self, account_id: str) -> None:
        """Drop every cached lookup of a deleted account (its keys, its plan), here and (once
        the transaction of remove_account_rows committed) in every process."""
        self._epoch.announce()
        self._plan_cache.pop(account_id, None)
        for access_key, cached in list(self._key_cache.items()):
            if cached[1] is not None and cached[1].id == account_id:
                self._key_cache.pop(access_key, None)

    def default_bucket(self, account_id: str) -> str | None:
        row = self.db.read(
            lambda c: c.execute("SELECT default_bucket FROM accounts WHERE id = ?", (account_id,)).fetchone()
        )
        return row[0] if row else None

    async def set_default_bucket(self, account_id: str, bucket: str) -> None:
        await self.db.write(
            lambda c: c.execute("UPDATE accounts SET default_bucket = ? WHERE id = ?", (bucket, account_id))
        )

    def set_plan_blocking(self, email: str, plan: str) -> Account:
        """Move an account to another plan (operators; before the loop or from the CLI)."""

        def update(conn: sqlite3.Connection) -> None:
            if conn.execute("UPDATE accounts SET plan = ? WHERE email = ?", (plan, email)).rowcount == 0:
                raise UnknownAccount(email)
            cache_epochs.bump(conn, cache_epochs.ACCOUNTS)  # running servers see the new plan

        self.db.write_blocking(update)
        self._epoch.announce()
        account = self.by_email(email)
        assert account is not None
        self._plan_cache.pop(account.id, None)
        self._key_cache.clear()
        return account

    def count(self) -> int:
        return self.db.read(lambda c: c.execute("SELECT count(*) FROM accounts").fetchone()[0])

    def _insert_account(
        self,
        email: str,
        password: str | None,
        display_name: str | None,
        access_key: str | None,
        secret_key: str | None,
        is_admin: bool,
        plan: str | None = None,
    ):
        account = Account(
            id=uuid.uuid4().hex,
            canonical_id=secrets.token_hex(32),
            email=email,
            display_name=display_name or email.split("@")[0],
            plan=plan or self.default_plan,
            is_admin=is_admin,
        )
        access_key = access_key or new_access_key()
        secret_key = secret_key or new_secret_key()
        secret_enc = self.box.encrypt(secret_key, access_key)
        if isinstance(password, PasswordHash):
            password_hash: str | None = password.value
        else:
            password_hash = hash_password(password) if password else None
        now = time.time()

        def insert(conn: sqlite3.Connection) -> NewAccount:
            if conn.execute("SELECT 1 FROM accounts WHERE email = ?", (email,)).fetchone():
                raise AccountExists(email)
            conn.execute(
                "INSERT INTO accounts (id, canonical_id, email, display_name, password_hash, plan, is_admin,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    account.id,
                    account.canonical_id,
                    email,
                    account.display_name,
                    password_hash,
                    account.plan,
                    int(is_admin),
                    now,
                ),
            )
            conn.execute(
                "INSERT INTO access_keys (access_key, account_id, name, secret_enc, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (access_key, account.id, "default", secret_enc, now),
            )
            record_event(conn, account.id, "key.created", {"accessKey": access_key, "name": "default"}, now)
            cache_epochs.bump(conn, cache_epochs.ACCOUNTS)  # its key may be remembered as unknown
            plain = None if isinstance(password, PasswordHash) else password
            return NewAccount(account, access_key, secret_key, plain)

        return insert

    def create_account_blocking(
        self,
        email: str,
        password: str | None = None,
        *,
        display_name: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        is_admin: bool = False,
        plan: str | None = None,
    ) -> NewAccount:
        created = self.db.write_blocking(
            self._insert_account(email, password, display_name, access_key, secret_key, is_admin, plan)
        )
        self._epoch.announce()
        return created

    async def create_account(self, email: str, password: str | None = None, **kwargs) -> NewAccount:
        # scrypt takes tens of milliseconds on purpose: hash off the event loop.
        hashed = (
            await asyncio.get_running_loop().run_in_executor(None, hash_password, password)
            if password
            else None
        )
        created = await self.db.write(
            self._insert_account(
                email,
                PasswordHash(hashed) if hashed else None,
                kwargs.get("display_name"),
                kwargs.get("access_key"),
                kwargs.get("secret_key"),
                kwargs.get("is_admin", False),
                kwargs.get("plan"),
            )
        )
        self._epoch.announce()
        return replace(created, password=password)

    def lookup_key(self, access_key: str) -> tuple[Account, str] | None:
        """The account and plain secret of an active access key (cached)."""
        self._check_epoch()
        now = time.monotonic()
        cached = self._key_cache.get(access_key)
        if cached is not None and cached[0] > now:
            return None if cached[1] is None else (cached[1], cached[2])  # type: ignore[return-value]
        row = self.db.read(
            lambda c: c.execute(
                f"SELECT k.secret_enc, {', '.join('a.' + col for col in _ACCOUNT_COLUMNS.split(', '))}"
                " FROM access_keys k JOIN accounts a ON a.id = k.account_id"
                " WHERE k.access_key = ? AND k.revoked_at IS NULL",
                (access_key,),
            ).fetchone()
        )
        if row is None:
            # Unknown keys are remembered for a second only (a new key bumps the epoch too).
            self._key_cache[access_key] = (now + 1.0, None, None)
            return None
        account = _account(row[1:])
        secret = self.box.decrypt(row[0], access_key)
        if len(self._key_cache) > 10000:
            self._key_cache.clear()
        self._key_cache[access_key] = (now + KEY_CACHE_SECONDS, account, secret)
        return account, secret

    def forget_key(self, access_key: str) -> None:
        """Drop a cached key at once (revocation)."""
        self._key_cache.pop(access_key, None)

    def get(self, account_id: str) -> Account | None:
        row = self.db.read(
            lambda c: c.execute(
                f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE id = ?", (account_id,)
            ).fetchone()
        )
        return _account(row) if row else None

    def by_canonical_id(self, canonical_id: str) -> Account | None:
        row = self.db.read(
            lambda c: c.execute(
                f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE canonical_id = ?", (canonical_id,)
            ).fetchone()
        )
        return _account(row) if row else None

    def by_email(self, email: str) -> Account | None:
        row = self.db.read(
            lambda c: c.execute(
                f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE email = ?", (email,)
            ).fetchone()
        )
        return _account(row) if row else None
