"""Acceptance test for issue 14: real S3 ACL grants on buckets and objects.

Black-box, from AWS's documentation of the ACL model (S3 Object Ownership "ObjectWriter",
ACLs enabled), not from Folio's code:

- "Access control list (ACL) overview", Amazon S3 User Guide,
  https://docs.aws.amazon.com/AmazonS3/latest/userguide/acl-overview.html : the table
  "What permissions can I grant?" (quoted above BUCKET_ALLOWED and OBJECT_ALLOWED), the
  mapping of ACL permissions to policy actions, "Who is a grantee?" (id / uri /
  emailAddress, the AllUsers and AuthenticatedUsers groups) and the "Canned ACL" table
  (quoted above CANNED_GRANTS).
- "PutBucketAcl" / "PutObjectAcl" / "CreateBucket" in the Amazon S3 API Reference: the
  x-amz-acl and x-amz-grant-* headers (`type="value"` pairs, comma-separated lists) and
  the AccessControlPolicy body.

Four principals: OWNER (account A, owns every bucket here), OTHER (account B), THIRD
(account C; like B a member of AuthenticatedUsers) and ANON (unsigned requests through
httpx with trust_env=False, so nothing but our bytes reaches the server). Signed requests
go through boto3 with its default configuration. "allowed" means a 2xx answer; "denied"
means 403 with the S3 code AccessDenied (a HEAD answer has no body: its 403 alone).

The tests are tables: for each canned ACL (and each grant row) the set of (principal,
operation) pairs AWS allows; every pair outside the set must be denied. A row collects
every difference before failing, each named (row, principal, operation, got, expected).

One reading the documents leave open is not tested: whether a non-owner with WRITE on a
bucket may overwrite or delete objects other accounts own. The older User Guide said
WRITE "allows grantee to create, overwrite, and delete any object in the bucket"; the
current one says "Allows grantee to create new objects in the bucket. For the bucket and
object owners of existing objects, also allows deletions and overwrites of those
objects." So WRITE is probed as: create a new key, then delete that same key (the
principal's own object); a principal without WRITE must fail both the create and a
delete of the owner's object.
"""

from __future__ import annotations

import io
import socket
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol
from xml.etree import ElementTree

import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from PIL import Image

from tests.conftest import TEST_CONFIG, make_s3_client
from tests.folio_process import FolioProcess, running_server
from tests.test_acl_isolation import anonymous, grants_of
from tests.test_malformed_input import raw_request_head, read_reply

ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
AUTHENTICATED_USERS = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers"
S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"
XSI = "http://www.w3.org/2001/XMLSchema-instance"

READ, WRITE, READ_ACP, WRITE_ACP, FULL_CONTROL = "READ", "WRITE", "READ_ACP", "WRITE_ACP", "FULL_CONTROL"
OWNER, OTHER, THIRD, ANON = "OWNER", "OTHER", "THIRD", "ANON"
PRINCIPALS = (OWNER, OTHER, THIRD, ANON)
EMAILS = {OWNER: "a@example.com", OTHER: "b@example.com", THIRD: "c@example.com"}

ALLOWED, DENIED = "allowed", "denied"
BODY = b"acl grants test body\n"
# An object of the bucket owner's in every bucket: a principal without WRITE tries to
# delete it, and it must still be there at the end of the row.
KEEP = "owner-keeps-this.txt"

Grant = tuple[str, str, str]  # (grantee type, canonical id or group URI, permission)
AclArgs = dict[str, Any]  # boto3's keyword arguments: ACL=, Grant*=, AccessControlPolicy=

CANNED_ACLS = (
    "private",
    "public-read",
    "public-read-write",
    "authenticated-read",
    "aws-exec-read",
    "bucket-owner-read",
    "bucket-owner-full-control",
)

# ---------------------------------------------------------------- the tables

# AWS, "Canned ACL" (Canned ACL | Applies to | Permissions added to ACL):
#   private            | Bucket and object | Owner gets FULL_CONTROL. No one else has access rights (default).
#   public-read        | Bucket and object | Owner gets FULL_CONTROL. The AllUsers group gets READ access.
#   public-read-write  | Bucket and object | Owner gets FULL_CONTROL. The AllUsers group gets READ and WRITE access.
#   aws-exec-read      | Bucket and object | Owner gets FULL_CONTROL. Amazon EC2 gets READ access to GET an
#                      |                   | Amazon Machine Image (AMI) bundle from Amazon S3.
#   authenticated-read | Bucket and object | Owner gets FULL_CONTROL. The AuthenticatedUsers group gets READ access.
#   bucket-owner-read  | Object | Object owner gets FULL_CONTROL. Bucket owner gets READ access. If you
#                      |        | specify this canned ACL when creating a bucket, Amazon S3 ignores it.
#   bucket-owner-full-control | Object | Both the object owner and the bucket owner get FULL_CONTROL over
#                      |        | the object. If you specify this canned ACL when creating a bucket, Amazon S3 ignores it.
# Grantees: "owner" is the resource's owner (the object's writer, or the bucket's owner),
# "bucket-owner" the owner of the object's bucket (dropped on buckets: "S3 ignores it").
# Folio has no EC2, so aws-exec-read adds nothing to the owner's grant.
CANNED_GRANTS: dict[str, tuple[tuple[str, str], ...]] = {
    "private": (("owner", FULL_CONTROL),),
    "public-read": (("owner", FULL_CONTROL), (ALL_USERS, READ)),
    "public-read-write": (("owner", FULL_CONTROL), (ALL_USERS, READ), (ALL_USERS, WRITE)),
    "authenticated-read": (("owner", FULL_CONTROL), (AUTHENTICATED_USERS, READ)),
    "aws-exec-read": (("owner", FULL_CONTROL),),
    "bucket-owner-read": (("owner", FULL_CONTROL), ("bucket-owner", READ)),
    "bucket-owner-full-control": (("owner", FULL_CONTROL), ("bucket-owner", FULL_CONTROL)),
}

BUCKET_OPS = ("LIST", "WRITE", "READ_ACP", "WRITE_ACP")
OBJECT_OPS = ("READ", "READ_ACP", "WRITE_ACP")


def pairs(principals: Iterable[str], ops: Iterable[str]) -> frozenset[tuple[str, str]]:
    return frozenset((p, op) for p in principals for op in ops)


# AWS, "What permissions can I grant?", when granted on a bucket:
#   READ         Allows grantee to list the objects in the bucket.            -> LIST (ListObjectsV2)
#   WRITE        Allows grantee to create new objects in the bucket. ...      -> WRITE (PutObject, DeleteObject)
#   READ_ACP     Allows grantee to read the bucket ACL                        -> READ_ACP (GetBucketAcl)
#   WRITE_ACP    Allows grantee to write the ACL for the applicable bucket    -> WRITE_ACP (PutBucketAcl)
#   FULL_CONTROL Allows grantee the READ, WRITE, READ_ACP, and WRITE_ACP permissions on the bucket
# The bucket owner may do all four whatever the ACL says (its FULL_CONTROL grant; and the
# mapping table: "Bucket owner can create, overwrite, and delete any object in the bucket").
# AllUsers is anyone, "signed (authenticated) or unsigned (anonymous)"; AuthenticatedUsers
# is every account, requests signed.
OWNER_ALL = pairs([OWNER], BUCKET_OPS)
EVERYONE_ELSE = (OTHER, THIRD, ANON)
ACCOUNTS_ELSE = (OTHER, THIRD)
BUCKET_ALLOWED: dict[str, frozenset[tuple[str, str]]] = {
    "private": OWNER_ALL,
    "public-read": OWNER_ALL | pairs(EVERYONE_ELSE, ["LIST"]),
    "public-read-write": OWNER_ALL | pairs(EVERYONE_ELSE, ["LIST", "WRITE"]),
    "authenticated-read": OWNER_ALL | pairs(ACCOUNTS_ELSE, ["LIST"]),
    "aws-exec-read": OWNER_ALL,
    "bucket-owner-read": OWNER_ALL,  # ignored on a bucket: private
    "bucket-owner-full-control": OWNER_ALL,  # ignored on a bucket: private
}

# AWS, "What permissions can I grant?", when granted on an object:
#   READ         Allows grantee to read the object data and its metadata     -> READ (GetObject, HeadObject)
#   WRITE        Not applicable
#   READ_ACP     Allows grantee to read the object ACL                        -> READ_ACP (GetObjectAcl)
#   WRITE_ACP    Allows grantee to write the ACL for the applicable object    -> WRITE_ACP (PutObjectAcl)
#   FULL_CONTROL Allows grantee the READ, READ_ACP, and WRITE_ACP permissions on the object
# The object's owner is the account that wrote it. Objects are in OWNER's buckets; the
# writer is OWNER itself, or OTHER (in a bucket that grants OTHER WRITE). The bucket owner
# reads another account's object only through bucket-owner-read / -full-control (or a
# public grant). Public-read-write's AllUsers WRITE means nothing on an object.
OBJECT_ALL = tuple(OBJECT_OPS)
OBJECT_ALLOWED: dict[str, dict[str, frozenset[tuple[str, str]]]] = {
    OWNER: {
        "private": pairs([OWNER], OBJECT_ALL),
        "public-read": pairs([OWNER], OBJECT_ALL) | pairs(EVERYONE_ELSE, ["READ"]),
        "public-read-write": pairs([OWNER], OBJECT_ALL) | pairs(EVERYONE_ELSE, ["READ"]),
        "authenticated-read": pairs([OWNER], OBJECT_ALL) | pairs(ACCOUNTS_ELSE, ["READ"]),
        "aws-exec-read": pairs([OWNER], OBJECT_ALL),
        "bucket-owner-read": pairs([OWNER], OBJECT_ALL),  # the writer is the bucket owner
        "bucket-owner-full-control": pairs([OWNER], OBJECT_ALL),
    },
    OTHER: {
        "private": pairs([OTHER], OBJECT_ALL),
        "public-read": pairs([OTHER], OBJECT_ALL) | pairs([OWNER, THIRD, ANON], ["READ"]),
        "public-read-write": pairs([OTHER], OBJECT_ALL) | pairs([OWNER, THIRD, ANON], ["READ"]),
        "authenticated-read": pairs([OTHER], OBJECT_ALL) | pairs([OWNER, THIRD], ["READ"]),
        "aws-exec-read": pairs([OTHER], OBJECT_ALL),
        "bucket-owner-read": pairs([OTHER], OBJECT_ALL) | pairs([OWNER], ["READ"]),
        "bucket-owner-full-control": pairs([OTHER, OWNER], OBJECT_ALL),
    },
}


@dataclass(frozen=True)
class GrantRow:
    """An ACL given as x-amz-grant-* headers: `args` are boto3's Grant* arguments with
    {OWNER}/{OTHER}/{THIRD} standing for canonical ids; `grants` the (grantee, permission)
    pairs GetBucketAcl/GetObjectAcl must then show; `allowed` the (principal, op) pairs."""

    args: dict[str, str]
    grants: tuple[tuple[str, str], ...]
    allowed: frozenset[tuple[str, str]]

    def arguments(self, ids: dict[str, str]) -> AclArgs:
        return {name: value.format(**ids) for name, value in self.args.items()}


OWNER_FULL = 'id="{OWNER}"'
BUCKET_GRANT_ROWS: dict[str, GrantRow] = {
    "read-to-other-by-id": GrantRow(
        {"GrantFullControl": OWNER_FULL, "GrantRead": 'id="{OTHER}"'},
        ((OWNER, FULL_CONTROL), (OTHER, READ)),
        OWNER_ALL | {(OTHER, "LIST")},
    ),
    "write-to-other-by-id": GrantRow(
        {"GrantFullControl": OWNER_FULL, "GrantWrite": 'id="{OTHER}"'},
        ((OWNER, FULL_CONTROL), (OTHER, WRITE)),
        OWNER_ALL | {(OTHER, "WRITE")},
    ),
    "read-acp-to-other-by-email": GrantRow(
        {"GrantFullControl": OWNER_FULL, "GrantReadACP": f'emailAddress="{EMAILS[OTHER]}"'},
        ((OWNER, FULL_CONTROL), (OTHER, READ_ACP)),  # "ACLs always contain the canonical user ID"
        OWNER_ALL | {(OTHER, "READ_ACP")},
    ),
    "write-acp-to-third-by-id": GrantRow(
        {"GrantFullControl": OWNER_FULL, "GrantWriteACP": 'id="{THIRD}"'},
        ((OWNER, FULL_CONTROL), (THIRD, WRITE_ACP)),
        OWNER_ALL | {(THIRD, "WRITE_ACP")},
    ),
    "full-control-to-authenticated-users": GrantRow(
        {"GrantFullControl": f'id="{{OWNER}}", uri="{AUTHENTICATED_USERS}"'},
        ((OWNER, FULL_CONTROL), (AUTHENTICATED_USERS, FULL_CONTROL)),
        OWNER_ALL | pairs(ACCOUNTS_ELSE, BUCKET_OPS),
    ),
    "read-to-all-users-read-acp-to-a-list": GrantRow(
        {
            "GrantFullControl": OWNER_FULL,
            "GrantRead": f'uri="{ALL_USERS}"',
            "GrantReadACP": 'id="{OTHER}", id="{THIRD}"',
        },
        ((OWNER, FULL_CONTROL), (ALL_USERS, READ), (OTHER, READ_ACP), (THIRD, READ_ACP)),
        OWNER_ALL | pairs(EVERYONE_ELSE, ["LIST"]) | pairs(ACCOUNTS_ELSE, ["READ_ACP"]),
    ),
}

OBJECT_GRANT_ROW = GrantRow(
    {
        "GrantFullControl": OWNER_FULL,
        "GrantRead": 'id="{THIRD}"',
        "GrantReadACP": f'uri="{ALL_USERS}"',
        "GrantWriteACP": f'emailAddress="{EMAILS[OTHER]}"',
    },
    ((OWNER, FULL_CONTROL), (THIRD, READ), (ALL_USERS, READ_ACP), (OTHER, WRITE_ACP)),
    pairs([OWNER], OBJECT_ALL) | {(THIRD, "READ"), (OTHER, "WRITE_ACP")} | pairs(EVERYONE_ELSE, ["READ_ACP"]),
)


# ---------------------------------------------------------------- outcomes


def boto_outcome(call: Callable[[], object], *, head: bool = False) -> str:
    """ "allowed", "denied" (403 AccessDenied), or "<status> <code>" for anything else."""
    try:
        call()
    except ClientError as error:
        status = error.response["ResponseMetadata"]["HTTPStatusCode"]
        code = error.response.get("Error", {}).get("Code")
        # botocore names a HEAD's bodiless error by its status.
        if status == 403 and (code == "AccessDenied" or (head and code == "403")):
            return DENIED
        return f"{status} {code}"
    return ALLOWED


def error_code(response: httpx.Response) -> str | None:
    if not response.content:
        return None
    try:
        return ElementTree.fromstring(response.content).findtext("Code")
    except ElementTree.ParseError:
        return f"(not XML: {response.content[:60]!r})"


def http_outcome(response: httpx.Response) -> str:
    if 200 <= response.status_code < 300:
        return ALLOWED
    code = error_code(response)
    if response.status_code == 403 and (code == "AccessDenied" or response.request.method == "HEAD"):
        return DENIED
    return f"{response.status_code} {code}"


def grant_set(grants: Iterable[Grant]) -> set[Grant]:
    """Grants as a set, less those a FULL_CONTROL grant to the same grantee already holds
    (an owner writing bucket-owner-read into its own bucket may get one grant or two)."""
    grants = set(grants)
    full = {(kind, who) for kind, who, permission in grants if permission == FULL_CONTROL}
    return {(k, w, p) for k, w, p in grants if p == FULL_CONTROL or (k, w) not in full}


def resolve(grants: Iterable[tuple[str, str]], ids: dict[str, str]) -> set[Grant]:
    """(principal name or group URI, permission) -> (grantee type, id or URI, permission)."""
    return grant_set(
        ("CanonicalUser", ids[who], permission) if who in ids else ("Group", who, permission)
        for who, permission in grants
    )


def canned_grants(acl: str, owner: str, bucket_owner: str | None, ids: dict[str, str]) -> set[Grant]:
    """The canned ACL's grants on an object (`bucket_owner` given) or on a bucket (None)."""
    named = {"owner": owner, "bucket-owner": bucket_owner}
    return resolve(
        ((named.get(who, who), permission) for who, permission in CANNED_GRANTS[acl] if named.get(who, who)),
        ids,
    )


def policy_xml(policy: dict) -> bytes:
    """An AccessControlPolicy document from boto3's AccessControlPolicy argument."""
    grants = ""
    for grant in policy["Grants"]:
        grantee = grant["Grantee"]
        who = (
            f"<ID>{grantee['ID']}</ID>"
            if grantee["Type"] == "CanonicalUser"
            else f"<URI>{grantee['URI']}</URI>"
        )
        grants += (
            f'<Grant><Grantee xmlns:xsi="{XSI}" xsi:type="{grantee["Type"]}">{who}</Grantee>'
            f"<Permission>{grant['Permission']}</Permission></Grant>"
        )
    return (
        f'<AccessControlPolicy xmlns="{S3_NS}"><Owner><ID>{policy["Owner"]["ID"]}</ID></Owner>'
        f"<AccessControlList>{grants}</AccessControlList></AccessControlPolicy>"
    ).encode()


ACL_HEADERS = {
    "ACL": "x-amz-acl",
    "GrantRead": "x-amz-grant-read",
    "GrantWrite": "x-amz-grant-write",
    "GrantReadACP": "x-amz-grant-read-acp",
    "GrantWriteACP": "x-amz-grant-write-acp",
    "GrantFullControl": "x-amz-grant-full-control",
}


def acl_request(acl: AclArgs) -> tuple[dict[str, str], bytes | None]:
    """The headers and body of a PUT ?acl carrying boto3's ACL arguments."""
    headers = {ACL_HEADERS[name]: value for name, value in acl.items() if name in ACL_HEADERS}
    policy = acl.get("AccessControlPolicy")
    return headers, policy_xml(policy) if policy else None


# ---------------------------------------------------------------- principals


class Principal(Protocol):
    """One of OWNER, OTHER, THIRD, ANON: each S3 operation the tables name, as an outcome."""

    name: str

    def list(self, bucket: str) -> str: ...
    def put(self, bucket: str, key: str) -> str: ...
    def delete(self, bucket: str, key: str) -> str: ...
    def get_bucket_acl(self, bucket: str) -> str: ...
    def put_bucket_acl(self, bucket: str, acl: AclArgs) -> str: ...
    def get(self, bucket: str, key: str) -> str: ...
    def head(self, bucket: str, key: str) -> str: ...
    def get_object_acl(self, bucket: str, key: str) -> str: ...
    def put_object_acl(self, bucket: str, key: str, acl: AclArgs) -> str: ...


@dataclass
class Signed:
    name: str
    s3: Any

    def list(self, bucket: str) -> str:
        return boto_outcome(lambda: self.s3.list_objects_v2(Bucket=bucket))

    def put(self, bucket: str, key: str) -> str:
        return boto_outcome(lambda: self.s3.put_object(Bucket=bucket, Key=key, Body=BODY))

    def delete(self, bucket: str, key: str) -> str:
        return boto_outcome(lambda: self.s3.delete_object(Bucket=bucket, Key=key))

    def get_bucket_acl(self, bucket: str) -> str:
        return boto_outcome(lambda: self.s3.get_bucket_acl(Bucket=bucket))

    def put_bucket_acl(self, bucket: str, acl: AclArgs) -> str:
        return boto_outcome(lambda: self.s3.put_bucket_acl(Bucket=bucket, **acl))

    def get(self, bucket: str, key: str) -> str:
        bodies: list[bytes] = []
        outcome = boto_outcome(
            lambda: bodies.append(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        )
        return outcome if outcome != ALLOWED or bodies == [BODY] else f"200 with body {bodies[0][:60]!r}"

    def head(self, bucket: str, key: str) -> str:
        return boto_outcome(lambda: self.s3.head_object(Bucket=bucket, Key=key), head=True)

    def get_object_acl(self, bucket: str, key: str) -> str:
        return boto_outcome(lambda: self.s3.get_object_acl(Bucket=bucket, Key=key))

    def put_object_acl(self, bucket: str, key: str, acl: AclArgs) -> str:
        return boto_outcome(lambda: self.s3.put_object_acl(Bucket=bucket, Key=key, **acl))


@dataclass
class Anonymous:
    name: str
    base_url: str

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return anonymous(method, f"{self.base_url}{path}", **kwargs)

    def list(self, bucket: str) -> str:
        return http_outcome(self._send("GET", f"/{bucket}?list-type=2"))

    def put(self, bucket: str, key: str) -> str:
        return http_outcome(self._send("PUT", f"/{bucket}/{key}", content=BODY))

    def delete(self, bucket: str, key: str) -> str:
        return http_outcome(self._send("DELETE", f"/{bucket}/{key}"))

    def get_bucket_acl(self, bucket: str) -> str:
        return http_outcome(self._send("GET", f"/{bucket}?acl"))

    def put_bucket_acl(self, bucket: str, acl: AclArgs) -> str:
        headers, body = acl_request(acl)
        return http_outcome(self._send("PUT", f"/{bucket}?acl", headers=headers, content=body))

    def get(self, bucket: str, key: str) -> str:
        response = self._send("GET", f"/{bucket}/{key}")
        outcome = http_outcome(response)
        return (
            outcome
            if outcome != ALLOWED or response.content == BODY
            else f"200 with body {response.content[:60]!r}"
        )

    def head(self, bucket: str, key: str) -> str:
        return http_outcome(self._send("HEAD", f"/{bucket}/{key}"))

    def get_object_acl(self, bucket: str, key: str) -> str:
        return http_outcome(self._send("GET", f"/{bucket}/{key}?acl"))

    def put_object_acl(self, bucket: str, key: str, acl: AclArgs) -> str:
        headers, body = acl_request(acl)
        return http_outcome(self._send("PUT", f"/{bucket}/{key}?acl", headers=headers, content=body))


def bucket_outcomes(p: Principal, bucket: str, acl: AclArgs) -> dict[str, str]:
    """LIST, WRITE, READ_ACP and WRITE_ACP (re-applying the bucket's own ACL, so a success
    changes nothing the other principals' rows depend on)."""
    key = f"written-by-{p.name.lower()}-{uuid.uuid4().hex[:8]}"
    put = p.put(bucket, key)
    if put == ALLOWED:
        deleted = p.delete(bucket, key)
        write = ALLOWED if deleted == ALLOWED else f"put allowed, delete of its own object {deleted}"
    else:
        deleted = p.delete(bucket, KEEP)
        write = put if deleted == DENIED else f"put {put}, delete of the owner's object {deleted}"
    return {
        "LIST": p.list(bucket),
        "WRITE": write,
        "READ_ACP": p.get_bucket_acl(bucket),
        "WRITE_ACP": p.put_bucket_acl(bucket, acl),
    }


def object_outcomes(p: Principal, bucket: str, key: str, acl: AclArgs) -> dict[str, str]:
    """READ (GET and HEAD agree), READ_ACP, WRITE_ACP (re-applying the object's own ACL)."""
    get, head = p.get(bucket, key), p.head(bucket, key)
    return {
        "READ": get if get == head else f"GET {get}, HEAD {head}",
        "READ_ACP": p.get_object_acl(bucket, key),
        "WRITE_ACP": p.put_object_acl(bucket, key, acl),
    }


def differences(
    row: str, outcomes: dict[str, dict[str, str]], allowed: frozenset[tuple[str, str]]
) -> list[str]:
    found = []
    for principal, by_op in outcomes.items():
        for op, got in by_op.items():
            expected = ALLOWED if (principal, op) in allowed else DENIED
            if got != expected:
                found.append(f"({row}, {principal}, {op}): got {got}, expected {expected}")
    return found


def bucket_grants(s3: Any, bucket: str) -> set[Grant]:
    return grant_set(grants_of(s3.get_bucket_acl(Bucket=bucket)))


def object_grants(s3: Any, bucket: str, key: str) -> set[Grant]:
    return grant_set(grants_of(s3.get_object_acl(Bucket=bucket, Key=key)))


def grant_difference(row: str, what: str, got: set[Grant], expected: set[Grant]) -> list[str]:
    if got == expected:
        return []
    return [f"({row}) {what}: got {sorted(got)}, expected {sorted(expected)}"]


# ---------------------------------------------------------------- server, accounts, buckets


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FolioProcess]:
    yield from running_server(tmp_path_factory, "folio-acl-grants", TEST_CONFIG)


@pytest.fixture(scope="module")
def accounts(server: FolioProcess) -> dict[str, dict]:
    """Accounts A, B and C of this file's own server (so their emails are known)."""
    return {name: server.create_account(email) for name, email in EMAILS.items()}


@pytest.fixture(scope="module")
def ids(accounts: dict[str, dict]) -> dict[str, str]:
    return {name: account["canonicalId"] for name, account in accounts.items()}


@pytest.fixture(scope="module")
def principals(server: FolioProcess, accounts: dict[str, dict]) -> dict[str, Principal]:
    signed: dict[str, Principal] = {
        name: Signed(name, make_s3_client(server, account["accessKey"], account["secretKey"]))
        for name, account in accounts.items()
    }
    return {**signed, ANON: Anonymous(ANON, server.s3_url)}


def s3_of(principals: dict[str, Principal], name: str) -> Any:
    principal = principals[name]
    assert isinstance(principal, Signed)
    return principal.s3


def fresh_name(tag: str) -> str:
    return f"{tag}-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module")
def owner_bucket(principals: dict[str, Principal]) -> str:
    """OWNER's private bucket, for objects OWNER writes."""
    name = fresh_name("owner-objects")
    s3_of(principals, OWNER).create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="module")
def shared_bucket(principals: dict[str, Principal], ids: dict[str, str]) -> str:
    """OWNER's bucket that grants OTHER WRITE (and OWNER FULL_CONTROL), for objects OTHER
    writes into OWNER's bucket."""
    name = fresh_name("shared-objects")
    s3_of(principals, OWNER).create_bucket(
        Bucket=name, GrantFullControl=f'id="{ids[OWNER]}"', GrantWrite=f'id="{ids[OTHER]}"'
    )
    return name


def keep_is_intact(principals: dict[str, Principal], row: str, bucket: str) -> list[str]:
    body = s3_of(principals, OWNER).get_object(Bucket=bucket, Key=KEEP)["Body"].read()
    return [] if body == BODY else [f"({row}) the owner's {KEEP} changed: {body[:60]!r}"]


# ---------------------------------------------------------------- canned ACLs


@pytest.mark.parametrize("acl", CANNED_ACLS)
def test_canned_bucket_acl_decides_who_lists_writes_and_reads_or_writes_the_acl(
    acl: str, principals: dict[str, Principal], ids: dict[str, str]
) -> None:
    owner_s3 = s3_of(principals, OWNER)
    bucket = fresh_name("canned")
    created = boto_outcome(lambda: owner_s3.create_bucket(Bucket=bucket, ACL=acl))
    assert created == ALLOWED, f"CreateBucket with x-amz-acl: {acl}: {created}"
    owner_s3.put_object(Bucket=bucket, Key=KEEP, Body=BODY)
    expected_grants = canned_grants(acl, OWNER, None, ids)

    problems = grant_difference(acl, "GetBucketAcl", bucket_grants(owner_s3, bucket), expected_grants)
    outcomes = {name: bucket_outcomes(p, bucket, {"ACL": acl}) for name, p in principals.items()}
    problems += differences(acl, outcomes, BUCKET_ALLOWED[acl])
    problems += grant_difference(
        acl,
        "GetBucketAcl after the WRITE_ACP rows",
        bucket_grants(owner_s3, bucket),
        expected_grants,
    )
    problems += keep_is_intact(principals, acl, bucket)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("writer", [OWNER, OTHER])
@pytest.mark.parametrize("acl", CANNED_ACLS)
def test_canned_object_acl_decides_who_reads_and_reads_or_writes_the_acl(
    acl: str,
    writer: str,
    request: pytest.FixtureRequest,
    principals: dict[str, Principal],
    ids: dict[str, str],
) -> None:
    bucket = request.getfixturevalue("owner_bucket" if writer == OWNER else "shared_bucket")
    writer_s3 = s3_of(principals, writer)
    key = f"canned/{acl}-by-{writer.lower()}"
    written = boto_outcome(lambda: writer_s3.put_object(Bucket=bucket, Key=key, Body=BODY, ACL=acl))
    assert written == ALLOWED, f"PutObject by {writer} with x-amz-acl: {acl}: {written}"
    row = f"{acl} written by {writer}"
    expected_grants = canned_grants(acl, writer, OWNER, ids)

    document = writer_s3.get_object_acl(Bucket=bucket, Key=key)
    problems = grant_difference(row, "GetObjectAcl", grant_set(grants_of(document)), expected_grants)
    if document["Owner"]["ID"] != ids[writer]:
        problems.append(f"({row}) GetObjectAcl Owner: got {document['Owner']['ID']}, expected {writer}'s id")
    outcomes = {name: object_outcomes(p, bucket, key, {"ACL": acl}) for name, p in principals.items()}
    problems += differences(row, outcomes, OBJECT_ALLOWED[writer][acl])
    problems += grant_difference(
        row,
        "GetObjectAcl after the WRITE_ACP rows",
        object_grants(writer_s3, bucket, key),
        expected_grants,
    )
    if writer != OWNER:
        # "Bucket owner can create, overwrite, and delete any object in the bucket."
        deleted = boto_outcome(lambda: s3_of(principals, OWNER).delete_object(Bucket=bucket, Key=key))
        if deleted != ALLOWED:
            problems.append(
                f"({row}, {OWNER}, DELETE of {writer}'s object): got {deleted}, expected {ALLOWED}"
            )
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------- grant headers


@pytest.mark.parametrize("via", ["CreateBucket", "PutBucketAcl"])
@pytest.mark.parametrize("row", list(BUCKET_GRANT_ROWS))
def test_bucket_grant_headers_decide_who_may_do_what(
    row: str, via: str, principals: dict[str, Principal], ids: dict[str, str]
) -> None:
    spec = BUCKET_GRANT_ROWS[row]
    acl = spec.arguments(ids)
    owner_s3 = s3_of(principals, OWNER)
    bucket = fresh_name("granted")
    if via == "CreateBucket":
        applied = boto_outcome(lambda: owner_s3.create_bucket(Bucket=bucket, **acl))
    else:
        owner_s3.create_bucket(Bucket=bucket)
        applied = boto_outcome(lambda: owner_s3.put_bucket_acl(Bucket=bucket, **acl))
    assert applied == ALLOWED, f"{via} with {acl}: {applied}"
    owner_s3.put_object(Bucket=bucket, Key=KEEP, Body=BODY)
    expected_grants = resolve(spec.grants, ids)

    label = f"{row} via {via}"
    problems = grant_difference(label, "GetBucketAcl", bucket_grants(owner_s3, bucket), expected_grants)
    outcomes = {name: bucket_outcomes(p, bucket, acl) for name, p in principals.items()}
    problems += differences(label, outcomes, spec.allowed)
    problems += grant_difference(
        label,
        "GetBucketAcl after the WRITE_ACP rows",
        bucket_grants(owner_s3, bucket),
        expected_grants,
    )
    problems += keep_is_intact(principals, label, bucket)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("via", ["PutObject", "PutObjectAcl"])
def test_object_grant_headers_decide_who_may_do_what(
    via: str, principals: dict[str, Principal], ids: dict[str, str], owner_bucket: str
) -> None:
    acl = OBJECT_GRANT_ROW.arguments(ids)
    owner_s3 = s3_of(principals, OWNER)
    key = f"granted/{via}"
    if via == "PutObject":
        applied = boto_outcome(lambda: owner_s3.put_object(Bucket=owner_bucket, Key=key, Body=BODY, **acl))
    else:
        owner_s3.put_object(Bucket=owner_bucket, Key=key, Body=BODY)
        applied = boto_outcome(lambda: owner_s3.put_object_acl(Bucket=owner_bucket, Key=key, **acl))
    assert applied == ALLOWED, f"{via} with {acl}: {applied}"
    expected_grants = resolve(OBJECT_GRANT_ROW.grants, ids)

    label = f"object grants via {via}"
    read_back = object_grants(owner_s3, owner_bucket, key)
    problems = grant_difference(label, "GetObjectAcl", read_back, expected_grants)
    outcomes = {name: object_outcomes(p, owner_bucket, key, acl) for name, p in principals.items()}
    problems += differences(label, outcomes, OBJECT_GRANT_ROW.allowed)
    after = object_grants(owner_s3, owner_bucket, key)
    problems += grant_difference(label, "GetObjectAcl after the WRITE_ACP rows", after, expected_grants)
    assert not problems, "\n".join(problems)


def test_write_grant_lets_other_write_objects_it_owns_and_the_bucket_owner_only_delete_them(
    principals: dict[str, Principal], ids: dict[str, str]
) -> None:
    owner_s3, other_s3, third_s3 = (s3_of(principals, name) for name in (OWNER, OTHER, THIRD))
    bucket = fresh_name("write-grant")
    owner_s3.create_bucket(
        Bucket=bucket, GrantFullControl=f'id="{ids[OWNER]}"', GrantWrite=f'id="{ids[OTHER]}"'
    )

    assert boto_outcome(lambda: other_s3.put_object(Bucket=bucket, Key="from-b.txt", Body=BODY)) == ALLOWED
    document = other_s3.get_object_acl(Bucket=bucket, Key="from-b.txt")
    assert document["Owner"]["ID"] == ids[OTHER], "the writer owns the object it wrote"
    assert grant_set(grants_of(document)) == {("CanonicalUser", ids[OTHER], FULL_CONTROL)}

    assert "from-b.txt" in [o["Key"] for o in owner_s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert boto_outcome(lambda: owner_s3.get_object(Bucket=bucket, Key="from-b.txt")) == DENIED
    assert boto_outcome(lambda: owner_s3.head_object(Bucket=bucket, Key="from-b.txt"), head=True) == DENIED
    assert boto_outcome(lambda: owner_s3.get_object_acl(Bucket=bucket, Key="from-b.txt")) == DENIED
    # WRITE alone lists nothing and reads no ACL; C has no grant at all.
    assert boto_outcome(lambda: other_s3.list_objects_v2(Bucket=bucket)) == DENIED
    assert boto_outcome(lambda: other_s3.get_bucket_acl(Bucket=bucket)) == DENIED
    assert boto_outcome(lambda: third_s3.put_object(Bucket=bucket, Key="from-c.txt", Body=BODY)) == DENIED

    deleted = owner_s3.delete_object(Bucket=bucket, Key="from-b.txt")
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert "Contents" not in owner_s3.list_objects_v2(Bucket=bucket)


# ---------------------------------------------------------------- AccessControlPolicy bodies


def policy(owner_id: str, grants: Iterable[Grant]) -> dict:
    def grantee(kind: str, who: str) -> dict[str, str]:
        return {"Type": kind, "ID": who} if kind == "CanonicalUser" else {"Type": kind, "URI": who}

    return {
        "Owner": {"ID": owner_id},
        "Grants": [
            {"Grantee": grantee(kind, who), "Permission": permission} for kind, who, permission in grants
        ],
    }


def test_access_control_policy_body_on_a_bucket_round_trips_and_applies(
    principals: dict[str, Principal], ids: dict[str, str]
) -> None:
    owner_s3 = s3_of(principals, OWNER)
    bucket = fresh_name("policy-body")
    owner_s3.create_bucket(Bucket=bucket)
    owner_s3.put_object(Bucket=bucket, Key=KEEP, Body=BODY)
    grants = resolve(
        [(OWNER, FULL_CONTROL), (ALL_USERS, READ), (AUTHENTICATED_USERS, WRITE), (OTHER, READ_ACP)], ids
    )
    body = policy(ids[OWNER], sorted(grants))
    applied = boto_outcome(lambda: owner_s3.put_bucket_acl(Bucket=bucket, AccessControlPolicy=body))
    assert applied == ALLOWED, f"PutBucketAcl with an AccessControlPolicy body: {applied}"

    problems = grant_difference("policy body", "GetBucketAcl", bucket_grants(owner_s3, bucket), grants)
    allowed = (
        OWNER_ALL | pairs(EVERYONE_ELSE, ["LIST"]) | pairs(ACCOUNTS_ELSE, ["WRITE"]) | {(OTHER, "READ_ACP")}
    )
    outcomes = {
        name: bucket_outcomes(p, bucket, {"AccessControlPolicy": body}) for name, p in principals.items()
    }
    problems += differences("bucket policy body", outcomes, allowed)
    after = bucket_grants(owner_s3, bucket)
    problems += grant_difference("policy body", "GetBucketAcl after the WRITE_ACP rows", after, grants)
    problems += keep_is_intact(principals, "bucket policy body", bucket)
    assert not problems, "\n".join(problems)


def test_access_control_policy_body_on_an_object_round_trips_and_applies(
    principals: dict[str, Principal], ids: dict[str, str], owner_bucket: str
) -> None:
    # WRITE is "Not applicable" on an object: this body grants the object permissions.
    owner_s3 = s3_of(principals, OWNER)
    key = "policy-body.txt"
    owner_s3.put_object(Bucket=owner_bucket, Key=key, Body=BODY)
    grants = resolve(
        [(OWNER, FULL_CONTROL), (ALL_USERS, READ), (AUTHENTICATED_USERS, READ_ACP), (OTHER, WRITE_ACP)], ids
    )
    body = policy(ids[OWNER], sorted(grants))
    applied = boto_outcome(
        lambda: owner_s3.put_object_acl(Bucket=owner_bucket, Key=key, AccessControlPolicy=body)
    )
    assert applied == ALLOWED, f"PutObjectAcl with an AccessControlPolicy body: {applied}"

    read_back = object_grants(owner_s3, owner_bucket, key)
    problems = grant_difference("object policy body", "GetObjectAcl", read_back, grants)
    allowed = (
        pairs([OWNER], OBJECT_ALL)
        | pairs(EVERYONE_ELSE, ["READ"])
        | pairs(ACCOUNTS_ELSE, ["READ_ACP"])
        | {(OTHER, "WRITE_ACP")}
    )
    outcomes = {
        name: object_outcomes(p, owner_bucket, key, {"AccessControlPolicy": body})
        for name, p in principals.items()
    }
    problems += differences("object policy body", outcomes, allowed)
    after = object_grants(owner_s3, owner_bucket, key)
    problems += grant_difference("object policy body", "GetObjectAcl after the WRITE_ACP rows", after, grants)
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------- single rules, spelled out


def test_anonymous_read_of_a_public_read_objects_acl_is_denied(
    server: FolioProcess, principals: dict[str, Principal], owner_bucket: str
) -> None:
    # READ is "read the object data and its metadata"; the ACL is READ_ACP's.
    s3_of(principals, OWNER).put_object(Bucket=owner_bucket, Key="public.txt", Body=BODY, ACL="public-read")
    url = f"{server.s3_url}/{owner_bucket}/public.txt"
    assert anonymous("GET", url).content == BODY
    denied = anonymous("GET", f"{url}?acl")
    assert http_outcome(denied) == DENIED
    assert b"FULL_CONTROL" not in denied.content


def test_private_object_in_a_public_read_bucket_is_listed_but_not_served(
    server: FolioProcess, principals: dict[str, Principal]
) -> None:
    # Bucket READ lists; reading needs the object's own READ (the AWS SDK for Java's
    # AccessControlList: "Bucket and object ACLs are completely independent; an object
    # does not inherit an ACL from its bucket").
    owner_s3 = s3_of(principals, OWNER)
    bucket = fresh_name("public-list")
    owner_s3.create_bucket(Bucket=bucket, ACL="public-read")
    owner_s3.put_object(Bucket=bucket, Key="private.txt", Body=BODY)
    base = f"{server.s3_url}/{bucket}"

    denied = anonymous("GET", f"{base}/private.txt")
    assert http_outcome(denied) == DENIED
    assert BODY not in denied.content
    assert http_outcome(anonymous("HEAD", f"{base}/private.txt")) == DENIED

    listing = anonymous("GET", f"{base}?list-type=2")
    assert listing.status_code == 200, listing.content[:300]
    keys = [e.text for e in ElementTree.fromstring(listing.content).iter(f"{{{S3_NS}}}Key")]
    assert keys == ["private.txt"]
    assert [o["Key"] for o in s3_of(principals, OTHER).list_objects_v2(Bucket=bucket)["Contents"]] == [
        "private.txt"
    ]
    assert (
        boto_outcome(lambda: s3_of(principals, OTHER).get_object(Bucket=bucket, Key="private.txt")) == DENIED
    )

    # /api/img serves anonymously what an anonymous S3 GET may read: not this picture,
    # and the same picture once the object itself is public-read.
    picture = io.BytesIO()
    Image.new("RGB", (40, 30), (0, 160, 0)).save(picture, "PNG")
    owner_s3.put_object(Bucket=bucket, Key="private.png", Body=picture.getvalue())
    img_url = f"{server.web_url}/api/img/{bucket}/private.png?w=20"
    refused = anonymous("GET", img_url)
    assert refused.status_code == 403, refused.text[:300]
    assert refused.json()["error"]["code"] == "AccessDenied"
    owner_s3.put_object_acl(Bucket=bucket, Key="private.png", ACL="public-read")
    served = anonymous("GET", img_url)
    assert served.status_code == 200, served.text[:300]
    assert Image.open(io.BytesIO(served.content)).size == (20, 15)


# ---------------------------------------------------------------- Expect: 100-continue


def expect_continue_put(server: FolioProcess, account: dict, bucket: str, key: str, length: int) -> bytes:
    """The head of a SigV4-signed PUT that waits for 100 Continue (UNSIGNED-PAYLOAD: the
    body need not exist when signing, and is never sent unless the server asks)."""
    headers = {
        "Host": f"127.0.0.1:{server.s3_port}",
        "Content-Length": str(length),
        "Expect": "100-continue",
        "X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD",
    }
    request = AWSRequest(method="PUT", url=f"{server.s3_url}/{bucket}/{key}", headers=headers)
    SigV4Auth(Credentials(account["accessKey"], account["secretKey"]), "s3", "us-east-1").add_auth(request)
    return raw_request_head("PUT", f"/{bucket}/{key}", dict(request.headers.items()))


@pytest.mark.parametrize("target", ["public-read bucket", "bucket granting WRITE to OTHER"])
def test_expect_100_continue_put_without_write_is_refused_before_the_body(
    target: str,
    server: FolioProcess,
    accounts: dict[str, dict],
    principals: dict[str, Principal],
    ids: dict[str, str],
) -> None:
    owner_s3 = s3_of(principals, OWNER)
    bucket = fresh_name("expect")
    if target == "public-read bucket":
        owner_s3.create_bucket(Bucket=bucket, ACL="public-read")
    else:
        owner_s3.create_bucket(
            Bucket=bucket, GrantFullControl=f'id="{ids[OWNER]}"', GrantWrite=f'id="{ids[OTHER]}"'
        )
    with socket.create_connection(("127.0.0.1", server.s3_port)) as sock:
        sock.sendall(expect_continue_put(server, accounts[THIRD], bucket, "from-c.bin", 1024 * 1024))
        reply = read_reply(sock, timeout=10)  # no body byte is ever sent
    assert reply.status != 100, "the server asked for the body of an upload THIRD may not make"
    assert reply.status == 403, reply
    assert ElementTree.fromstring(reply.body).findtext("Code") == "AccessDenied"
    assert boto_outcome(lambda: owner_s3.head_object(Bucket=bucket, Key="from-c.bin"), head=True) == "404 404"


def test_expect_100_continue_put_with_a_write_grant_continues_and_stores(
    server: FolioProcess, accounts: dict[str, dict], principals: dict[str, Principal], ids: dict[str, str]
) -> None:
    # The control for the refusal above: the grantee is asked for the body.
    bucket = fresh_name("expect-ok")
    s3_of(principals, OWNER).create_bucket(
        Bucket=bucket, GrantFullControl=f'id="{ids[OWNER]}"', GrantWrite=f'id="{ids[OTHER]}"'
    )
    body = b"z" * (256 * 1024)
    with socket.create_connection(("127.0.0.1", server.s3_port)) as sock:
        sock.sendall(expect_continue_put(server, accounts[OTHER], bucket, "from-b.bin", len(body)))
        interim = read_reply(sock, timeout=10)
        assert interim.status == 100, interim
        sock.sendall(body)
        reply = read_reply(sock)
    assert reply.status == 200, reply
    assert s3_of(principals, OTHER).get_object(Bucket=bucket, Key="from-b.bin")["Body"].read() == body
