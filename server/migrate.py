"""`folio migrate`: move a single-node data directory (SQLite + local blobs) into PostgreSQL
and an upstream S3 bucket, offline, verified, resumable (issue 18).

The order makes an interruption harmless at any point:

1. Blobs first. Each local blob is uploaded under its own id (`<prefix><id>`), then read back
   from the upstream and compared, piece by piece, with the CRC32C of the local file (and with
   the checksums recorded at write time, where there are any). A blob that verified is written
   to `migrate-progress.json` in the data directory, so a second run skips it; a blob already
   upstream but not in the progress file is verified again (re-uploaded if it differs).
2. Then every row of every table, in ONE PostgreSQL transaction: either all of the metadata is
   there or none of it is. A target that already holds rows is refused (a finished migration
   is not run twice; a half one cannot exist).
3. Then the check: every table has as many rows on both sides, every object version's row is
   the same, and every blob an object refers to is among the verified ones.

Nothing in the source changes (its schema is brought up to date first, as a start would do).
Transient per-process state (live nodes, leases, quota reservations of uploads in flight) is
not copied. `master.key` stays the key of every secret in the rows: every new node needs it
(`[auth] master_key_file` or the file in its data directory).
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.config import BlobsConfig
from core.db import Database
from s3proxy.store.blob_s3 import S3BlobStore
from s3proxy.store.blobs import LocalBlobStore
from s3proxy.store.integrity import PieceChecksums

log = logging.getLogger("folio.migrate")

PROGRESS_FILE = "migrate-progress.json"
# Per-process state that means nothing to the new deployment, and cache invalidation counters
# (the target's own start at what its migrations seeded).
NOT_COPIED = {"schema_migrations", "nodes", "leases", "quota_reservations", "cache_epochs"}
ROW_BATCH = 500
READ_CHUNK = 4 * 1024 * 1024


class MigrateError(Exception):
    """A reason to stop that the operator can act on (one line)."""


@dataclass
class MigrateReport:
    blobs_total: int = 0
    blobs_uploaded: int = 0
    blobs_already_there: int = 0
    blob_bytes_uploaded: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    object_versions_checked: int = 0
    seconds: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "blobs": {
                "total": self.blobs_total,
                "uploaded": self.blobs_uploaded,
                "alreadyThere": self.blobs_already_there,
                "bytesUploaded": self.blob_bytes_uploaded,
            },
            "rows": self.rows,
            "objectVersionsChecked": self.object_versions_checked,
            "seconds": round(self.seconds, 2),
        }


def _source_tables(source: sqlite3.Connection) -> list[str]:
    names = [
        r[0]
        for r in source.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY rowid"
        )
    ]
    return [n for n in names if n not in NOT_COPIED]


def _checksums(chunks: Iterator[bytes]) -> tuple[int, bytes]:
    """Size and CRC32C per 1 MiB piece of a blob's bytes (local file or upstream object)."""
    sums = PieceChecksums()
    size = 0
    for chunk in chunks:
        sums.update(chunk)
        size += len(chunk)
    return size, sums.digest()


def _upload(local: LocalBlobStore, upstream: S3BlobStore, blob_id: str) -> int:
    writer = upstream.new_file()
    # The same id upstream as on disk: the rows copied afterwards name it.
    writer.blob_id, writer.key = blob_id, upstream.key(blob_id)
    try:
        for chunk in local.read_chunks(blob_id, READ_CHUNK):
            writer.write(chunk)
        writer.publish()
    except BaseException:
        writer.abort()
        raise
    return writer.size


class Progress:
    """The blobs verified upstream so far, written after each one (resuming skips them)."""

    def __init__(self, path: Path, target: str) -> None:
        self.path = path
        self.target = target
        self.verified: set[str] = set()
        if path.exists():
            saved = json.loads(path.read_text())
            if saved.get("target") == target:
                self.verified = set(saved.get("verifiedBlobs", []))

    def add(self, blob_id: str) -> None:
        self.verified.add(blob_id)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"target": self.target, "verifiedBlobs": sorted(self.verified)}))
        os.replace(tmp, self.path)


def copy_blobs(
    source: sqlite3.Connection,
    local: LocalBlobStore,
    upstream: S3BlobStore,
    progress: Progress,
    report: MigrateReport,
    say: Callable[[str], None],
) -> None:
    rows = source.execute("SELECT id, size, crc32c FROM blobs ORDER BY id").fetchall()
    report.blobs_total = len(rows)
    for done, (blob_id, size, recorded) in enumerate(rows, 1):
        if blob_id in progress.verified:
            report.blobs_already_there += 1
            continue
        try:
            local_size, local_sums = _checksums(local.read_chunks(blob_id, READ_CHUNK))
        except FileNotFoundError as exc:
            raise MigrateError(
                f"blob {blob_id} is missing from the data directory: run `folio check`"
            ) from exc
        if local_size != size or (recorded is not None and bytes(recorded) != local_sums):
            raise MigrateError(f"blob {blob_id} is damaged in the data directory: run `folio check` first")
        try:
            there = _checksums(upstream.read_chunks(blob_id, READ_CHUNK))
        except FileNotFoundError:
            there = None
        if there == (local_size, local_sums):
            report.blobs_already_there += 1
        else:
            report.blob_bytes_uploaded += _upload(local, upstream, blob_id)
            report.blobs_uploaded += 1
            if _checksums(upstream.read_chunks(blob_id, READ_CHUNK)) != (local_size, local_sums):
                raise MigrateError(f"blob {blob_id} read back from the upstream differs from the local file")
        progress.add(blob_id)
        if done % 100 == 0 or done == len(rows):
            say(f"blobs: {done}/{len(rows)} verified upstream")


def _target_columns(conn: Any, table: str) -> list[tuple[str, str]]:
    return conn.execute(
        "SELECT column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position",
        (table,),
    ).fetchall()


def _coerce(value: Any, pg_type: str) -> Any:
    """SQLite stores what it is given; PostgreSQL's columns are typed."""
    if value is None:
        return None
    if pg_type in ("bigint", "integer", "smallint"):
        return int(value)
    if pg_type in ("double precision", "real", "numeric"):
        return float(value)
    if pg_type == "bytea":
        return bytes(value) if not isinstance(value, str) else value.encode()
    if pg_type in ("text", "character varying"):
        return value if isinstance(value, str) else str(value)
    return value


def _source_rows(source: sqlite3.Connection, table: str, columns: list[str]) -> Iterator[list[tuple]]:
    cursor = source.execute(f'SELECT {", ".join(columns)} FROM "{table}"')
    while batch := cursor.fetchmany(ROW_BATCH):
        yield batch


def copy_rows(
    source: sqlite3.Connection, target: Any, report: MigrateReport, say: Callable[[str], None]
) -> None:
    tables = _source_tables(source)

    def copy(conn: Any) -> None:
        for table in tables:
            if conn.execute(f'SELECT 1 FROM "{table}" LIMIT 1').fetchone() is not None:
                raise MigrateError(
                    f"the target database already holds rows in {table}: migrate into an empty database"
                )
        for table in tables:
            source_columns = [r[1] for r in source.execute(f'PRAGMA table_info("{table}")')]
            typed = dict(_target_columns(conn, table))
            missing = [c for c in source_columns if c not in typed]
            if missing:
                raise MigrateError(f"the target's {table} has no column {missing[0]}: schemas differ")
            placeholders = ", ".join("?" for _ in source_columns)
            insert = f'INSERT INTO "{table}" ({", ".join(source_columns)}) VALUES ({placeholders})'
            count = 0
            for batch in _source_rows(source, table, source_columns):
                conn.executemany(
                    insert,
                    [
                        tuple(_coerce(v, typed[c]) for v, c in zip(row, source_columns, strict=True))
                        for row in batch
                    ],
                )
                count += len(batch)
            report.rows[table] = count
            # Identity columns: new rows must not reuse the ids just copied.
            for (column,) in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema()"
                " AND table_name = ? AND is_identity = 'YES'",
                (table,),
            ).fetchall():
                conn.execute(
                    f'SELECT setval(pg_get_serial_sequence(?, ?), coalesce((SELECT max({column}) FROM "{table}"), 0) + 1, false)',
                    (table, column),
                )
            say(f"rows: {table}: {count}")
        # The usage triggers counted every object and part inserted on top of the bucket rows'
        # own totals: the source's totals are the truth.
        for bucket_id, bytes_used, object_count in source.execute(
            "SELECT id, bytes_used, object_count FROM buckets"
        ):
            conn.execute(
                "UPDATE buckets SET bytes_used = ?, object_count = ? WHERE id = ?",
                (bytes_used, object_count, bucket_id),
            )

    target.write_blocking(copy)


OBJECT_COLUMNS = "bucket_id, key, version_id, is_latest, is_delete_marker, size, etag, inline_data, segments"


def check(source: sqlite3.Connection, target: Any, progress: Progress, report: MigrateReport) -> None:
    tables = _source_tables(source)
    for table in tables:
        want = source.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
        got = target.read(lambda c, t=table: c.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0])
        if want != got:
            raise MigrateError(f"{table}: {want} rows in the source, {got} in the target")
    order = " ORDER BY bucket_id, key, version_id"
    target_rows = target.read(lambda c: c.execute(f"SELECT {OBJECT_COLUMNS} FROM objects{order}").fetchall())
    for theirs, ours in zip(
        source.execute(f"SELECT {OBJECT_COLUMNS} FROM objects{order}"), target_rows, strict=True
    ):
        normalized = tuple(bytes(v) if isinstance(v, memoryview) else v for v in theirs)
        if normalized != tuple(ours):
            raise MigrateError(f"object row differs after the copy: bucket {theirs[0]} key {theirs[1]!r}")
        for segment in json.loads(theirs[8] or "[]"):
            if segment[0] not in progress.verified:
                raise MigrateError(f"blob {segment[0]} of key {theirs[1]!r} was not verified upstream")
        report.object_versions_checked += 1


def migrate(
    data_dir: Path,
    migrations: list[Any],
    target: Any,
    upstream_config: BlobsConfig,
    say: Callable[[str], None] = print,
) -> MigrateReport:
    """Copy and verify; raises MigrateError with what to do when it cannot."""
    started = time.monotonic()
    report = MigrateReport()
    db_path = data_dir / "folio.db"
    if not db_path.exists():
        raise MigrateError(f"no folio.db in {data_dir}: nothing to migrate")
    # Bring the source's schema up to date, as a start would, so both sides have the same tables.
    database = Database(db_path)
    database.open(migrations)
    database.close()
    source = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        live = _live_nodes(source)
        if live:
            raise MigrateError(f"Folio is running on {data_dir} ({live} live processes): stop it first")
        target.open(migrations)
        local = LocalBlobStore(data_dir)
        upstream = S3BlobStore(upstream_config, grace_seconds=3600)
        try:
            progress = Progress(
                data_dir / PROGRESS_FILE,
                f"{upstream_config.endpoint}/{upstream_config.bucket}/{upstream_config.prefix}",
            )
            copy_blobs(source, local, upstream, progress, report, say)
            copy_rows(source, target, report, say)
            check(source, target, progress, report)
        finally:
            upstream.close()
            target.close()
    finally:
        source.close()
    report.seconds = time.monotonic() - started
    return report


def _live_nodes(source: sqlite3.Connection) -> int:
    try:
        return source.execute("SELECT count(*) FROM nodes WHERE seen_at > ?", (time.time() - 15,)).fetchone()[
            0
        ]
    except sqlite3.OperationalError:  # no node registry in this data directory
        return 0
