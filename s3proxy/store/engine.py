"""`Store`: the object engine every service writes through (buckets, objects,
versions, listing, blobs). No HTTP here: the S3 API, the REST API, the image and
document services all call these methods in-process."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from core import cache_epochs
from core.acting import current_writer
from core.config import Config, PlanConfig
from core.db import Database
from core.events import record_event
from s3proxy.store import buckets as bucket_rows
from s3proxy.store import integrity, multipart, quota, retention
from s3proxy.store import versions as version_rows
from s3proxy.store.blob_store import BlobSource, BlobStore, open_blob_store
from s3proxy.store.errors import (
    BucketAccessDenied,
    NoSuchBucket,
    NoSuchKey,
    NoSuchUpload,
    NoSuchVersion,
    ObjectIsDeleteMarker,
    QuotaExceeded,
    StorageFull,
    full_disk_refused,
)
from s3proxy.store.free_space import FreeSpaceFloor
from s3proxy.store.listing import list_current
from s3proxy.store.models import (
    Bucket,
    BucketSettings,
    ListPage,
    ObjectMeta,
    ObjectVersion,
    Retention,
    Segment,
    WriteConditions,
)
from s3proxy.store.multipart import AlreadyCompleted, Finalizer, Part, RequestedPart, Upload
from s3proxy.store.naming import check_bucket_name, encode_key
from s3proxy.store.quota import Quotas, Reservation, Usage
from s3proxy.store.reader import ObjectReader
from s3proxy.store.reserve import SpaceReserve
from s3proxy.store.schema import MIGRATIONS
from s3proxy.store.version_listing import VersionPage, list_versions
from s3proxy.store.writer import Hasher, ObjectWriter

log = logging.getLogger("folio.store")

__all__ = ["Store", "MIGRATIONS", "DeleteResult"]

T = TypeVar("T")
NO_CONDITIONS = WriteConditions()
BUCKET_CACHE_SECONDS = 10.0


@dataclass(frozen=True)
class DeleteResult:
    version_id: str | None
    delete_marker: bool


class Store:
    def __init__(self, config: Config, db: Database, blobs: BlobStore | None = None) -> None:
        """`blobs`: where blob bytes live (s3proxy.store.blob_store.open_blob_store); the
        data directory's blobs/ by default."""
        self.config = config
        self.db = db
        self.blobs: BlobStore = blobs if blobs is not None else open_blob_store(config)
        self.reserve = SpaceReserve(Path(config.storage.data_dir) / "reserve", config.storage.reserve_bytes)
        storage = config.storage
        self.floor = FreeSpaceFloor(Path(storage.data_dir), storage.min_free_bytes, storage.min_free_percent)
        self.executor = ThreadPoolExecutor(max_workers=16, thread_name_prefix="folio-io")
        # Checksums checked on read, damage counted and marked (s3proxy.store.integrity).
        self.integrity = integrity.Integrity(db.read, self._write, verify_reads=config.storage.verify_reads)
        # name -> (expiry, bucket). Every change to a bucket row bumps the `buckets` cache
        # epoch in its transaction, and every process checks it before using this cache
        # (core.cache_epochs): an ACL or policy made through any process applies to the next
        # request everywhere. The expiry only bounds how long an unused entry stays.
        self._buckets: dict[str, tuple[float, Bucket]] = {}
        self._buckets_epoch = cache_epochs.watch(db, cache_epochs.BUCKETS)
        # The plan of an account (quota, bucket limit, retention). The runtime replaces
        # this with a lookup in the accounts table; alone, every account has the default.
        default_plan = config.plan(config.accounts.default_plan)
        self.plan_of: Callable[[str], PlanConfig] = lambda _account_id: default_plan
        self.quotas = Quotas(
            db,
            lambda account_id: self.plan_of(account_id).storage_bytes,
            config.limits.quota_reservation_seconds,
            always_share=bool(config.database.url) or config.server.workers > 1,
        )
        # Accounts with an active webhook (kept by core.webhooks): only their writes
        # record object and bucket events in the outbox.
        self.event_accounts: set[str] = set()
        # Called after a write recorded such an event (wakes the delivery worker).
        self.events_recorded: Callable[[], None] = lambda: None

    # -- lifecycle ----------------------------------------------------------------------------

    def recover(self) -> tuple[int, int]:
        """Start-up, before serving: drop uploads that were in flight and blobs no row
        references (a crash between the blob's rename and its row's commit)."""
        tmp_removed = self.blobs.empty_tmp()
        self.reserve.restore()
        self.floor.report_at_start()
        referenced = self.db.read(version_rows.referenced_blob_ids)
        # An upstream bucket is shared with other nodes, whose uploads in flight are younger
        # than the grace; a local directory is this process's alone.
        grace = 0.0 if self.blobs.backend == "local" else float(self.config.storage.gc_grace_seconds)
        blobs_removed = self.blobs.remove_unreferenced(referenced, grace)
        if tmp_removed or blobs_removed:
            log.info(
                "recovery removed %d temporary files and %d unreferenced blobs", tmp_removed, blobs_removed
            )
        return tmp_removed, blobs_removed

    async def collect_garbage(self, grace_seconds: float | None = None) -> int:
        grace = self.config.storage.gc_grace_seconds if grace_seconds is None else grace_seconds
        referenced = await self.db.read_async(version_rows.referenced_blob_ids)
        return await asyncio.get_running_loop().run_in_executor(
            self.executor, self.blobs.remove_unreferenced, referenced, grace
        )

    def close(self) -> None:
        self.executor.shutdown(wait=True)
        self.blobs.close()

    async def _write(self, fn: Callable[[sqlite3.Connection], T], *, frees_space: bool = False) -> T:
        """`db.write`, with SQLite's "database or disk is full" as `StorageFull` (small
        objects live in the database, so a full disk reaches them there). A write that
        frees space (a delete) spends the reserve on a full disk and runs again."""
        try:
            with full_disk_refused():
                value = await self.db.write(fn)
        except StorageFull:
            if not frees_space:
                raise
            # Once, whether this call or a neighbour in its commit group freed the reserve.
            self.reserve.release()
            with full_disk_refused():
                value = await self.db.write(fn)
        if self.reserve.released:
            self.executor.submit(self.reserve.restore)
        return value

    # -- buckets ------------------------------------------------------------------------------

    def bucket(self, name: str) -> Bucket | None:
        if self._buckets_epoch.moved():
            self._buckets.clear()
        cached = self._buckets.get(name)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        found = self.db.read(lambda c: bucket_rows.bucket_by_name(c, name))
        if found is not None:
            self._remember(found)
        else:
            self._buckets.pop(name, None)
        return found

    def _remember(self, bucket: Bucket) -> None:
        self._buckets[bucket.name] = (time.monotonic() + BUCKET_CACHE_SECONDS, bucket)

    def bucket_for(self, name: str, account_id: str) -> Bucket:
        """The bucket if this account owns it; another account's bucket is AccessDenied."""
        found = self.bucket(name)
        if found is None:
            raise NoSuchBucket(bucket=name)
        if found.account_id != account_id:
            raise BucketAccessDenied(bucket=name)
        return found

    def list_buckets(self, account_id: str) -> list[Bucket]:
        return self.db.read(lambda c: bucket_rows.buckets_of(c, account_id))

    async def create_bucket(
        self,
        account_id: str,
        name: str,
        region: str | None = None,
        *,
        acl: str | None = None,
        policy: str | None = None,
        first_party: bool = False,
    ) -> tuple[Bucket, bool]:
        """New buckets are versioned ("Time Machine") unless `[versioning] new_buckets`
        says "Off"; `acl` and `policy` are the bucket's ACL (stored form of
        s3proxy.access.grants) and policy JSON. A `first_party` bucket
        (made by a Folio service for the account's files) does not count against the
        plan's bucket limit."""
        check_bucket_name(name)
        default_region = self.config.server.region
        region = region or default_region
        now = time.time()
        versioning = "Enabled" if self.config.versioning.new_buckets == "Enabled" else ""
        record = account_id in self.event_accounts

        def insert(c: sqlite3.Connection) -> tuple[Bucket, bool]:
            bucket, created = bucket_rows.insert_bucket(
                c,
                name=name,
                account_id=account_id,
                region=region,
                versioning=versioning,
                settings=BucketSettings(acl=acl, policy=policy, time_machine=bool(versioning)),
                max_buckets=0 if first_party else self.plan_of(account_id).max_buckets,
                now=now,
                default_region=default_region,
            )
            if created and record:
                record_event(c, account_id, "bucket.created", {"bucket": name, "region": region}, now)
            if created:
                cache_epochs.bump(c, cache_epochs.BUCKETS)
            return bucket, created

        bucket, created = await self._write(insert)
        self._buckets_epoch.announce()
        self._remember(bucket)
        return bucket, created

    async def delete_bucket(self, bucket: Bucket, *, with_contents: bool = False) -> None:
        self._buckets.pop(bucket.name, None)
        drop_history = bucket.settings.time_machine
        record = bucket.account_id in self.event_accounts
        now = time.time()

        def remove(c: sqlite3.Connection) -> list[str]:
            freed = bucket_rows.remove_bucket(
                c, bucket.id, drop_history=drop_history, with_contents=with_contents
            )
            cache_epochs.bump(c, cache_epochs.BUCKETS)
            if record:
                record_event(c, bucket.account_id, "bucket.deleted", {"bucket": bucket.name}, now)
            return freed

        freed = await self._write(remove, frees_space=True)
        self._buckets_epoch.announce()
        self._buckets.pop(bucket.name, None)
        self._free_blobs(freed)

    async def set_versioning(self, bucket: Bucket, status: str) -> Bucket:
        """'Enabled' or 'Suspended' (a bucket never returns to unversioned, as in S3)."""
        if status not in ("Enabled", "Suspended"):
            raise ValueError(status)
        # Versioning set through the API is the user's own: S3's rules apply from now on.
        return await self.update_settings(bucket, versioning=status, time_machine=False)

    async def update_settings(self, bucket: Bucket, versioning: str | None = None, **changes: Any) -> Bucket:
        """Change some of a bucket's sub-resources (ACL, policy, CORS, retention; and its
        versioning status). The settings are read and written in one transaction: two
        requests changing different sub-resources at once (a CORS PUT and a policy PUT)
        both keep their change, where writing back a cached copy would lose one."""

        def update(c: sqlite3.Connection) -> BucketSettings:
            row = c.execute("SELECT settings FROM buckets WHERE id = ?", (bucket.id,)).fetchone()
            if row is None:
                raise NoSuchBucket(bucket=bucket.name)
            settings = replace(BucketSettings.from_json(row[0]), **changes)
            if versioning is None:
                c.execute("UPDATE buckets SET settings = ? WHERE id = ?", (settings.to_json(), bucket.id))
            else:
                c.execute(
                    "UPDATE buckets SET versioning = ?, settings = ? WHERE id = ?",
                    (versioning, settings.to_json(), bucket.id),
                )
            cache_epochs.bump(c, cache_epochs.BUCKETS)
            return settings

        settings = await self._write(update)
        self._buckets_epoch.announce()  # an ACL or policy applies everywhere before this answers
        updated = replace(bucket, settings=settings, versioning=versioning or bucket.versioning)
        self._remember(updated)
        return updated

    async def set_retention(self, bucket: Bucket, keep: Retention | None) -> Bucket:
        """The bucket's own Time Machine retention; None returns it to its plan's."""
        return await self.update_settings(bucket, retention=keep)

    async def set_bucket_acl(self, bucket: Bucket, acl: str | None) -> Bucket:
        return await self.update_settings(bucket, acl=acl)

    async def set_bucket_policy(self, bucket: Bucket, policy: str | None) -> Bucket:
        """The policy JSON (validated by the caller), or None to delete it."""
        return await self.update_settings(bucket, policy=policy)

    async def set_object_acl(
        self, bucket: Bucket, key: str, version_id: str | None, acl: str | None
    ) -> ObjectVersion:
        """Change the ACL (stored form) of a version (the current one by default)."""
        version = self.head_object(bucket, key, version_id)

        def update(c: sqlite3.Connection) -> None:
            if c.execute("UPDATE objects SET acl = ? WHERE id = ?", (acl, version.id)).rowcount == 0:
                raise NoSuchKey(key=key)  # overwritten meanwhile (unversioned): it is gone

        await self._write(update)
        return replace(version, acl=acl)

    # -- quotas and retention -----------------------------------------------------------------

    def usage(self, account_id: str) -> Usage:
        return self.db.read(lambda c: quota.account_usage(c, account_id))

    async def noncurrent_usage(self, account_id: str) -> tuple[int, int]:
        """Bytes and count of the account's noncurrent versions (what Time Machine keeps):
        a scan of its objects, so on a reader thread, not the event loop."""

        def scan(c: sqlite3.Connection) -> tuple[int, int]:
            row = c.execute(
                "SELECT coalesce(sum(o.size), 0), count(*) FROM objects o JOIN buckets b ON o.bucket_id = b.id"
                " WHERE b.account_id = ? AND o.is_latest = 0 AND o.is_delete_marker = 0",
                (account_id,),
            ).fetchone()
            return int(row[0]), int(row[1])

        return await self.db.read_async(scan)

    def retention_for(self, bucket: Bucket) -> Retention:
        if bucket.settings.retention is not None:
            return bucket.settings.retention
        plan = self.plan_of(bucket.account_id)
        return Retention(plan.keep_versions, plan.keep_days)

    def write_credit(self, bucket: Bucket, key: str) -> int:
        """Bytes the next write of `key` frees at once (replaced null version, versions
        pruned by retention): a quota reservation may count on them."""
        keep = self.retention_for(bucket) if bucket.versioning else None
        if keep is not None and not (keep.keep_versions or keep.keep_days):
            keep = None
        raw_key = encode_key(key)
        now = time.time()
        return self.db.read(
            lambda c: retention.bytes_freed_by_next_write(c, bucket.id, raw_key, bucket.versioning, keep, now)
        )

    def reservation(self, bucket: Bucket, key: str | None = None) -> Reservation:
        """Quota space for one write into `bucket` (of `key`, when it makes a version)."""
        credit = (lambda: self.write_credit(bucket, key)) if key is not None else None
        return self.quotas.reservation(bucket.account_id, credit)

    async def write_object(
        self,
        bucket: Bucket,
        raw_key: bytes | None,
        fn: Callable[[sqlite3.Connection], object],
        reservation: Reservation | None = None,
        event: str | None = None,
        *,
        frees_space: bool = False,
    ):
        """Run a write transaction on `bucket` (and `raw_key`, when it makes a version):
        prune the key's versions past retention, then settle usage against the owner's
        quota, refusing (rolling back) the write that would pass it. Returns fn's result."""
        account_id = bucket.account_id
        limit = self.plan_of(account_id).storage_bytes
        keep = self.retention_for(bucket) if raw_key is not None and bucket.versioning else None
        if keep is not None and not (keep.keep_versions or keep.keep_days):
            keep = None
        record = event is not None and raw_key is not None and account_id in self.event_accounts
        if not limit and keep is None and not record:
            return await self._write(fn, frees_space=frees_space)
        now = time.time()
        pruned: list[str] = []

        def run(conn: sqlite3.Connection):
            pruned.clear()  # a rolled-back first attempt (full disk) pruned nothing
            # Exact, in this transaction: other processes write to the account too. `remote`:
            # what their uploads in flight hold (quota_reservations rows).
            before, remote = quota.standing(conn, account_id, self.quotas.node, now) if limit else (0, 0)
            existed = record and event == "put" and _has_current(conn, bucket.id, raw_key)
            result = fn(conn)
            if record:
                assert raw_key is not None and event is not None
                _record_object_event(conn, bucket, raw_key, event, existed, result, now)
            first_version = event == "put" and not result[0].had_history  # type: ignore[index]
            if keep is not None and not first_version:
                assert raw_key is not None
                pruned.extend(retention.prune_key(conn, bucket.id, raw_key, keep, now))
            if limit:
                others = (
                    remote + self.quotas.reserved(account_id) - (reservation.amount if reservation else 0)
                )
                if reservation is None or before + reservation.gross + others > limit * quota.WARNING_RATIO:
                    after = quota.settle(conn, account_id, limit, before, others, now)
                    self.quotas.settled(account_id, after, remote)
                else:
                    # Far below the quota: this write (at most `gross` bytes) can neither pass
                    # it nor cross a threshold, so the usage query after it is spared (the
                    # admission hint takes the upper bound).
                    self.quotas.settled(account_id, before + reservation.gross, remote)
                if reservation is not None:
                    # The bytes are usage now (in this transaction): holding the
                    # reservation until the group commit is durable would count them twice.
                    reservation.settle(conn)
            return result

        try:
            result = await self._write(run, frees_space=frees_space)
        except QuotaExceeded as exc:
            used = self.quotas.used(account_id)
            raise await self.quotas.refuse(account_id, used, limit) from exc
        if reservation is not None:
            reservation.committed()
        self._free_blobs(pruned)
        if record:
            self.events_recorded()
        return result

    async def prune_versions(self, now: float | None = None, batch: int = 2000) -> int:
        """Apply retention to every versioned bucket (the background task, and
        `folio admin prune-versions`). Returns the number of versions removed."""
        now = time.time() if now is None else now
        buckets = self.db.read(lambda c: bucket_rows.versioned_buckets(c))
        removed = 0
        for bucket in buckets:
            keep = self.retention_for(bucket)
            if not (keep.keep_versions or keep.keep_days):
                continue
            after = b""
            while True:
                freed, count, last = await self._write(
                    lambda c, a=after, b=bucket, k=keep: retention.prune_bucket(
                        c, b.id, k, now, after=a, limit=batch
                    )
                )
                self._free_blobs(freed)
                removed += count
                if last is None:
                    break
                after = last
        return removed

    def list_versions(
        self,
        bucket: Bucket,
        *,
        prefix: str = "",
        delimiter: str | None = None,
        key_marker: str | None = None,
        version_id_marker: str | None = None,
        max_keys: int = 1000,
    ) -> VersionPage:
        return self.db.read(
            lambda c: list_versions(
                c,
                bucket.id,
                prefix=prefix.encode("utf-8"),
                delimiter=delimiter.encode("utf-8") if delimiter else None,
                key_marker=key_marker.encode("utf-8") if key_marker is not None else None,
                version_id_marker=version_id_marker,
                max_keys=max_keys,
            )
        )

    # -- objects ------------------------------------------------------------------------------

    def new_writer(self, hashers: Sequence[Hasher] = ()) -> ObjectWriter:
        # Under the free-space floor: refused before a byte of the body is read.
        self.floor.admit(0)
        return ObjectWriter(
            self.blobs,
            self.executor,
            inline_threshold=self.config.storage.inline_threshold,
            chunk_bytes=self.config.storage.write_chunk_bytes,
            hashers=hashers,
            floor=self.floor,
        )

    async def put_object(
        self,
        bucket: Bucket,
        key: str,
        writer: ObjectWriter,
        meta: ObjectMeta,
        conditions: WriteConditions = NO_CONDITIONS,
        reservation: Reservation | None = None,
    ) -> ObjectVersion:
        """Make a finished writer's bytes the key's new current version. On any
        failure (a quota among them) the writer's blob is removed and the previous
        version stays."""
        raw_key = encode_key(key)
        assert writer.finished, "finish() the writer first"
        loop = asyncio.get_running_loop()
        segments: tuple[Segment, ...] = ()
        checksums: dict[str, bytes] = {}
        inline_crc = integrity.crc32c(writer.inline_data) if writer.inline_data is not None else None
        try:
            if writer.blob is not None:
                blob = writer.blob
                blob_id = await loop.run_in_executor(self.executor, blob.publish)
                segments = (Segment(blob_id, writer.size),)
                checksums[blob_id] = blob.checksums.digest()
            now = time.time()
            writer_id = current_writer()
            version, freed = await self.write_object(
                bucket,
                raw_key,
                lambda c: integrity.with_checksums(
                    c,
                    checksums,
                    version_rows.put_version(
                        c,
                        bucket,
                        raw_key,
                        size=writer.size,
                        etag=writer.etag,
                        meta=meta,
                        inline_data=writer.inline_data,
                        segments=segments,
                        conditions=conditions,
                        now=now,
                        writer=writer_id,
                        inline_crc32c=inline_crc,
                    ),
                ),
                reservation,
                "put",
            )
        except BaseException:
            writer.abort()
            raise
        self._free_blobs(freed)
        return version

    async def put_bytes(self, bucket: Bucket, key: str, data: bytes, meta: ObjectMeta) -> ObjectVersion:
        """Store bytes a Folio service made (a rendered document) as the key's new
        version, within the owner's quota, exactly as an upload of them would be."""
        writer = self.new_writer()
        with self.quotas.reservation(bucket.account_id) as reservation:
            await reservation.require(len(data))
            try:
                await writer.write(data)
                await writer.finish()
            except BaseException:
                await writer.aclose_pending()
                writer.abort()
                raise
            return await self.put_object(bucket, key, writer, meta, reservation=reservation)

    def _free_blobs(self, blob_ids: list[str]) -> None:
        """Their counts reached zero: removed now (local) or after the grace (upstream S3)."""
        for blob_id in blob_ids:
            self.executor.submit(self.blobs.release, blob_id)

    def head_object(self, bucket: Bucket, key: str, version_id: str | None = None) -> ObjectVersion:
        raw_key = encode_key(key)
        if version_id is None:
            version = self.db.read(lambda c: version_rows.latest_version(c, bucket.id, raw_key))
            if version is None:
                raise NoSuchKey(key=key)
        else:
            version = self.db.read(lambda c: version_rows.specific_version(c, bucket.id, raw_key, version_id))
            if version is None:
                raise NoSuchVersion(key=key, version_id=version_id)
        if version.is_delete_marker:
            raise ObjectIsDeleteMarker(
                version.version_id, by_version_id=version_id is not None, last_modified=version.last_modified
            )
        return version

    def open_object(self, bucket: Bucket, key: str, version_id: str | None = None) -> ObjectReader:
        """The version and open handles on its bytes. A concurrent overwrite may free
        the blobs between reading the row and opening them: then read the row again."""
        for _attempt in range(5):
            version = self.head_object(bucket, key, version_id)
            checks = self._read_checks(version)
            fds: list[int | BlobSource] = []
            try:
                for blob_id in version.blob_ids:
                    fds.append(self.blobs.open(blob_id))
            except FileNotFoundError:
                for fd in fds:
                    if isinstance(fd, int):
                        os.close(fd)
                continue
            return ObjectReader(
                version, fds, self.executor, self.blobs.buffers, checks, self.integrity.corrupt_read
            )
        raise NoSuchKey(key=key)

    def _read_checks(self, version: ObjectVersion) -> dict[str, integrity.BlobChecksums | None] | None:
        """What a read of `version` is checked against ([storage] verify_reads): inline
        bytes here and now (CorruptObject before any answer), blob pieces as they stream."""
        if not self.integrity.verify_reads:
            return None
        if version.inline_data is not None:
            self.integrity.check_inline(version)
            return None
        if not version.segments:
            return None
        return self.db.read(lambda c: integrity.blob_checksums(c, version.blob_ids))

    def check_write_conditions(self, bucket: Bucket, key: str, conditions: WriteConditions) -> None:
        """An early look at a conditional write's conditions (before its body is read, so
        that `Expect: 100-continue` is answered 412 at once). Only a hint: the decision
        that counts is taken again in the write's own transaction."""
        raw_key = encode_key(key)
        current = self.db.read(lambda c: version_rows.latest_version(c, bucket.id, raw_key))
        version_rows.check_conditions(current, conditions)

    async def delete_object(
        self,
        bucket: Bucket,
        key: str,
        version_id: str | None = None,
        conditions: WriteConditions = NO_CONDITIONS,
    ) -> DeleteResult:
        """DeleteObject; `conditions.if_match` is checked against the key's current
        version in the delete's transaction (S3's conditional delete)."""
        raw_key = encode_key(key)
        now = time.time()
        writer_id = current_writer()
        affected, marker, freed = await self.write_object(
            bucket,
            raw_key,
            lambda c: version_rows.delete_key(c, bucket, raw_key, version_id, now, conditions, writer_id),
            event="delete",
            frees_space=True,
        )
        self._free_blobs(freed)
        return DeleteResult(affected, marker)

    async def list_objects(
        self,
        bucket: Bucket,
        *,
        prefix: str = "",
        delimiter: str | None = None,
        after: str | None = None,
        max_keys: int = 1000,
    ) -> ListPage:
        raw_prefix = prefix.encode("utf-8")
        raw_delimiter = delimiter.encode("utf-8") if delimiter else None
        raw_after = after.encode("utf-8") if after is not None else None
        # On the loop thread, not a worker: a page is a few milliseconds of SQLite, and in
        # a worker every row step would have to win the GIL back from the event loop.
        return self.db.read(
            lambda c: list_current(
                c, bucket.id, prefix=raw_prefix, delimiter=raw_delimiter, after=raw_after, max_keys=max_keys
            )
        )

    # -- multipart uploads --------------------------------------------------------------------

    async def create_upload(
        self,
        bucket: Bucket,
        key: str,
        meta: ObjectMeta,
        checksum_algorithm: str | None,
        checksum_type: str | None,
    ) -> Upload:
        raw_key = encode_key(key)
        now = time.time()
        return await self._write(
            lambda c: multipart.insert_upload(
                c, bucket, raw_key, meta, checksum_algorithm, checksum_type, now
            )
        )

    def get_upload(self, bucket: Bucket, key: str, upload_id: str) -> Upload:
        raw_key = encode_key(key)
        return self.db.read(lambda c: multipart.find_upload(c, bucket, raw_key, upload_id))

    def check_completable(self, bucket: Bucket, key: str, upload_id: str) -> None:
        """NoSuchUpload unless the upload is in progress, or was completed and a repeat of
        its Complete may still be answered (checked before the Complete's body is read)."""
        raw_key = encode_key(key)
        now = time.time()

        def check(c: sqlite3.Connection) -> None:
            try:
                multipart.find_upload(c, bucket, raw_key, upload_id)
            except NoSuchUpload:
                multipart.completed_version(c, bucket, raw_key, upload_id, None, now)

        self.db.read(check)

    async def put_part(
        self,
        bucket: Bucket,
        key: str,
        upload_id: str,
        part_number: int,
        writer: ObjectWriter,
        checksums: dict[str, str],
        reservation: Reservation | None = None,
    ) -> str:
        """Store a finished writer's bytes as a part; returns the part's ETag (hex)."""
        assert writer.finished, "finish() the writer first"
        loop = asyncio.get_running_loop()
        try:
            segments: tuple[Segment, ...] = ()
            new_checksums: dict[str, bytes] = {}
            if writer.size:
                if writer.blob is None:  # a small part: parts are always blobs
                    writer.blob = self.blobs.new_file()
                    await loop.run_in_executor(self.executor, writer.blob.write, writer.inline_data or b"")
                blob_id = await loop.run_in_executor(self.executor, writer.blob.publish)
                segments = (Segment(blob_id, writer.size),)
                new_checksums = {blob_id: writer.blob.checksums.digest()}
            await self.put_part_segments(
                bucket,
                key,
                upload_id,
                part_number,
                size=writer.size,
                etag=writer.etag,
                checksums=checksums,
                segments=segments,
                reservation=reservation,
                new_checksums=new_checksums,
            )
        except BaseException:
            writer.abort()
            raise
        return writer.etag

    async def put_part_segments(
        self,
        bucket: Bucket,
        key: str,
        upload_id: str,
        part_number: int,
        *,
        size: int,
        etag: str,
        checksums: dict[str, str],
        segments: tuple[Segment, ...],
        reservation: Reservation | None = None,
        new_checksums: dict[str, bytes] | None = None,
    ) -> None:
        """`new_checksums`: the piece checksums of blobs this part writes (not of blobs
        it shares with a copied source)."""
        raw_key = encode_key(key)
        now = time.time()
        freed = await self.write_object(
            bucket,
            None,
            lambda c: integrity.with_checksums(
                c,
                new_checksums,
                multipart.put_part(
                    c,
                    bucket,
                    raw_key,
                    upload_id,
                    part_number,
                    size=size,
                    etag=etag,
                    checksums=checksums,
                    segments=segments,
                    now=now,
                ),
            ),
            reservation,
        )
        self._free_blobs(freed)

    def list_parts(
        self, bucket: Bucket, key: str, upload_id: str, *, after: int, max_parts: int
    ) -> tuple[Upload, list[Part], bool]:
        raw_key = encode_key(key)

        def read(c: sqlite3.Connection) -> tuple[Upload, list[Part], bool]:
            upload = multipart.find_upload(c, bucket, raw_key, upload_id)
            parts, truncated = multipart.list_parts(c, upload_id, after=after, max_parts=max_parts)
            return upload, parts, truncated

        return self.db.read(read)

    def list_uploads(
        self,
        bucket: Bucket,
        *,
        prefix: str,
        delimiter: str | None,
        key_marker: str | None,
        upload_id_marker: str | None,
        max_uploads: int,
    ) -> tuple[list[Upload], list[str], bool]:
        return self.db.read(
            lambda c: multipart.list_uploads(
                c,
                bucket,
                prefix=prefix.encode("utf-8"),
                delimiter=delimiter.encode("utf-8") if delimiter else None,
                key_marker=key_marker.encode("utf-8") if key_marker is not None else None,
                upload_id_marker=upload_id_marker,
                max_uploads=max_uploads,
            )
        )

    async def complete_upload(
        self,
        bucket: Bucket,
        key: str,
        upload_id: str,
        requested: list[RequestedPart],
        finalize: Finalizer,
        conditions: WriteConditions = NO_CONDITIONS,
        acl: str | None = None,
        *,
        acl_given: bool = False,
    ) -> ObjectVersion:
        """`acl` replaces the ACL given at creation when `acl_given`. One transaction whatever the size: the parts' blobs become the object's. A
        repeat of a Complete that succeeded (same parts, its object still current) returns
        the version it made, changing nothing."""
        raw_key = encode_key(key)
        now = time.time()
        writer_id = current_writer()
        try:
            version, freed = await self.write_object(
                bucket,
                raw_key,
                lambda c: multipart.complete_upload(
                    c,
                    bucket,
                    raw_key,
                    upload_id,
                    requested,
                    min_part_size=self.config.limits.min_part_size,
                    finalize=finalize,
                    conditions=conditions,
                    now=now,
                    acl=acl,
                    acl_given=acl_given,
                    writer=writer_id,
                ),
                event="put",
            )
        except AlreadyCompleted as done:
            # The first Complete may still be in a commit group not yet durable: a no-op
            # write is acknowledged only after a sync that covers it.
            await self._write(lambda _c: None)
            return done.version
        self._free_blobs(freed)
        return version

    async def abort_upload(self, bucket: Bucket, key: str, upload_id: str) -> None:
        raw_key = encode_key(key)
        freed = await self.write_object(
            bucket, None, lambda c: multipart.abort_upload(c, bucket, raw_key, upload_id), frees_space=True
        )
        self._free_blobs(freed)

    async def expire_uploads(self, max_age_seconds: float) -> int:
        """Abort uploads initiated longer ago than `max_age_seconds` (the background sweep)."""
        cutoff = time.time() - max_age_seconds
        expired = self.db.read(lambda c: multipart.uploads_older_than(c, cutoff))
        for upload_id in expired:
            freed = await self._write(lambda c, u=upload_id: multipart.drop_upload_by_id(c, u))
            self._free_blobs(freed)
        # Completed uploads past the time a repeated Complete is answered for.
        forget_before = time.time() - multipart.COMPLETED_MEMORY_SECONDS
        await self._write(lambda c: multipart.forget_completed(c, forget_before))
        return len(expired)


def _has_current(conn: sqlite3.Connection, bucket_id: int, raw_key: bytes) -> bool:
    current = version_rows.latest_version(conn, bucket_id, raw_key)
    return current is not None and not current.is_delete_marker


def _record_object_event(
    conn: sqlite3.Connection, bucket: Bucket, raw_key: bytes, event: str, existed: bool, result, now: float
) -> None:
    """object.created / object.updated / object.deleted, in the write's transaction."""
    key = raw_key.decode("utf-8")
    if event == "put":
        version: ObjectVersion = result[0]
        data = {
            "bucket": bucket.name,
            "key": key,
            "size": version.size,
            "contentType": version.content_type or "binary/octet-stream",
            "etag": version.etag,
            "versionId": version.version_id if bucket.versioning else None,
        }
        record_event(conn, bucket.account_id, "object.updated" if existed else "object.created", data, now)
    else:
        affected, marker, _freed = result
        data = {"bucket": bucket.name, "key": key, "versionId": affected, "deleteMarker": marker}
        record_event(conn, bucket.account_id, "object.deleted", data, now)
