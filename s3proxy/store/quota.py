"""Storage quotas. Usage lives in the database (`buckets.bytes_used`, kept by
triggers); uploads in flight hold reservations here, so that concurrent writes can
never pass the quota together; and every write transaction settles against the
limit before it commits, so a refused write leaves nothing behind.

Events: `quota.warning` when usage crosses 80% of the quota, `quota.exceeded` when
it reaches 100% or a write is refused (at most once an hour for refusals)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass

from core.db import Database
from core.events import record_event
from s3proxy.store.errors import QuotaExceeded, full_disk_refused

WARNING_RATIO = 0.8
REFUSAL_EVENT_INTERVAL = 3600.0
_LEVEL_EVENTS = {1: "quota.warning", 2: "quota.exceeded"}


@dataclass(frozen=True)
class Usage:
    bytes: int
    objects: int
    # bucket name -> (bytes, objects)
    buckets: dict[str, tuple[int, int]]


def account_bytes(conn: sqlite3.Connection, account_id: str) -> int:
    return conn.execute(
        "SELECT coalesce(sum(bytes_used), 0) FROM buckets WHERE account_id = ?", (account_id,)
    ).fetchone()[0]


def account_usage(conn: sqlite3.Connection, account_id: str) -> Usage:
    rows = conn.execute(
        "SELECT name, bytes_used, object_count FROM buckets WHERE account_id = ? ORDER BY name", (account_id,)
    ).fetchall()
    return Usage(
        bytes=sum(r[1] for r in rows),
        objects=sum(r[2] for r in rows),
        buckets={r[0]: (r[1], r[2]) for r in rows},
    )


def _level(used: int, limit: int) -> int:
    if used >= limit:
        return 2
    return 1 if used >= limit * WARNING_RATIO else 0


def _payload(used: int, limit: int) -> dict[str, object]:
    return {"bytesUsed": used, "quotaBytes": limit, "percentUsed": round(100 * used / limit, 1)}


def _announce_level(conn: sqlite3.Connection, account_id: str, level: int, used: int, limit: int, now: float) -> None:
    row = conn.execute("SELECT level FROM quota_levels WHERE account_id = ?", (account_id,)).fetchone()
    stored = row[0] if row else 0
    if level == stored:
        return
    for crossed in range(stored + 1, level + 1):
        record_event(conn, account_id, _LEVEL_EVENTS[crossed], _payload(used, limit), now)
    conn.execute(
        "INSERT INTO quota_levels (account_id, level) VALUES (?, ?)"
        " ON CONFLICT(account_id) DO UPDATE SET level = excluded.level",
        (account_id, level),
    )


def settle(
    conn: sqlite3.Connection, account_id: str, limit: int, before: int, reserved_by_others: int, now: float
) -> int:
    """At the end of a write transaction: refuse (roll back) a write that grew usage
    past the limit, counting what other uploads in flight have reserved; record the
    thresholds it crossed. Returns the usage after the write."""
    after = account_bytes(conn, account_id)
    if after > before and after + reserved_by_others > limit:
        raise QuotaExceeded(
            "Upload would exceed your plan's storage quota.", used=before, quota=limit
        )
    if _level(after, limit) != _level(before, limit):
        _announce_level(conn, account_id, _level(after, limit), after, limit, now)
    return after


def record_refusal(conn: sqlite3.Connection, account_id: str, used: int, limit: int, now: float) -> None:
    row = conn.execute("SELECT refused_at FROM quota_levels WHERE account_id = ?", (account_id,)).fetchone()
    if row is not None and row[0] is not None and now - row[0] < REFUSAL_EVENT_INTERVAL:
        return
    record_event(conn, account_id, "quota.exceeded", {**_payload(used, limit), "refused": True}, now)
    conn.execute(
        "INSERT INTO quota_levels (account_id, refused_at) VALUES (?, ?)"
        " ON CONFLICT(account_id) DO UPDATE SET refused_at = excluded.refused_at",
        (account_id, now),
    )


class Quotas:
    """Reservations of uploads in flight, per account (in this process)."""

    def __init__(self, db: Database, limit_of: Callable[[str], int]) -> None:
        self.db = db
        self.limit_of = limit_of
        self._reserved: dict[str, int] = {}
        self._last_used: dict[str, int] = {}
        # Writes refused for the quota, for /metrics (every refusal comes through refuse()).
        self.refusals = 0

    def reserved(self, account_id: str) -> int:
        return self._reserved.get(account_id, 0)

    def reservation(self, account_id: str, credit: Callable[[], int] | None = None) -> Reservation:
        return Reservation(self, account_id, credit)

    def used(self, account_id: str) -> int:
        # The writer's view: writes waiting for their group commit are usage already
        # (their reservations were handed back when they settled).
        used = self.db.read_own_writes(lambda c: account_bytes(c, account_id))
        self._last_used[account_id] = used
        return used

    def used_hint(self, account_id: str) -> int:
        """Usage as last read or settled in this process: every write that grows usage
        settles here and records it, so the hint never runs behind this process's own
        writes (what others free only makes it high). Admission uses it to spare a
        query per upload, and asks `used()` before refusing."""
        hint = self._last_used.get(account_id)
        return self.used(account_id) if hint is None else hint

    def settled(self, account_id: str, used: int) -> None:
        self._last_used[account_id] = used

    def forget(self, account_id: str | None = None) -> None:
        """Drop the hint (all of them with None): usage changed without settling here
        (an unlimited plan's writes, which may later become limited) or fell."""
        if account_id is None:
            self._last_used.clear()
        else:
            self._last_used.pop(account_id, None)

    async def refuse(self, account_id: str, used: int, limit: int) -> QuotaExceeded:
        self.refusals += 1
        with full_disk_refused():
            await self.db.write(lambda c: record_refusal(c, account_id, used, limit, time.time()))
        return QuotaExceeded("Upload would exceed your plan's storage quota.", used=used, quota=limit)

    def _adjust(self, account_id: str, delta: int) -> None:
        total = self._reserved.get(account_id, 0) + delta
        if total:
            self._reserved[account_id] = total
        else:
            self._reserved.pop(account_id, None)


class Reservation:
    """Space one write holds while its bytes arrive: `require(n)` before they do
    (the declared length, or the running total of a body of unknown length).

    `credit` tells what the write frees when it commits (a replaced null version,
    versions pruned by retention); it is consulted only when the write would not fit
    without it, and the write then holds only its net growth. The commit settles
    against the real figures either way."""

    def __init__(self, quotas: Quotas, account_id: str, credit: Callable[[], int] | None = None) -> None:
        self.quotas = quotas
        self.account_id = account_id
        self.amount = 0  # held (net of credit)
        self.gross = 0  # bytes asked for
        self.limit = quotas.limit_of(account_id)
        self._credit = credit
        self._credit_bytes: int | None = None

    async def require(self, nbytes: int) -> None:
        if not self.limit or nbytes <= self.gross:
            return
        quotas = self.quotas
        used = quotas.used_hint(self.account_id)
        others = quotas.reserved(self.account_id) - self.amount
        net = nbytes
        if used + others + net > self.limit:
            used = quotas.used(self.account_id)  # exact, before refusing on a hint
        if used + others + net > self.limit and self._credit is not None:
            if self._credit_bytes is None:
                self._credit_bytes = self._credit()
            net = max(0, nbytes - self._credit_bytes)
        if used + others + net > self.limit:
            raise await quotas.refuse(self.account_id, used, self.limit)
        quotas._adjust(self.account_id, net - self.amount)
        self.amount, self.gross = net, nbytes

    def release(self) -> None:
        if self.amount:
            self.quotas._adjust(self.account_id, -self.amount)
        self.amount = self.gross = 0

    def __enter__(self) -> Reservation:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()
