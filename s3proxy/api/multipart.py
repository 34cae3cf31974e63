"""Multipart uploads: CreateMultipartUpload, UploadPart, UploadPartCopy,
CompleteMultipartUpload, AbortMultipartUpload, ListParts, ListMultipartUploads."""

from __future__ import annotations

import hashlib
from dataclasses import replace

from core.strictparse import ascii_int
from s3proxy.api.acl import has_acl_headers, stored_object_acl
from s3proxy.api.body import read_small_body, receive_object_body
from s3proxy.api.context import RequestContext, Response
from s3proxy.api.copy import parse_copy_source
from s3proxy.api.errors import S3Error
from s3proxy.api.listing import MAX_INT32, encoding_param
from s3proxy.api.multipart_checksums import (
    check_checksum_type,
    claimed_checksum,
    claimed_object_size,
    verifying_finalizer,
)
from s3proxy.api.objects import checksum_type_of, object_meta_from_headers, version_headers, write_conditions
from s3proxy.api.services import Services
from s3proxy.api.xml import child_text, children, document, element, iso8601, local_name, parse, url_encode
from s3proxy.auth import checksums
from s3proxy.store.errors import ObjectIsDeleteMarker
from s3proxy.store.models import Bucket, Segment
from s3proxy.store.multipart import RequestedPart, Upload

MAX_PART_NUMBER = 10000


def _upload_id(ctx: RequestContext) -> str:
    upload_id = ctx.query.get("uploadId", "")
    if not upload_id:
        raise S3Error("NoSuchUpload")
    return upload_id


def _part_number(ctx: RequestContext) -> int:
    raw = ctx.query.get("partNumber", "")
    number = ascii_int(raw, minimum=1, maximum=MAX_PART_NUMBER)
    if number is None:
        raise S3Error(
            "InvalidArgument",
            f"Part number must be an integer between 1 and {MAX_PART_NUMBER}, inclusive",
            extra={"ArgumentName": "partNumber", "ArgumentValue": raw},
        )
    return number


def _checksum_headers(values: dict[str, str], checksum_type: str | None = None) -> dict[str, str]:
    headers = {checksums.header_name(algorithm): value for algorithm, value in values.items()}
    if values and checksum_type:
        headers["x-amz-checksum-type"] = checksum_type
    return headers


def _checksum_elements(values: dict[str, str]) -> str:
    return "".join(element(f"Checksum{algorithm}", value) for algorithm, value in values.items())


async def create_multipart_upload(ctx: RequestContext, services: Services) -> Response:
    bucket = services.authorized_bucket(ctx)
    assert ctx.key is not None
    meta = object_meta_from_headers(ctx.headers)
    meta = replace(meta, acl=stored_object_acl(ctx.headers, services, bucket, ctx.account_id))
    raw_algorithm = ctx.headers.get("x-amz-checksum-algorithm")
    algorithm = raw_algorithm.strip().upper() if raw_algorithm else None
    if algorithm is not None and algorithm not in checksums.ALGORITHMS:
        raise S3Error("InvalidRequest", "Checksum algorithm provided is unsupported.")
    raw_type = ctx.headers.get("x-amz-checksum-type")
    checksum_type = check_checksum_type(algorithm, raw_type.strip().upper() if raw_type else None)
    upload = await services.store.create_upload(bucket, ctx.key, meta, algorithm, checksum_type)
    inner = element("Bucket", bucket.name) + element("Key", ctx.key) + element("UploadId", upload.id)
    headers = {}
    if algorithm:
        headers = {"x-amz-checksum-algorithm": algorithm, "x-amz-checksum-type": checksum_type or ""}
    return Response.xml(document("InitiateMultipartUploadResult", inner), headers=headers)


async def upload_part(ctx: RequestContext, services: Services) -> Response:
    bucket = services.authorized_bucket(ctx)
    assert ctx.key is not None
    part_number = _part_number(ctx)
    # The upload must exist before a byte of the part is read.
    upload = services.store.get_upload(bucket, ctx.key, _upload_id(ctx))
    also = [upload.checksum_algorithm] if upload.checksum_algorithm else []
    with services.store.reservation(bucket) as reservation:
        writer, computed = await receive_object_body(
            ctx, services.store, services.watchdog, reservation=reservation, also_compute=also
        )
        etag = await services.store.put_part(
            bucket, ctx.key, upload.id, part_number, writer, computed, reservation
        )
    return Response(headers={"etag": f'"{etag}"', **_checksum_headers(computed)})


def _copy_range(header: str | None, size: int) -> tuple[int, int]:
    if header is None:
        return 0, size - 1
    argument = {"ArgumentName": "x-amz-copy-source-range", "ArgumentValue": header}
    unit, _, spec = header.strip().partition("=")
    first, dash, last = spec.partition("-")
    start, end = ascii_int(first), ascii_int(last)
    if unit != "bytes" or not dash or start is None or end is None:
        raise S3Error(
            "InvalidArgument",
            "The x-amz-copy-source-range value must be of the form bytes=first-last",
            extra=argument,
        )
    if start > end or end >= size:
        raise S3Error(
            "InvalidArgument",
            f"Range specified is not valid for source object of size: {size}",
            extra=argument,
        )
    return start, end


async def upload_part_copy(ctx: RequestContext, services: Services) -> Response:
    """A part made from a byte range of an existing object: the source's blobs are
    shared (reference counted), only an inline source is written out."""
    bucket = services.authorized_bucket(ctx)
    assert ctx.key is not None
    part_number = _part_number(ctx)
    upload = services.store.get_upload(bucket, ctx.key, _upload_id(ctx))
    source_bucket_name, source_key, source_version = parse_copy_source(ctx.headers["x-amz-copy-source"])
    source_bucket = services.readable_copy_source(ctx, source_bucket_name, source_key, source_version)
    try:
        reader = services.store.open_object(source_bucket, source_key, source_version)
    except ObjectIsDeleteMarker as exc:
        raise S3Error("NoSuchKey") from exc
    source = reader.version
    with services.store.reservation(bucket) as reservation:
        try:
            start, end = _copy_range(ctx.headers.get("x-amz-copy-source-range"), source.size)
            length = end - start + 1 if source.size else 0
            await reservation.require(length)
            md5 = hashlib.md5()
            checksummer = checksums.Checksummer(
                [upload.checksum_algorithm] if upload.checksum_algorithm else []
            )
            async for chunk in reader.iter_range(start, end) if length else _nothing():
                md5.update(chunk)
                checksummer.update(chunk)
        finally:
            reader.close()
        computed = checksummer.digests()
        whole_plain_object = start == 0 and length == source.size and not source.parts
        etag = source.etag if whole_plain_object else md5.hexdigest()
        if source.inline_data is not None or not source.segments:
            data = (source.inline_data or b"")[start : end + 1]
            writer = services.store.new_writer()
            await writer.write(data)
            await writer.finish()
            await services.store.put_part(
                bucket, ctx.key, upload.id, part_number, writer, computed, reservation
            )
        else:
            await services.store.put_part_segments(
                bucket,
                ctx.key,
                upload.id,
                part_number,
                size=length,
                etag=etag,
                checksums=computed,
                segments=_slice_segments(source.segments, start, length),
                reservation=reservation,
            )
    inner = element("ETag", f'"{etag}"') + element("LastModified", iso8601(source.last_modified))
    inner += _checksum_elements(computed)
    return Response.xml(document("CopyPartResult", inner))


async def _nothing():
    return
    yield b""  # pragma: no cover - makes this an async generator


def _slice_segments(segments: tuple[Segment, ...], start: int, length: int) -> tuple[Segment, ...]:
    """The segments covering bytes start..start+length-1 of an object."""
    out: list[Segment] = []
    position = 0
    end = start + length
    for segment in segments:
        seg_start, seg_end = position, position + segment.length
        position = seg_end
        if seg_end <= start or seg_start >= end:
            continue
        lo, hi = max(start, seg_start), min(end, seg_end)
        out.append(Segment(segment.blob_id, hi - lo, segment.offset + lo - seg_start))
    return tuple(out)


def _parse_complete(body: bytes) -> list[RequestedPart]:
    root = parse(body)
    if local_name(root) != "CompleteMultipartUpload":
        raise S3Error("MalformedXML")
    requested = []
    for node in children(root, "Part"):
        raw_number, etag = child_text(node, "PartNumber"), child_text(node, "ETag")
        number = ascii_int(raw_number, strip=True)
        if number is None or etag is None:
            raise S3Error("MalformedXML")
        values = {}
        for algorithm in checksums.ALGORITHMS:
            value = child_text(node, f"Checksum{algorithm}")
            if value is not None:
                values[algorithm] = value.strip()
        requested.append(RequestedPart(number, etag, values))
    if not requested:
        raise S3Error("MalformedXML", "You must specify at least one part.")
    return requested


async def complete_multipart_upload(ctx: RequestContext, services: Services) -> Response:
    bucket = services.authorized_bucket(ctx)
    assert ctx.key is not None
    upload_id = _upload_id(ctx)
    # An upload in progress, or one completed whose Complete is being sent again.
    services.store.check_completable(bucket, ctx.key, upload_id)
    conditions = write_conditions(ctx.headers)
    # An ACL named at completion wins over the one given at creation.
    acl_given = has_acl_headers(ctx.headers)
    acl = stored_object_acl(ctx.headers, services, bucket, ctx.account_id) if acl_given else None
    claim, claimed_type = claimed_checksum(ctx.headers)
    body = await read_small_body(
        ctx,
        services.config.limits.max_xml_body,
        watchdog=services.watchdog,
        checksum_headers_describe_body=False,
    )
    requested = _parse_complete(body)
    version = await services.store.complete_upload(
        bucket,
        ctx.key,
        upload_id,
        requested,
        verifying_finalizer(claim, claimed_type, claimed_object_size(ctx.headers)),
        conditions,
        acl,
        acl_given=acl_given,
    )
    inner = (
        element("Location", f"/{bucket.name}/{ctx.key}")
        + element("Bucket", bucket.name)
        + element("Key", ctx.key)
        + element("ETag", f'"{version.etag}"')
        + _checksum_elements(version.checksums)
        + "".join(element("ChecksumType", checksum_type_of(v)) for v in list(version.checksums.values())[:1])
    )
    return Response.xml(
        document("CompleteMultipartUploadResult", inner), headers=version_headers(bucket, version)
    )


async def abort_multipart_upload(ctx: RequestContext, services: Services) -> Response:
    bucket = services.authorized_bucket(ctx)
    assert ctx.key is not None
    await services.store.abort_upload(bucket, ctx.key, _upload_id(ctx))
    return Response(status=204)


def _int_param(ctx: RequestContext, name: str, default: int, limit: int) -> int:
    raw = ctx.query.get(name)
    if raw is None:
        return default
    value = ascii_int(raw, maximum=MAX_INT32)
    if value is None:
        raise S3Error(
            "InvalidArgument",
            f"Provided {name} not an integer or within integer range",
            extra={"ArgumentName": name, "ArgumentValue": raw},
        )
    return min(value, limit)


def _owner(services: Services, bucket: Bucket) -> str:
    # The bucket owner pays for and owns uploads in its bucket (S3 names the initiator;
    # Folio does not keep it apart).
    account = services.bucket_owner(bucket)
    if account is None:
        return ""
    person = element("ID", account.canonical_id) + element("DisplayName", account.display_name)
    return f"<Initiator>{person}</Initiator><Owner>{person}</Owner>"


async def list_parts(ctx: RequestContext, services: Services) -> Response:
    bucket = services.authorized_bucket(ctx)
    assert ctx.key is not None
    after = _int_param(ctx, "part-number-marker", 0, MAX_PART_NUMBER)
    max_parts = _int_param(ctx, "max-parts", 1000, 1000)
    upload, parts, truncated = services.store.list_parts(
        bucket, ctx.key, _upload_id(ctx), after=after, max_parts=max_parts
    )
    items = "".join(
        "<Part>"
        + element("PartNumber", p.part_number)
        + element("LastModified", iso8601(p.last_modified))
        + element("ETag", f'"{p.etag}"')
        + element("Size", p.size)
        + _checksum_elements(p.checksums)
        + "</Part>"
        for p in parts
    )
    inner = (
        element("Bucket", bucket.name)
        + element("Key", ctx.key)
        + element("UploadId", upload.id)
        + _owner(services, bucket)
        + element("StorageClass", upload.meta.storage_class)
        + element("PartNumberMarker", after)
        + element("NextPartNumberMarker", parts[-1].part_number if parts else after)
        + element("MaxParts", max_parts)
        + element("IsTruncated", truncated)
        + (element("ChecksumAlgorithm", upload.checksum_algorithm) if upload.checksum_algorithm else "")
        + (element("ChecksumType", upload.checksum_type) if upload.checksum_type else "")
        + items
    )
    return Response.xml(document("ListPartsResult", inner))


async def list_multipart_uploads(ctx: RequestContext, services: Services) -> Response:
    bucket = services.authorized_bucket(ctx)
    max_uploads = _int_param(ctx, "max-uploads", 1000, 1000)
    prefix = ctx.query.get("prefix", "")
    delimiter = ctx.query.get("delimiter") or None
    key_marker = ctx.query.get("key-marker") or None
    upload_id_marker = ctx.query.get("upload-id-marker") or None
    encode = encoding_param(ctx)
    enc = url_encode if encode else (lambda s: s)
    uploads, prefixes, truncated = services.store.list_uploads(
        bucket,
        prefix=prefix,
        delimiter=delimiter,
        key_marker=key_marker,
        upload_id_marker=upload_id_marker,
        max_uploads=max_uploads,
    )
    last: Upload | None = uploads[-1] if uploads else None
    items = "".join(
        "<Upload>"
        + element("Key", enc(u.key))
        + element("UploadId", u.id)
        + _owner(services, bucket)
        + element("StorageClass", u.meta.storage_class)
        + element("Initiated", iso8601(u.initiated))
        + (element("ChecksumAlgorithm", u.checksum_algorithm) if u.checksum_algorithm else "")
        + "</Upload>"
        for u in uploads
    )
    items += "".join(f"<CommonPrefixes>{element('Prefix', enc(p))}</CommonPrefixes>" for p in prefixes)
    next_key = (
        prefixes[-1] if prefixes and (not last or prefixes[-1] > last.key) else last.key if last else None
    )
    inner = (
        element("Bucket", bucket.name)
        + element("KeyMarker", enc(key_marker or ""))
        + element("UploadIdMarker", upload_id_marker or "")
        + (element("NextKeyMarker", enc(next_key)) if truncated and next_key else "")
        + (element("NextUploadIdMarker", last.id) if truncated and last else "")
        + element("Prefix", enc(prefix))
        + (element("Delimiter", enc(delimiter)) if delimiter else "")
        + element("MaxUploads", max_uploads)
        + (element("EncodingType", "url") if encode else "")
        + element("IsTruncated", truncated)
        + items
    )
    return Response.xml(document("ListMultipartUploadsResult", inner))
