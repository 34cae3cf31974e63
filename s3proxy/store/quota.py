"""Storage quotas. Usage lives in the database (`buckets.bytes_used`, kept by
triggers); uploads in flight hold reservations, so that concurrent writes can never
pass the quota together; and every write transaction settles against the limit before
it commits, so a refused write leaves nothing behind.

Several processes may serve one database (`--workers N`, or nodes on PostgreSQL), so
what decides is in the database: usage is read exactly inside each write transaction
(never a figure remembered by this process), and a reservation of `SHARED_BYTES` or more
is a `quota_reservations` row that every process counts. The row is written with the
admission check in one transaction, deleted in the transaction that records the write
(or when the upload ends without one), and renewed while the upload streams: a process
killed mid-upload leaves a row that stops counting at `expires_at` (`[limits]
quota_reservation_seconds`). Smaller reservations stay in this process: their bytes are
in flight for milliseconds and are counted exactly when they commit. So do all of them
when this process is the only one (SQLite, one worker, no other live node): a row would
cost a durable write before each body is read (measured: 2-3 ms of every 1 MiB PUT)
for nobody to count, and each write's transaction decides exactly anyway.

Events: `quota.warning` when usage crosses 80% of the quota, `quota.exceeded` when
it reaches 100% or a write is refused (at most once an hour for refusals)."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from core import nodes
from core.db import Database, Migration
from core.events import record_event
from s3proxy.store.errors import QuotaExceeded, full_disk_refused

log = logging.getLogger("folio.store")

MIGRATIONS = [
    Migration(
        "s3proxy.store.quota",
        1,
        """
        -- Quota held by uploads in flight, counted by every process (see the module's
        -- docstring). BIGINT and DOUBLE PRECISION: the same width on SQLite and PostgreSQL.
        CREATE TABLE quota_reservations (
            id TEXT PRIMARY KEY,
            account_id TEXT NOT NULL,
            bytes BIGINT NOT NULL,
            node TEXT NOT NULL,
            expires_at DOUBLE PRECISION NOT NULL
        );
        CREATE INDEX quota_reservations_by_account ON quota_reservations(account_id, expires_at);
        """,
    )
]

# A reservation this big or bigger is shared through the database (see above).
SHARED_BYTES = 1024 * 1024
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


def standing(conn: sqlite3.Connection, account_id: str, node: str, now: float) -> tuple[int, int]:
    """The account's usage and what uploads of other processes hold (live rows of other
    nodes: this process counts its own reservations itself), in one statement."""
    row = conn.execute(
        "SELECT (SELECT coalesce(sum(bytes_used), 0) FROM buckets WHERE account_id = ?),"
        " (SELECT coalesce(sum(bytes), 0) FROM quota_reservations"
        " WHERE account_id = ? AND node <> ? AND expires_at > ?)",
        (account_id, account_id, node, now),
    ).fetchone()
    return int(row[0]), int(row[1])


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


def _announce_level(
    conn: sqlite3.Connection, account_id: str, level: int, used: int, limit: int, now: float
) -> None:
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
        raise QuotaExceeded("Upload would exceed your plan's storage quota.", used=before, quota=limit)
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


class _Refused(Exception):
    """Admission found no room (inside the write transaction that would have shared it)."""

    def __init__(self, used: int) -> None:
        self.used = used


class Quotas:
    """Reservations of uploads in flight, per account: all of this process's in memory,
    the big ones also as rows every process counts."""

    def __init__(
        self,
        db: Database,
        limit_of: Callable[[str], int],
        expiry_seconds: float = 60.0,
        *,
        always_share: bool = True,
    ) -> None:
        self.db = db
        # Whether other processes may write to this database whatever the node count says
        # (PostgreSQL, `--workers N`); otherwise big reservations are shared only while
        # another node is live (someone serving the same data directory).
        self.always_share = always_share
        self.limit_of = limit_of
        self.expiry_seconds = expiry_seconds
        # Renewed well before it expires, and at least every few seconds.
        self.renew_seconds = min(5.0, expiry_seconds / 4)
        # Who owns a row: this process, for as long as it lives.
        self.node = f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(4)}"
        self._reserved: dict[str, int] = {}
        # (usage, what other processes hold) as this process last read or wrote it: admission
        # of a small upload starts from it, to spare a query per upload. Never behind this
        # process's own writes (each write settles here); other processes' writes make it
        # low, so admission may let through what the write's own transaction then refuses,
        # exactly (engine.write_object reads both figures there).
        self._hints: dict[str, tuple[int, int]] = {}
        # Reservation.settle() runs in the write transaction: on PostgreSQL that is the writer
        # thread (core.db_postgres), while the loop admits and releases others.
        self._reserved_lock = threading.Lock()
        self._shared: dict[str, Reservation] = {}  # row id -> its reservation
        self._renewer: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()  # row deletions in flight
        # Writes refused for the quota, for /metrics (every refusal comes through refuse()).
        self.refusals = 0

    def sharing(self) -> bool:
        """Whether a big reservation must be a row other processes count."""
        return self.always_share or nodes.live_node_count() > 1

    def reserved(self, account_id: str) -> int:
        """What this process's uploads into the account hold now."""
        return self._reserved.get(account_id, 0)

    def reservation(self, account_id: str, credit: Callable[[], int] | None = None) -> Reservation:
        return Reservation(self, account_id, credit)

    def used(self, account_id: str) -> int:
        # The writer's view: writes waiting for their group commit are usage already
        # (their reservations were handed back when they settled).
        return self.db.read_own_writes(lambda c: account_bytes(c, account_id))

    def standing_hint(self, account_id: str) -> tuple[int, int] | None:
        """(usage, what other processes' uploads hold) as this process last read or settled
        them; None when it has no figures for the account yet."""
        return self._hints.get(account_id)

    def settled(self, account_id: str, used: int, remote: int) -> None:
        """A write transaction's figures: `used` after it (or an upper bound)."""
        if len(self._hints) > 100000:
            self._hints.clear()
        self._hints[account_id] = (used, remote)

    async def refuse(self, account_id: str, used: int, limit: int) -> QuotaExceeded:
        self.refusals += 1
        with full_disk_refused():
            await self.db.write(lambda c: record_refusal(c, account_id, used, limit, time.time()))
        return QuotaExceeded("Upload would exceed your plan's storage quota.", used=used, quota=limit)

    def _adjust(self, account_id: str, delta: int) -> None:
        with self._reserved_lock:
            total = self._reserved.get(account_id, 0) + delta
            if total:
                self._reserved[account_id] = total
            else:
                self._reserved.pop(account_id, None)

    def _decide(self, conn: sqlite3.Connection, reservation: Reservation, nbytes: int) -> int:
        """Admit `nbytes` for the reservation if they fit, exactly: usage, other processes'
        rows and this process's admitted reservations, read where no write of this process
        is half done. Returns the amount it now holds (net of credit); raises _Refused."""
        account_id, limit = reservation.account_id, reservation.limit
        used, remote = standing(conn, account_id, self.node, time.time())
        self._hints[account_id] = (used, remote)
        others = remote + self.reserved(account_id) - reservation.amount
        net = nbytes
        if used + others + net > limit and reservation._credit is not None:
            if reservation._credit_bytes is None:
                reservation._credit_bytes = reservation._credit()
            net = max(0, nbytes - reservation._credit_bytes)
        if used + others + net > limit:
            raise _Refused(used)
        self._adjust(account_id, net - reservation.amount)
        reservation.amount, reservation.gross = net, nbytes
        return net

    async def _admit(self, reservation: Reservation, nbytes: int, share: bool) -> None:
        """Admission that must be exact (the hint said no, or the reservation is big enough
        to be shared). Decided and counted in this process's write order: on PostgreSQL a
        write's body hands its reservation back before its COMMIT, and a decision between
        the two would miss its bytes (admitting too much, then refusing at commit an upload
        that fitted); and admissions decided one after another never count each other's
        amounts before they are admitted (refusing what fits)."""
        if not share:
            await self.db.read_in_write_order(lambda conn: self._decide(conn, reservation, nbytes))
            return
        reservation.id = reservation.id or uuid.uuid4().hex
        row_id = reservation.id

        def admit(conn: sqlite3.Connection) -> int:
            # The check and the row in one transaction: two processes admitting at once are
            # serialized by the database.
            net = self._decide(conn, reservation, nbytes)
            now = time.time()
            # Rows of processes that died: they count no more, so they go.
            conn.execute(
                "DELETE FROM quota_reservations WHERE account_id = ? AND expires_at <= ?",
                (reservation.account_id, now),
            )
            if (
                conn.execute(
                    "UPDATE quota_reservations SET bytes = ?, expires_at = ? WHERE id = ?",
                    (net, now + self.expiry_seconds, row_id),
                ).rowcount
                == 0
            ):
                conn.execute(
                    "INSERT INTO quota_reservations (id, account_id, bytes, node, expires_at) VALUES (?, ?, ?, ?, ?)",
                    (row_id, reservation.account_id, net, self.node, now + self.expiry_seconds),
                )
            return net

        # Renewed from now on: should this task be cancelled while the write is under way,
        # release() deletes the row (whether or not it was written).
        self._shared[row_id] = reservation
        if self._renewer is None:
            self._renewer = asyncio.get_running_loop().create_task(self._renew())
        try:
            with full_disk_refused():
                reservation._row_bytes = await self.db.write(admit)
        except _Refused:
            if reservation._row_bytes == 0:  # it had no row before: none was written
                self._shared.pop(row_id, None)
            raise
        except BaseException:
            reservation._row_bytes = reservation._row_bytes or nbytes  # perhaps written: release() deletes it
            raise

    def _unshare(self, reservation: Reservation) -> None:
        """Delete the row of a reservation that ends without a write (aborted, refused):
        in the background, since a `with` block ends synchronously. Should the process die
        first, the row expires."""
        self._shared.pop(reservation.id, None)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        row_id = reservation.id
        task = loop.create_task(
            self.db.write(lambda c: c.execute("DELETE FROM quota_reservations WHERE id = ?", (row_id,)))
        )
        self._tasks.add(task)
        task.add_done_callback(self._deleted)

    def _deleted(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("quota reservation not deleted (it will expire): %s", task.exception())

    async def _renew(self) -> None:
        """While this process holds rows: push their expiry on (with their current
        amounts), and delete every row that expired (of processes that died)."""
        try:
            while True:
                await asyncio.sleep(self.renew_seconds)
                if not self._shared:
                    return
                now = time.time()
                rows = [(r.amount, now + self.expiry_seconds, row_id) for row_id, r in self._shared.items()]

                def renew(conn: sqlite3.Connection, rows: list = rows, now: float = now) -> None:
                    for row in rows:
                        conn.execute(
                            "UPDATE quota_reservations SET bytes = ?, expires_at = ? WHERE id = ?", row
                        )
                    conn.execute("DELETE FROM quota_reservations WHERE expires_at <= ?", (now,))

                try:
                    await self.db.write(renew)
                except Exception:  # noqa: BLE001 - the next round tries again before they expire
                    log.exception("renewing quota reservations failed")
        finally:
            self._renewer = None


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
        self.id = ""  # its row's id, given when it is first shared
        self.amount = 0  # held (net of credit)
        self.gross = 0  # bytes asked for
        self.limit = quotas.limit_of(account_id)
        self._credit = credit
        self._credit_bytes: int | None = None
        self._row_bytes = 0  # the amount its row holds (0: no row)
        self._row_settling = False  # deleted by a write transaction not yet known to commit

    async def require(self, nbytes: int) -> None:
        if not self.limit or nbytes <= self.gross:
            return
        quotas = self.quotas
        # Shared once it is big, and again each time it doubles (the renewal brings the row
        # up to date in between): a body of unknown length is a few writes, not one per piece.
        shares = nbytes >= SHARED_BYTES and nbytes >= 2 * self._row_bytes and quotas.sharing()
        if not shares:
            hint = quotas.standing_hint(self.account_id)
            if (
                hint is not None
                and sum(hint) + quotas.reserved(self.account_id) - self.amount + nbytes <= self.limit
            ):
                # Fits by this process's last figures: the write's transaction settles exactly.
                quotas._adjust(self.account_id, nbytes - self.amount)
                self.amount = self.gross = nbytes
                return
        try:
            await quotas._admit(self, nbytes, shares)
        except _Refused as refused:
            raise await quotas.refuse(self.account_id, refused.used, self.limit) from None

    def settle(self, conn: sqlite3.Connection) -> None:
        """In the write transaction that makes the bytes usage: hand the reservation back
        (holding it until the group commit is durable would count the bytes twice) and
        delete its row in that same transaction."""
        if self._row_bytes:
            conn.execute("DELETE FROM quota_reservations WHERE id = ?", (self.id,))
            self._row_settling = True
        if self.amount:
            self.quotas._adjust(self.account_id, -self.amount)
        self.amount = self.gross = 0

    def committed(self) -> None:
        """The transaction that settled it committed: its row is gone for good."""
        if self._row_settling:
            self.quotas._shared.pop(self.id, None)
            self._row_bytes = 0
            self._row_settling = False

    def release(self) -> None:
        if self.amount:
            self.quotas._adjust(self.account_id, -self.amount)
        self.amount = self.gross = 0
        if self._row_bytes:
            self._row_bytes = 0
            self._row_settling = False
            self.quotas._unshare(self)

    def __enter__(self) -> Reservation:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()
