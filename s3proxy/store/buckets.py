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
from s3proxy.store.models import Bucket
from s3proxy.store.multipart import drop_uploads_of_bucket

_COLUMNS = "id, name, account_id, region, versioning, created_at"


def _bucket(row: tuple) -> Bucket:
    return Bucket(*row)


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
    if count >= max_buckets:
        raise TooManyBuckets(f"You have attempted to create more buckets than allowed ({max_buckets}).")
    cursor = conn.execute(
        "INSERT INTO buckets (name, account_id, region, versioning, created_at) VALUES (?, ?, ?, ?, ?)",
        (name, account_id, region, versioning, now),
    )
    return Bucket(cursor.lastrowid, name, account_id, region, versioning, now), True


def remove_bucket(conn: sqlite3.Connection, bucket_id: int) -> list[str]:
    """Delete an empty bucket; its incomplete multipart uploads go with it (as in S3,
    they do not make a bucket non-empty). Returns the blobs freed."""
    if not conn.execute("SELECT 1 FROM buckets WHERE id = ?", (bucket_id,)).fetchone():
        raise NoSuchBucket()
    if conn.execute("SELECT 1 FROM objects WHERE bucket_id = ? LIMIT 1", (bucket_id,)).fetchone():
        raise BucketNotEmpty()
    freed = drop_uploads_of_bucket(conn, bucket_id)
    conn.execute("DELETE FROM buckets WHERE id = ?", (bucket_id,))
    return freed
