"""Canned ACLs: `private` and `public-read`, on buckets and objects (x-amz-acl on
CreateBucket, PutObject, CopyObject, CreateMultipartUpload/Complete, PutBucketAcl and
PutObjectAcl), and the grants GetBucketAcl / GetObjectAcl report for them.

Folio has one owner per bucket, so the ACLs that only add the owner
(bucket-owner-full-control, bucket-owner-read) are the same as private; grants to
other accounts or write access for everyone are not supported (501)."""

from __future__ import annotations

from core.accounts import Account
from s3proxy.api.body import read_small_body
from s3proxy.api.context import RequestContext, Response
from s3proxy.api.errors import S3Error
from s3proxy.api.services import Services
from s3proxy.api.xml import child_text, children, document, element, local_name, parse

PUBLIC_READ = "public-read"
PRIVATE = "private"
ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
_SAME_AS_PRIVATE = frozenset({"private", "bucket-owner-full-control", "bucket-owner-read"})
_UNSUPPORTED = frozenset({"public-read-write", "authenticated-read", "aws-exec-read", "log-delivery-write"})
_GRANT_HEADERS = (
    "x-amz-grant-read",
    "x-amz-grant-write",
    "x-amz-grant-read-acp",
    "x-amz-grant-write-acp",
    "x-amz-grant-full-control",
)
_XSI = "http://www.w3.org/2001/XMLSchema-instance"


def canned_acl(headers: dict[str, str]) -> str | None:
    """The request's canned ACL: "private", "public-read", or None when it names none
    (a CompleteMultipartUpload without one keeps the ACL given at creation)."""
    for name in _GRANT_HEADERS:
        if name in headers:
            raise S3Error("NotImplemented", "Folio supports the canned ACLs private and public-read, not grants.")
    value = headers.get("x-amz-acl")
    if value is None:
        return None
    value = value.strip()
    if value == PUBLIC_READ:
        return PUBLIC_READ
    if value in _SAME_AS_PRIVATE:
        return PRIVATE
    if value in _UNSUPPORTED:
        raise S3Error("NotImplemented", f"The canned ACL {value} is not supported; use private or public-read.")
    raise S3Error("InvalidArgument", "Invalid canned ACL.", extra={"ArgumentName": "x-amz-acl", "ArgumentValue": value})


def policy_document(owner: Account, public_read: bool) -> bytes:
    owner_xml = element("ID", owner.canonical_id) + element("DisplayName", owner.display_name)
    grants = (
        f'<Grant><Grantee xmlns:xsi="{_XSI}" xsi:type="CanonicalUser">{owner_xml}</Grantee>'
        "<Permission>FULL_CONTROL</Permission></Grant>"
    )
    if public_read:
        grants += (
            f'<Grant><Grantee xmlns:xsi="{_XSI}" xsi:type="Group">{element("URI", ALL_USERS)}</Grantee>'
            "<Permission>READ</Permission></Grant>"
        )
    inner = f"<Owner>{owner_xml}</Owner><AccessControlList>{grants}</AccessControlList>"
    return document("AccessControlPolicy", inner)


def _acl_from_policy(body: bytes, owner: Account) -> str | None:
    """An AccessControlPolicy document that amounts to private or public-read."""
    root = parse(body)
    if local_name(root) != "AccessControlPolicy":
        raise S3Error("MalformedACLError")
    public = False
    for acl_list in children(root, "AccessControlList"):
        for grant in children(acl_list, "Grant"):
            permission = child_text(grant, "Permission")
            grantees = children(grant, "Grantee")
            if not grantees or permission is None:
                raise S3Error("MalformedACLError")
            grantee = grantees[0]
            uri, grantee_id = child_text(grantee, "URI"), child_text(grantee, "ID")
            if uri == ALL_USERS and permission == "READ":
                public = True
            elif grantee_id == owner.canonical_id and permission == "FULL_CONTROL":
                continue
            else:
                raise S3Error("NotImplemented", "Folio supports ACLs equal to private or public-read only.")
    return PUBLIC_READ if public else PRIVATE


async def _requested_acl(ctx: RequestContext, services: Services) -> str | None:
    if "x-amz-acl" in ctx.headers or any(name in ctx.headers for name in _GRANT_HEADERS):
        return canned_acl(ctx.headers)
    body = await read_small_body(ctx, services.config.limits.max_xml_body, watchdog=services.watchdog)
    if not body.strip():
        raise S3Error("MissingSecurityHeader", "Your request was missing a required header.")
    return _acl_from_policy(body, ctx.require_account())


async def get_bucket_acl(ctx: RequestContext, services: Services) -> Response:
    bucket = services.owned_bucket(ctx)
    return Response.xml(policy_document(ctx.require_account(), bucket.settings.public_read))


async def put_bucket_acl(ctx: RequestContext, services: Services) -> Response:
    bucket = services.owned_bucket(ctx)
    acl = await _requested_acl(ctx, services)
    await services.store.set_public_read(bucket, acl == PUBLIC_READ)
    return Response()


async def get_object_acl(ctx: RequestContext, services: Services) -> Response:
    bucket = services.owned_bucket(ctx)
    assert ctx.key is not None
    version = services.store.head_object(bucket, ctx.key, ctx.version_id())
    headers = {"x-amz-version-id": version.version_id} if bucket.versioning else {}
    return Response.xml(policy_document(ctx.require_account(), version.public_read), headers=headers)


async def put_object_acl(ctx: RequestContext, services: Services) -> Response:
    bucket = services.owned_bucket(ctx)
    assert ctx.key is not None
    version_id = ctx.version_id()
    acl = await _requested_acl(ctx, services)
    version = await services.store.set_object_acl(bucket, ctx.key, version_id, acl)
    headers = {"x-amz-version-id": version.version_id} if bucket.versioning else {}
    return Response(headers=headers)
