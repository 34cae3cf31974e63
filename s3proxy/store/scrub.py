"""The scrub: re-read every blob and inline object and check it against its checksums,
and find blob files that are gone, files no row names, and reference counts that
disagree with the rows; with `repair`, fix what needs no guessing (reference counts,
orphan files) and name the objects that are lost. The background scrub
(server/background.py) and `folio check` (server/check.py) both run this.

Safe beside a running server (another process, or the same one):
- every read is a short statement on a WAL snapshot; the reference counts are compared
  with the rows in one statement, so in one consistent snapshot;
- a blob that seems missing is looked up again before it is reported (it may have been
  deleted with its row meanwhile); a file no row names is an orphan only once it is older
  than `[storage] gc_grace_seconds` (younger ones are uploads between their rename and
  their commit);
- a reference count is repaired by the difference seen in that snapshot (every write
  moves a count and its rows together, so the difference holds however many writes ran
  since), never by overwriting it with a stale figure;
- writes without `repair` are only what a checked blob adds: checksums of blobs written
  before they were kept, damage marks (set, or cleared when a blob reads sound again), and
  the summary row.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import mmap
import os
import sqlite3
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.sql_dialect import in_json_strings, is_sqlite
from s3proxy.store.blobs import ALIGN, O_DIRECT
from s3proxy.store.integrity import (
    PIECE_BYTES,
    BlobChecksums,
    PieceChecksums,
    ScrubSummary,
    bucket_name,
    crc32c,
    mark_blob_damaged,
    mark_object_damaged,
    save_scrub,
    unpack,
)

log = logging.getLogger("folio.scrub")

CHUNK_BYTES = 8 * PIECE_BYTES  # one O_DIRECT read: whole pieces, large enough to keep a disk busy
PAGE_ROWS = 500

# Every blob id the rows name with how many times (a reference count is the number of
# segments naming the blob, in object versions and in parts of unfinished uploads), against
# the blobs table: one statement, so one snapshot.
MISMATCHES_SQL = """
WITH uses(id) AS (
    SELECT json_extract(j.value, '$[0]') FROM objects o, json_each(o.segments) j
    WHERE o.segments IS NOT NULL
    UNION ALL
    SELECT json_extract(j.value, '$[0]') FROM upload_parts p, json_each(p.segments) j
    WHERE p.segments IS NOT NULL
),
expected(id, n) AS MATERIALIZED (SELECT id, count(*) FROM uses GROUP BY id)
SELECT e.id, b.refcount, e.n FROM expected e LEFT JOIN blobs b ON b.id = e.id
WHERE b.refcount IS NULL OR b.refcount != e.n
UNION ALL
SELECT b.id, b.refcount, 0 FROM blobs b WHERE NOT EXISTS (SELECT 1 FROM expected e WHERE e.id = b.id)
"""

# Blobs without checksums (written before they were kept) whose whole bytes a row's ETag is
# the MD5 of: a single-PUT object or an uploaded part of exactly that blob. Their checksums
# are recorded only if the MD5 still matches, so a blob already damaged is not blessed.
LEGACY_MD5_SQL = """
SELECT b.id, x.etag FROM (
    SELECT json_extract(o.segments, '$[0][0]') AS id, json_extract(o.segments, '$[0][1]') AS len,
           json_extract(o.segments, '$[0][2]') AS off, o.etag AS etag
    FROM objects o WHERE o.segments IS NOT NULL AND json_array_length(o.segments) = 1
    UNION ALL
    SELECT json_extract(p.segments, '$[0][0]'), json_extract(p.segments, '$[0][1]'),
           json_extract(p.segments, '$[0][2]'), p.etag
    FROM upload_parts p WHERE json_array_length(p.segments) = 1
) x JOIN blobs b ON b.id = x.id
WHERE b.crc32c IS NULL AND x.off IS NULL AND x.len = b.size AND length(x.etag) = 32 AND instr(x.etag, '-') = 0
"""

LOST_OBJECTS_SQL = """
SELECT bk.name, o.key, o.version_id, json_extract(j.value, '$[0]')
FROM objects o JOIN buckets bk ON bk.id = o.bucket_id, json_each(o.segments) j
WHERE o.segments IS NOT NULL AND json_extract(j.value, '$[0]') IN (SELECT value FROM json_each(?))
"""

LOST_PARTS_SQL = """
SELECT bk.name, u.key, u.id, p.part_number, json_extract(j.value, '$[0]')
FROM upload_parts p JOIN uploads u ON u.id = p.upload_id JOIN buckets bk ON bk.id = u.bucket_id,
     json_each(p.segments) j
WHERE json_extract(j.value, '$[0]') IN (SELECT value FROM json_each(?))
"""

# The same four on PostgreSQL, where segments (TEXT) are walked as jsonb: the SQLite texts
# above stay as they were (the scrub reads every row of a large store).
MISMATCHES_SQL_PG = """
WITH uses(id) AS (
    SELECT j.value->>0 FROM objects o, jsonb_array_elements(o.segments::jsonb) j
    WHERE o.segments IS NOT NULL
    UNION ALL
    SELECT j.value->>0 FROM upload_parts p, jsonb_array_elements(p.segments::jsonb) j
    WHERE p.segments IS NOT NULL
),
expected(id, n) AS MATERIALIZED (SELECT id, count(*) FROM uses GROUP BY id)
SELECT e.id, b.refcount, e.n FROM expected e LEFT JOIN blobs b ON b.id = e.id
WHERE b.refcount IS NULL OR b.refcount != e.n
UNION ALL
SELECT b.id, b.refcount, 0 FROM blobs b WHERE NOT EXISTS (SELECT 1 FROM expected e WHERE e.id = b.id)
"""

LEGACY_MD5_SQL_PG = """
SELECT b.id, x.etag FROM (
    SELECT s->0->>0 AS id, (s->0->>1)::bigint AS len, s->0->2 AS off, etag
    FROM (SELECT o.segments::jsonb AS s, o.etag FROM objects o WHERE o.segments IS NOT NULL) o
    WHERE jsonb_array_length(s) = 1
    UNION ALL
    SELECT s->0->>0, (s->0->>1)::bigint, s->0->2, etag
    FROM (SELECT p.segments::jsonb AS s, p.etag FROM upload_parts p) p
    WHERE jsonb_array_length(s) = 1
) x JOIN blobs b ON b.id = x.id
WHERE b.crc32c IS NULL AND x.off IS NULL AND x.len = b.size AND length(x.etag) = 32 AND x.etag NOT LIKE '%-%'
"""

LOST_OBJECTS_SQL_PG = """
SELECT bk.name, o.key, o.version_id, j.value->>0
FROM objects o JOIN buckets bk ON bk.id = o.bucket_id, jsonb_array_elements(o.segments::jsonb) j
WHERE o.segments IS NOT NULL AND j.value->>0 IN (SELECT jsonb_array_elements_text(?::jsonb))
"""

LOST_PARTS_SQL_PG = """
SELECT bk.name, u.key, u.id, p.part_number, j.value->>0
FROM upload_parts p JOIN uploads u ON u.id = p.upload_id JOIN buckets bk ON bk.id = u.bucket_id,
     jsonb_array_elements(p.segments::jsonb) j
WHERE j.value->>0 IN (SELECT jsonb_array_elements_text(?::jsonb))
"""


class Stopped(Exception):
    """The scrub was asked to stop (the server is shutting down)."""


@dataclass(frozen=True)
class BlobResult:
    blob_id: str
    state: str  # "ok", "missing" or "corrupt"
    what: str = ""
    computed: bytes | None = None  # checksums of a blob that had none (verified by its MD5 when possible)


class Scrub:
    """One pass over a store (`Store`: its db, blobs, executor and integrity)."""

    def __init__(
        self,
        store: Any,
        *,
        kind: str,
        repair: bool = False,
        bytes_per_second: float | None = None,
        grace_seconds: float | None = None,
        progress: Callable[[int], None] | None = None,
        readers: int = 1,
    ) -> None:
        """`readers`: blobs read at once (each its own thread and buffer). Two keep a disk
        busy while the other's pieces are summed; the background scrub, throttled anyway,
        reads one at a time."""
        self.db = store.db
        self.blobs = store.blobs
        self.executor = store.executor
        self.integrity = store.integrity
        self.repair = repair
        self.rate = bytes_per_second or None
        self.grace = store.config.storage.gc_grace_seconds if grace_seconds is None else grace_seconds
        self.progress = progress
        self.summary = ScrubSummary(kind, time.time())
        self._stop = threading.Event()
        self.readers = max(1, readers)
        self._paced = 0
        self._paced_from = time.monotonic()
        self._pace_lock = threading.Lock()
        self._buffers: list[mmap.mmap] = []  # free 8 MiB page-aligned buffers, one per reader
        self._buffers_lock = threading.Lock()
        self._bucket_names: dict[int, str] = {}

    # -- the pass -------------------------------------------------------------------------------

    async def totals(self) -> tuple[int, int]:
        """(bytes, items) a pass reads: every blob and inline object (for a progress bar)."""

        def count(c: sqlite3.Connection) -> tuple[int, int]:
            blob_bytes, blobs = c.execute("SELECT coalesce(sum(size), 0), count(*) FROM blobs").fetchone()
            inline_bytes, inline = c.execute(
                "SELECT coalesce(sum(length(inline_data)), 0), count(*) FROM objects WHERE inline_data IS NOT NULL"
            ).fetchone()
            return int(blob_bytes + inline_bytes), int(blobs + inline)

        return await self.db.read_async(count)

    async def run(self) -> ScrubSummary:
        self.integrity.scrub_running = True
        try:
            damaged = await self._check_blobs()
            await self._check_inline()
            referenced_without_row = await self._check_references()
            await self._find_orphans(referenced_without_row)
            await self._name_lost_objects(damaged)
            if self.repair:
                await self._repair()
        except (asyncio.CancelledError, Stopped):
            self._stop.set()
            self.summary.complete = False
            raise
        finally:
            self.integrity.scrub_running = False
            self.summary.finished_at = time.time()
            for buffer in self._buffers:
                buffer.close()
            self._buffers.clear()
        summary = self.summary
        await self.integrity.write(lambda c: save_scrub(c, summary))
        self.integrity.last_scrub = summary
        return summary

    def stop(self) -> None:
        self._stop.set()

    # -- blobs ----------------------------------------------------------------------------------

    async def _check_blobs(self) -> dict[str, str]:
        """Every blob row's file, piece by piece. Returns the damaged ones: id -> reason."""
        legacy_md5 = await self.db.read_async(
            lambda c: dict(c.execute(LEGACY_MD5_SQL if is_sqlite(c) else LEGACY_MD5_SQL_PG).fetchall())
        )
        loop = asyncio.get_running_loop()
        readers = asyncio.Semaphore(self.readers)

        async def check(blob_id: str, size: int, packed: bytes | None) -> BlobResult:
            async with readers:
                return await loop.run_in_executor(
                    self.executor, self._check_blob_file, blob_id, size, packed, legacy_md5.get(blob_id)
                )

        damaged: dict[str, str] = {}
        after = ""
        while True:
            page = await self.db.read_async(
                lambda c, a=after: c.execute(
                    "SELECT id, size, crc32c, damaged_at FROM blobs WHERE id > ? ORDER BY id LIMIT ?",
                    (a, PAGE_ROWS),
                ).fetchall()
            )
            if not page:
                return damaged
            after = page[-1][0]
            checked = await asyncio.gather(
                *(check(blob_id, size, packed) for blob_id, size, packed, _ in page)
            )
            results = []
            for result, (blob_id, _size, _packed, damaged_at) in zip(checked, page, strict=True):
                if result.state == "missing" and not await self._really_missing(blob_id):
                    continue  # deleted with its row since the page was read
                results.append((result, damaged_at))
                self.summary.blobs_checked += 1
            await self._record_blob_results(results, damaged)

    async def _really_missing(self, blob_id: str) -> bool:
        """Its row is still there and its file still is not (a look after the page's snapshot)."""
        row = await self.db.read_async(
            lambda c: c.execute("SELECT 1 FROM blobs WHERE id = ?", (blob_id,)).fetchone()
        )
        return row is not None and not self.blobs.exists(blob_id)

    async def _record_blob_results(
        self, results: list[tuple[BlobResult, float | None]], damaged: dict[str, str]
    ) -> None:
        now = time.time()
        writes: list[Callable[[sqlite3.Connection], None]] = []
        for result, damaged_at in results:
            blob_id = result.blob_id
            if result.state == "ok":
                if result.computed is not None:
                    self.summary.checksums_added += 1
                    writes.append(
                        lambda c, b=blob_id, s=result.computed: c.execute(
                            "UPDATE blobs SET crc32c = ? WHERE id = ? AND crc32c IS NULL", (s, b)
                        )
                    )
                if damaged_at is not None:  # sound again (restored from a backup)
                    writes.append(
                        lambda c, b=blob_id: c.execute(
                            "UPDATE blobs SET damaged_at = NULL WHERE id = ?", (b,)
                        )
                    )
                continue
            damaged[blob_id] = result.what
            (self.summary.missing_blobs if result.state == "missing" else self.summary.corrupt_blobs).append(
                blob_id
            )
            log.error("integrity: blob %s is %s: %s", blob_id, result.state, result.what)
            writes.append(lambda c, b=blob_id: mark_blob_damaged(c, b, now))
        if writes:
            await self.integrity.write(lambda c: [write(c) for write in writes])

    def _check_blob_file(
        self, blob_id: str, size: int, packed: bytes | None, md5_hex: str | None
    ) -> BlobResult:
        """In a worker thread: read the whole file (O_DIRECT: what is on the disk, not a
        cached page, and no cache evicted for requests) and check every piece."""
        if self.blobs.backend != "local":
            return self._check_blob_remote(blob_id, size, packed, md5_hex)
        path = self.blobs.path_for(blob_id)
        direct = bool(O_DIRECT)
        try:
            try:
                fd = os.open(path, os.O_RDONLY | O_DIRECT) if direct else os.open(path, os.O_RDONLY)
            except OSError as exc:
                if isinstance(exc, FileNotFoundError):
                    raise
                direct = False  # a filesystem without O_DIRECT (tmpfs)
                fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return BlobResult(blob_id, "missing", "its file is gone")
        try:
            actual = os.fstat(fd).st_size
            if actual != size:
                self._pace(0)
                return BlobResult(blob_id, "corrupt", f"its file has {actual} bytes, {size} recorded")
            expected = unpack(blob_id, size, packed)
            md5 = hashlib.md5() if expected is None and md5_hex else None
            crcs = self._piece_crcs(fd, size, direct, md5)
        finally:
            os.close(fd)
        if crcs is None:
            return BlobResult(blob_id, "corrupt", "its file is shorter than recorded")
        return _verdict(blob_id, crcs, expected, md5, md5_hex)

    def _check_blob_remote(
        self, blob_id: str, size: int, packed: bytes | None, md5_hex: str | None
    ) -> BlobResult:
        """In a worker thread: the same checks on a blob that is not a local file (an upstream
        S3 object), streamed in CHUNK_BYTES reads."""
        expected = unpack(blob_id, size, packed)
        md5 = hashlib.md5() if expected is None and md5_hex else None
        sums = PieceChecksums()
        got = 0
        try:
            for chunk in self.blobs.read_chunks(blob_id, CHUNK_BYTES):
                if self._stop.is_set():
                    raise Stopped
                sums.update(chunk)
                if md5 is not None:
                    md5.update(chunk)
                got += len(chunk)
                self._pace(len(chunk))
        except FileNotFoundError:
            return BlobResult(blob_id, "missing", "its file is gone")
        if got != size:
            return BlobResult(blob_id, "corrupt", f"its file has {got} bytes, {size} recorded")
        digest = sums.digest()
        return _verdict(blob_id, list(struct.unpack(f">{len(digest) // 4}I", digest)), expected, md5, md5_hex)

    def _piece_crcs(self, fd: int, size: int, direct: bool, md5: Any) -> list[int] | None:
        """CRC32C of each piece, read CHUNK_BYTES at a time into one aligned buffer; None
        if the file ends early."""
        with self._buffers_lock:
            own = self._buffers.pop() if self._buffers else mmap.mmap(-1, CHUNK_BYTES)  # page-aligned
        try:
            return self._sum_pieces(fd, size, direct, md5, own)
        finally:
            with self._buffers_lock:
                self._buffers.append(own)

    def _sum_pieces(self, fd: int, size: int, direct: bool, md5: Any, own: mmap.mmap) -> list[int] | None:
        crcs: list[int] = []
        offset = 0
        with memoryview(own) as buffer:
            while offset < size:
                if self._stop.is_set():
                    raise Stopped
                want = min(CHUNK_BYTES, size - offset)
                got = _read_into(fd, buffer, want, offset, direct)
                if got < want:
                    return None
                data = buffer[:want]
                for start in range(0, want, PIECE_BYTES):
                    crcs.append(crc32c(data[start : start + PIECE_BYTES]))
                if md5 is not None:
                    md5.update(data)
                data.release()
                offset += want
                self._pace(want)
        return crcs

    def _pace(self, n: int) -> None:
        """Count bytes read; sleep (in the worker thread) to stay under the rate."""
        with self._pace_lock:
            self.summary.bytes_checked += n
            if self.progress is not None and n:
                self.progress(n)
            self._paced += n
        if self.rate is None:
            return
        while not self._stop.is_set():
            ahead = self._paced / self.rate - (time.monotonic() - self._paced_from)
            if ahead <= 0:
                return
            time.sleep(min(ahead, 0.25))

    # -- inline objects -------------------------------------------------------------------------

    async def _check_inline(self) -> None:
        after = 0
        while True:
            rows = await self.db.read_async(lambda c, a=after: self._inline_page(c, a))
            if not rows:
                return
            after = rows[-1][0]
            now = time.time()
            writes: list[Callable[[sqlite3.Connection], None]] = []
            for object_id, bucket_id, key, version_id, data, recorded, got, damaged_at in rows:
                self.summary.inline_checked += 1
                if recorded is None:
                    self.summary.checksums_added += 1
                    writes.append(
                        lambda c, i=object_id, d=data, s=got: c.execute(
                            "UPDATE objects SET crc32c = ? WHERE id = ? AND crc32c IS NULL AND inline_data = ?",
                            (s, i, d),
                        )
                    )
                elif recorded != got:
                    entry = {
                        "bucket": await self._bucket_name(bucket_id),
                        "key": bytes(key).decode("utf-8", "replace"),
                        "versionId": version_id,
                    }
                    self.summary.corrupt_inline.append(entry)
                    self.summary.lost_objects.append(entry | {"reason": "its inline bytes fail their CRC32C"})
                    log.error(
                        "integrity: %s/%s (version %s): inline bytes fail their CRC32C", *entry.values()
                    )
                    writes.append(lambda c, i=object_id, t=now: mark_object_damaged(c, i, t))
                elif damaged_at is not None:
                    writes.append(
                        lambda c, i=object_id: c.execute(
                            "UPDATE objects SET damaged_at = NULL WHERE id = ?", (i,)
                        )
                    )
            if writes:
                await self.integrity.write(lambda c, w=writes: [write(c) for write in w])

    def _inline_page(self, conn: sqlite3.Connection, after: int) -> list[tuple]:
        """In a worker thread: a page of inline rows with each one's CRC32C computed."""
        rows = conn.execute(
            "SELECT id, bucket_id, key, version_id, inline_data, crc32c, damaged_at FROM objects"
            " WHERE id > ? AND inline_data IS NOT NULL ORDER BY id LIMIT ?",
            (after, PAGE_ROWS),
        ).fetchall()
        out = []
        for object_id, bucket_id, key, version_id, data, recorded, damaged_at in rows:
            out.append((object_id, bucket_id, key, version_id, data, recorded, crc32c(data), damaged_at))
            self._pace(len(data))
        return out

    async def _bucket_name(self, bucket_id: int) -> str:
        if bucket_id not in self._bucket_names:
            self._bucket_names[bucket_id] = await self.db.read_async(lambda c: bucket_name(c, bucket_id))
        return self._bucket_names[bucket_id]

    # -- references -----------------------------------------------------------------------------

    async def _check_references(self) -> set[str]:
        """Reference counts against the rows. Returns the blob ids rows name that have no
        blob row (their files are not orphans)."""
        rows = await self.db.read_async(
            lambda c: c.execute(MISMATCHES_SQL if is_sqlite(c) else MISMATCHES_SQL_PG).fetchall()
        )
        without_row: set[str] = set()
        for blob_id, recorded, expected in rows:
            self.summary.refcount_mismatches.append(
                {"blobId": blob_id, "recorded": recorded, "expected": expected}
            )
            if recorded is None:
                without_row.add(blob_id)
                if not self.blobs.exists(blob_id):
                    self.summary.missing_blobs.append(blob_id)
        if rows:
            log.warning("integrity: %d blob reference counts disagree with the rows", len(rows))
        return without_row

    async def _find_orphans(self, referenced: set[str]) -> None:
        orphans, pending = await asyncio.get_running_loop().run_in_executor(
            self.executor, self._walk_files, referenced
        )
        self.summary.orphan_files = orphans
        self.summary.pending_files = pending

    def _walk_files(self, referenced: set[str]) -> tuple[list[str], int]:
        """In a worker thread: blob files no row names, by age (older than the grace period:
        orphans; younger: uploads between their rename and their commit)."""
        cutoff = time.time() - self.grace
        orphans: list[str] = []
        pending = 0
        batch: list[tuple[str, float]] = []

        def settle() -> None:
            nonlocal pending
            ids = json.dumps([blob_id for blob_id, _ in batch])
            known = {
                row[0]
                for row in self.db.read(
                    lambda c: c.execute(
                        f"SELECT id FROM blobs WHERE id {in_json_strings(c)}", (ids,)
                    ).fetchall()
                )
            }
            for blob_id, mtime in batch:
                if blob_id in known or blob_id in referenced:
                    continue
                if mtime <= cutoff:
                    orphans.append(blob_id)
                else:
                    pending += 1
            batch.clear()

        for entry in self.blobs.iter_blobs():
            if self._stop.is_set():
                raise Stopped
            batch.append(entry)
            if len(batch) >= PAGE_ROWS:
                settle()
        if batch:
            settle()
        return orphans, pending

    async def _name_lost_objects(self, damaged: dict[str, str]) -> None:
        for blob_id in self.summary.missing_blobs:
            damaged.setdefault(blob_id, "its file is gone")
        if not damaged:
            return
        ids = json.dumps(sorted(damaged))

        def find(c: sqlite3.Connection) -> tuple[list[tuple], list[tuple]]:
            sqlite = is_sqlite(c)
            objects_sql = LOST_OBJECTS_SQL if sqlite else LOST_OBJECTS_SQL_PG
            parts_sql = LOST_PARTS_SQL if sqlite else LOST_PARTS_SQL_PG
            return c.execute(objects_sql, (ids,)).fetchall(), c.execute(parts_sql, (ids,)).fetchall()

        versions, parts = await self.db.read_async(find)
        seen: set[tuple] = set()
        for bucket, key, version_id, blob_id in versions:
            if (bucket, key, version_id) in seen:
                continue
            seen.add((bucket, key, version_id))
            self.summary.lost_objects.append(
                {
                    "bucket": bucket,
                    "key": bytes(key).decode("utf-8", "replace"),
                    "versionId": version_id,
                    "reason": f"blob {blob_id}: {damaged[blob_id]}",
                }
            )
        for bucket, key, upload_id, part_number, blob_id in parts:
            self.summary.lost_objects.append(
                {
                    "bucket": bucket,
                    "key": bytes(key).decode("utf-8", "replace"),
                    "versionId": None,
                    "uploadId": upload_id,
                    "partNumber": part_number,
                    "reason": f"part {part_number} of an unfinished upload; blob {blob_id}: {damaged[blob_id]}",
                }
            )

    # -- repair ---------------------------------------------------------------------------------

    async def _repair(self) -> None:
        """Reference counts (by the difference seen in one snapshot) and orphan files. Lost
        bytes are not guessed at: their objects are listed, nothing else."""
        now = time.time()
        fixable = [
            m for m in self.summary.refcount_mismatches if m["blobId"] not in self.summary.missing_blobs
        ]
        freed: list[str] = []

        def fix(c: sqlite3.Connection) -> int:
            freed.clear()
            fixed = 0
            for mismatch in fixable:
                blob_id, recorded, expected = mismatch["blobId"], mismatch["recorded"], mismatch["expected"]
                if recorded is None:
                    size = self.blobs.size(blob_id)
                    c.execute(
                        "INSERT INTO blobs (id, size, refcount, created_at) VALUES (?, ?, ?, ?)"
                        " ON CONFLICT(id) DO UPDATE SET refcount = blobs.refcount + excluded.refcount",
                        (blob_id, size, expected, now),
                    )
                else:
                    row = c.execute(
                        "UPDATE blobs SET refcount = refcount + ? WHERE id = ? RETURNING refcount",
                        (expected - recorded, blob_id),
                    ).fetchone()
                    if row is not None and row[0] <= 0:  # nothing names it: garbage
                        c.execute("DELETE FROM blobs WHERE id = ?", (blob_id,))
                        freed.append(blob_id)
                fixed += 1
            return fixed

        if fixable:
            self.summary.refcounts_fixed = await self.integrity.write(fix)
            for blob_id in freed:
                self.blobs.release(blob_id)  # a reader may still be streaming it
            log.info(
                "integrity: repaired %d reference counts (%d blobs freed)",
                self.summary.refcounts_fixed,
                len(freed),
            )
        removed = 0
        for blob_id in self.summary.orphan_files:
            # No row may have appeared since (none can: orphans are older than any upload in flight).
            row = await self.db.read_async(
                lambda c, b=blob_id: c.execute("SELECT 1 FROM blobs WHERE id = ?", (b,)).fetchone()
            )
            if row is None:
                self.blobs.delete(blob_id)
                removed += 1
        self.summary.orphans_removed = removed
        if removed:
            log.info("integrity: removed %d orphan blob files", removed)


def _read_into(fd: int, buffer: memoryview, want: int, offset: int, direct: bool) -> int:
    """Read `want` bytes at `offset` into the start of `buffer`; fewer only at the end of
    the file. O_DIRECT reads whole 4 KiB blocks (the file's last block is read short)."""
    got = 0
    while got < want:
        span = want - got
        if direct:
            span += -span % ALIGN
        n = os.preadv(fd, [buffer[got : got + span]], offset + got)
        if n <= 0:
            break
        got += n
    return min(got, want)


def _verdict(
    blob_id: str, crcs: list[int], expected: BlobChecksums | None, md5: Any, md5_hex: str | None
) -> BlobResult:
    """A whole blob's piece checksums (and MD5, for one without checksums) against the record."""
    if expected is not None:
        for piece, (got, want) in enumerate(zip(crcs, expected.crcs, strict=True)):
            if got != want:
                first = piece * PIECE_BYTES
                return BlobResult(
                    blob_id,
                    "corrupt",
                    f"piece {piece} (bytes {first}-{first + PIECE_BYTES - 1}) fails its CRC32C",
                )
        return BlobResult(blob_id, "ok")
    if md5 is not None and md5.hexdigest() != md5_hex:
        return BlobResult(
            blob_id, "corrupt", "its bytes no longer match the MD5 (ETag) recorded when written"
        )
    return BlobResult(blob_id, "ok", computed=struct.pack(f">{len(crcs)}I", *crcs))
