"""Rewind (the Time Machine for a folder): which version of each key under a prefix was
current at a moment, and restoring the folder to that moment.

A key's version current at T is its newest version written at or before T (a delete
marker there: the key was deleted at T). Restoring copies that version over the key
as a new version (restapi.versions.restore_version), so history is only added to.
Nothing is overwritten that did not change since T: unchanged keys (same version, or
the same bytes) are skipped, keys created after T are left alone, and each copy is
conditional on the key being as the plan saw it (If-Match on its current ETag, or
nothing there for a deleted key): a key written in the meantime is skipped, not lost.

Retention prunes a key's oldest versions first, so a version current at T that was
pruned leaves no older one behind: such a key looks created after T and is left alone."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from core.jsonapi import ApiError
from restapi import versions
from restapi.files import RestServices
from s3proxy.store.models import Bucket, WriteConditions
from s3proxy.store.version_listing import VersionEntry

PAGE = 1000
# Versions read for one plan: a folder larger than this is planned only in part (said so).
MAX_VERSIONS = 100_000
CONCURRENCY = 8

UNCHANGED, RESTORE, NEWER, ABSENT = "unchanged", "restore", "created-after", "absent"


@dataclass(frozen=True)
class RewindItem:
    key: str
    then: VersionEntry | None  # the version current at T (None: no file there at T)
    now: VersionEntry  # the key's newest version (maybe a delete marker)
    action: str  # UNCHANGED, RESTORE, NEWER (created after T: untouched) or ABSENT


@dataclass
class RewindPlan:
    items: list[RewindItem]
    truncated: bool

    def count(self, action: str) -> int:
        return sum(item.action == action for item in self.items)


def _item(key: str, history: list[VersionEntry], at: float) -> RewindItem:
    now = history[0]
    then = next((entry for entry in history if entry.last_modified <= at), None)
    if then is not None and then.is_delete_marker:
        then = None
    if then is None:
        return RewindItem(key, None, now, ABSENT if now.is_delete_marker else NEWER)
    same = now.version_id == then.version_id or (
        not now.is_delete_marker and now.etag == then.etag and now.size == then.size
    )
    return RewindItem(key, then, now, UNCHANGED if same else RESTORE)


def plan(services: RestServices, bucket: Bucket, prefix: str, at: float) -> RewindPlan:
    """Every key under `prefix` (all levels) with what restoring it to `at` would do."""
    items: list[RewindItem] = []
    key_marker: str | None = None
    version_marker: str | None = None
    current: list[VersionEntry] = []
    read = 0
    truncated = False
    while True:
        page = services.store.list_versions(
            bucket, prefix=prefix, key_marker=key_marker, version_id_marker=version_marker, max_keys=PAGE
        )
        for entry in page.entries:
            if current and current[0].key != entry.key:
                items.append(_item(current[0].key, current, at))
                current = []
            current.append(entry)
        read += len(page.entries)
        if not page.is_truncated:
            break
        if read >= MAX_VERSIONS:
            truncated = True
            current = []  # a key cut in the middle is left out rather than judged on part of its history
            break
        key_marker, version_marker = page.next_key_marker, page.next_version_id_marker
    if current:
        items.append(_item(current[0].key, current, at))
    return RewindPlan(items, truncated)


@dataclass
class RewindResult:
    restored: int = 0
    skipped: int = 0  # changed while the rewind ran: left as they were
    failed: list[tuple[str, str]] | None = None


async def rewind(
    services: RestServices,
    bucket: Bucket,
    prefix: str,
    at: float,
    progress: Callable[[int, int], None] | None = None,
) -> RewindResult:
    """Restore every key under `prefix` that changed since `at` to its version then.
    `progress(done, total)` is called before the first restore and after each one."""
    todo = [item for item in plan(services, bucket, prefix, at).items if item.action == RESTORE]
    result = RewindResult(failed=[])
    gate = asyncio.Semaphore(CONCURRENCY)
    finished = 0
    if progress is not None:
        progress(0, len(todo))

    async def one(item: RewindItem) -> None:
        nonlocal finished
        assert item.then is not None
        if item.now.is_delete_marker:
            conditions = WriteConditions(if_none_match_any=True)
        else:
            conditions = WriteConditions(if_match=item.now.etag)
        async with gate:
            try:
                await versions.restore_version(
                    services, bucket, item.key, item.then.version_id, conditions=conditions
                )
            except ApiError as exc:
                # 412, or 404: the key (or the version) went away meanwhile.
                if exc.code == "PreconditionFailed" or exc.status == 404:
                    result.skipped += 1
                else:
                    assert result.failed is not None
                    result.failed.append((item.key, exc.message))
            else:
                result.restored += 1
            finished += 1
            if progress is not None:
                progress(finished, len(todo))

    await asyncio.gather(*(one(item) for item in todo))
    return result
