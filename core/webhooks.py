"""Webhooks: endpoints an account registers for event types, and the worker that
delivers the event outbox (core/events.py) to them.

Delivery is at least once: the dispatcher turns each recorded event into one
`deliveries` row per matching active webhook (in one transaction with marking the
event dispatched), and the sender POSTs due rows, retrying with exponential backoff.
Rows live in the database, so deliveries pending at a crash or shutdown go out after
the restart; each carries its delivery id (`X-CloudStorage-Delivery` and `id` in the
body) for receivers to drop duplicates. The body is signed:
`X-CloudStorage-Signature: hex(HMAC-SHA256(secret, raw body))`, and the raw body is
compact JSON with non-ASCII kept as is, so that JSON.stringify of the parsed body
(the seed's verification snippet) gives back the same bytes."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import secrets
import sqlite3
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from core import cache_epochs
from core.config import WebhooksConfig
from core.db import Database, Migration
from core.netguard import BlockedTarget, check_url, check_url_syntax
from core.pinned_http import pinned_async_client
from core.secrets import SecretBox

log = logging.getLogger("folio.webhooks")

MIGRATIONS = [
    Migration(
        "core.webhooks",
        1,
        """
        CREATE TABLE webhooks (
            id TEXT PRIMARY KEY,
            account_id TEXT NOT NULL,
            url TEXT NOT NULL,
            events TEXT NOT NULL,              -- JSON list of event types
            secret_enc BLOB NOT NULL,
            active INTEGER NOT NULL DEFAULT 1,
            failures INTEGER NOT NULL DEFAULT 0, -- consecutive failed attempts
            created_at REAL NOT NULL
        );
        CREATE INDEX webhooks_by_account ON webhooks(account_id);

        CREATE TABLE deliveries (
            id TEXT PRIMARY KEY,
            webhook_id TEXT NOT NULL,
            event_type TEXT NOT NULL,
            body TEXT NOT NULL,                -- the exact bytes signed and sent
            status TEXT NOT NULL,              -- pending, delivered, failed
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at REAL NOT NULL,
            last_status INTEGER,
            last_error TEXT,
            created_at REAL NOT NULL,
            finished_at REAL
        );
        CREATE INDEX deliveries_due ON deliveries(next_attempt_at) WHERE status = 'pending';
        CREATE INDEX deliveries_by_webhook ON deliveries(webhook_id, created_at);
        """,
    ),
    # One-off deliveries to a URL given with a request (a document job's `webhook`):
    # no webhook row; signed with the account's job-webhook secret.
    Migration(
        "core.webhooks",
        2,
        """
        ALTER TABLE deliveries ADD COLUMN target_url TEXT;
        ALTER TABLE deliveries ADD COLUMN account_id TEXT;
        """,
    ),
    # What the dashboard shows: each attempt's latency and the first bytes of the answer,
    # why a webhook is disabled, and redeliveries (one attempt, no retries).
    Migration(
        "core.webhooks",
        3,
        """
        ALTER TABLE deliveries ADD COLUMN latency_ms REAL;
        ALTER TABLE deliveries ADD COLUMN response_excerpt TEXT;
        ALTER TABLE deliveries ADD COLUMN one_shot INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE webhooks ADD COLUMN last_error TEXT;
        ALTER TABLE webhooks ADD COLUMN disabled_at REAL;
        ALTER TABLE webhooks ADD COLUMN disabled_after INTEGER; -- the failure that disabled it; NULL: by hand
        """,
    ),
    # Housekeeping deletes finished deliveries by age. Partial: a pending delivery has no
    # finished_at, so it never enters the index (nor the prune).
    Migration(
        "core.webhooks",
        4,
        """
        CREATE INDEX deliveries_finished ON deliveries(finished_at) WHERE finished_at IS NOT NULL;
        """,
    ),
    # The node (worker process, or Folio node) sending a delivery: set with its claim, cleared
    # with the attempt's outcome; a node found dead gives its claims back at once.
    Migration(
        "core.webhooks",
        5,
        """
        ALTER TABLE deliveries ADD COLUMN claimed_by TEXT;
        CREATE INDEX deliveries_claimed ON deliveries(claimed_by) WHERE claimed_by IS NOT NULL;
        """,
    ),
]

EVENT_TYPES = (
    "object.created",
    "object.deleted",
    "object.updated",
    "bucket.created",
    "bucket.deleted",
    "quota.warning",
    "quota.exceeded",
    "key.created",
    "key.revoked",
    "share.created",
    "share.downloaded",
)
RECENT_DELIVERIES = 10
# The headers each delivery carries (sent lower-case; HTTP names are case-insensitive).
SIGNATURE_HEADER = "X-CloudStorage-Signature"
DELIVERY_HEADER = "X-CloudStorage-Delivery"
EVENT_HEADER = "X-CloudStorage-Event"
# The event "send test event" delivers (not one an account subscribes to).
TEST_EVENT = "webhook.test"
# Bytes of a receiver's answer kept with the delivery (enough to recognise an error page).
EXCERPT_BYTES = 256
# A delivery being sent is not due again for twice the timeout and this, unless its node is
# found dead sooner (`release_claims`).
CLAIM_SECONDS = 30.0


def prune_deliveries(conn: sqlite3.Connection, finished_before: float, limit: int) -> int:
    """Delete up to `limit` deliveries that finished (delivered, or failed for good) before
    `finished_before`: one batch of housekeeping. The delivery log shows what is younger;
    a pending delivery (queued, or waiting for its next retry) is never touched, and a
    redelivery makes its row pending again. Returns how many went."""
    return conn.execute(
        "DELETE FROM deliveries WHERE id IN (SELECT id FROM deliveries"
        " WHERE finished_at < ? AND status != 'pending' ORDER BY finished_at LIMIT ?)",
        (finished_before, limit),
    ).rowcount


class TooManyWebhooks(ValueError):
    pass


class WebhookDisabled(ValueError):
    """A test event or redelivery for a disabled webhook (it would wait until re-enabled)."""


@dataclass(frozen=True)
class Webhook:
    id: str
    account_id: str
    url: str
    events: tuple[str, ...]
    active: bool
    failures: int
    created_at: float
    last_error: str | None = None
    disabled_at: float | None = None
    disabled_after: int | None = None  # the consecutive failure that disabled it; None: by hand


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def sign(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _as_javascript_writes_it(value: Any) -> Any:
    """Whole floats as ints: JSON.stringify writes 85.0 as 85, and the seed verifies
    the signature over JSON.stringify of the parsed body."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _as_javascript_writes_it(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_javascript_writes_it(v) for v in value]
    return value


def _webhook(row: tuple) -> Webhook:
    return Webhook(
        row[0],
        row[1],
        row[2],
        tuple(json.loads(row[3])),
        bool(row[4]),
        row[5],
        row[6],
        row[7],
        row[8],
        row[9],
    )


_COLUMNS = (
    "id, account_id, url, events, active, failures, created_at, last_error, disabled_at, disabled_after"
)
_DELIVERY_COLUMNS = (
    "id, event_type, status, attempts, last_status, last_error, created_at, finished_at, latency_ms,"
    " response_excerpt"
)


def _delivery(r: tuple) -> dict[str, Any]:
    return {
        "id": r[0],
        "event": r[1],
        "status": r[2],
        "attempts": r[3],
        "responseStatus": r[4],
        "error": r[5],
        "createdAt": iso(r[6]),
        "finishedAt": iso(r[7]) if r[7] else None,
        "latencyMs": round(r[8], 1) if r[8] is not None else None,
        "responseBody": r[9],
    }


def _compact(body: dict[str, Any]) -> str:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


async def _first_bytes(response: httpx.Response, limit: int) -> str:
    """Up to `limit` bytes of the answer, read no further (a receiver may answer a lot)."""
    got = b""
    async for chunk in response.aiter_bytes():
        got += chunk
        if len(got) >= limit:
            break
    return got[:limit].decode("utf-8", "replace")


@dataclass(frozen=True)
class Attempt:
    """One delivery attempt's outcome, as stored."""

    attempts: int  # counting this one
    status: int | None
    error: str | None
    latency_ms: float
    excerpt: str | None
    one_shot: bool  # a redelivery: no retries after it


class _Listening(set[str]):
    """The accounts with an active webhook, reloaded whenever any process changed the
    webhooks (the `webhooks` cache epoch, core.cache_epochs) before it answers `in`."""

    def __init__(self, db: Database, reload: Any) -> None:
        super().__init__()
        self._watch = cache_epochs.watch(db, cache_epochs.WEBHOOKS)
        self._reload = reload

    def __contains__(self, account_id: object) -> bool:
        if self._watch.moved():
            self._reload()
        return set.__contains__(self, account_id)

    def announce(self) -> None:
        """After a write that bumped the epoch committed (core.cache_epochs)."""
        self._watch.announce()


class Webhooks:
    def __init__(self, db: Database, box: SecretBox, config: WebhooksConfig) -> None:
        self.db = db
        self.box = box
        self.config = config
        self.wake = asyncio.Event()
        # Accounts with an active webhook: the engine records object and bucket events
        # only for them (an outbox row per write would cost every other account).
        self.listening = _Listening(db, self.load)
        # This node's id (server/cluster.py), written with each claim on a delivery.
        self.node_id: str | None = None

    def load(self) -> None:
        rows = self.db.read(
            lambda c: c.execute("SELECT DISTINCT account_id FROM webhooks WHERE active = 1").fetchall()
        )
        # In place: the engine holds a reference to this set.
        self.listening.clear()
        self.listening.update(row[0] for row in rows)

    def _refresh(self, account_id: str) -> None:
        active = self.db.read(
            lambda c: c.execute(
                "SELECT 1 FROM webhooks WHERE account_id = ? AND active = 1 LIMIT 1", (account_id,)
            ).fetchone()
        )
        if active:
            self.listening.add(account_id)
        else:
            self.listening.discard(account_id)

    async def check_target(self, url: str) -> None:
        await check_url(
            url,
            allow_private=self.config.allow_private_targets,
            allow_loopback=self.config.allow_loopback_targets,
            allow_http=self.config.allow_http,
        )

    def job_secret(self, account_id: str) -> str:
        """The secret signing the account's one-off deliveries (document jobs' webhooks)."""
        return self.box.derive(f"job-webhooks:{account_id}").hex()

    async def send_once(self, account_id: str, url: str, event_type: str, body: str) -> None:
        """Queue a signed delivery of `body` to `url` (retried like any other; the
        outbound guard is applied when it is sent)."""
        delivery_id = "dlv_" + uuid.uuid4().hex
        now = time.time()
        await self.db.write(
            lambda c: c.execute(
                "INSERT INTO deliveries (id, webhook_id, event_type, body, status, attempts, next_attempt_at,"
                " created_at, target_url, account_id) VALUES (?, '', ?, ?, 'pending', 0, ?, ?, ?, ?)",
                (delivery_id, event_type, body, now, now, url, account_id),
            )
        )
        self.wake.set()

    async def create(self, account_id: str, url: str, events: list[str]) -> tuple[Webhook, str]:
        """A new webhook and its signing secret (shown once, stored encrypted)."""
        await self.check_target(url)
        webhook_id = "wh_" + uuid.uuid4().hex[:20]
        secret = "whsec_" + secrets.token_urlsafe(24)
        secret_enc = self.box.encrypt(secret, webhook_id)
        now = time.time()

        def insert(conn: sqlite3.Connection) -> Webhook:
            count = conn.execute(
                "SELECT count(*) FROM webhooks WHERE account_id = ?", (account_id,)
            ).fetchone()[0]
            if self.config.max_per_account and count >= self.config.max_per_account:
                raise TooManyWebhooks(self.config.max_per_account)
            conn.execute(
                "INSERT INTO webhooks (id, account_id, url, events, secret_enc, active, failures, created_at)"
                " VALUES (?, ?, ?, ?, ?, 1, 0, ?)",
                (webhook_id, account_id, url, json.dumps(events), secret_enc, now),
            )
            cache_epochs.bump(conn, cache_epochs.WEBHOOKS)  # every process records its events
            return Webhook(webhook_id, account_id, url, tuple(events), True, 0, now)

        webhook = await self.db.write(insert)
        self.listening.announce()
        self.listening.add(account_id)
        return webhook, secret

    def list(self, account_id: str) -> list[tuple[Webhook, list[dict[str, Any]]]]:
        def read(conn: sqlite3.Connection):
            hooks = [
                _webhook(r)
                for r in conn.execute(
                    f"SELECT {_COLUMNS} FROM webhooks WHERE account_id = ? ORDER BY created_at", (account_id,)
                )
            ]
            out = []
            for hook in hooks:
                rows = conn.execute(
                    f"SELECT {_DELIVERY_COLUMNS} FROM deliveries WHERE webhook_id = ?"
                    " ORDER BY created_at DESC LIMIT ?",
                    (hook.id, RECENT_DELIVERIES),
                ).fetchall()
                out.append((hook, [_delivery(r) for r in rows]))
            return out

        return self.db.read(read)

    def get(self, account_id: str, webhook_id: str) -> Webhook | None:
        row = self.db.read(
            lambda c: c.execute(
                f"SELECT {_COLUMNS} FROM webhooks WHERE id = ? AND account_id = ?", (webhook_id, account_id)
            ).fetchone()
        )
        return _webhook(row) if row else None

    def deliveries(self, account_id: str, webhook_id: str, limit: int = 50) -> list[dict[str, Any]] | None:
        """The webhook's delivery log, newest first (None: no such webhook of this account)."""

        def read(conn: sqlite3.Connection) -> list[dict[str, Any]] | None:
            if not conn.execute(
                "SELECT 1 FROM webhooks WHERE id = ? AND account_id = ?", (webhook_id, account_id)
            ).fetchone():
                return None
            rows = conn.execute(
                f"SELECT {_DELIVERY_COLUMNS} FROM deliveries WHERE webhook_id = ? ORDER BY created_at DESC LIMIT ?",
                (webhook_id, limit),
            ).fetchall()
            return [_delivery(r) for r in rows]

        return self.db.read(read)

    async def send_test(self, account_id: str, webhook_id: str) -> str | None:
        """Queue a signed `webhook.test` delivery to the webhook, whatever events it takes;
        its delivery id (None: no such webhook)."""
        delivery_id = "dlv_" + uuid.uuid4().hex
        now = time.time()

        def insert(conn: sqlite3.Connection) -> str | None:
            row = conn.execute(
                "SELECT url, active FROM webhooks WHERE id = ? AND account_id = ?", (webhook_id, account_id)
            ).fetchone()
            if row is None:
                return None
            if not row[1]:
                raise WebhookDisabled(webhook_id)
            body = {
                "id": delivery_id,
                "event": TEST_EVENT,
                "timestamp": iso(now),
                "data": {"webhookId": webhook_id, "url": row[0], "message": "A test event sent from Folio."},
            }
            conn.execute(
                "INSERT INTO deliveries (id, webhook_id, event_type, body, status, attempts, next_attempt_at,"
                " created_at) VALUES (?, ?, ?, ?, 'pending', 0, ?, ?)",
                (delivery_id, webhook_id, TEST_EVENT, _compact(body), now, now),
            )
            return delivery_id

        made = await self.db.write(insert)
        self.wake.set()
        return made

    async def redeliver(self, account_id: str, delivery_id: str) -> bool:
        """Send a delivery again now: the same id and the same signed bytes, so receivers
        that drop duplicates see it as one. A finished delivery gets one attempt (no retries);
        a pending one is just sent now. False: no such delivery of this account's webhooks."""

        def again(conn: sqlite3.Connection) -> bool:
            row = conn.execute(
                "SELECT d.status, w.active FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id"
                " WHERE d.id = ? AND w.account_id = ?",
                (delivery_id, account_id),
            ).fetchone()
            if row is None:
                return False
            if not row[1]:
                raise WebhookDisabled(delivery_id)
            if row[0] == "pending":
                conn.execute(
                    "UPDATE deliveries SET next_attempt_at = ? WHERE id = ?", (time.time(), delivery_id)
                )
            else:
                conn.execute(
                    "UPDATE deliveries SET status = 'pending', next_attempt_at = ?, finished_at = NULL, one_shot = 1"
                    " WHERE id = ?",
                    (time.time(), delivery_id),
                )
            return True

        found = await self.db.write(again)
        self.wake.set()
        return found

    async def update(
        self,
        account_id: str,
        webhook_id: str,
        *,
        active: bool | None,
        events: list[str] | None,
        url: str | None,
    ) -> Webhook | None:
        """PATCH: toggle `active` (re-enabling clears the failure count), change events or URL."""
        if url is not None:
            await self.check_target(url)

        def change(conn: sqlite3.Connection) -> Webhook | None:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM webhooks WHERE id = ? AND account_id = ?", (webhook_id, account_id)
            ).fetchone()
            if row is None:
                return None
            if active and not row[4]:
                conn.execute(
                    "UPDATE webhooks SET active = 1, failures = 0, disabled_at = NULL, disabled_after = NULL"
                    " WHERE id = ?",
                    (webhook_id,),
                )
            elif active:
                conn.execute("UPDATE webhooks SET failures = 0 WHERE id = ?", (webhook_id,))
            elif active is not None and row[4]:
                # Disabled by hand: disabled_after stays NULL.
                conn.execute(
                    "UPDATE webhooks SET active = 0, disabled_at = ? WHERE id = ?", (time.time(), webhook_id)
                )
            if events is not None:
                conn.execute("UPDATE webhooks SET events = ? WHERE id = ?", (json.dumps(events), webhook_id))
            if url is not None:
                conn.execute("UPDATE webhooks SET url = ? WHERE id = ?", (url, webhook_id))
            if active is not None and bool(active) != bool(row[4]):
                cache_epochs.bump(conn, cache_epochs.WEBHOOKS)
            return _webhook(
                conn.execute(f"SELECT {_COLUMNS} FROM webhooks WHERE id = ?", (webhook_id,)).fetchone()
            )

        updated = await self.db.write(change)
        self.listening.announce()
        self._refresh(account_id)
        self.wake.set()
        return updated

    async def delete(self, account_id: str, webhook_id: str) -> bool:
        def remove(conn: sqlite3.Connection) -> bool:
            done = conn.execute(
                "DELETE FROM webhooks WHERE id = ? AND account_id = ?", (webhook_id, account_id)
            ).rowcount
            if done:
                conn.execute(
                    "UPDATE deliveries SET status = 'failed', last_error = 'webhook deleted', finished_at = ?"
                    " WHERE webhook_id = ? AND status = 'pending'",
                    (time.time(), webhook_id),
                )
                cache_epochs.bump(conn, cache_epochs.WEBHOOKS)
            return bool(done)

        removed = await self.db.write(remove)
        self.listening.announce()
        self._refresh(account_id)
        return removed

    # -- the worker ---------------------------------------------------------------------------

    @staticmethod
    def release_claims(conn: sqlite3.Connection, node_id: str, now: float) -> None:
        """A node is gone (server/cluster.py found its process dead): the deliveries it was
        sending are due again now (they may have reached the receiver: at least once)."""
        conn.execute(
            "UPDATE deliveries SET next_attempt_at = ?, claimed_by = NULL WHERE claimed_by = ? AND status = 'pending'",
            (now, node_id),
        )

    def _dispatch(self, conn: sqlite3.Connection, now: float, limit: int = 500) -> int:
        """Turn undispatched events into delivery rows (one transaction)."""
        events = conn.execute(
            "SELECT id, account_id, type, payload, created_at FROM events WHERE delivered_at IS NULL"
            " ORDER BY id LIMIT ?",
            (limit,),
        ).fetchall()
        made = 0
        hooks_of: dict[str, list[Webhook]] = {}
        for event_id, account_id, event_type, payload, created_at in events:
            if account_id not in hooks_of:
                hooks_of[account_id] = [
                    _webhook(r)
                    for r in conn.execute(
                        f"SELECT {_COLUMNS} FROM webhooks WHERE account_id = ? AND active = 1", (account_id,)
                    )
                ]
            for hook in hooks_of[account_id]:
                if event_type not in hook.events or hook.created_at > created_at:
                    continue  # not subscribed, or the event happened before the webhook existed
                delivery_id = "dlv_" + uuid.uuid4().hex
                body = {
                    "id": delivery_id,
                    "event": event_type,
                    "timestamp": iso(created_at),
                    "data": _as_javascript_writes_it(json.loads(payload)),
                }
                conn.execute(
                    "INSERT INTO deliveries (id, webhook_id, event_type, body, status, attempts, next_attempt_at,"
                    " created_at) VALUES (?, ?, ?, ?, 'pending', 0, ?, ?)",
                    (
                        delivery_id,
                        hook.id,
                        event_type,
                        _compact(body),
                        now,
                        now,
                    ),
                )
                made += 1
            conn.execute("UPDATE events SET delivered_at = ? WHERE id = ?", (now, event_id))
        return len(events)

    def client(self) -> httpx.AsyncClient:
        """The delivery client: each connection goes to an address the outbound guard
        checked as it connected (no second DNS lookup), redirects are not followed."""
        return pinned_async_client(
            allow_private=self.config.allow_private_targets,
            allow_loopback=self.config.allow_loopback_targets,
            timeout=self.config.timeout_seconds,
        )

    async def run(self, poll_seconds: float = 0.5) -> None:
        """The delivery worker (a background task of `folio serve`)."""
        client = self.client()
        try:
            while True:
                try:
                    dispatched = await self.db.write(lambda c: self._dispatch(c, time.time()))
                    sent = await self._send_due(client)
                except Exception:  # noqa: BLE001 - the next round retries; nothing is lost
                    log.exception("webhook round failed")
                    dispatched = sent = 0
                if dispatched or sent:
                    continue
                self.wake.clear()
                try:
                    await asyncio.wait_for(self.wake.wait(), poll_seconds)
                except TimeoutError:
                    pass
        finally:
            await client.aclose()

    async def _send_due(self, client: httpx.AsyncClient, limit: int = 200) -> int:
        now = time.time()
        rows = self.db.read(
            lambda c: c.execute(
                "SELECT d.id, d.webhook_id, d.body, d.attempts, coalesce(d.target_url, w.url), w.secret_enc,"
                " d.account_id, d.event_type, d.one_shot FROM deliveries d LEFT JOIN webhooks w ON w.id = d.webhook_id"
                " WHERE d.status = 'pending' AND d.next_attempt_at <= ?"
                " AND (w.active = 1 OR d.target_url IS NOT NULL)"
                " ORDER BY d.next_attempt_at LIMIT ?",
                (now, limit),
            ).fetchall()
        )
        if rows:
            # Claimed before they are sent, in one write: a delivery is due again only once
            # its claim lapses, so several nodes (or workers) never send the same one twice;
            # one whose node dies mid-send is sent by another once a node sees it gone.
            until = now + 2 * self.config.timeout_seconds + CLAIM_SECONDS

            def claim(conn: sqlite3.Connection) -> set[str]:
                return {
                    row[0]
                    for row in rows
                    if conn.execute(
                        "UPDATE deliveries SET next_attempt_at = ?, claimed_by = ? WHERE id = ?"
                        " AND status = 'pending' AND next_attempt_at <= ? RETURNING id",
                        (until, self.node_id, row[0], now),
                    ).fetchone()
                }

            claimed = await self.db.write(claim)
            rows = [row for row in rows if row[0] in claimed]
            await asyncio.gather(*(self._attempt(client, *row) for row in rows))
        return len(rows)

    async def _attempt(
        self,
        client: httpx.AsyncClient,
        delivery_id: str,
        webhook_id: str,
        body: str,
        attempts: int,
        url: str,
        secret_enc: bytes | None,
        account_id: str | None,
        event_type: str,
        one_shot: int,
    ) -> None:
        raw = body.encode()
        if secret_enc is not None:
            secret = self.box.decrypt(secret_enc, webhook_id)
        else:
            secret = self.job_secret(account_id or "")
        status: int | None = None
        error: str | None = None
        excerpt: str | None = None
        started = time.monotonic()
        try:
            # The scheme again (settings change); the addresses are checked by the pinned
            # client as it connects, where a check still decides the address used.
            check_url_syntax(url, allow_http=self.config.allow_http)
            async with client.stream(
                "POST",
                url,
                content=raw,
                headers={
                    "content-type": "application/json",
                    "user-agent": "Folio-Webhooks/1",
                    SIGNATURE_HEADER.lower(): sign(secret, raw),
                    DELIVERY_HEADER.lower(): delivery_id,
                    EVENT_HEADER.lower(): event_type,
                },
            ) as response:
                status = response.status_code
                excerpt = await _first_bytes(response, EXCERPT_BYTES)
            if not 200 <= status < 300:
                error = f"HTTP {status}"
        except BlockedTarget as exc:
            error = f"blocked: {exc}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:300]
        outcome = Attempt(
            attempts + 1, status, error, (time.monotonic() - started) * 1000, excerpt, bool(one_shot)
        )
        disabled_account = await self.db.write(lambda c: self._record(c, delivery_id, webhook_id, outcome))
        if disabled_account is not None:
            self.listening.announce()
            self._refresh(disabled_account)

    def _record(
        self, conn: sqlite3.Connection, delivery_id: str, webhook_id: str, outcome: Attempt
    ) -> str | None:
        """Store an attempt's outcome; returns the account id when this disabled the webhook."""
        now = time.time()
        attempts, status, error = outcome.attempts, outcome.status, outcome.error
        seen = (outcome.latency_ms, outcome.excerpt)
        if error is None:
            conn.execute(
                "UPDATE deliveries SET status = 'delivered', attempts = ?, last_status = ?, last_error = NULL,"
                " finished_at = ?, latency_ms = ?, response_excerpt = ?, claimed_by = NULL WHERE id = ?",
                (attempts, status, now, *seen, delivery_id),
            )
            conn.execute("UPDATE webhooks SET failures = 0 WHERE id = ?", (webhook_id,))
            return None
        if attempts > self.config.retries or outcome.one_shot:
            conn.execute(
                "UPDATE deliveries SET status = 'failed', attempts = ?, last_status = ?, last_error = ?,"
                " finished_at = ?, latency_ms = ?, response_excerpt = ?, claimed_by = NULL WHERE id = ?",
                (attempts, status, error, now, *seen, delivery_id),
            )
        else:
            delay = self.config.backoff_seconds * 2 ** (attempts - 1)
            conn.execute(
                "UPDATE deliveries SET attempts = ?, last_status = ?, last_error = ?, next_attempt_at = ?,"
                " latency_ms = ?, response_excerpt = ?, claimed_by = NULL WHERE id = ?",
                (attempts, status, error, now + delay, *seen, delivery_id),
            )
        failures = conn.execute(
            "UPDATE webhooks SET failures = failures + 1, last_error = ? WHERE id = ? RETURNING failures, account_id",
            (error, webhook_id),
        ).fetchone()
        if failures is not None and failures[0] >= self.config.disable_after_failures:
            # Attempts of the same round may land after the one that disabled it: the first
            # one is the failure the dashboard names.
            if conn.execute(
                "UPDATE webhooks SET active = 0, disabled_at = ?, disabled_after = ? WHERE id = ? AND active = 1",
                (now, failures[0], webhook_id),
            ).rowcount:
                cache_epochs.bump(conn, cache_epochs.WEBHOOKS)
            log.warning("webhook %s disabled after %d consecutive failures", webhook_id, failures[0])
            return failures[1]
        return None
