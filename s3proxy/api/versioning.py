"""Bucket versioning: GetBucketVersioning, PutBucketVersioning, ListObjectVersions."""

from __future__ import annotations

from s3proxy.api.body import read_small_body
from s3proxy.api.context import RequestContext, Response
from s3proxy.api.errors import S3Error
from s3proxy.api.listing import encoding_param, max_keys_param, owner_element
from s3proxy.api.services import Services
from s3proxy.api.xml import child_text, document, element, escape, iso8601, local_name, parse, url_encode


async def get_bucket_versioning(ctx: RequestContext, services: Services) -> Response:
    bucket = services.authorized_bucket(ctx)
    # A bucket that was never versioned answers an empty configuration, as S3 does.
    inner = element("Status", bucket.versioning) if bucket.versioning else ""
    return Response.xml(document("VersioningConfiguration", inner))


async def put_bucket_versioning(ctx: RequestContext, services: Services) -> Response:
    bucket = services.authorized_bucket(ctx)
    body = await read_small_body(ctx, 64 * 1024, watchdog=services.watchdog)
    root = parse(body)
    if local_name(root) != "VersioningConfiguration":
        raise S3Error("MalformedXML")
    status = child_text(root, "Status")
    if status not in ("Enabled", "Suspended"):
        # What AWS answers for a missing or unknown Status (as other S3 servers found).
        raise S3Error("MalformedXML")
    if (child_text(root, "MfaDelete") or "Disabled") != "Disabled":
        raise S3Error("NotImplemented", "MFA Delete is not supported by Folio.")
    await services.store.set_versioning(bucket, status)
    return Response()


async def list_object_versions(ctx: RequestContext, services: Services) -> Response:
    bucket = services.authorized_bucket(ctx)
    max_keys = max_keys_param(ctx, services.config.limits.max_keys_per_list)
    encode = encoding_param(ctx)
    enc = url_encode if encode else escape
    prefix = ctx.query.get("prefix", "")
    delimiter = ctx.query.get("delimiter") or None
    key_marker = ctx.query.get("key-marker") or None
    version_id_marker = ctx.query.get("version-id-marker") or None
    if version_id_marker and not key_marker:
        raise S3Error(
            "InvalidArgument",
            "A version-id marker cannot be specified without a key marker.",
            extra={"ArgumentName": "version-id-marker", "ArgumentValue": version_id_marker},
        )
    page = services.store.list_versions(
        bucket,
        prefix=prefix,
        delimiter=delimiter,
        key_marker=key_marker,
        version_id_marker=version_id_marker,
        max_keys=max_keys,
    )
    found = services.bucket_owner(bucket)
    owner = owner_element(found) if found is not None else ""
    items = []
    for e in page.entries:
        common = (
            f"<Key>{enc(e.key)}</Key><VersionId>{e.version_id}</VersionId>"
            f"<IsLatest>{'true' if e.is_latest else 'false'}</IsLatest>"
            f"<LastModified>{iso8601(e.last_modified)}</LastModified>"
        )
        if e.is_delete_marker:
            items.append(f"<DeleteMarker>{common}{owner}</DeleteMarker>")
        else:
            items.append(
                f"<Version>{common}<ETag>&quot;{e.etag}&quot;</ETag><Size>{e.size}</Size>"
                f"<StorageClass>{e.storage_class}</StorageClass>{owner}</Version>"
            )
    items += [f"<CommonPrefixes><Prefix>{enc(p)}</Prefix></CommonPrefixes>" for p in page.common_prefixes]
    inner = (
        element("Name", bucket.name)
        + f"<Prefix>{enc(prefix)}</Prefix>"
        + f"<KeyMarker>{enc(key_marker or '')}</KeyMarker>"
        + element("VersionIdMarker", version_id_marker or "")
        + (f"<NextKeyMarker>{enc(page.next_key_marker)}</NextKeyMarker>" if page.next_key_marker else "")
        + (element("NextVersionIdMarker", page.next_version_id_marker) if page.next_version_id_marker else "")
        + element("MaxKeys", max_keys)
        + (f"<Delimiter>{enc(delimiter)}</Delimiter>" if delimiter else "")
        + (element("EncodingType", "url") if encode else "")
        + element("IsTruncated", page.is_truncated)
        + "".join(items)
    )
    return Response.xml(document("ListVersionsResult", inner))
