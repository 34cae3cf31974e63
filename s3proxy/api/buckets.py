"""Bucket operations: CreateBucket, DeleteBucket, HeadBucket, ListBuckets,
GetBucketLocation."""

from __future__ import annotations

from core.strictparse import ascii_int
from s3proxy.api.acl import stored_bucket_acl
from s3proxy.api.body import read_small_body
from s3proxy.api.context import RequestContext, Response
from s3proxy.api.errors import S3Error
from s3proxy.api.listing import decode_token, encode_token
from s3proxy.api.services import Services
from s3proxy.api.xml import child_text, document, element, escape, iso8601, local_name, parse


async def create_bucket(ctx: RequestContext, services: Services) -> Response:
    account = ctx.require_account()
    assert ctx.bucket_name is not None
    acl = stored_bucket_acl(ctx.headers, services, account.id)
    region = None
    body = await read_small_body(ctx, 64 * 1024, watchdog=services.watchdog)
    if body.strip():
        root = parse(body)
        if local_name(root) != "CreateBucketConfiguration":
            raise S3Error("MalformedXML")
        region = child_text(root, "LocationConstraint") or None
    await services.store.create_bucket(account.id, ctx.bucket_name, region, acl=acl)
    return Response(headers={"location": f"/{ctx.bucket_name}"})


async def delete_bucket(ctx: RequestContext, services: Services) -> Response:
    bucket = services.authorized_bucket(ctx)
    await services.store.delete_bucket(bucket)
    return Response(status=204)


async def head_bucket(ctx: RequestContext, services: Services) -> Response:
    bucket = services.authorized_bucket(ctx)
    return Response(headers={"x-amz-bucket-region": bucket.region})


async def get_bucket_location(ctx: RequestContext, services: Services) -> Response:
    bucket = services.authorized_bucket(ctx)
    # us-east-1 is reported as an empty LocationConstraint, as AWS does.
    region = "" if bucket.region == "us-east-1" else bucket.region
    return Response.xml(document("LocationConstraint", escape(region)))


# ListBuckets pagination (2024): max-buckets is 1..10,000, as AWS documents.
MAX_BUCKETS_PER_PAGE = 10_000


async def list_buckets(ctx: RequestContext, services: Services) -> Response:
    account = ctx.require_account()
    prefix = ctx.query.get("prefix", "")
    region = ctx.query.get("bucket-region")
    raw_max = ctx.query.get("max-buckets")
    limit = None
    if raw_max is not None:
        limit = ascii_int(raw_max, minimum=1, maximum=MAX_BUCKETS_PER_PAGE)
        if limit is None:
            raise S3Error(
                "InvalidArgument",
                f"max-buckets must be an integer between 1 and {MAX_BUCKETS_PER_PAGE}.",
                extra={"ArgumentName": "max-buckets", "ArgumentValue": raw_max},
            )
    token = ctx.query.get("continuation-token")
    after = decode_token(token) if token else None
    buckets = [
        b
        for b in services.store.list_buckets(account.id)
        if b.name.startswith(prefix)
        and (region is None or b.region == region)
        and (after is None or b.name > after)
    ]
    # The token of the next page (the last name returned): only when more buckets follow.
    next_token = encode_token(buckets[limit - 1].name) if limit is not None and len(buckets) > limit else None
    if limit is not None:
        buckets = buckets[:limit]
    items = "".join(
        "<Bucket>"
        + element("Name", b.name)
        + element("CreationDate", iso8601(b.created_at))
        + element("BucketRegion", b.region)
        + "</Bucket>"
        for b in buckets
    )
    owner = (
        f"<Owner>{element('ID', account.canonical_id)}{element('DisplayName', account.display_name)}</Owner>"
    )
    tail = (element("ContinuationToken", next_token) if next_token else "") + (
        element("Prefix", prefix) if prefix else ""
    )
    return Response.xml(document("ListAllMyBucketsResult", f"{owner}<Buckets>{items}</Buckets>{tail}"))
