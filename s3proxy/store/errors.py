"""What the engine refuses, named as S3 names it; the S3 layer maps `code` to an
S3 error, the JSON APIs to their own error format. No HTTP here."""

from __future__ import annotations

import errno
import logging
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager

from core.db import DATABASE_ERRORS

log = logging.getLogger("folio.store")


class StoreError(Exception):
    code = "InternalError"

    def __init__(self, message: str = "", **details: object) -> None:
        super().__init__(message or self.code)
        self.message = message
        self.details = details


class NoSuchBucket(StoreError):
    code = "NoSuchBucket"


class BucketAccessDenied(StoreError):
    code = "AccessDenied"


class BucketAlreadyExists(StoreError):
    code = "BucketAlreadyExists"


class BucketAlreadyOwnedByYou(StoreError):
    code = "BucketAlreadyOwnedByYou"


class BucketNotEmpty(StoreError):
    code = "BucketNotEmpty"


class InvalidBucketName(StoreError):
    code = "InvalidBucketName"


class TooManyBuckets(StoreError):
    code = "TooManyBuckets"


class NoSuchKey(StoreError):
    code = "NoSuchKey"


class NoSuchVersion(StoreError):
    code = "NoSuchVersion"


class KeyTooLong(StoreError):
    code = "KeyTooLongError"


class PreconditionFailed(StoreError):
    code = "PreconditionFailed"


class InvalidKey(StoreError):
    code = "InvalidArgument"


class ObjectIsDeleteMarker(StoreError):
    """The addressed version is a delete marker: S3 answers 404 (current) or 405
    (asked for by version id) with `x-amz-delete-marker: true`."""

    code = "NoSuchKey"

    def __init__(self, version_id: str, by_version_id: bool, last_modified: float) -> None:
        super().__init__("The specified key does not exist.")
        self.version_id = version_id
        self.by_version_id = by_version_id
        self.last_modified = last_modified
        if by_version_id:
            self.code = "MethodNotAllowed"


class NoSuchUpload(StoreError):
    code = "NoSuchUpload"


class InvalidPart(StoreError):
    code = "InvalidPart"


class InvalidPartOrder(StoreError):
    code = "InvalidPartOrder"


class EntityTooSmall(StoreError):
    code = "EntityTooSmall"


class QuotaExceeded(StoreError):
    code = "QuotaExceeded"


class StorageFull(StoreError):
    """The disk (or the filesystem quota) holding the data directory is full: a write
    failed with ENOSPC/EDQUOT, or SQLite with SQLITE_FULL. Nothing of the write
    remains; reads and deletes still work. MinIO's code and status (507)."""

    code = "XMinioStorageFull"


FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
WARN_EVERY_SECONDS = 10.0
_last_warning = 0.0


def is_storage_full(exc: BaseException) -> bool:
    """Whether `exc` (or what it was raised from) says the disk is full."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, StorageFull):
            return True
        if isinstance(current, OSError) and current.errno in FULL_ERRNOS:
            return True
        # The primary result code: SQLite reports ENOSPC on its own files as SQLITE_FULL.
        full_code = getattr(current, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_FULL
        if isinstance(current, sqlite3.Error) and full_code:
            return True
        # PostgreSQL's disk_full (SQLSTATE 53100): the database server's disk.
        if getattr(current, "sqlstate", None) == "53100":
            return True
        current = current.__cause__ or current.__context__
    return False


def _warn(exc: BaseException) -> None:
    # The operator must learn that the disk is full, but once per burst, not per request.
    global _last_warning
    now = time.monotonic()
    if now - _last_warning >= WARN_EVERY_SECONDS:
        _last_warning = now
        log.warning("storage full, writes are refused until space is freed: %s", exc)


@contextmanager
def full_disk_refused() -> Iterator[None]:
    """Turns a full disk under the block into `StorageFull`; other errors pass as they are."""
    try:
        yield
    except (OSError, *DATABASE_ERRORS) as exc:
        if not is_storage_full(exc):
            raise
        _warn(exc)
        raise StorageFull() from exc
