"""Bucket rows: create, look up, list, delete. Plain functions on a connection;
`Store` decides which connection and transaction they run in."""

from __future__ import annotations

import sqlite3

from s3proxy.store.errors import (
    BucketAlreadyExists,
    BucketAlreadyOwnedByYou,
    BucketNotEmpty,
    NoSuchBucket,
    TooManyBuckets,
)
from s3proxy.store.models import Bucket, BucketSettings, segments_from_json
from s3proxy.store.multipart import drop_uploads_of_bucket
from s3proxy.store.versions import release_blobs

_COLUMNS = "id, name, account_id, region, versioning, created_at, settings"


def _bucket(row: tuple) -> Bucket:
    return Bucket(*row[:6], settings=BucketSettings.from_json(row[6]))


def bucket_by_name(conn: sqlite3.Connection, name: str) -> Bucket | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM buckets WHERE name = ?", (name,)).fetchone()
    return _bucket(row) if row else None


def buckets_of(conn: sqlite3.Connection, account_id: str) -> list[Bucket]:
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM buckets WHERE account_id = ? ORDER BY name", (account_id,)
    ).fetchall()
    return [_bucket(r) for r in rows]


def insert_bucket(
    conn: sqlite3.Connection,
    *,
    name: str,
    account_id: str,
    region: str,
    versioning: str,
    settings: BucketSettings,
    max_buckets: int,
    now: float,
    default_region: str,
) -> tuple[Bucket, bool]:
    """Returns (bucket, created). Re-creating your own bucket is a no-op in the
    default region and `BucketAlreadyOwnedByYou` elsewhere, as AWS does."""
    existing = bucket_by_name(conn, name)
    if existing is not None:
        if existing.account_id != account_id:
            raise BucketAlreadyExists(bucket=name)
        if region == default_region:
            return existing, False
        raise BucketAlreadyOwnedByYou(bucket=name)
    count = conn.execute("SELECT count(*) FROM buckets WHERE account_id = ?", (account_id,)).fetchone()[0]
    if max_buckets and count >= max_buckets:
        raise TooManyBuckets(f"You have attempted to create more buckets than allowed ({max_buckets}).")
    # RETURNING, not lastrowid: the same statement serves SQLite (3.35+) and PostgreSQL.
    (bucket_id,) = conn.execute(
        "INSERT INTO buckets (name, account_id, region, versioning, created_at, settings) VALUES (?, ?, ?, ?, ?, ?)"
        " RETURNING id",
        (name, account_id, region, versioning, now, settings.to_json()),
    ).fetchone()
    return Bucket(bucket_id, name, account_id, region, versioning, now, settings), True


def remove_bucket(
    conn: sqlite3.Connection, bucket_id: int, *, drop_history: bool = False, with_contents: bool = False
) -> list[str]:
    """Delete an empty bucket; its incomplete multipart uploads go with it (as in S3,
    they do not make a bucket non-empty). With `drop_history` (a Time Machine bucket),
    empty means no current objects: noncurrent versions and delete markers go too.
    `with_contents` (the dashboard, after the owner typed the bucket's name) deletes
    whatever is in it. Returns the blobs freed."""
    if not conn.execute("SELECT 1 FROM buckets WHERE id = ?", (bucket_id,)).fetchone():
        raise NoSuchBucket()
    if with_contents:
        live = None
    elif drop_history:
        live = "SELECT 1 FROM objects WHERE bucket_id = ? AND is_latest = 1 AND is_delete_marker = 0 LIMIT 1"
    else:
        live = "SELECT 1 FROM objects WHERE bucket_id = ? LIMIT 1"
    if live is not None and conn.execute(live, (bucket_id,)).fetchone():
        raise BucketNotEmpty()
    freed: list[str] = []
    for (segments,) in conn.execute(
        "DELETE FROM objects WHERE bucket_id = ? RETURNING segments", (bucket_id,)
    ).fetchall():
        freed += release_blobs(conn, [s.blob_id for s in segments_from_json(segments)])
    freed += drop_uploads_of_bucket(conn, bucket_id)
    conn.execute("DELETE FROM buckets WHERE id = ?", (bucket_id,))
    return freed


def versioned_buckets(conn: sqlite3.Connection) -> list[Bucket]:
    rows = conn.execute(f"SELECT {_COLUMNS} FROM buckets WHERE versioning != '' ORDER BY id").fetchall()
    return [_bucket(r) for r in rows]
