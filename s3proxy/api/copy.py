"""CopyObject: parse `x-amz-copy-source`, the source conditions and the metadata directive,
then let the engine (`s3proxy.store.copy`) make a new version that shares the source's
bytes. `parse_copy_source` is shared with UploadPartCopy."""

from __future__ import annotations

import asyncio
from urllib.parse import unquote, unquote_to_bytes

from s3proxy.api.acl import stored_object_acl
from s3proxy.api.context import RequestContext, Response
from s3proxy.api.errors import S3Error
from s3proxy.api.objects import STORAGE_CLASSES, object_meta_from_headers, parse_http_date, write_conditions
from s3proxy.api.services import Services
from s3proxy.api.xml import document, element, iso8601
from s3proxy.auth import checksums
from s3proxy.store import copy as copy_engine
from s3proxy.store.engine import Store
from s3proxy.store.errors import StoreError
from s3proxy.store.models import Bucket, ObjectVersion

COPY_SOURCE = "x-amz-copy-source"
DIRECTIVES = ("COPY", "REPLACE")
# Request headers that change something Folio does not store; S3 accepts them as the
# change that makes a copy onto the same key legal, so we do too.
UNSTORED_CHANGES = ("x-amz-server-side-encryption", "x-amz-website-redirect-location")
# Attempts when the source is replaced while a newly requested checksum is computed.
CHECKSUM_ATTEMPTS = 3


def _invalid_copy_source(value: str, message: str) -> S3Error:
    return S3Error("InvalidArgument", message, extra={"ArgumentName": COPY_SOURCE, "ArgumentValue": value})


def parse_copy_source(value: str) -> tuple[str, str, str | None]:
    """`bucket/key`, `/bucket/key`, URL-encoded, optionally `?versionId=...`:
    (bucket, key, version id or None). InvalidArgument when malformed."""
    path, has_query, query = value.strip().partition("?")
    version_id: str | None = None
    if has_query:
        for part in query.split("&"):
            name, _, raw = part.partition("=")
            if name == "versionId":
                version_id = unquote(raw)
                if not version_id or not (version_id.isascii() and version_id.isprintable()):
                    raise _invalid_copy_source(value, "Invalid version id specified")
    try:
        # Header values arrive as latin-1 text; percent-escapes and raw bytes are UTF-8.
        raw_path = path.encode("latin-1")
    except UnicodeEncodeError:
        raw_path = path.encode("utf-8")
    try:
        decoded = unquote_to_bytes(raw_path).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _invalid_copy_source(value, "Copy Source is not valid UTF-8.") from exc
    bucket, _, key = decoded.removeprefix("/").partition("/")
    if not bucket or not key:
        raise _invalid_copy_source(
            value, "Copy Source must mention the source bucket and key: sourcebucket/sourcekey"
        )
    return bucket, key, version_id


def copy_conditions(headers: dict[str, str]) -> copy_engine.CopyConditions:
    return copy_engine.CopyConditions(
        if_match=headers.get("x-amz-copy-source-if-match"),
        if_none_match=headers.get("x-amz-copy-source-if-none-match"),
        if_modified_since=parse_http_date(headers.get("x-amz-copy-source-if-modified-since")),
        if_unmodified_since=parse_http_date(headers.get("x-amz-copy-source-if-unmodified-since")),
    )


def _metadata_directive(headers: dict[str, str]) -> str:
    directive = headers.get("x-amz-metadata-directive", "COPY").strip()
    if directive not in DIRECTIVES:
        raise S3Error(
            "InvalidArgument",
            "Unknown metadata directive.",
            extra={"ArgumentName": "x-amz-metadata-directive", "ArgumentValue": directive},
        )
    return directive


def _storage_class(headers: dict[str, str]) -> str | None:
    storage_class = headers.get("x-amz-storage-class")
    if storage_class is not None and storage_class not in STORAGE_CLASSES:
        raise S3Error("InvalidStorageClass")
    return storage_class


def _checksum_algorithm(headers: dict[str, str]) -> str | None:
    raw = headers.get("x-amz-checksum-algorithm")
    if raw is None:
        return None
    return checksums.algorithm_from_header(checksums.HEADER_PREFIX + raw.strip().lower())


async def _compute_checksum(
    store: Store, bucket: Bucket, key: str, missing: copy_engine.ChecksumNotStored
) -> copy_engine.ComputedChecksums | None:
    """Run the requested algorithm over the source's bytes (the one case where a copy reads
    them). None when the source went away meanwhile: the next attempt reports why."""
    try:
        reader = store.open_object(bucket, key, missing.source_version_id)
    except StoreError:
        return None
    summer = checksums.Checksummer((missing.algorithm,))
    loop = asyncio.get_running_loop()
    if reader.version.size == 0:
        reader.close()
    else:
        async for chunk in reader.iter_range(0, reader.version.size - 1):
            await loop.run_in_executor(store.executor, summer.update, chunk)
    return copy_engine.ComputedChecksums(reader.version.id, summer.digests())


def _checksum_type(values: dict[str, str]) -> str:
    # A composite (multipart) checksum is written "<base64>-<parts>"; base64 has no '-'.
    return "COMPOSITE" if any("-" in value for value in values.values()) else "FULL_OBJECT"


def _result_document(version: ObjectVersion) -> bytes:
    stored = {a: v for a, v in version.checksums.items() if a in checksums.ALGORITHMS}
    inner = element("ETag", f'"{version.etag}"') + element("LastModified", iso8601(version.last_modified))
    if stored:
        inner += element("ChecksumType", _checksum_type(stored))
        inner += "".join(element(f"Checksum{algorithm}", value) for algorithm, value in stored.items())
    return document("CopyObjectResult", inner)


async def copy_object(ctx: RequestContext, services: Services) -> Response:
    dest_bucket = services.authorized_bucket(ctx)
    assert ctx.key is not None
    source_name, source_key, source_version_id = parse_copy_source(ctx.headers[COPY_SOURCE])
    source_bucket = services.readable_copy_source(ctx, source_name, source_key, source_version_id)
    directive = _metadata_directive(ctx.headers)
    meta = object_meta_from_headers(ctx.headers) if directive == "REPLACE" else None
    storage_class = _storage_class(ctx.headers)
    checksum_algorithm = _checksum_algorithm(ctx.headers)
    conditions = copy_conditions(ctx.headers)
    dest_conditions = write_conditions(ctx.headers)
    allow_unchanged = any(name in ctx.headers for name in UNSTORED_CHANGES)
    acl = stored_object_acl(ctx.headers, services, dest_bucket, ctx.account_id)

    computed: copy_engine.ComputedChecksums | None = None
    for _attempt in range(CHECKSUM_ATTEMPTS):
        try:
            version, source = await copy_engine.copy_object(
                services.store,
                source_bucket=source_bucket,
                source_key=source_key,
                source_version_id=source_version_id,
                dest_bucket=dest_bucket,
                dest_key=ctx.key,
                meta=meta,
                conditions=conditions,
                dest_conditions=dest_conditions,
                storage_class=storage_class,
                checksum_algorithm=checksum_algorithm,
                computed=computed,
                allow_unchanged_self_copy=allow_unchanged,
                acl=acl,
            )
        except copy_engine.ChecksumNotStored as missing:
            computed = await _compute_checksum(services.store, source_bucket, source_key, missing)
        except copy_engine.SourceChanged:
            computed = None
        else:
            break
    else:
        raise S3Error(
            "OperationAborted",
            "A conflicting operation is currently in progress against the copy source. Please try again.",
            status=409,
        )

    headers: dict[str, str] = {}
    if source_bucket.versioning:
        headers["x-amz-copy-source-version-id"] = source.version_id
    if dest_bucket.versioning:
        headers["x-amz-version-id"] = version.version_id
    return Response.xml(_result_document(version), headers=headers)
