"""`/api/versions` (seed 004, "File Versioning"): the Time Machine over the same
versions S3's ListObjectVersions shows. Upload a new version, list the versioned
files of a bucket or the versions of one file (newest first, `isCurrent`), and
restore one by copying it over the key as a new current version: history is only
ever added to, never rewritten.

A `versionId` here ("ver_...") names bucket, key and S3 version id together, so
PATCH needs nothing else; `s3VersionId` is the id S3 clients see. `versionNumber`
counts the file's versions oldest first (1 is the oldest one still kept)."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from core.jsonapi import bad_request, not_found
from restapi.dashboard import json_body, session_caller
from restapi.files import RestServices, iso, owned_bucket, receive_upload, store_error
from restapi.routing import json_route
from s3proxy.store import copy as copy_engine
from s3proxy.store.engine import NO_CONDITIONS
from s3proxy.store.errors import StoreError
from s3proxy.store.models import Bucket, ObjectVersion, WriteConditions
from s3proxy.store.version_listing import VersionEntry

PREFIX = "ver_"
MAX_VERSIONS_LISTED = 1000


def version_id(bucket: str, key: str, s3_version: str) -> str:
    raw = f"{bucket}/{s3_version}/{key}".encode()
    return PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def parse_version_id(value: str) -> tuple[str, str, str]:
    """(bucket, key, S3 version id)."""
    if not isinstance(value, str) or not value.startswith(PREFIX):
        raise not_found("No such version.")
    text = value[len(PREFIX) :]
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise not_found("No such version.") from exc
    bucket, _, rest = raw.partition("/")
    s3_version, _, key = rest.partition("/")
    if not bucket or not s3_version or not key:
        raise not_found("No such version.")
    return bucket, key, s3_version


def _history(services: RestServices, bucket: Bucket, key: str) -> list[VersionEntry]:
    """The key's versions (delete markers left out), newest first."""
    page = services.store.list_versions(bucket, prefix=key, max_keys=MAX_VERSIONS_LISTED)
    return [e for e in page.entries if e.key == key and not e.is_delete_marker]


def _entry_json(bucket: Bucket, entry: VersionEntry, number: int, *, current: bool) -> dict[str, Any]:
    return {
        "versionId": version_id(bucket.name, entry.key, entry.version_id),
        "s3VersionId": entry.version_id,
        "versionNumber": number,
        "key": entry.key,
        "bucket": bucket.name,
        "size": entry.size,
        "etag": entry.etag,
        "createdAt": iso(entry.last_modified),
        "isCurrent": current,
    }


def _numbered(bucket: Bucket, history: list[VersionEntry]) -> list[dict[str, Any]]:
    total = len(history)
    return [
        _entry_json(bucket, entry, total - index, current=entry.is_latest)
        for index, entry in enumerate(history)
    ]


async def versions(request: Request, services: RestServices) -> Response:
    caller = session_caller(request, services, write=request.method != "GET")
    try:
        if request.method == "POST":
            bucket, version = await receive_upload(request, services, caller)
            history = _history(services, bucket, version.key)
            listed = _numbered(bucket, history)
            mine = next((v for v in listed if v["s3VersionId"] == version.version_id), None)
            if mine is None:  # an unversioned bucket keeps no history: the upload is version 1
                mine = _entry_json(bucket, _entry_of(version), 1, current=True)
            return JSONResponse(mine, status_code=201)
        if request.method == "GET":
            name = request.query_params.get("bucket")
            if not name:
                raise bad_request("Name the bucket: ?bucket=NAME (and &key=KEY for one file).")
            bucket = owned_bucket(services, caller, name)
            key = request.query_params.get("key")
            if key:
                history = _history(services, bucket, key)
                if not history:
                    raise not_found("No such file.")
                return JSONResponse(
                    {"bucket": bucket.name, "key": key, "versions": _numbered(bucket, history)}
                )
            return JSONResponse({"bucket": bucket.name, "files": versioned_files(services, bucket)})
        body = await json_body(request)
        wanted = body.get("versionId")
        if not isinstance(wanted, str) or not wanted:
            raise bad_request("'versionId' must name the version to restore.", field="versionId")
        bucket_name, key, s3_version = parse_version_id(wanted)
        bucket = services.store.bucket(bucket_name)
        if bucket is None or bucket.account_id != caller.account.id:
            raise not_found("No such version.")
        new = await restore_version(services, bucket, key, s3_version, label=wanted)
        history = _history(services, bucket, key)
        return JSONResponse(
            {
                "success": True,
                "restoredVersion": wanted,
                "newVersionId": version_id(bucket.name, key, new.version_id),
                "newVersionNumber": len(history),
            }
        )
    except StoreError as exc:
        if exc.code in ("NoSuchKey", "NoSuchVersion", "MethodNotAllowed"):
            raise not_found("No such version.") from exc
        raise store_error(exc) from exc


async def restore_version(
    services: RestServices,
    bucket: Bucket,
    key: str,
    s3_version: str,
    *,
    label: str | None = None,
    conditions: WriteConditions = NO_CONDITIONS,
) -> ObjectVersion:
    """Copy `s3_version` of `key` over the key as its new current version (history is
    only added to). Also the dashboard's Restore button. `label`: the version as the
    caller named it, for the error; `conditions`: on the key's current version (Rewind
    overwrites only what it saw)."""
    try:
        new, _source = await copy_engine.copy_object(
            services.store,
            source_bucket=bucket,
            source_key=key,
            source_version_id=s3_version,
            dest_bucket=bucket,
            dest_key=key,
            meta=None,
            conditions=copy_engine.CopyConditions(),
            dest_conditions=conditions,
        )
    except copy_engine.IllegalCopy as exc:
        if exc.message != copy_engine.SELF_COPY_MESSAGE:
            raise not_found("No such version.") from exc  # a delete marker is no version to restore
        raise bad_request(
            "That version is already the current one.", **({"versionId": label} if label else {})
        ) from exc
    except StoreError as exc:
        if exc.code in ("NoSuchKey", "NoSuchVersion", "MethodNotAllowed"):
            raise not_found("No such version.") from exc
        raise store_error(exc) from exc
    return new


async def undelete(services: RestServices, bucket: Bucket, key: str) -> bool:
    """Remove the delete marker that hides `key` (S3's way of undeleting: DeleteObject
    of the marker's version id), so the version under it is current again. False when
    the key's newest version is no delete marker."""
    page = services.store.list_versions(bucket, prefix=key, max_keys=MAX_VERSIONS_LISTED)
    latest = next((e for e in page.entries if e.key == key and e.is_latest), None)
    if latest is None or not latest.is_delete_marker:
        return False
    await services.store.delete_object(bucket, key, latest.version_id)
    return True


def _entry_of(version) -> VersionEntry:
    return VersionEntry(
        version.key,
        version.version_id,
        True,
        False,
        version.size,
        version.etag,
        version.last_modified,
        version.storage_class,
    )


def versioned_files(services: RestServices, bucket: Bucket) -> list[dict[str, Any]]:
    """Each key of the bucket with its version count and current version (None when
    deleted); the first MAX_VERSIONS_LISTED versions of the bucket. Also the dashboard's
    versions view."""
    page = services.store.list_versions(bucket, max_keys=MAX_VERSIONS_LISTED)
    files: dict[str, dict[str, Any]] = {}
    for entry in page.entries:
        if entry.is_delete_marker:
            continue
        item = files.setdefault(entry.key, {"key": entry.key, "versionCount": 0, "current": None})
        item["versionCount"] += 1
        if entry.is_latest:
            item["current"] = {
                "s3VersionId": entry.version_id,
                "size": entry.size,
                "updatedAt": iso(entry.last_modified),
            }
    return list(files.values())


def routes(services: RestServices) -> list[Route]:
    return [json_route("/api/versions", versions, services, ["GET", "POST", "PATCH"])]
