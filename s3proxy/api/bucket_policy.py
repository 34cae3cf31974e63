"""Bucket policies on the wire: PutBucketPolicy, GetBucketPolicy, DeleteBucketPolicy,
GetBucketPolicyStatus. The language and its evaluation are s3proxy.access.policy's."""

from __future__ import annotations

from s3proxy.access.decide import bucket_policy
from s3proxy.access.policy import (
    MAX_POLICY_BODY_BYTES,
    MalformedPolicy,
    is_public,
    named_principals,
    parse_policy,
)
from s3proxy.api.body import read_small_body
from s3proxy.api.context import RequestContext, Response
from s3proxy.api.errors import S3Error
from s3proxy.api.services import Services
from s3proxy.api.xml import document, element


async def put_bucket_policy(ctx: RequestContext, services: Services) -> Response:
    bucket = services.authorized_bucket(ctx)
    try:
        body = await read_small_body(ctx, MAX_POLICY_BODY_BYTES, watchdog=services.watchdog)
    except S3Error as exc:
        if exc.code == "MaxMessageLengthExceeded":
            raise S3Error("MalformedPolicy", "Policies must be less than 20 KB.") from exc
        raise
    try:
        text = body.decode("utf-8")
        policy = parse_policy(text, bucket.name)
    except (UnicodeDecodeError, MalformedPolicy) as exc:
        # Nothing is stored: the policy in place stays as it was.
        message = exc.message if isinstance(exc, MalformedPolicy) else "Policies must be valid UTF-8 JSON."
        raise S3Error("MalformedPolicy", message) from exc
    account_ids, canonical_ids = named_principals(policy)
    # As AWS: a principal that is no account here is refused, not kept as a dead grant.
    if any(services.accounts.get(a) is None for a in account_ids) or any(
        services.accounts.by_canonical_id(c) is None for c in canonical_ids
    ):
        raise S3Error("MalformedPolicy", "Invalid principal in policy")
    await services.store.set_bucket_policy(bucket, text)
    return Response(status=204)


async def get_bucket_policy(ctx: RequestContext, services: Services) -> Response:
    bucket = services.authorized_bucket(ctx)
    if bucket.settings.policy is None:
        raise S3Error("NoSuchBucketPolicy")
    return Response(headers={"content-type": "application/json"}, body=bucket.settings.policy.encode("utf-8"))


async def delete_bucket_policy(ctx: RequestContext, services: Services) -> Response:
    bucket = services.authorized_bucket(ctx)
    if bucket.settings.policy is not None:
        await services.store.set_bucket_policy(bucket, None)
    return Response(status=204)


async def get_bucket_policy_status(ctx: RequestContext, services: Services) -> Response:
    bucket = services.authorized_bucket(ctx)
    if bucket.settings.policy is None:
        raise S3Error("NoSuchBucketPolicy")
    public = is_public(bucket_policy(bucket))
    return Response.xml(document("PolicyStatus", element("IsPublic", "true" if public else "false")))
