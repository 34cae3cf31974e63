"""DeleteObjects (POST /bucket?delete): up to 1,000 keys in one request."""

from __future__ import annotations

import asyncio

from s3proxy.api.body import read_small_body
from s3proxy.api.context import RequestContext, Response
from s3proxy.api.errors import S3Error
from s3proxy.api.services import Services
from s3proxy.api.xml import child_text, children, document, element, local_name, parse
from s3proxy.store.errors import BucketAccessDenied, StoreError
from s3proxy.store.models import WriteConditions

# S3 requires an integrity header on DeleteObjects: Content-MD5 or, as boto3 now
# sends instead, any x-amz-checksum-* (or a trailer announcing one).
_INTEGRITY_HEADERS = ("content-md5", "x-amz-checksum-", "x-amz-sdk-checksum-algorithm", "x-amz-trailer")


async def _denied() -> None:
    raise BucketAccessDenied("Access Denied")


async def delete_objects(ctx: RequestContext, services: Services) -> Response:
    bucket = services.authorized_bucket(ctx)
    if bucket.settings.policy is None and not services.allows(ctx, bucket, "s3:DeleteObject"):
        # Without a policy every key is decided by the bucket's WRITE grant alone: a
        # caller without it is refused whole, before its body is read.
        raise S3Error("AccessDenied")
    if not any(name.startswith(_INTEGRITY_HEADERS) for name in ctx.headers):
        raise S3Error("InvalidRequest", "Missing required header for this request: Content-MD5")
    body = await read_small_body(ctx, services.config.limits.max_xml_body, watchdog=services.watchdog)
    root = parse(body)
    if local_name(root) != "Delete":
        raise S3Error("MalformedXML")
    quiet = (child_text(root, "Quiet") or "").strip().lower() == "true"
    targets: list[tuple[str, str | None]] = []
    # S3's conditional delete in a batch: an <ETag> (or '*') is that key's If-Match.
    conditions: list[WriteConditions] = []
    for node in children(root, "Object"):
        key = child_text(node, "Key")
        if key is None:
            raise S3Error("MalformedXML")
        targets.append((key, child_text(node, "VersionId")))
        conditions.append(WriteConditions(if_match=child_text(node, "ETag")))
    if not targets or len(targets) > services.config.limits.max_delete_objects:
        raise S3Error("MalformedXML")

    # Issued together so the writer commits them as one group (one fsync, not 1,000).
    # Each key is decided on its own, as S3 does: a bucket policy may deny a prefix.
    results = await asyncio.gather(
        *(
            services.store.delete_object(bucket, key, version_id, condition)
            if services.allows(
                ctx, bucket, "s3:DeleteObjectVersion" if version_id else "s3:DeleteObject", key
            )
            else _denied()
            for (key, version_id), condition in zip(targets, conditions, strict=True)
        ),
        return_exceptions=True,
    )
    parts: list[str] = []
    for (key, version_id), result in zip(targets, results, strict=True):
        if isinstance(result, BaseException):
            if not isinstance(result, StoreError):
                raise result
            exc = result
            parts.append(
                "<Error>"
                + element("Key", key)
                + element("VersionId", version_id)
                + element("Code", exc.code)
                + element("Message", exc.message or exc.code)
                + "</Error>"
            )
            continue
        if quiet:
            continue
        deleted = element("Key", key) + element("VersionId", version_id)
        if result.delete_marker:
            # A marker created, or a marker deleted by its version id: S3 names it either way.
            deleted += element("DeleteMarker", True) + element("DeleteMarkerVersionId", result.version_id)
        parts.append(f"<Deleted>{deleted}</Deleted>")
    return Response.xml(document("DeleteResult", "".join(parts)))
