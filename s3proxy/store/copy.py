"""CopyObject in the engine: a new version that shares the source's bytes.

A copy is a metadata operation. The new row points at the same inline bytes or the
same blobs as the source (each blob gains one reference), so copying 1 GiB costs the
same as copying 4 KiB, and deleting or overwriting either side never harms the other.
The source row is read inside the write transaction that inserts the copy: a
concurrent overwrite of the source cannot leave the copy pointing at freed blobs.
No HTTP here: the S3 layer parses headers into the types below.
"""

from __future__ import annotations

import math
import sqlite3
import time
from dataclasses import dataclass

from core.acting import current_writer
from s3proxy.store import versions as version_rows
from s3proxy.store.errors import NoSuchKey, NoSuchVersion, PreconditionFailed, StoreError
from s3proxy.store.models import Bucket, ObjectMeta, ObjectVersion, WriteConditions
from s3proxy.store.naming import encode_key
from s3proxy.store.versions import etag_matches

SELF_COPY_MESSAGE = (
    "This copy request is illegal because it is trying to copy an object to itself without changing the "
    "object's metadata, storage class, website redirect location or encryption attributes."
)


class IllegalCopy(StoreError):
    """A copy S3 refuses as a request error (onto itself unchanged, from a delete marker)."""

    code = "InvalidRequest"


class SourceChanged(StoreError):
    """The source is no longer the row the caller computed checksums from: read it again."""

    code = "InternalError"


class ChecksumNotStored(StoreError):
    """The copy asks for a checksum algorithm the source has no value for. The caller
    computes it over the bytes of row `source_row_id` (version `source_version_id`) and
    calls again with `computed`."""

    code = "NotImplemented"

    def __init__(self, algorithm: str, source: ObjectVersion) -> None:
        super().__init__(f"The source has no stored {algorithm} checksum.")
        self.algorithm = algorithm
        self.source_row_id = source.id
        self.source_version_id = source.version_id


@dataclass(frozen=True)
class CopyConditions:
    """x-amz-copy-source-if-*: ETag lists as sent, dates as POSIX seconds (None: absent
    or unparsable, which S3 ignores)."""

    if_match: str | None = None
    if_none_match: str | None = None
    if_modified_since: float | None = None
    if_unmodified_since: float | None = None


@dataclass(frozen=True)
class ComputedChecksums:
    """Checksums a caller computed over the bytes of the source row `source_row_id`, for
    an algorithm the source has none stored for."""

    source_row_id: int
    values: dict[str, str]


def _precondition_failed(condition: str) -> PreconditionFailed:
    return PreconditionFailed(
        "At least one of the pre-conditions you specified did not hold", condition=condition
    )


def check_copy_conditions(source: ObjectVersion, conditions: CopyConditions) -> None:
    """S3's rules: an If-Match that holds overrides a failing If-Unmodified-Since, and an
    If-None-Match that fails wins over a holding If-Modified-Since. Every failure is 412
    (a copy never answers 304)."""
    modified = math.floor(source.last_modified)
    if conditions.if_match is not None:
        if not etag_matches(conditions.if_match, source.etag):
            raise _precondition_failed("x-amz-copy-source-If-Match")
    elif conditions.if_unmodified_since is not None and modified > conditions.if_unmodified_since:
        raise _precondition_failed("x-amz-copy-source-If-Unmodified-Since")
    if conditions.if_none_match is not None:
        if etag_matches(conditions.if_none_match, source.etag):
            raise _precondition_failed("x-amz-copy-source-If-None-Match")
    elif conditions.if_modified_since is not None and modified <= conditions.if_modified_since:
        raise _precondition_failed("x-amz-copy-source-If-Modified-Since")


def read_source(conn: sqlite3.Connection, bucket: Bucket, key: str, version_id: str | None) -> ObjectVersion:
    """The version a copy reads from: NoSuchKey, NoSuchVersion, or InvalidRequest for a
    delete marker named by its version id, as S3 answers."""
    raw_key = encode_key(key)
    if version_id is None:
        source = version_rows.latest_version(conn, bucket.id, raw_key)
        if source is None or source.is_delete_marker:
            raise NoSuchKey(key=key)
        return source
    source = version_rows.specific_version(conn, bucket.id, raw_key, version_id)
    if source is None:
        raise NoSuchVersion(key=key, version_id=version_id)
    if source.is_delete_marker:
        raise IllegalCopy(
            "The source of a copy request may not specifically refer to a delete marker by version id."
        )
    return source


def _copied_checksums(
    source: ObjectVersion, checksum_algorithm: str | None, computed: ComputedChecksums | None
) -> dict[str, str]:
    if computed is not None:
        return dict(computed.values)
    if checksum_algorithm is None:
        return dict(source.checksums)
    if checksum_algorithm not in source.checksums:
        raise ChecksumNotStored(checksum_algorithm, source)
    return {checksum_algorithm: source.checksums[checksum_algorithm]}


def copy_in_transaction(
    conn: sqlite3.Connection,
    *,
    source_bucket: Bucket,
    source_key: str,
    source_version_id: str | None,
    dest_bucket: Bucket,
    dest_key: str,
    meta: ObjectMeta | None,
    storage_class: str | None,
    conditions: CopyConditions,
    dest_conditions: WriteConditions,
    checksum_algorithm: str | None,
    computed: ComputedChecksums | None,
    allow_unchanged_self_copy: bool,
    now: float,
    acl: str | None = None,
    writer: str | None = None,
) -> tuple[ObjectVersion, ObjectVersion, list[str]]:
    """The whole copy, inside the writer's transaction: (new version, source, blobs freed)."""
    source = read_source(conn, source_bucket, source_key, source_version_id)
    if computed is not None and computed.source_row_id != source.id:
        raise SourceChanged("the source was replaced while its checksum was computed")
    check_copy_conditions(source, conditions)
    raw_dest_key = encode_key(dest_key)
    onto_itself = (
        source_bucket.id == dest_bucket.id
        and source.key == dest_key
        # Copying an older version over the current one restores it: that is a change.
        and source.is_latest
    )
    if (
        onto_itself
        and meta is None
        and (storage_class is None or storage_class == source.storage_class)
        and not allow_unchanged_self_copy
    ):
        raise IllegalCopy(SELF_COPY_MESSAGE)
    checksums = _copied_checksums(source, checksum_algorithm, computed)
    if meta is None:
        meta = ObjectMeta(
            content_type=source.content_type,
            headers=dict(source.headers),
            user_meta=dict(source.user_meta),
            checksums=checksums,
            storage_class=storage_class or source.storage_class,
            acl=acl,
        )
    else:
        meta = ObjectMeta(
            content_type=meta.content_type,
            headers=meta.headers,
            user_meta=meta.user_meta,
            checksums=checksums,
            storage_class=storage_class or meta.storage_class,
            acl=acl,
        )
    version, freed = version_rows.put_version(
        conn,
        dest_bucket,
        raw_dest_key,
        size=source.size,
        etag=source.etag,
        meta=meta,
        inline_data=source.inline_data,
        segments=source.segments,
        conditions=dest_conditions,
        now=now,
        # The copy keeps the multipart ETag, so it keeps the parts that ETag counts.
        parts=source.parts,
        writer=writer,
        # The source's own checksum, never one of the bytes as they are now: a copy of
        # damaged inline bytes stays detectably damaged.
        inline_crc32c=source.inline_crc32c,
    )
    return version, source, freed


async def copy_object(
    store,
    *,
    source_bucket: Bucket,
    source_key: str,
    source_version_id: str | None,
    dest_bucket: Bucket,
    dest_key: str,
    meta: ObjectMeta | None,
    conditions: CopyConditions,
    dest_conditions: WriteConditions,
    storage_class: str | None = None,
    checksum_algorithm: str | None = None,
    computed: ComputedChecksums | None = None,
    allow_unchanged_self_copy: bool = False,
    acl: str | None = None,
) -> tuple[ObjectVersion, ObjectVersion]:
    """Copy a version to `dest_key`: (the new version, the source version).

    `meta` None copies the source's metadata (COPY), else replaces it (REPLACE); either
    way `storage_class`, when given, is the copy's. Checksums are the source's stored ones
    (the bytes are identical); with `checksum_algorithm` only that one is kept, and when
    the source has none stored for it, ChecksumNotStored says which row to compute it
    over; call again with `computed` (SourceChanged if that row was replaced meanwhile).
    `allow_unchanged_self_copy` is for callers whose request changes something the engine
    does not store (encryption, website redirect), which S3 accepts onto the same key.
    """
    now = time.time()
    writer = current_writer()
    version, source, freed = await store.write_object(
        dest_bucket,
        encode_key(dest_key),
        lambda conn: copy_in_transaction(
            conn,
            source_bucket=source_bucket,
            source_key=source_key,
            source_version_id=source_version_id,
            dest_bucket=dest_bucket,
            dest_key=dest_key,
            meta=meta,
            storage_class=storage_class,
            conditions=conditions,
            dest_conditions=dest_conditions,
            checksum_algorithm=checksum_algorithm,
            computed=computed,
            allow_unchanged_self_copy=allow_unchanged_self_copy,
            now=now,
            acl=acl,
            writer=writer,
        ),
        event="put",
    )
    store._free_blobs(freed)
    return version, source
