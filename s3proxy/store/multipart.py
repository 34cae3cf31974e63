"""Multipart uploads: the upload and part rows, and completing an upload by
stitching its parts' blobs into the object's segment list (no byte is copied).
Plain functions on a connection, run inside the writer's transaction."""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from s3proxy.store.errors import EntityTooSmall, InvalidPart, InvalidPartOrder, NoSuchUpload
from s3proxy.store.models import (
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
from s3proxy.store.naming import prefix_successor
from s3proxy.store.versions import put_version, reference_blobs, release_blobs

# How long a completed upload is remembered for a Complete sent again (an SDK retrying
# after a lost answer): a day, or less if its object stops being the key's current version.
COMPLETED_MEMORY_SECONDS = 24 * 3600.0


class AlreadyCompleted(Exception):  # noqa: N818 - not an error: the outcome of a repeated Complete
    """A Complete repeated after it succeeded: carries the version it made. Raised
    inside the write so that the transaction changes nothing (no event, no pruning)."""

    def __init__(self, version: ObjectVersion) -> None:
        super().__init__(version.version_id)
        self.version = version


@dataclass(frozen=True)
class Upload:
    id: str
    bucket_id: int
    key: str
    initiated: float
    meta: ObjectMeta
    checksum_algorithm: str | None
    checksum_type: str | None


@dataclass(frozen=True)
class Part:
    part_number: int
    size: int
    etag: str
    checksums: dict[str, str]
    last_modified: float
    segments: tuple[Segment, ...]


@dataclass(frozen=True)
class RequestedPart:
    """A part as named in CompleteMultipartUpload."""

    part_number: int
    etag: str
    checksums: dict[str, str]


# Computes the object's ETag (hex, without quotes) and checksums from the chosen parts.
Finalizer = Callable[[Upload, list[Part]], tuple[str, dict[str, str]]]


def multipart_etag(parts: list[Part]) -> str:
    """S3's ETag of a multipart object: hex MD5 of the parts' binary MD5s, then "-<count>"
    (here, below the S3 API, so that every upload path that completes uploads shares it)."""
    digest = hashlib.md5(b"".join(bytes.fromhex(part.etag) for part in parts)).hexdigest()
    return f"{digest}-{len(parts)}"


_UPLOAD_COLUMNS = "id, bucket_id, key, initiated, storage_class, content_type, headers, user_meta, checksum_algorithm, checksum_type"


# The canned ACL asked for at CreateMultipartUpload rides in the upload's headers.
_ACL_HEADER = "x-amz-acl"


def _upload(row: tuple) -> Upload:
    headers = json.loads(row[6]) if row[6] else {}
    acl = headers.pop(_ACL_HEADER, None)
    return Upload(
        id=row[0],
        bucket_id=row[1],
        key=bytes(row[2]).decode("utf-8"),
        initiated=row[3],
        meta=ObjectMeta(
            storage_class=row[4],
            content_type=row[5],
            headers=headers,
            user_meta=json.loads(row[7]) if row[7] else {},
            acl=acl,
        ),
        checksum_algorithm=row[8],
        checksum_type=row[9],
    )


def _part(row: tuple) -> Part:
    return Part(
        part_number=row[0],
        size=row[1],
        etag=row[2],
        checksums=json.loads(row[3]) if row[3] else {},
        last_modified=row[4],
        segments=segments_from_json(row[5]),
    )


def insert_upload(
    conn: sqlite3.Connection,
    bucket: Bucket,
    key: bytes,
    meta: ObjectMeta,
    checksum_algorithm: str | None,
    checksum_type: str | None,
    now: float,
) -> Upload:
    upload_id = secrets.token_urlsafe(32)
    headers = {**meta.headers, _ACL_HEADER: meta.acl} if meta.acl else meta.headers
    conn.execute(
        f"INSERT INTO uploads ({_UPLOAD_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            upload_id,
            bucket.id,
            key,
            now,
            meta.storage_class,
            meta.content_type,
            json.dumps(headers) if headers else None,
            json.dumps(meta.user_meta) if meta.user_meta else None,
            checksum_algorithm,
            checksum_type,
        ),
    )
    return Upload(upload_id, bucket.id, key.decode("utf-8"), now, meta, checksum_algorithm, checksum_type)


def find_upload(conn: sqlite3.Connection, bucket: Bucket, key: bytes, upload_id: str) -> Upload:
    row = conn.execute(
        f"SELECT {_UPLOAD_COLUMNS} FROM uploads WHERE id = ? AND bucket_id = ? AND key = ?",
        (upload_id, bucket.id, key),
    ).fetchone()
    if row is None:
        raise NoSuchUpload(upload_id=upload_id)
    return _upload(row)


def put_part(
    conn: sqlite3.Connection,
    bucket: Bucket,
    key: bytes,
    upload_id: str,
    part_number: int,
    *,
    size: int,
    etag: str,
    checksums: dict[str, str],
    segments: tuple[Segment, ...],
    now: float,
) -> list[str]:
    """Store a part (replacing an earlier upload of the same number); returns freed blobs."""
    find_upload(conn, bucket, key, upload_id)
    freed: list[str] = []
    old = conn.execute(
        "DELETE FROM upload_parts WHERE upload_id = ? AND part_number = ? RETURNING segments",
        (upload_id, part_number),
    ).fetchone()
    if old is not None:
        freed = release_blobs(conn, [s.blob_id for s in segments_from_json(old[0])])
    reference_blobs(conn, segments, now)
    conn.execute(
        "INSERT INTO upload_parts (upload_id, part_number, size, etag, checksums, last_modified, segments)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            upload_id,
            part_number,
            size,
            etag,
            json.dumps(checksums) if checksums else None,
            now,
            segments_to_json(segments) or "[]",
        ),
    )
    return freed


def list_parts(
    conn: sqlite3.Connection, upload_id: str, *, after: int, max_parts: int
) -> tuple[list[Part], bool]:
    rows = conn.execute(
        "SELECT part_number, size, etag, checksums, last_modified, segments FROM upload_parts"
        " WHERE upload_id = ? AND part_number > ? ORDER BY part_number LIMIT ?",
        (upload_id, after, max_parts + 1),
    ).fetchall()
    return [_part(r) for r in rows[:max_parts]], len(rows) > max_parts


def _all_parts(conn: sqlite3.Connection, upload_id: str) -> dict[int, Part]:
    rows = conn.execute(
        "SELECT part_number, size, etag, checksums, last_modified, segments FROM upload_parts WHERE upload_id = ?",
        (upload_id,),
    ).fetchall()
    return {row[0]: _part(row) for row in rows}


def _drop_upload(conn: sqlite3.Connection, upload_id: str) -> list[str]:
    """Delete the upload and its parts; returns the blobs no longer referenced."""
    freed: list[str] = []
    for (segments,) in conn.execute(
        "DELETE FROM upload_parts WHERE upload_id = ? RETURNING segments", (upload_id,)
    ).fetchall():
        freed += release_blobs(conn, [s.blob_id for s in segments_from_json(segments)])
    conn.execute("DELETE FROM uploads WHERE id = ?", (upload_id,))
    return freed


def abort_upload(conn: sqlite3.Connection, bucket: Bucket, key: bytes, upload_id: str) -> list[str]:
    find_upload(conn, bucket, key, upload_id)
    return _drop_upload(conn, upload_id)


def complete_upload(
    conn: sqlite3.Connection,
    bucket: Bucket,
    key: bytes,
    upload_id: str,
    requested: list[RequestedPart],
    *,
    min_part_size: int,
    finalize: Finalizer,
    conditions: WriteConditions,
    now: float,
    acl: str | None = None,
    acl_given: bool = False,
    writer: str | None = None,
) -> tuple[ObjectVersion, list[str]]:
    """Validate the part list as S3 does, make the object from the parts' blobs, and
    drop the upload (freeing parts that were not used). One transaction. A repeat of
    a Complete that succeeded raises `AlreadyCompleted` with its version."""
    try:
        upload = find_upload(conn, bucket, key, upload_id)
    except NoSuchUpload:
        raise AlreadyCompleted(completed_version(conn, bucket, key, upload_id, requested, now)) from None
    stored = _all_parts(conn, upload_id)
    chosen: list[Part] = []
    previous = 0
    for wanted in requested:
        if wanted.part_number <= previous:
            raise InvalidPartOrder(
                "The list of parts was not in ascending order. Parts must be ordered by part number."
            )
        previous = wanted.part_number
        part = stored.get(wanted.part_number)
        if part is None or wanted.etag.strip().strip('"') != part.etag:
            raise InvalidPart(
                "One or more of the specified parts could not be found. The part may not have been uploaded, "
                "or the specified entity tag may not match the part's entity tag.",
                part_number=wanted.part_number,
            )
        for algorithm, value in wanted.checksums.items():
            if part.checksums.get(algorithm) not in (None, value):
                raise InvalidPart(f"The {algorithm} checksum of part {wanted.part_number} does not match.")
        chosen.append(part)
    for part in chosen[:-1]:
        if part.size < min_part_size:
            raise EntityTooSmall(
                "Your proposed upload is smaller than the minimum allowed object size.",
                part_number=part.part_number,
                size=part.size,
                min_size_allowed=min_part_size,
            )
    etag, checksums = finalize(upload, chosen)
    meta = ObjectMeta(
        content_type=upload.meta.content_type,
        headers=upload.meta.headers,
        user_meta=upload.meta.user_meta,
        checksums=checksums,
        storage_class=upload.meta.storage_class,
        # An ACL named at completion wins over the one given at creation.
        acl=acl if acl_given else upload.meta.acl,
    )
    segments = tuple(segment for part in chosen for segment in part.segments)
    version, freed = put_version(
        conn,
        bucket,
        key,
        size=sum(part.size for part in chosen),
        etag=etag,
        meta=meta,
        inline_data=None,
        segments=segments,
        conditions=conditions,
        now=now,
        parts=tuple(PartInfo(part.size, part.etag, part.checksums) for part in chosen),
        writer=writer,
    )
    conn.execute(
        "INSERT INTO completed_uploads"
        " (id, bucket_id, key, object_id, version_id, etag, last_modified, parts, completed_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            upload_id,
            bucket.id,
            key,
            version.id,
            version.version_id,
            version.etag,
            version.last_modified,
            _part_list_json(requested),
            now,
        ),
    )
    return version, freed + _drop_upload(conn, upload_id)


def _part_list_json(requested: list[RequestedPart]) -> str:
    """The part list a Complete named, as compared with a repeat of it (quotes aside)."""
    return json.dumps([[part.part_number, part.etag.strip().strip('"')] for part in requested])


def completed_version(
    conn: sqlite3.Connection,
    bucket: Bucket,
    key: bytes,
    upload_id: str,
    requested: list[RequestedPart] | None,
    now: float,
) -> ObjectVersion:
    """The version a completed upload made, while it is remembered and still the key's
    current version, and (when given) the Complete names the same parts. Otherwise
    NoSuchUpload, as for any other use of a finished upload id."""
    row = conn.execute(
        "SELECT object_id, version_id, etag, last_modified, parts, completed_at FROM completed_uploads"
        " WHERE id = ? AND bucket_id = ? AND key = ?",
        (upload_id, bucket.id, key),
    ).fetchone()
    if row is None or row[5] < now - COMPLETED_MEMORY_SECONDS:
        raise NoSuchUpload(upload_id=upload_id)
    if requested is not None and _part_list_json(requested) != row[4]:
        raise NoSuchUpload(upload_id=upload_id)
    # Not by row id alone: a deleted row's id can be given to a new row, and every
    # version of an unversioned key is 'null'.
    current = conn.execute(
        f"SELECT {OBJECT_COLUMNS} FROM objects WHERE id = ? AND bucket_id = ? AND key = ? AND version_id = ?"
        " AND etag = ? AND last_modified = ? AND is_latest = 1 AND is_delete_marker = 0",
        (row[0], bucket.id, key, row[1], row[2], row[3]),
    ).fetchone()
    if current is None:
        raise NoSuchUpload(upload_id=upload_id)
    return object_from_row(current)


def forget_completed(conn: sqlite3.Connection, cutoff: float) -> int:
    """Drop completed uploads finished before `cutoff` or whose object is no longer current."""
    return conn.execute(
        "DELETE FROM completed_uploads WHERE completed_at < ? OR NOT EXISTS (SELECT 1 FROM objects o"
        " WHERE o.id = completed_uploads.object_id AND o.version_id = completed_uploads.version_id"
        " AND o.etag = completed_uploads.etag"
        " AND o.is_latest = 1)",
        (cutoff,),
    ).rowcount


def list_uploads(
    conn: sqlite3.Connection,
    bucket: Bucket,
    *,
    prefix: bytes,
    delimiter: bytes | None,
    key_marker: bytes | None,
    upload_id_marker: str | None,
    max_uploads: int,
) -> tuple[list[Upload], list[str], bool]:
    """Uploads in (key, initiation) order after the markers, with common prefixes."""
    uploads: list[Upload] = []
    prefixes: list[str] = []
    upper = prefix_successor(prefix) if prefix else None
    cursor_key = key_marker if key_marker is not None else prefix
    cursor_id = upload_id_marker if key_marker is not None and upload_id_marker else None
    # Without an upload-id-marker, S3 starts after every upload of the key-marker.
    skip_marker_key = key_marker is not None and not upload_id_marker
    rows = conn.execute(
        f"SELECT {_UPLOAD_COLUMNS} FROM uploads WHERE bucket_id = ? AND key >= ?"
        + (" AND key < ?" if upper is not None else "")
        + " ORDER BY key, initiated, id",
        (bucket.id, cursor_key, upper) if upper is not None else (bucket.id, cursor_key),
    )
    truncated = False
    passed_marker = cursor_id is None
    for row in rows:
        key = bytes(row[2])
        if key_marker is not None and key == key_marker:
            if skip_marker_key:
                continue
            if not passed_marker:
                if row[0] == cursor_id:
                    passed_marker = True
                continue
        common: str | None = None
        if delimiter:
            at = key.find(delimiter, len(prefix))
            if at >= 0:
                common = key[: at + len(delimiter)].decode("utf-8")
                if (prefixes and prefixes[-1] == common) or (
                    key_marker is not None and common.encode() <= key_marker
                ):
                    continue
        if len(uploads) + len(prefixes) >= max_uploads:
            truncated = True
            break
        if common is not None:
            prefixes.append(common)
            continue
        uploads.append(_upload(row))
    return uploads, prefixes, truncated


def uploads_older_than(conn: sqlite3.Connection, cutoff: float, limit: int = 1000) -> list[str]:
    return [r[0] for r in conn.execute("SELECT id FROM uploads WHERE initiated < ? LIMIT ?", (cutoff, limit))]


def drop_upload_by_id(conn: sqlite3.Connection, upload_id: str) -> list[str]:
    return _drop_upload(conn, upload_id)


def drop_uploads_of_bucket(conn: sqlite3.Connection, bucket_id: int) -> list[str]:
    conn.execute("DELETE FROM completed_uploads WHERE bucket_id = ?", (bucket_id,))
    freed: list[str] = []
    for (upload_id,) in conn.execute("SELECT id FROM uploads WHERE bucket_id = ?", (bucket_id,)).fetchall():
        freed += _drop_upload(conn, upload_id)
    return freed
