"""Object operations: PutObject, GetObject, HeadObject, DeleteObject."""

from __future__ import annotations

import math
from dataclasses import replace
from email.utils import parsedate_to_datetime

from core.byteranges import UnsatisfiableRange, parse_byte_range
from core.strictparse import ascii_int, header_safe
from s3proxy.api.acl import stored_object_acl
from s3proxy.api.body import receive_object_body
from s3proxy.api.context import RequestContext, Response
from s3proxy.api.errors import S3Error
from s3proxy.api.services import Services
from s3proxy.api.xml import http_date
from s3proxy.auth.checksums import header_name
from s3proxy.store.errors import ObjectIsDeleteMarker, StoreError
from s3proxy.store.models import Bucket, ObjectMeta, ObjectVersion, WriteConditions
from s3proxy.store.versions import etag_matches

# Headers S3 stores with an object and returns on GET/HEAD.
STORED_HEADERS = ("cache-control", "content-disposition", "content-encoding", "content-language", "expires")
RESPONSE_OVERRIDES = {
    "response-content-type": "content-type",
    "response-content-language": "content-language",
    "response-expires": "expires",
    "response-cache-control": "cache-control",
    "response-content-disposition": "content-disposition",
    "response-content-encoding": "content-encoding",
}
META_PREFIX = "x-amz-meta-"
MAX_USER_META_BYTES = 2048
STORAGE_CLASSES = frozenset(
    {
        "STANDARD",
        "REDUCED_REDUNDANCY",
        "STANDARD_IA",
        "ONEZONE_IA",
        "INTELLIGENT_TIERING",
        "GLACIER",
        "DEEP_ARCHIVE",
        "GLACIER_IR",
        "OUTPOSTS",
        "SNOW",
        "EXPRESS_ONEZONE",
    }
)


def stored_content_encoding(value: str) -> str:
    """The Content-Encoding S3 stores: without `aws-chunked`, which only says how this
    request's body was framed (`gzip, aws-chunked` is stored as `gzip`; `aws-chunked`
    alone as no Content-Encoding)."""
    codings = [c.strip() for c in value.split(",")]
    return ", ".join(c for c in codings if c and c.lower() != "aws-chunked")


def object_meta_from_headers(headers: dict[str, str]) -> ObjectMeta:
    user_meta = {k[len(META_PREFIX) :]: v for k, v in headers.items() if k.startswith(META_PREFIX)}
    if sum(len(k) + len(v) for k, v in user_meta.items()) > MAX_USER_META_BYTES:
        raise S3Error("MetadataTooLarge", "Your metadata headers exceed the maximum allowed metadata size.")
    storage_class = headers.get("x-amz-storage-class", "STANDARD")
    if storage_class not in STORAGE_CLASSES:
        raise S3Error("InvalidStorageClass")
    stored = {name: headers[name] for name in STORED_HEADERS if name in headers}
    if "content-encoding" in stored:
        encoding = stored_content_encoding(stored["content-encoding"])
        if encoding:
            stored["content-encoding"] = encoding
        else:
            del stored["content-encoding"]
    return ObjectMeta(
        content_type=headers.get("content-type"),
        headers=stored,
        user_meta=user_meta,
        storage_class=storage_class,
    )


def write_conditions(headers: dict[str, str]) -> WriteConditions:
    """If-None-Match: * and If-Match: <etag> on PutObject and CompleteMultipartUpload. As
    AWS: If-None-Match takes only '*' (an ETag there is 501 NotImplemented, which is
    what S3 answers)."""
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None and if_none_match.strip() != "*":
        raise S3Error("NotImplemented", "If-None-Match on a write supports only '*'.")
    return WriteConditions(if_none_match_any=if_none_match is not None, if_match=headers.get("if-match"))


def version_headers(bucket: Bucket, version: ObjectVersion) -> dict[str, str]:
    return {"x-amz-version-id": version.version_id} if bucket.versioning else {}


async def put_object(ctx: RequestContext, services: Services) -> Response:
    bucket = services.authorized_bucket(ctx)
    assert ctx.key is not None
    meta = object_meta_from_headers(ctx.headers)
    meta = replace(meta, acl=stored_object_acl(ctx.headers, services, bucket, ctx.account_id))
    conditions = write_conditions(ctx.headers)
    if conditions.any:
        # Before the body: a condition that already fails is answered without reading it
        # (412 instead of 100 Continue). The write decides again, atomically, at commit.
        services.store.check_write_conditions(bucket, ctx.key, conditions)
    with services.store.reservation(bucket, ctx.key) as reservation:
        writer, computed = await receive_object_body(
            ctx, services.store, services.watchdog, reservation=reservation
        )
        meta = replace(meta, checksums=computed)
        version = await services.store.put_object(bucket, ctx.key, writer, meta, conditions, reservation)
    headers = {"etag": f'"{version.etag}"', **version_headers(bucket, version)}
    for algorithm, value in computed.items():
        headers[header_name(algorithm)] = value
    if computed:
        headers["x-amz-checksum-type"] = "FULL_OBJECT"
    return Response(headers=headers)


def parse_http_date(value: str | None) -> float | None:
    """A date condition's timestamp; None when absent or unparsable (S3 ignores those)."""
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):  # OverflowError: a 20-digit year
        return None


def check_read_conditions(headers: dict[str, str], version: ObjectVersion) -> int | None:
    """RFC 7232 as S3 applies it: 412 or 304, or None to serve."""
    modified = math.floor(version.last_modified)
    if_match = headers.get("if-match")
    if if_match is not None:
        if not etag_matches(if_match, version.etag):
            return 412
    else:
        since = headers.get("if-unmodified-since")
        stamp = parse_http_date(since) if since else None
        if stamp is not None and modified > stamp:
            return 412
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:
        if etag_matches(if_none_match, version.etag):
            return 304
    else:
        since = headers.get("if-modified-since")
        stamp = parse_http_date(since) if since else None
        if stamp is not None and modified <= stamp:
            return 304
    return None


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """One byte range (start, end inclusive), None for the whole object; an
    unsatisfiable one is InvalidRange."""
    try:
        return parse_byte_range(header, size)
    except UnsatisfiableRange as exc:
        raise _invalid_range(size) from exc


def _response_overrides(ctx: RequestContext) -> dict[str, str]:
    """The response-* parameters as the headers they set. Checked before anything is
    read: a CR or LF echoed into a header would drop the connection without an answer."""
    overrides = {}
    for param, header in RESPONSE_OVERRIDES.items():
        value = ctx.query.get(param)
        if value is None:
            continue
        if not header_safe(value):
            raise S3Error(
                "InvalidArgument",
                f"Header value cannot contain control characters: {param}",
                extra={"ArgumentName": param, "ArgumentValue": value},
            )
        overrides[header] = value
    if overrides and ctx.auth is None:
        # As S3: an anonymous caller must not choose how a public object is served
        # (a user's upload as text/html on this origin, for one).
        raise S3Error(
            "InvalidRequest", "Request specific response headers cannot be used for anonymous GET requests."
        )
    return overrides


def _part_number(ctx: RequestContext) -> int | None:
    raw = ctx.query.get("partNumber")
    if raw is None:
        return None
    number = ascii_int(raw, minimum=1, maximum=10000)
    if number is None:
        raise S3Error(
            "InvalidArgument",
            "Part number must be an integer between 1 and 10000, inclusive",
            extra={"ArgumentName": "partNumber", "ArgumentValue": raw},
        )
    return number


def checksum_type_of(value: str) -> str:
    """COMPOSITE values end in "-<parts>" (base64 has no '-'); the rest describe the whole object."""
    return "COMPOSITE" if "-" in value else "FULL_OBJECT"


def _invalid_range(size: int) -> S3Error:
    return S3Error(
        "InvalidRange", headers={"content-range": f"bytes */{size}"}, extra={"ActualObjectSize": str(size)}
    )


def object_headers(bucket: Bucket, version: ObjectVersion) -> dict[str, str]:
    headers = {
        "etag": f'"{version.etag}"',
        "last-modified": http_date(version.last_modified),
        "accept-ranges": "bytes",
        "content-type": version.content_type or "binary/octet-stream",
        **version_headers(bucket, version),
    }
    headers.update(version.headers)
    for name, value in version.user_meta.items():
        headers[META_PREFIX + name] = value
    if version.storage_class != "STANDARD":
        headers["x-amz-storage-class"] = version.storage_class
    return headers


def _delete_marker_error(exc: ObjectIsDeleteMarker, bucket: Bucket) -> S3Error:
    headers = {"x-amz-delete-marker": "true", "last-modified": http_date(exc.last_modified)}
    if bucket.versioning:
        headers["x-amz-version-id"] = exc.version_id
    if exc.by_version_id:
        headers["allow"] = "DELETE"  # the only thing one can do to a delete marker
        return S3Error(
            "MethodNotAllowed", "The specified method is not allowed against this resource.", headers=headers
        )
    return S3Error("NoSuchKey", headers=headers)


async def get_object(ctx: RequestContext, services: Services, *, head: bool = False) -> Response:
    bucket = services.authorized_bucket(ctx)
    assert ctx.key is not None
    version_id = ctx.version_id()
    overrides = _response_overrides(ctx)
    try:
        if head:
            version = services.store.head_object(bucket, ctx.key, version_id)
            reader = None
        else:
            reader = services.store.open_object(bucket, ctx.key, version_id)
            version = reader.version
    except ObjectIsDeleteMarker as exc:
        services.hide_absence(ctx, bucket, ctx.key)
        raise _delete_marker_error(exc, bucket) from exc
    except StoreError:
        services.hide_absence(ctx, bucket, ctx.key)
        raise
    action = "s3:GetObjectVersion" if version_id is not None else "s3:GetObject"
    if not services.allows(ctx, bucket, action, ctx.key, object_acl=version.acl):
        if reader is not None:
            reader.close()
        raise S3Error("AccessDenied")
    try:
        return _object_response(ctx, bucket, version, reader, overrides)
    except BaseException:
        if reader is not None:
            reader.close()
        raise


def _object_response(
    ctx: RequestContext, bucket: Bucket, version: ObjectVersion, reader, overrides: dict[str, str]
) -> Response:
    headers = object_headers(bucket, version)
    outcome = check_read_conditions(ctx.headers, version)
    if outcome == 412:
        raise S3Error("PreconditionFailed")
    if outcome == 304:
        if reader is not None:
            reader.close()
        keep = ("etag", "last-modified", "x-amz-version-id", "cache-control", "expires")
        return Response(status=304, headers={k: v for k, v in headers.items() if k in keep})
    headers.update(overrides)
    checksum_mode = ctx.headers.get("x-amz-checksum-mode", "").upper() == "ENABLED"
    part_number = _part_number(ctx)
    if part_number is not None and "range" in ctx.headers:
        raise S3Error("InvalidRequest", "Cannot specify both Range header and partNumber query parameter")
    if part_number is not None:
        # As S3: the part count only answers a request for a part.
        if version.parts:
            headers["x-amz-mp-parts-count"] = str(len(version.parts))
        byte_range = version.part_range(part_number)
        if byte_range is None:
            raise S3Error("InvalidPartNumber", "The requested partnumber is not satisfiable", status=416)
        if checksum_mode and version.parts:
            for algorithm, value in version.parts[part_number - 1].checksums.items():
                headers[header_name(algorithm)] = value
    else:
        byte_range = parse_range(ctx.headers.get("range"), version.size)
    status = 200
    start, end = 0, version.size - 1
    if byte_range is not None:
        start, end = byte_range
        status = 206
        headers["content-range"] = f"bytes {start}-{end}/{version.size}"
    elif checksum_mode and version.checksums:
        # Object checksums describe the whole object (or its parts), never a range.
        for algorithm, value in version.checksums.items():
            headers[header_name(algorithm)] = value
            headers["x-amz-checksum-type"] = checksum_type_of(value)
    length = end - start + 1 if version.size else 0
    if reader is None or length == 0:
        if reader is not None:
            reader.close()
        return Response(status=status, headers=headers, content_length=length)
    return Response(
        status=status, headers=headers, stream=reader.iter_range(start, end), content_length=length
    )


async def head_object(ctx: RequestContext, services: Services) -> Response:
    return await get_object(ctx, services, head=True)


async def delete_object(ctx: RequestContext, services: Services) -> Response:
    bucket = services.authorized_bucket(ctx)
    assert ctx.key is not None
    # S3's conditional delete: If-Match (an ETag or '*') on the current version.
    conditions = WriteConditions(if_match=ctx.headers.get("if-match"))
    result = await services.store.delete_object(bucket, ctx.key, ctx.version_id(), conditions)
    headers = {}
    if result.delete_marker:
        headers["x-amz-delete-marker"] = "true"
    if result.version_id is not None and bucket.versioning:
        headers["x-amz-version-id"] = result.version_id
    return Response(status=204, headers=headers)
