"""Object version rows: the write paths (put, delete, delete markers) and the
reference counts of the blobs they point at. Plain functions on a connection,
run inside the writer's transaction."""

from __future__ import annotations

import base64
import json
import math
import secrets
import sqlite3

from s3proxy.store.errors import NoSuchKey, PreconditionFailed
from s3proxy.store.models import (
    NULL_VERSION,
    OBJECT_COLUMNS,
    Bucket,
    ObjectMeta,
    ObjectVersion,
    PartInfo,
    Segment,
    WriteConditions,
    object_from_row,
    segments_from_json,
    segments_to_json,
)

_random_pool = bytearray()


def new_version_id() -> str:
    """32 characters of URL-safe base64 from 24 random bytes. The bytes come from a
    pool refilled 4 KiB at a time: one getrandom call per version cost more than the
    rest of a small versioned PUT's row work."""
    global _random_pool
    if len(_random_pool) < 24:
        _random_pool = bytearray(secrets.token_bytes(4096))
    chunk = bytes(_random_pool[-24:])
    del _random_pool[-24:]
    return base64.urlsafe_b64encode(chunk).decode()


def latest_version(conn: sqlite3.Connection, bucket_id: int, key: bytes) -> ObjectVersion | None:
    """The current version (possibly a delete marker), or None."""
    row = conn.execute(
        f"SELECT {OBJECT_COLUMNS} FROM objects WHERE bucket_id = ? AND key = ? AND is_latest = 1",
        (bucket_id, key),
    ).fetchone()
    return object_from_row(row) if row else None


def specific_version(
    conn: sqlite3.Connection, bucket_id: int, key: bytes, version_id: str
) -> ObjectVersion | None:
    row = conn.execute(
        f"SELECT {OBJECT_COLUMNS} FROM objects WHERE bucket_id = ? AND key = ? AND version_id = ?",
        (bucket_id, key, version_id),
    ).fetchone()
    return object_from_row(row) if row else None


def release_blobs(conn: sqlite3.Connection, blob_ids: list[str]) -> list[str]:
    """Drop one reference from each blob; returns the ids whose files can go."""
    freed = []
    for blob_id in blob_ids:
        row = conn.execute(
            "UPDATE blobs SET refcount = refcount - 1 WHERE id = ? RETURNING refcount", (blob_id,)
        ).fetchone()
        if row is not None and row[0] <= 0:
            conn.execute("DELETE FROM blobs WHERE id = ?", (blob_id,))
            freed.append(blob_id)
    return freed


def reference_blobs(conn: sqlite3.Connection, segments: tuple[Segment, ...], now: float) -> None:
    """One more reference to each segment's blob (a new blob is created with its length)."""
    for segment in segments:
        conn.execute(
            "INSERT INTO blobs (id, size, refcount, created_at) VALUES (?, ?, 1, ?)"
            " ON CONFLICT(id) DO UPDATE SET refcount = blobs.refcount + 1",
            (segment.blob_id, segment.offset + segment.length, now),
        )


def _remove_row(conn: sqlite3.Connection, version: ObjectVersion) -> list[str]:
    conn.execute("DELETE FROM objects WHERE id = ?", (version.id,))
    return release_blobs(conn, version.blob_ids)


def _promote_newest(conn: sqlite3.Connection, bucket_id: int, key: bytes) -> None:
    conn.execute(
        "UPDATE objects SET is_latest = 1 WHERE id = (SELECT max(id) FROM objects WHERE bucket_id = ? AND key = ?)",
        (bucket_id, key),
    )


def etag_matches(header: str, etag: str) -> bool:
    """Whether an If-Match / If-None-Match style list names this ETag (or is '*')."""
    for candidate in header.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/").strip('"') == etag:
            return True
    return False


def check_conditions(current: ObjectVersion | None, conditions: WriteConditions) -> None:
    """S3's conditional writes and deletes, against the key's current version: If-None-Match
    '*' fails (412) when it exists; If-Match (an ETag, or '*') needs it to exist (404
    NoSuchKey, a delete marker counting as absent) and to match (412)."""
    exists = current is not None and not current.is_delete_marker
    if conditions.if_none_match_any and exists:
        raise PreconditionFailed(
            "At least one of the pre-conditions you specified did not hold", condition="If-None-Match"
        )
    if conditions.if_match is not None:
        if not exists:
            raise NoSuchKey("The specified key does not exist.")
        assert current is not None
        if not etag_matches(conditions.if_match, current.etag):
            raise PreconditionFailed(
                "At least one of the pre-conditions you specified did not hold", condition="If-Match"
            )


def _insert_row(
    conn: sqlite3.Connection,
    *,
    bucket_id: int,
    key: bytes,
    version_id: str,
    is_delete_marker: bool,
    size: int,
    etag: str,
    now: float,
    meta: ObjectMeta,
    inline_data: bytes | None,
    segments: tuple[Segment, ...],
    parts: tuple[PartInfo, ...] = (),
    writer: str | None = None,
    inline_crc32c: int | None = None,
) -> int:
    # RETURNING, not lastrowid: the same statement serves SQLite (3.35+) and PostgreSQL.
    row = conn.execute(
        "INSERT INTO objects (bucket_id, key, version_id, is_latest, is_delete_marker, size, etag, last_modified,"
        " storage_class, content_type, headers, user_meta, checksums, inline_data, segments, parts, acl, writer,"
        " crc32c) VALUES (?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (
            bucket_id,
            key,
            version_id,
            int(is_delete_marker),
            size,
            etag,
            now,
            meta.storage_class,
            meta.content_type,
            json.dumps(meta.headers) if meta.headers else None,
            json.dumps(meta.user_meta) if meta.user_meta else None,
            json.dumps(meta.checksums) if meta.checksums else None,
            inline_data,
            segments_to_json(segments),
            json.dumps([[p.size, p.etag, p.checksums] for p in parts]) if parts else None,
            meta.acl,
            writer,
            inline_crc32c,
        ),
    ).fetchone()
    return row[0]


def _remove_null_version(conn: sqlite3.Connection, bucket_id: int, key: bytes) -> tuple[bool, list[str]]:
    """Delete the key's "null" version if any: (whether it existed, blobs freed)."""
    row = conn.execute(
        "DELETE FROM objects WHERE bucket_id = ? AND key = ? AND version_id = ? RETURNING segments",
        (bucket_id, key, NULL_VERSION),
    ).fetchone()
    if row is None:
        return False, []
    return True, release_blobs(conn, [segment.blob_id for segment in segments_from_json(row[0])])


def _make_room_for_new_latest(
    conn: sqlite3.Connection, bucket: Bucket, key: bytes
) -> tuple[str, list[str], bool]:
    """Retire the current version before a new one becomes latest. Returns the
    new version id, the blobs freed by replacing the null version, and whether the
    key had versions before (a key's versions always include one latest)."""
    if bucket.versioning == "Enabled":
        retired = conn.execute(
            "UPDATE objects SET is_latest = 0 WHERE bucket_id = ? AND key = ? AND is_latest = 1",
            (bucket.id, key),
        ).rowcount
        return new_version_id(), [], retired > 0
    # Unversioned and Suspended buckets overwrite the single "null" version in place.
    replaced, freed = _remove_null_version(conn, bucket.id, key)
    retired = 0
    if bucket.versioning == "Suspended":
        # Older, real versions stay, but none of them is the latest any more.
        retired = conn.execute(
            "UPDATE objects SET is_latest = 0 WHERE bucket_id = ? AND key = ? AND is_latest = 1",
            (bucket.id, key),
        ).rowcount
    return NULL_VERSION, freed, replaced or retired > 0


def put_version(
    conn: sqlite3.Connection,
    bucket: Bucket,
    key: bytes,
    *,
    size: int,
    etag: str,
    meta: ObjectMeta,
    inline_data: bytes | None,
    segments: tuple[Segment, ...],
    conditions: WriteConditions,
    now: float,
    parts: tuple[PartInfo, ...] = (),
    writer: str | None = None,
    inline_crc32c: int | None = None,
) -> tuple[ObjectVersion, list[str]]:
    """`inline_crc32c`: the CRC32C of `inline_data` (s3proxy.store.integrity)."""
    # S3 times have whole seconds (Last-Modified has no fractions). Rounding up, not
    # down, keeps "modified after the local file" true for a file written in the same
    # second: `aws s3 sync` would otherwise upload it again.
    now = float(math.ceil(now))
    if conditions.any:
        check_conditions(latest_version(conn, bucket.id, key), conditions)
    # Reference the new bytes before retiring the old version: when both share blobs
    # (a copy onto itself), their count must never touch zero on the way.
    reference_blobs(conn, segments, now)
    version_id, freed, had_history = _make_room_for_new_latest(conn, bucket, key)
    row_id = _insert_row(
        conn,
        bucket_id=bucket.id,
        key=key,
        version_id=version_id,
        is_delete_marker=False,
        size=size,
        etag=etag,
        now=now,
        meta=meta,
        inline_data=inline_data,
        segments=segments,
        parts=parts,
        writer=writer,
        inline_crc32c=inline_crc32c,
    )
    version = ObjectVersion(
        id=row_id,
        bucket_id=bucket.id,
        key=key.decode("utf-8"),
        version_id=version_id,
        is_latest=True,
        is_delete_marker=False,
        size=size,
        etag=etag,
        last_modified=now,
        storage_class=meta.storage_class,
        content_type=meta.content_type,
        headers=meta.headers,
        user_meta=meta.user_meta,
        checksums=meta.checksums,
        inline_data=inline_data,
        segments=segments,
        parts=parts,
        acl=meta.acl,
        writer=writer,
        had_history=had_history,
        inline_crc32c=inline_crc32c,
    )
    return version, freed


def delete_key(
    conn: sqlite3.Connection,
    bucket: Bucket,
    key: bytes,
    version_id: str | None,
    now: float,
    conditions: WriteConditions | None = None,
    writer: str | None = None,
) -> tuple[str | None, bool, list[str]]:
    """DeleteObject semantics. Returns (version id affected or created, whether it
    is a delete marker, blobs freed). Conditions are S3's conditional delete: they are
    evaluated against the current version, whichever version is deleted."""
    if conditions is not None and conditions.any:
        check_conditions(latest_version(conn, bucket.id, key), conditions)
    if version_id is not None:
        version = specific_version(conn, bucket.id, key, version_id)
        if version is None:
            return version_id, False, []
        freed = _remove_row(conn, version)
        if version.is_latest:
            _promote_newest(conn, bucket.id, key)
        return version_id, version.is_delete_marker, freed
    if bucket.versioning == "":
        # A never-versioned bucket holds only the null version: nothing to promote.
        _, freed = _remove_null_version(conn, bucket.id, key)
        return None, False, freed
    marker_id, freed, _had_history = _make_room_for_new_latest(conn, bucket, key)
    _insert_row(
        conn,
        bucket_id=bucket.id,
        key=key,
        version_id=marker_id,
        is_delete_marker=True,
        size=0,
        etag="",
        now=now,
        meta=ObjectMeta(),
        inline_data=None,
        segments=(),
        writer=writer,
    )
    return marker_id, True, freed


def referenced_blob_ids(conn: sqlite3.Connection) -> set[str]:
    return {row[0] for row in conn.execute("SELECT id FROM blobs")}
