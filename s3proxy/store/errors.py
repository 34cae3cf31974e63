"""What the engine refuses, named as S3 names it; the S3 layer maps `code` to an
S3 error, the JSON APIs to their own error format. No HTTP here."""

from __future__ import annotations


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
