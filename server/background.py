"""Periodic work of a running Folio: sweeping multipart uploads left incomplete."""

from __future__ import annotations

import asyncio
import logging

from core.config import Config
from s3proxy.store.engine import Store

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
