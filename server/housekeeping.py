"""Housekeeping: the tables that would only grow, pruned on a schedule (`[housekeeping]`).

What may go is each table owner's rule, next to its schema: dispatched events
(`core.events.prune_events`), finished webhook deliveries (`core.webhooks.prune_deliveries`),
expired sessions (`core.sessions.prune_sessions`), dead share links
(`restapi.shares.prune_shares`), document assets past their link's expiry
(`docgen.jobs.expired_assets`, deleted with their files by `DocService.delete_asset`) and
finished document jobs (`docgen.jobs.prune_jobs`). This module decides only when, and how
much at a time: a pass at start-up and every `interval_seconds`, each table emptied of what
retention lets go in batches of `BATCH_ROWS` rows, one transaction each. Writes run on the
event loop (core/db.py), so a batch is a pause for every other request: a batch of 2,000
rows takes milliseconds, and the requests queued behind it go between two batches.

SQLite reuses the pages a delete frees (they go to the file's free list and the next
inserts take them), so the file stops growing once retention is reached; it does not
shrink, and needs no VACUUM (docs/operations.md, "Housekeeping").
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable
from typing import Any

from core.config import Config
from core.db import Database
from core.events import prune_events
from core.sessions import prune_sessions
from core.sql_dialect import is_sqlite
from core.webhooks import prune_deliveries
from docgen.jobs import expired_assets, month_start_ms, prune_jobs
from docgen.service import DocService
from restapi.shares import prune_shares

log = logging.getLogger("folio.housekeeping")

DAY = 86400.0
# Rows deleted per transaction. Measured here: a batch of 2,000 events takes 3-5 ms (the
# 100,000 events of tests/test_housekeeping.py went in 27 batches, 0.12 s in all); the
# longest batch of a 10-minute soak was 59 ms, with other work taking over a core.
BATCH_ROWS = 2000
# Assets are deleted one by one with their stored files; this many are looked up at a time.
ASSET_BATCH = 200

DeleteAsset = Callable[[str, str], Awaitable[bool]]
Prune = Callable[[sqlite3.Connection, float, int], int]


class Housekeeping:
    """One pass (`run_once`) or the background task of `folio serve` (`run`)."""

    def __init__(
        self, db: Database, config: Config, delete_asset: DeleteAsset, *, batch_rows: int = BATCH_ROWS
    ) -> None:
        self.db = db
        self.settings = config.housekeeping
        self.asset_link_seconds = config.docgen.asset_link_seconds
        self.delete_asset = delete_asset
        self.batch_rows = batch_rows
        # The longest batch of the last pass, in seconds: how long it held the writer (and
        # the event loop) at most.
        self.longest_batch = 0.0

    async def run(self) -> None:
        """A pass at start-up, then one every `interval_seconds`; a failed pass is logged
        and the next one tries again (nothing is lost by pruning late)."""
        interval = max(self.settings.interval_seconds, 0.1)
        while True:
            started = time.monotonic()
            try:
                pruned = await self.run_once()
            except Exception:  # noqa: BLE001 - the next pass retries
                log.exception("housekeeping pass failed")
            else:
                if any(pruned.values()):
                    log.info(
                        "housekeeping pruned %s in %.2f s (longest batch %.1f ms)",
                        ", ".join(f"{n} {table}" for table, n in pruned.items() if n),
                        time.monotonic() - started,
                        self.longest_batch * 1000,
                    )
            await asyncio.sleep(interval)

    async def run_once(self, now: float | None = None) -> dict[str, int]:
        """Prune every table once, as if the clock read `now`; how many rows went from each."""
        now = time.time() if now is None else now
        self.longest_batch = 0.0
        days = self.settings
        grace = max(days.expired_grace_days, 0.0) * DAY
        pruned = {"events": 0, "deliveries": 0, "sessions": 0, "shares": 0, "assets": 0, "jobs": 0}
        # A retention of 0 days (or less) keeps that table whole.
        if days.events_days > 0:
            pruned["events"] = await self._drain(prune_events, now - days.events_days * DAY)
        if days.deliveries_days > 0:
            pruned["deliveries"] = await self._drain(prune_deliveries, now - days.deliveries_days * DAY)
        pruned["sessions"] = await self._drain(prune_sessions, now - grace)
        pruned["shares"] = await self._drain(prune_shares, now - grace)
        pruned["assets"] = await self._delete_assets(int((now - self.asset_link_seconds - grace) * 1000))
        if days.jobs_days > 0:
            # Never the current month's jobs: the plan's monthly document calls count them.
            before_ms = min(int((now - days.jobs_days * DAY) * 1000), month_start_ms(now))
            pruned["jobs"] = await self._drain(prune_jobs, before_ms)
        return pruned

    async def _drain(self, prune: Prune, before: float) -> int:
        """Batches of `prune` until one comes back short: each its own transaction, so
        other writes go in between (each write awaits its group's commit)."""
        total = 0

        def batch(conn: sqlite3.Connection) -> int:
            started = time.perf_counter()
            try:
                return prune(conn, before, self.batch_rows)
            finally:
                self.longest_batch = max(self.longest_batch, time.perf_counter() - started)

        while True:
            removed = await self.db.write(batch)
            total += removed
            if removed < self.batch_rows:
                return total

    async def _delete_assets(self, made_before_ms: int) -> int:
        deleted = 0
        while True:
            batch = self.db.read(lambda c: expired_assets(c, made_before_ms, ASSET_BATCH))
            progress = 0
            for account_id, asset_id in batch:
                try:
                    if await self.delete_asset(account_id, asset_id):
                        progress += 1
                except Exception:  # noqa: BLE001 - one asset's failure must not stop the rest
                    log.exception("housekeeping could not delete asset %s", asset_id)
            deleted += progress
            # A short batch was the last; one where nothing could be deleted would come back
            # the same: both end this pass.
            if len(batch) < ASSET_BATCH or not progress:
                return deleted


def database_pages(db: Database) -> dict[str, int]:
    """The database file's size in pages and how many of them are free (reused by inserts).
    On PostgreSQL, the database's size in bytes (its free space is VACUUM's business)."""

    def read(c: sqlite3.Connection) -> dict[str, int]:
        if not is_sqlite(c):
            return {"bytes": int(c.execute("SELECT pg_database_size(current_database())").fetchone()[0])}
        return {
            "pages": c.execute("PRAGMA page_count").fetchone()[0],
            "freePages": c.execute("PRAGMA freelist_count").fetchone()[0],
            "pageSize": c.execute("PRAGMA page_size").fetchone()[0],
        }

    return db.read(read)


def add_housekeeping_command(admin_commands: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """`folio admin housekeeping`: one pass now (the server also runs them on its own)."""
    command = admin_commands.add_parser(
        "housekeeping", help="prune old events, deliveries, sessions, share links, assets and jobs now"
    )
    common(command)
    command.add_argument(
        "--now", type=float, help="apply retention as if the clock read this Unix time (default: now)"
    )


async def housekeeping_now(runtime: Any, config: Config, now: float | None) -> dict[str, Any]:
    """The admin command's pass: assets are deleted with their files through a document
    service of its own (its workers are never started)."""
    service = DocService(
        runtime.store, runtime.accounts, runtime.doc_keys, runtime.db, runtime.box, config, runtime.webhooks
    )
    try:
        pruned = await Housekeeping(runtime.db, config, service.delete_asset).run_once(now)
    finally:
        service.close()
    return {"pruned": pruned, "database": database_pages(runtime.db)}
