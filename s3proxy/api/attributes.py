"""GetObjectAttributes: an object's ETag, checksum, parts, storage class and size in one
answer, without its bytes (`GET /bucket/key?attributes`, AWS S3 API reference)."""

from __future__ import annotations

from core.strictparse import ascii_int
from s3proxy.api.context import RequestContext, Response
from s3proxy.api.errors import S3Error
from s3proxy.api.listing import MAX_INT32
from s3proxy.api.objects import _delete_marker_error, checksum_type_of, version_headers
from s3proxy.api.services import Services
from s3proxy.api.xml import document, element, http_date
from s3proxy.store.errors import ObjectIsDeleteMarker
from s3proxy.store.models import ObjectVersion

ATTRIBUTES = ("ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize")
# S3 lists at most 1,000 parts per answer, as ListParts does.
MAX_PARTS = 1000


def _requested_attributes(raw: str | None) -> set[str]:
    names = {name.strip() for name in (raw or "").split(",") if name.strip()}
    if not names or not names <= set(ATTRIBUTES):
        raise S3Error("InvalidArgument", "Invalid attribute name specified.")
    return names


def _header_int(ctx: RequestContext, name: str, default: int) -> int:
    raw = ctx.headers.get(name)
    if raw is None:
        return default
    value = ascii_int(raw, strip=True, maximum=MAX_INT32)
    if value is None:
        raise S3Error(
            "InvalidArgument",
            f"Provided {name} not an integer or within integer range",
            extra={"ArgumentName": name, "ArgumentValue": raw},
        )
    return value


def _checksum_xml(version: ObjectVersion) -> str:
    if not version.checksums:
        return ""
    inner = "".join(element(f"Checksum{algorithm}", value) for algorithm, value in version.checksums.items())
    inner += element("ChecksumType", checksum_type_of(next(iter(version.checksums.values()))))
    return f"<Checksum>{inner}</Checksum>"


def _object_parts_xml(version: ObjectVersion, marker: int, max_parts: int) -> str:
    """Only multipart objects have ObjectParts; parts are listed only when they carry
    checksums (general purpose buckets, per the API reference), their count always."""
    if not version.parts:
        return ""
    numbered = list(enumerate(version.parts, start=1))
    after = [(number, part) for number, part in numbered if number > marker]
    page = after[:max_parts]
    truncated = len(after) > len(page)
    has_checksums = any(part.checksums for part in version.parts)
    items = ""
    if has_checksums:
        items = "".join(
            "<Part>"
            + "".join(element(f"Checksum{algorithm}", value) for algorithm, value in part.checksums.items())
            + element("PartNumber", number)
            + element("Size", part.size)
            + "</Part>"
            for number, part in page
        )
    inner = (
        element("IsTruncated", truncated)
        + element("MaxParts", max_parts)
        + element("NextPartNumberMarker", page[-1][0] if page else marker)
        + element("PartNumberMarker", marker)
        + items
        + element("PartsCount", len(version.parts))
    )
    return f"<ObjectParts>{inner}</ObjectParts>"


async def get_object_attributes(ctx: RequestContext, services: Services) -> Response:
    bucket = services.authorized_bucket(ctx)
    assert ctx.key is not None
    wanted = _requested_attributes(ctx.headers.get("x-amz-object-attributes"))
    marker = _header_int(ctx, "x-amz-part-number-marker", 0)
    max_parts = min(_header_int(ctx, "x-amz-max-parts", MAX_PARTS), MAX_PARTS)
    action = "s3:GetObjectVersionAttributes" if "versionId" in ctx.query else "s3:GetObjectAttributes"
    try:
        version = services.readable_version(ctx, bucket, action)
    except ObjectIsDeleteMarker as exc:
        raise _delete_marker_error(exc, bucket) from exc
    inner = ""
    if "ETag" in wanted:
        inner += element("ETag", version.etag)  # unquoted, as S3 answers it here
    if "Checksum" in wanted:
        inner += _checksum_xml(version)
    if "ObjectParts" in wanted:
        inner += _object_parts_xml(version, marker, max_parts)
    if "StorageClass" in wanted:
        inner += element("StorageClass", version.storage_class)
    if "ObjectSize" in wanted:
        inner += element("ObjectSize", version.size)
    headers = {"last-modified": http_date(version.last_modified), **version_headers(bucket, version)}
    return Response.xml(document("GetObjectAttributesResponse", inner), headers=headers)
