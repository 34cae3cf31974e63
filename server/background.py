"""Periodic work of a running Folio: sweeping multipart uploads left incomplete, Time
Machine retention, and the integrity scrub."""

from __future__ import annotations

import asyncio
import logging
import time

from core.config import Config
from s3proxy.store.engine import Store
from s3proxy.store.scrub import Scrub

log = logging.getLogger("folio.background")

DAY = 86400.0


async def sweep_incomplete_uploads(store: Store, config: Config) -> None:
    """Abort uploads older than `[limits] multipart_expiry_days`, checking a few times
    per expiry period (at most hourly)."""
    max_age = config.limits.multipart_expiry_days * DAY
    interval = min(3600.0, max(max_age / 4, 0.1))
    while True:
        await asyncio.sleep(interval)
        try:
            expired = await store.expire_uploads(max_age)
        except Exception:  # noqa: BLE001 - a failed sweep is retried at the next tick
            log.exception("sweeping incomplete multipart uploads failed")
            continue
        if expired:
            log.info("aborted %d incomplete multipart uploads older than %.1f days", expired, max_age / DAY)


async def prune_versions(store: Store, config: Config) -> None:
    """Time Machine retention for every versioned bucket, every
    `[versioning] prune_interval_seconds` (writes also prune the key they touch)."""
    interval = max(config.versioning.prune_interval_seconds, 0.1)
    while True:
        await asyncio.sleep(interval)
        try:
            removed = await store.prune_versions()
        except Exception:  # noqa: BLE001 - a failed pass is retried at the next tick
            log.exception("pruning versions failed")
            continue
        if removed:
            log.info("pruned %d versions past their retention", removed)


async def scrub_periodically(store: Store, config: Config) -> None:
    """Re-read and verify every blob and inline object every `[storage]
    scrub_interval_seconds` (0: never), at most `scrub_bytes_per_second` so requests keep
    the disk. Due one interval after the last scrub or `folio check` on record (after start
    when there is none). It reports (log, /healthz, metrics) and repairs nothing."""
    interval = config.storage.scrub_interval_seconds
    if interval <= 0:
        return
    started = time.time()
    failed_at: float | None = None
    while True:
        last = store.integrity.last_scrub
        due = (last.finished_at if last is not None else started) + interval
        if failed_at is not None:  # not at once again: an hour later (or an interval, if shorter)
            due = max(due, failed_at + min(interval, 3600.0))
        await asyncio.sleep(max(due - time.time(), 1.0))
        try:
            summary = await Scrub(
                store, kind="scrub", bytes_per_second=config.storage.scrub_bytes_per_second
            ).run()
        except Exception:  # noqa: BLE001 - a failed pass is tried again later
            log.exception("the integrity scrub failed")
            failed_at = time.time()
            continue
        failed_at = None
        report = log.warning if summary.damaged else log.info
        report(
            "integrity scrub: %d blobs and %d inline objects, %.1f MB in %.0f s; %s",
            summary.blobs_checked,
            summary.inline_checked,
            summary.bytes_checked / 1e6,
            summary.seconds,
            "DAMAGED (run `folio check` for the list)" if summary.damaged else "clean",
        )
