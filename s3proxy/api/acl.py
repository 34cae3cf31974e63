"""ACLs on the wire: the x-amz-acl canned ACLs, the x-amz-grant-* headers and
AccessControlPolicy bodies (on CreateBucket, PutObject, CopyObject,
CreateMultipartUpload/Complete, PostObject, PutBucketAcl and PutObjectAcl), and the
documents GetBucketAcl / GetObjectAcl answer. The grants themselves and what they allow
are s3proxy.access's."""

from __future__ import annotations

import re

from core.accounts import Account, Accounts
from s3proxy.access import grants
from s3proxy.access.grants import Acl, Grant
from s3proxy.api.body import read_small_body
from s3proxy.api.context import RequestContext, Response
from s3proxy.api.errors import S3Error
from s3proxy.api.services import Services
from s3proxy.api.xml import child_text, children, document, element, local_name, parse
from s3proxy.store.models import Bucket

GRANT_HEADERS = {
    "x-amz-grant-read": grants.READ,
    "x-amz-grant-write": grants.WRITE,
    "x-amz-grant-read-acp": grants.READ_ACP,
    "x-amz-grant-write-acp": grants.WRITE_ACP,
    "x-amz-grant-full-control": grants.FULL_CONTROL,
}
_XSI = "http://www.w3.org/2001/XMLSchema-instance"
# One grantee of a grant header: id="...", uri="...", emailAddress="..." (quotes optional).
_GRANTEE = re.compile(r'\s*(id|uri|emailAddress)\s*=\s*(?:"([^"]*)"|([^,\s]*))\s*(?:,|$)', re.IGNORECASE)
_BUCKET_OWNER_ONLY = ("bucket-owner-read", "bucket-owner-full-control")


def has_acl_headers(headers: dict[str, str]) -> bool:
    return "x-amz-acl" in headers or any(name in headers for name in GRANT_HEADERS)


def _grantee(accounts: Accounts, kind: str, value: str) -> tuple[str, str]:
    """A grantee as stored: ("user", account id) or ("group", URI). Unknown users are
    refused with S3's codes, so a typo never silently grants nothing (or the wrong one)."""
    kind = kind.lower()
    if kind == "uri":
        if value not in grants.GROUPS:
            raise S3Error(
                "InvalidArgument", "Invalid group uri", extra={"ArgumentName": "uri", "ArgumentValue": value}
            )
        return "group", value
    if kind == "id":
        account = accounts.by_canonical_id(value)
        if account is None:
            raise S3Error(
                "InvalidArgument",
                "Invalid id",
                extra={"ArgumentName": "CanonicalUser/ID", "ArgumentValue": value},
            )
        return "user", account.id
    account = accounts.by_email(value)
    if account is None:
        raise S3Error(
            "UnresolvableGrantByEmailAddress",
            "The e-mail address you provided does not match any account on record.",
        )
    return "user", account.id


def _header_grants(headers: dict[str, str], accounts: Accounts, owner: str) -> Acl:
    found: list[Grant] = []
    for name, permission in GRANT_HEADERS.items():
        value = headers.get(name)
        if value is None:
            continue
        position = 0
        text = value.strip()
        while position < len(text):
            match = _GRANTEE.match(text, position)
            if match is None or match.end() == position:
                raise S3Error(
                    "InvalidArgument",
                    f"Invalid {name} header.",
                    extra={"ArgumentName": name, "ArgumentValue": value},
                )
            kind, grantee_value = (
                match.group(1),
                match.group(2) if match.group(2) is not None else match.group(3),
            )
            found.append(Grant(*_grantee(accounts, kind, grantee_value), permission))
            position = match.end()
    # As S3: the headers replace the ACL, the owner keeps only what they name for it
    # (and, as the owner, READ_ACP and WRITE_ACP).
    return grants.with_grants(owner, found)


def requested_acl(
    headers: dict[str, str], accounts: Accounts, owner: str, bucket_owner: str, *, for_bucket: bool
) -> Acl | None:
    """The ACL a request's headers ask for (None when they name none)."""
    canned = headers.get("x-amz-acl")
    has_grants = any(name in headers for name in GRANT_HEADERS)
    if canned is not None and has_grants:
        raise S3Error("InvalidRequest", "Specifying both Canned ACLs and Header Grants is not allowed")
    if has_grants:
        return _header_grants(headers, accounts, owner)
    if canned is None:
        return None
    canned = canned.strip()
    if canned not in grants.CANNED_ACLS:
        raise S3Error(
            "InvalidArgument",
            "Invalid canned ACL.",
            extra={"ArgumentName": "x-amz-acl", "ArgumentValue": canned},
        )
    return grants.canned(canned, owner, bucket_owner, for_bucket=for_bucket)


def stored_object_acl(
    headers: dict[str, str], services: Services, bucket: Bucket, writer: str | None
) -> str | None:
    """The stored ACL of an object a request writes: its owner is the writer (an
    anonymous writer, allowed by a public-read-write bucket, leaves it to the bucket
    owner), private unless the request asks for more."""
    owner = writer or bucket.account_id
    if owner == bucket.account_id and not has_acl_headers(headers):
        return None  # the common case: private, the bucket owner's (no parsing, no row data)
    acl = requested_acl(headers, services.accounts, owner, bucket.account_id, for_bucket=False)
    return grants.to_stored(acl or grants.private(owner), bucket.account_id)


def stored_bucket_acl(headers: dict[str, str], services: Services, owner: str) -> str | None:
    acl = requested_acl(headers, services.accounts, owner, owner, for_bucket=True)
    return grants.to_stored(acl, owner) if acl is not None else None


def _acl_from_document(body: bytes, accounts: Accounts, owner: str) -> Acl:
    root = parse(body)
    if local_name(root) != "AccessControlPolicy":
        raise S3Error("MalformedACLError")
    found: list[Grant] = []
    for acl_list in children(root, "AccessControlList"):
        for grant in children(acl_list, "Grant"):
            permission = child_text(grant, "Permission")
            grantees = children(grant, "Grantee")
            if not grantees or permission not in grants.PERMISSIONS:
                raise S3Error("MalformedACLError")
            grantee = grantees[0]
            for element_name, kind in (("ID", "id"), ("URI", "uri"), ("EmailAddress", "emailAddress")):
                value = child_text(grantee, element_name)
                if value is not None:
                    found.append(Grant(*_grantee(accounts, kind, value.strip()), permission))
                    break
            else:
                raise S3Error("MalformedACLError")
    return grants.with_grants(owner, found)


async def _new_acl(
    ctx: RequestContext, services: Services, owner: str, bucket_owner: str, *, for_bucket: bool
) -> Acl:
    """PutBucketAcl / PutObjectAcl: headers, or else an AccessControlPolicy body."""
    if has_acl_headers(ctx.headers):
        acl = requested_acl(ctx.headers, services.accounts, owner, bucket_owner, for_bucket=for_bucket)
        assert acl is not None
        return acl
    body = await read_small_body(ctx, services.config.limits.max_xml_body, watchdog=services.watchdog)
    if not body.strip():
        raise S3Error("MissingSecurityHeader", "Your request was missing a required header.")
    return _acl_from_document(body, services.accounts, owner)


def _person(account: Account | None, account_id: str) -> str:
    if account is None:  # a deleted account: its id is all that is left
        return element("ID", account_id)
    return element("ID", account.canonical_id) + element("DisplayName", account.display_name)


def policy_document(acl: Acl, accounts: Accounts) -> bytes:
    people: dict[str, Account | None] = {}

    def person(account_id: str) -> str:
        if account_id not in people:
            people[account_id] = accounts.get(account_id)
        return _person(people[account_id], account_id)

    parts = []
    for grant in acl.grants:
        if grant.kind == "user":
            grantee = f'<Grantee xmlns:xsi="{_XSI}" xsi:type="CanonicalUser">{person(grant.value)}</Grantee>'
        else:
            grantee = f'<Grantee xmlns:xsi="{_XSI}" xsi:type="Group">{element("URI", grant.value)}</Grantee>'
        parts.append(f"<Grant>{grantee}{element('Permission', grant.permission)}</Grant>")
    inner = f"<Owner>{person(acl.owner)}</Owner><AccessControlList>{''.join(parts)}</AccessControlList>"
    return document("AccessControlPolicy", inner)


async def get_bucket_acl(ctx: RequestContext, services: Services) -> Response:
    bucket = services.authorized_bucket(ctx)
    return Response.xml(
        policy_document(grants.from_stored(bucket.settings.acl, bucket.account_id), services.accounts)
    )


async def put_bucket_acl(ctx: RequestContext, services: Services) -> Response:
    bucket = services.authorized_bucket(ctx)
    acl = await _new_acl(ctx, services, bucket.account_id, bucket.account_id, for_bucket=True)
    await services.store.set_bucket_acl(bucket, grants.to_stored(acl, bucket.account_id))
    return Response()


def _version_action(ctx: RequestContext, plain: str, versioned: str) -> str:
    return versioned if "versionId" in ctx.query else plain


async def get_object_acl(ctx: RequestContext, services: Services) -> Response:
    bucket = services.authorized_bucket(ctx)
    assert ctx.key is not None
    version = services.readable_version(
        ctx, bucket, _version_action(ctx, "s3:GetObjectAcl", "s3:GetObjectVersionAcl")
    )
    headers = {"x-amz-version-id": version.version_id} if bucket.versioning else {}
    acl = grants.from_stored(version.acl, bucket.account_id)
    return Response.xml(policy_document(acl, services.accounts), headers=headers)


async def put_object_acl(ctx: RequestContext, services: Services) -> Response:
    bucket = services.authorized_bucket(ctx)
    assert ctx.key is not None
    version = services.readable_version(
        ctx, bucket, _version_action(ctx, "s3:PutObjectAcl", "s3:PutObjectVersionAcl")
    )
    owner = grants.owner_of(version.acl, bucket.account_id)
    acl = await _new_acl(ctx, services, owner, bucket.account_id, for_bucket=False)
    stored = grants.to_stored(acl, bucket.account_id)
    version = await services.store.set_object_acl(bucket, ctx.key, ctx.version_id(), stored)
    headers = {"x-amz-version-id": version.version_id} if bucket.versioning else {}
    return Response(headers=headers)
