"""S3 access control lists: grants, the seven canned ACLs, and their stored form.

Grantees are kept by Folio account id (a canonical user id or an email address is
resolved when the ACL is written) or by group URI. An ACL always names its owner: the
bucket owner for a bucket, the writer for an object (S3's ObjectWriter ownership).

Stored form: `None` is "private, owned by the bucket owner" (the common case costs
nothing on the row and nothing to decide); otherwise JSON
`{"owner": account id, "grants": [[kind, value, permission], ...]}`. Rows written
before grants existed hold the string "public-read" (the bucket owner's object with an
AllUsers READ grant)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

READ, WRITE, READ_ACP, WRITE_ACP, FULL_CONTROL = "READ", "WRITE", "READ_ACP", "WRITE_ACP", "FULL_CONTROL"
PERMISSIONS = (READ, WRITE, READ_ACP, WRITE_ACP, FULL_CONTROL)

ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
AUTHENTICATED_USERS = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers"
LOG_DELIVERY = "http://acs.amazonaws.com/groups/s3/LogDelivery"
GROUPS = (ALL_USERS, AUTHENTICATED_USERS, LOG_DELIVERY)

CANNED_ACLS = (
    "private",
    "public-read",
    "public-read-write",
    "authenticated-read",
    "aws-exec-read",
    "bucket-owner-read",
    "bucket-owner-full-control",
    "log-delivery-write",
)
LEGACY_PUBLIC_READ = "public-read"

GranteeKind = Literal["user", "group"]


@dataclass(frozen=True)
class Grant:
    kind: GranteeKind  # "user": value is a Folio account id; "group": value is a group URI
    value: str
    permission: str


@dataclass(frozen=True)
class Acl:
    owner: str  # account id
    grants: tuple[Grant, ...]

    def permits(self, account_id: str | None, permission: str) -> bool:
        """Whether a caller (None: anonymous) holds `permission` through this ACL. As S3:
        FULL_CONTROL holds every permission, and a resource's owner always keeps
        READ_ACP and WRITE_ACP (it can repair an ACL that left it out)."""
        if account_id is not None and account_id == self.owner and permission in (READ_ACP, WRITE_ACP):
            return True
        for grant in self.grants:
            if grant.permission != permission and grant.permission != FULL_CONTROL:
                continue
            if grant.kind == "user":
                if grant.value == account_id:
                    return True
            elif grant.value == ALL_USERS or (grant.value == AUTHENTICATED_USERS and account_id is not None):
                return True
        return False


def private(owner: str) -> Acl:
    return Acl(owner, (Grant("user", owner, FULL_CONTROL),))


def canned(name: str, owner: str, bucket_owner: str, *, for_bucket: bool) -> Acl:
    """The grants of a canned ACL, as in the table of S3's ACL overview. aws-exec-read
    is private here (there is no EC2 to read); the bucket-owner-* ACLs add nothing on a
    bucket (S3 ignores them there) or when the writer owns the bucket."""
    grants = [Grant("user", owner, FULL_CONTROL)]
    if name in ("public-read", "public-read-write"):
        grants.append(Grant("group", ALL_USERS, READ))
    if name == "public-read-write":
        grants.append(Grant("group", ALL_USERS, WRITE))
    if name == "authenticated-read":
        grants.append(Grant("group", AUTHENTICATED_USERS, READ))
    if name == "log-delivery-write" and for_bucket:
        grants += [Grant("group", LOG_DELIVERY, WRITE), Grant("group", LOG_DELIVERY, READ_ACP)]
    if not for_bucket and bucket_owner != owner:
        if name == "bucket-owner-read":
            grants.append(Grant("user", bucket_owner, READ))
        elif name == "bucket-owner-full-control":
            grants.append(Grant("user", bucket_owner, FULL_CONTROL))
    return Acl(owner, tuple(grants))


def with_grants(owner: str, grants: Iterable[Grant]) -> Acl:
    """An ACL of explicit grants (headers or an AccessControlPolicy body), duplicates
    dropped, in the order given."""
    return Acl(owner, tuple(dict.fromkeys(grants)))


def to_stored(acl: Acl, default_owner: str) -> str | None:
    """The stored form: None for private by `default_owner` (the bucket owner)."""
    if acl == private(default_owner):
        return None
    return json.dumps(
        {"owner": acl.owner, "grants": [[g.kind, g.value, g.permission] for g in acl.grants]},
        separators=(",", ":"),
    )


def from_stored(text: str | None, default_owner: str) -> Acl:
    if text is None:
        return private(default_owner)
    if text == LEGACY_PUBLIC_READ:
        return canned("public-read", default_owner, default_owner, for_bucket=False)
    data = json.loads(text)
    return Acl(
        data["owner"], tuple(Grant(kind, value, permission) for kind, value, permission in data["grants"])
    )


def owner_of(text: str | None, default_owner: str) -> str:
    """The owner alone, without building the grants (listings, the fast paths)."""
    if text is None or text == LEGACY_PUBLIC_READ:
        return default_owner
    return json.loads(text)["owner"]
