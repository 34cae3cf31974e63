"""Integrity of stored bytes: the CRC32C of every 1 MiB piece of a blob and of every
inline object, recorded at write time and checked on every read; what a read found
damaged (counted, logged, marked in the database); and the health summary.

Why CRC32C per 1 MiB piece: awscrt's CRC32C (already a dependency, hardware
instructions) runs at about 50 GB/s on a piece that has just been read, so checking
a 1 MiB GET costs some 20 us (docs/benchmarks.md, "Integrity"); 1 MiB is the reader's
own read size, so a whole GET reads no byte it would not have read anyway, and a
ranged GET reads at most two extra partial pieces. 4 bytes per MiB of blob are kept.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from awscrt.checksums import crc32c

from core.db import DATABASE_ERRORS
from core.sql_dialect import in_json_strings

log = logging.getLogger("folio.integrity")

PIECE_BYTES = 1024 * 1024

__all__ = [
    "PIECE_BYTES",
    "BlobChecksums",
    "CorruptObject",
    "Integrity",
    "PieceChecksums",
    "ScrubSummary",
    "crc32c",
]


class CorruptObject(Exception):
    """Stored bytes failed their checksum (or their blob is short or gone): the read
    stops, never handing them out. Not a StoreError: the caller's answer is a 500 (or an
    aborted response), not a "no such object"."""

    def __init__(self, bucket_id: int, key: str, version_id: str, what: str) -> None:
        super().__init__(f"stored data of {key!r} (version {version_id}) is damaged: {what}")
        self.bucket_id = bucket_id
        self.key = key
        self.version_id = version_id
        self.what = what


class PieceChecksums:
    """CRC32C of each PIECE_BYTES piece of a byte stream fed in arbitrary buffers."""

    def __init__(self) -> None:
        self._done = bytearray()
        self._crc = 0
        self._fill = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data).cast("B")
        while view:
            take = min(len(view), PIECE_BYTES - self._fill)
            self._crc = crc32c(view[:take], self._crc)
            self._fill += take
            view = view[take:]
            if self._fill == PIECE_BYTES:
                self._done += self._crc.to_bytes(4, "big")
                self._crc, self._fill = 0, 0

    def digest(self) -> bytes:
        """4 big-endian bytes per piece, the last (partial) piece included."""
        if self._fill:
            return bytes(self._done) + self._crc.to_bytes(4, "big")
        return bytes(self._done)


def piece_count(size: int) -> int:
    return -(-size // PIECE_BYTES)


@dataclass(frozen=True)
class BlobChecksums:
    """What a reader checks one blob against."""

    blob_id: str
    size: int
    crcs: tuple[int, ...]
    # A blob without checksums that a scrub found damaged (its MD5 no longer matched):
    # nothing to check it against, so it is refused whole.
    damaged: bool = False

    def expected(self, piece: int) -> int:
        return self.crcs[piece]

    def piece_length(self, piece: int) -> int:
        return min(PIECE_BYTES, self.size - piece * PIECE_BYTES)


def unpack(
    blob_id: str, size: int, packed: bytes | None, damaged_at: float | None = None
) -> BlobChecksums | None:
    """None when the blob has no checksums yet (written before they were kept) or they do
    not fit its size: such a blob is read unchecked until a scrub records them (or refused
    whole, when the scrub found it damaged instead)."""
    if packed is None or len(packed) != 4 * piece_count(size):
        return BlobChecksums(blob_id, size, (), damaged=True) if damaged_at is not None else None
    return BlobChecksums(blob_id, size, struct.unpack(f">{len(packed) // 4}I", packed))


# -- rows ------------------------------------------------------------------------------------


def record_blob_checksums(conn: sqlite3.Connection, blob_id: str, packed: bytes) -> None:
    """In the transaction that references a new blob (its row exists by then)."""
    conn.execute("UPDATE blobs SET crc32c = ? WHERE id = ?", (packed, blob_id))


def blob_checksums(conn: sqlite3.Connection, blob_ids: list[str]) -> dict[str, BlobChecksums | None]:
    if len(blob_ids) == 1:
        rows = conn.execute(
            "SELECT id, size, crc32c, damaged_at FROM blobs WHERE id = ?", (blob_ids[0],)
        ).fetchall()
    else:
        rows = conn.execute(
            f"SELECT id, size, crc32c, damaged_at FROM blobs WHERE id {in_json_strings(conn)}",
            (json.dumps(sorted(set(blob_ids))),),
        ).fetchall()
    return {row[0]: unpack(*row) for row in rows}


def mark_blob_damaged(conn: sqlite3.Connection, blob_id: str, now: float) -> None:
    conn.execute("UPDATE blobs SET damaged_at = ? WHERE id = ? AND damaged_at IS NULL", (now, blob_id))


def mark_object_damaged(conn: sqlite3.Connection, object_id: int, now: float) -> None:
    conn.execute("UPDATE objects SET damaged_at = ? WHERE id = ? AND damaged_at IS NULL", (now, object_id))


def damaged_counts(conn: sqlite3.Connection) -> tuple[int, int]:
    """(blobs, inline objects) marked damaged: partial indexes make these lookups, not scans."""
    blobs = conn.execute("SELECT count(*) FROM blobs WHERE damaged_at IS NOT NULL").fetchone()[0]
    objects = conn.execute("SELECT count(*) FROM objects WHERE damaged_at IS NOT NULL").fetchone()[0]
    return int(blobs), int(objects)


def bucket_name(conn: sqlite3.Connection, bucket_id: int) -> str:
    row = conn.execute("SELECT name FROM buckets WHERE id = ?", (bucket_id,)).fetchone()
    return row[0] if row else f"#{bucket_id}"


# -- scrub summaries -------------------------------------------------------------------------

KEEP_SCRUB_RUNS = 50


@dataclass
class ScrubSummary:
    """What one pass (the background scrub or `folio check`) found. Read by /healthz and
    the metrics; the lists name what is damaged."""

    kind: str  # "scrub" or "check"
    started_at: float
    finished_at: float = 0.0
    blobs_checked: int = 0
    bytes_checked: int = 0
    inline_checked: int = 0
    checksums_added: int = 0  # blobs and inline objects written before checksums were kept
    corrupt_blobs: list[str] = field(default_factory=list)
    missing_blobs: list[str] = field(default_factory=list)
    # Inline objects whose bytes fail their checksum: {"bucket", "key", "versionId"}.
    corrupt_inline: list[dict[str, Any]] = field(default_factory=list)
    # {"blobId", "recorded" (None: no row), "expected"}: rows naming a blob that many times.
    refcount_mismatches: list[dict[str, Any]] = field(default_factory=list)
    orphan_files: list[str] = field(default_factory=list)  # no row names them, older than gc grace
    pending_files: int = 0  # the same, younger: uploads in flight, not damage
    # Versions (and upload parts) whose bytes are damaged or gone: {"bucket", "key", "versionId", "reason"}.
    lost_objects: list[dict[str, Any]] = field(default_factory=list)
    refcounts_fixed: int = 0
    orphans_removed: int = 0
    complete: bool = True  # False when stopped part way (the server shutting down)

    @property
    def damaged(self) -> bool:
        """Anything wrong that is still there (a repaired count or orphan is not)."""
        return bool(
            self.corrupt_blobs
            or self.missing_blobs
            or self.corrupt_inline
            or self.lost_objects
            or len(self.refcount_mismatches) > self.refcounts_fixed
            or len(self.orphan_files) > self.orphans_removed
        )

    @property
    def seconds(self) -> float:
        return max(self.finished_at - self.started_at, 0.0)

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["damaged"] = self.damaged
        data["seconds"] = round(self.seconds, 3)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ScrubSummary:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


def save_scrub(conn: sqlite3.Connection, summary: ScrubSummary) -> None:
    conn.execute(
        "INSERT INTO scrub_runs (kind, started_at, finished_at, report) VALUES (?, ?, ?, ?)",
        (summary.kind, summary.started_at, summary.finished_at, json.dumps(summary.as_json())),
    )
    conn.execute(
        "DELETE FROM scrub_runs WHERE id <= (SELECT max(id) FROM scrub_runs) - ?", (KEEP_SCRUB_RUNS,)
    )


def latest_scrub(conn: sqlite3.Connection) -> ScrubSummary | None:
    row = conn.execute("SELECT report FROM scrub_runs ORDER BY id DESC LIMIT 1").fetchone()
    return ScrubSummary.from_json(json.loads(row[0])) if row else None


# -- the running store's view ----------------------------------------------------------------

Writer = Callable[[Callable[[sqlite3.Connection], Any]], Awaitable[Any]]
Reader = Callable[[Callable[[sqlite3.Connection], Any]], Any]


class Integrity:
    """Counters and marks of one store. The metrics read `corrupt_reads` (reads stopped
    because stored bytes failed their checksum, since start), `last_scrub` (the latest
    ScrubSummary, this process's or the database's) and `scrub_running`."""

    def __init__(self, read: Reader, write: Writer, *, verify_reads: bool) -> None:
        self._read = read
        self._write = write
        self.write = write  # the store's write (a full disk spends the reserve): for the scrub
        self.verify_reads = verify_reads
        self.corrupt_reads = 0
        self.scrub_running = False
        self._last_scrub: ScrubSummary | None = None
        self._last_scrub_id: int | None = None
        self._marking: set[asyncio.Task] = set()

    @property
    def last_scrub(self) -> ScrubSummary | None:
        """The latest summary on record: this process's scrub, or a `folio check` another
        process ran (looked up by id, parsed only when it is new)."""
        try:
            row = self._read(lambda c: c.execute("SELECT max(id) FROM scrub_runs").fetchone())
        except DATABASE_ERRORS:  # a database without the table yet: nothing on record
            return self._last_scrub
        latest = row[0] if row else None
        if latest is not None and latest != self._last_scrub_id:
            self._last_scrub_id = latest
            self._last_scrub = self._read(latest_scrub)
        return self._last_scrub

    @last_scrub.setter
    def last_scrub(self, summary: ScrubSummary) -> None:
        self._last_scrub = summary

    def check_inline(self, version: Any) -> None:
        """An inline object's bytes against their CRC32C (rows written before checksums
        were kept have none). Raises CorruptObject, after counting and marking it."""
        expected = version.inline_crc32c
        if expected is None or crc32c(version.inline_data) == expected:
            return
        what = "its inline bytes fail their CRC32C"
        self._report(version, what)
        self._mark_later(lambda c, now: mark_object_damaged(c, version.id, now))
        raise CorruptObject(version.bucket_id, version.key, version.version_id, what)

    async def corrupt_read(self, version: Any, blob_id: str, what: str) -> CorruptObject:
        """A blob piece failed while a reader streamed it: count, log, mark the blob."""
        self._report(version, f"blob {blob_id}: {what}")
        try:
            await self._write(lambda c: mark_blob_damaged(c, blob_id, time.time()))
        except Exception:  # noqa: BLE001 - the read is refused whether or not the mark lands
            log.exception("could not mark blob %s damaged", blob_id)
        return CorruptObject(version.bucket_id, version.key, version.version_id, what)

    def _report(self, version: Any, what: str) -> None:
        self.corrupt_reads += 1
        try:
            bucket = self._read(lambda c: bucket_name(c, version.bucket_id))
        except DATABASE_ERRORS:
            bucket = f"#{version.bucket_id}"
        log.error(
            "integrity: refused to serve %s/%s (version %s): %s; the read was stopped and the data marked damaged",
            bucket,
            version.key,
            version.version_id,
            what,
        )

    def _mark_later(self, mark: Callable[[sqlite3.Connection, float], None]) -> None:
        """From synchronous code on the loop: the mark is written in the next commit group."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        now = time.time()
        task = loop.create_task(self._write(lambda c: mark(c, now)))
        self._marking.add(task)
        task.add_done_callback(self._marked)

    def _marked(self, task: asyncio.Task) -> None:
        self._marking.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("could not record a damage mark: %s", task.exception())

    def health(self) -> dict[str, Any]:
        """For /healthz: cheap (two indexed counts and what is in memory)."""
        blobs, objects = self._read(damaged_counts)
        last = self.last_scrub
        return {
            "verifyReads": self.verify_reads,
            "corruptReads": self.corrupt_reads,
            "damagedBlobs": blobs,
            "damagedObjects": objects,
            "scrubRunning": self.scrub_running,
            "lastScrub": _scrub_health(last) if last is not None else None,
        }


def _scrub_health(summary: ScrubSummary) -> dict[str, Any]:
    return {
        "kind": summary.kind,
        "startedAt": summary.started_at,
        "finishedAt": summary.finished_at,
        "complete": summary.complete,
        "damaged": summary.damaged,
        "blobsChecked": summary.blobs_checked,
        "bytesChecked": summary.bytes_checked,
        "inlineChecked": summary.inline_checked,
        "corruptBlobs": len(summary.corrupt_blobs),
        "missingBlobs": len(summary.missing_blobs),
        "corruptInline": len(summary.corrupt_inline),
        "refcountMismatches": len(summary.refcount_mismatches),
        "refcountsFixed": summary.refcounts_fixed,
        "orphanFiles": len(summary.orphan_files),
        "orphansRemoved": summary.orphans_removed,
        "lostObjects": len(summary.lost_objects),
    }


def with_checksums(conn: sqlite3.Connection, checksums: dict[str, bytes] | None, value: Any) -> Any:
    """Record new blobs' piece checksums after `value`'s write referenced them (called as
    `with_checksums(c, sums, put_version(c, ...))`: the row exists by then); returns value."""
    for blob_id, packed in (checksums or {}).items():
        record_blob_checksums(conn, blob_id, packed)
    return value
