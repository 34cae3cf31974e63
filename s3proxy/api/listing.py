"""ListObjects (v1) and ListObjectsV2."""

from __future__ import annotations

import base64
import binascii

from core.accounts import Account
from core.strictparse import ascii_int
from s3proxy.api.context import RequestContext, Response
from s3proxy.api.errors import S3Error
from s3proxy.api.services import Services
from s3proxy.api.xml import document, element, escape, iso8601, url_encode
from s3proxy.store.models import ListPage

# S3 reads its integer query parameters (max-keys, max-parts, ...) as 32-bit integers.
MAX_INT32 = 2**31 - 1


def max_keys_param(ctx: RequestContext, limit: int) -> int:
    raw = ctx.query.get("max-keys")
    if raw is None:
        return limit
    value = ascii_int(raw, maximum=MAX_INT32)
    if value is None:
        raise S3Error(
            "InvalidArgument",
            "Provided max-keys not an integer or within integer range",
            extra={"ArgumentName": "max-keys", "ArgumentValue": raw},
        )
    return min(value, limit)


def encoding_param(ctx: RequestContext) -> bool:
    """Whether `encoding-type=url` was asked for; any other value is InvalidArgument."""
    value = ctx.query.get("encoding-type")
    if value is None:
        return False
    if value.lower() != "url":
        raise S3Error(
            "InvalidArgument",
            "Invalid Encoding Method specified in Request",
            extra={"ArgumentName": "encoding-type", "ArgumentValue": value},
        )
    return True


def owner_element(owner: Account) -> str:
    return f"<Owner>{element('ID', owner.canonical_id)}{element('DisplayName', owner.display_name)}</Owner>"


def _contents(page: ListPage, encode: bool, owner: Account | None) -> str:
    # One f-string per entry: this loop is most of a 1,000-key listing's cost.
    owner_xml = owner_element(owner) if owner is not None else ""
    enc = url_encode if encode else escape
    parts = [
        f"<Contents><Key>{enc(e.key)}</Key><LastModified>{iso8601(e.last_modified)}</LastModified>"
        f"<ETag>&quot;{e.etag}&quot;</ETag><Size>{e.size}</Size>{owner_xml}"
        f"<StorageClass>{e.storage_class}</StorageClass></Contents>"
        for e in page.entries
    ]
    parts += [f"<CommonPrefixes><Prefix>{enc(p)}</Prefix></CommonPrefixes>" for p in page.common_prefixes]
    return "".join(parts)


async def _list(ctx: RequestContext, services: Services, after: str | None, max_keys: int) -> ListPage:
    bucket = services.authorized_bucket(ctx)
    delimiter = ctx.query.get("delimiter") or None
    return await services.store.list_objects(
        bucket, prefix=ctx.query.get("prefix", ""), delimiter=delimiter, after=after, max_keys=max_keys
    )


def encode_token(item: str) -> str:
    return base64.urlsafe_b64encode(item.encode("utf-8")).decode()


def decode_token(token: str) -> str:
    try:
        # Strict: a token with characters outside the alphabet is not one of ours.
        raw = token.encode("ascii") + b"=" * (-len(token) % 4)
        decoded = base64.b64decode(raw, altchars=b"-_", validate=True).decode("utf-8")
        if not decoded:
            raise ValueError("empty token")
        return decoded
    except (binascii.Error, UnicodeError, ValueError) as exc:
        raise S3Error(
            "InvalidArgument",
            "The continuation token provided is incorrect",
            extra={"ArgumentName": "continuation-token"},
        ) from exc


async def list_objects_v2(ctx: RequestContext, services: Services) -> Response:
    max_keys = max_keys_param(ctx, services.config.limits.max_keys_per_list)
    encode = encoding_param(ctx)
    token = ctx.query.get("continuation-token")
    start_after = ctx.query.get("start-after")
    after = decode_token(token) if token is not None else start_after
    page = await _list(ctx, services, after, max_keys)
    enc = url_encode if encode else (lambda s: s)
    owner = (
        services.bucket_owner(services.authorized_bucket(ctx))
        if ctx.query.get("fetch-owner", "").lower() == "true"
        else None
    )
    prefix = ctx.query.get("prefix", "")
    delimiter = ctx.query.get("delimiter")
    inner = (
        element("Name", ctx.bucket_name)
        + element("Prefix", enc(prefix))
        + (element("Delimiter", enc(delimiter)) if delimiter else "")
        + element("MaxKeys", max_keys)
        + (element("EncodingType", "url") if encode else "")
        + element("KeyCount", len(page.entries) + len(page.common_prefixes))
        + element("IsTruncated", page.is_truncated)
        + (element("ContinuationToken", token) if token is not None else "")
        + (
            element("NextContinuationToken", encode_token(page.last_item))
            if page.is_truncated and page.last_item is not None
            else ""
        )
        + (element("StartAfter", enc(start_after)) if start_after is not None else "")
        + _contents(page, encode, owner)
    )
    return Response.xml(document("ListBucketResult", inner))


async def list_objects_v1(ctx: RequestContext, services: Services) -> Response:
    max_keys = max_keys_param(ctx, services.config.limits.max_keys_per_list)
    encode = encoding_param(ctx)
    marker = ctx.query.get("marker", "")
    page = await _list(ctx, services, marker or None, max_keys)
    enc = url_encode if encode else (lambda s: s)
    prefix = ctx.query.get("prefix", "")
    delimiter = ctx.query.get("delimiter")
    # NextMarker is only returned with a delimiter; without one, clients use the last key.
    next_marker = page.last_item if page.is_truncated and delimiter and page.last_item is not None else None
    inner = (
        element("Name", ctx.bucket_name)
        + element("Prefix", enc(prefix))
        + element("Marker", enc(marker))
        + (element("NextMarker", enc(next_marker)) if next_marker is not None else "")
        + element("MaxKeys", max_keys)
        + (element("Delimiter", enc(delimiter)) if delimiter else "")
        + (element("EncodingType", "url") if encode else "")
        + element("IsTruncated", page.is_truncated)
        + _contents(page, encode, services.bucket_owner(services.authorized_bucket(ctx)))
    )
    return Response.xml(document("ListBucketResult", inner))
