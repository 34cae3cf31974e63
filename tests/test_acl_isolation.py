"""Canned ACLs and account isolation against the real server (issue 4).

Anonymous requests go out through httpx, curl and the aws CLI with `--no-sign-request`,
never through an SDK that could add credentials. Everything signed goes through boto3
with its default configuration. Two fresh accounts, A (the owner) and B (the
intruder), make sure "my own bucket" never quietly means "the admin's bucket".
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import httpx
import pytest
from botocore.exceptions import ClientError

from tests.conftest import AwsRunner, empty_bucket, make_s3_client, new_bucket
from tests.folio_process import FolioProcess

ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"


# ---------------------------------------------------------------- helpers


def s3_error(exc: pytest.ExceptionInfo[ClientError]) -> tuple[int, str]:
    """(HTTP status, S3 error code) of a failed boto3 call."""
    response = exc.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]


def anonymous(method: str, url: str, **kwargs: Any) -> httpx.Response:
    """A request with no Authorization header and no presign query (and no proxy from the
    environment: the point is that nothing but our bytes reaches the server)."""
    return httpx.request(method, url, trust_env=False, timeout=30, **kwargs)


def xml_code(response: httpx.Response) -> str | None:
    """The S3 error code of an XML error body (None for an empty body, e.g. HEAD)."""
    if not response.content:
        return None
    return ElementTree.fromstring(response.content).findtext("Code")


def curl(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["curl", "-sS", "--noproxy", "*", *args], capture_output=True, timeout=30, check=False
    )


def curl_get(url: str, out: Path) -> tuple[int, bytes]:
    """Anonymous GET with curl: (status, body)."""
    done = curl("-o", str(out), "-w", "%{http_code}", url)
    assert done.returncode == 0, done.stderr
    return int(done.stdout), out.read_bytes()


def curl_head(url: str) -> int:
    done = curl("-I", "-o", "/dev/null", "-w", "%{http_code}", url)
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


def grants_of(response: dict) -> list[tuple[str, str, str]]:
    """Grants of a GetBucketAcl/GetObjectAcl answer as (grantee type, id or URI, permission)."""
    found = []
    for grant in response["Grants"]:
        grantee = grant["Grantee"]
        found.append((grantee["Type"], grantee.get("ID") or grantee.get("URI", ""), grant["Permission"]))
    return sorted(found)


def private_grants(account: dict) -> list[tuple[str, str, str]]:
    return [("CanonicalUser", account["canonicalId"], "FULL_CONTROL")]


def public_grants(account: dict) -> list[tuple[str, str, str]]:
    return sorted(private_grants(account) + [("Group", ALL_USERS, "READ")])


# ---------------------------------------------------------------- accounts and buckets


@pytest.fixture(scope="module")
def owner(folio: FolioProcess) -> dict:
    """Account A: owns every bucket the tests look at."""
    return folio.create_account(f"acl-owner-{uuid.uuid4().hex[:8]}@example.com")


@pytest.fixture(scope="module")
def intruder(folio: FolioProcess) -> dict:
    """Account B: has keys of its own, and nothing in A's buckets."""
    return folio.create_account(f"acl-intruder-{uuid.uuid4().hex[:8]}@example.com")


@pytest.fixture(scope="module")
def a_s3(folio: FolioProcess, owner: dict):
    return make_s3_client(folio, owner["accessKey"], owner["secretKey"])


@pytest.fixture(scope="module")
def b_s3(folio: FolioProcess, intruder: dict):
    return make_s3_client(folio, intruder["accessKey"], intruder["secretKey"])


@pytest.fixture
def a_bucket(a_s3) -> Iterator[str]:
    """A fresh private bucket of account A."""
    yield from new_bucket(a_s3, "acl")


@pytest.fixture
def a_public_bucket(a_s3) -> Iterator[str]:
    """A fresh bucket of account A created with the canned ACL public-read."""
    name = f"acl-pub-{uuid.uuid4().hex[:16]}"
    a_s3.create_bucket(Bucket=name, ACL="public-read")
    yield name
    try:
        empty_bucket(a_s3, name)
        a_s3.delete_bucket(Bucket=name)
    except Exception:  # noqa: BLE001 - cleanup must not mask the test's own result
        pass


# ---------------------------------------------------------------- anonymous reads


def test_anonymous_get_and_head_follow_the_object_acl(
    folio: FolioProcess, a_s3, a_bucket: str, tmp_path: Path
) -> None:
    public_body = b"public bytes \x00\xff" * 100
    a_s3.put_object(Bucket=a_bucket, Key="public.bin", Body=public_body, ACL="public-read", ContentType="x/y")
    a_s3.put_object(Bucket=a_bucket, Key="private.bin", Body=b"secret")
    base = f"{folio.s3_url}/{a_bucket}"

    got = anonymous("GET", f"{base}/public.bin")
    assert got.status_code == 200
    assert got.content == public_body
    assert got.headers["content-type"] == "x/y"
    assert curl_get(f"{base}/public.bin", tmp_path / "curl-public") == (200, public_body)
    ranged = anonymous("GET", f"{base}/public.bin", headers={"Range": "bytes=0-5"})
    assert (ranged.status_code, ranged.content) == (206, public_body[:6])

    head = anonymous("HEAD", f"{base}/public.bin")
    assert head.status_code == 200
    assert int(head.headers["content-length"]) == len(public_body)
    assert curl_head(f"{base}/public.bin") == 200

    denied = anonymous("GET", f"{base}/private.bin")
    assert (denied.status_code, xml_code(denied)) == (403, "AccessDenied")
    assert b"secret" not in denied.content
    status, body = curl_get(f"{base}/private.bin", tmp_path / "curl-private")
    assert status == 403
    assert ElementTree.fromstring(body).findtext("Code") == "AccessDenied"
    assert anonymous("HEAD", f"{base}/private.bin").status_code == 403
    assert curl_head(f"{base}/private.bin") == 403

    # A missing key in a private bucket answers exactly like a private one: no hint
    # to an outsider whether the key exists.
    missing = anonymous("GET", f"{base}/no-such-key")
    assert (missing.status_code, xml_code(missing)) == (403, "AccessDenied")
    assert anonymous("HEAD", f"{base}/no-such-key").status_code == 403

    no_bucket = anonymous("GET", f"{folio.s3_url}/no-such-bucket-{uuid.uuid4().hex[:12]}/key")
    assert (no_bucket.status_code, xml_code(no_bucket)) == (404, "NoSuchBucket")


def test_put_object_acl_turns_public_access_off_and_on(
    folio: FolioProcess, a_s3, owner: dict, a_bucket: str
) -> None:
    url = f"{folio.s3_url}/{a_bucket}/doc.txt"
    a_s3.put_object(Bucket=a_bucket, Key="doc.txt", Body=b"doc", ACL="public-read")
    assert anonymous("GET", url).status_code == 200
    assert grants_of(a_s3.get_object_acl(Bucket=a_bucket, Key="doc.txt")) == public_grants(owner)

    a_s3.put_object_acl(Bucket=a_bucket, Key="doc.txt", ACL="private")
    denied = anonymous("GET", url)
    assert (denied.status_code, xml_code(denied)) == (403, "AccessDenied")
    assert anonymous("HEAD", url).status_code == 403
    assert grants_of(a_s3.get_object_acl(Bucket=a_bucket, Key="doc.txt")) == private_grants(owner)

    a_s3.put_object_acl(Bucket=a_bucket, Key="doc.txt", ACL="public-read")
    assert anonymous("GET", url).content == b"doc"
    # The owner's own reads never depended on the ACL.
    assert a_s3.get_object(Bucket=a_bucket, Key="doc.txt")["Body"].read() == b"doc"


def test_public_read_bucket_lists_but_keeps_private_objects_private(
    folio: FolioProcess, a_s3, owner: dict, a_public_bucket: str
) -> None:
    # As S3 (issue 14): a bucket's READ grant lets its grantee list the bucket; reading
    # an object needs READ on the object's own ACL (or a bucket policy).
    a_s3.put_object(Bucket=a_public_bucket, Key="plain.txt", Body=b"no acl of its own")
    url = f"{folio.s3_url}/{a_public_bucket}/plain.txt"
    listing_url = f"{folio.s3_url}/{a_public_bucket}?list-type=2"
    assert grants_of(a_s3.get_bucket_acl(Bucket=a_public_bucket)) == public_grants(owner)
    assert grants_of(a_s3.get_object_acl(Bucket=a_public_bucket, Key="plain.txt")) == private_grants(owner)
    denied = anonymous("GET", url)
    assert (denied.status_code, xml_code(denied)) == (403, "AccessDenied")
    assert b"no acl of its own" not in denied.content
    assert anonymous("HEAD", url).status_code == 403
    listing = anonymous("GET", listing_url)
    assert listing.status_code == 200
    assert b"<Key>plain.txt</Key>" in listing.content
    # A caller who may list the bucket may learn that a key is missing.
    missing = anonymous("GET", f"{folio.s3_url}/{a_public_bucket}/missing")
    assert (missing.status_code, xml_code(missing)) == (404, "NoSuchKey")

    a_s3.put_bucket_acl(Bucket=a_public_bucket, ACL="private")
    assert grants_of(a_s3.get_bucket_acl(Bucket=a_public_bucket)) == private_grants(owner)
    assert (anonymous("GET", listing_url).status_code, xml_code(anonymous("GET", listing_url))) == (
        403,
        "AccessDenied",
    )
    assert anonymous("GET", f"{folio.s3_url}/{a_public_bucket}/missing").status_code == 403

    a_s3.put_bucket_acl(Bucket=a_public_bucket, ACL="public-read")
    assert anonymous("GET", listing_url).status_code == 200
    assert anonymous("GET", url).status_code == 403


def test_put_bucket_acl_opens_listing_and_back(
    folio: FolioProcess, a_s3, owner: dict, a_bucket: str, tmp_path: Path
) -> None:
    a_s3.put_object(Bucket=a_bucket, Key="k", Body=b"value")
    url = f"{folio.s3_url}/{a_bucket}/k"
    assert grants_of(a_s3.get_bucket_acl(Bucket=a_bucket)) == private_grants(owner)
    assert anonymous("GET", url).status_code == 403
    assert curl_get(f"{folio.s3_url}/{a_bucket}", tmp_path / "l0")[0] == 403

    a_s3.put_bucket_acl(Bucket=a_bucket, ACL="public-read")
    status, body = curl_get(f"{folio.s3_url}/{a_bucket}", tmp_path / "l1")
    assert status == 200 and b"<Key>k</Key>" in body
    assert curl_get(url, tmp_path / "k")[0] == 403  # the object stays private
    a_s3.put_bucket_acl(Bucket=a_bucket, ACL="private")
    assert curl_get(f"{folio.s3_url}/{a_bucket}", tmp_path / "l2")[0] == 403


def test_anonymous_writes_and_acl_reads_are_denied_on_public_read_buckets(
    folio: FolioProcess, a_s3, a_public_bucket: str
) -> None:
    bucket = a_public_bucket
    a_s3.put_object(Bucket=bucket, Key="public.txt", Body=b"original", ACL="public-read")
    versions_before = a_s3.list_object_versions(Bucket=bucket)["Versions"]
    base = f"{folio.s3_url}/{bucket}"
    delete_xml = b"<Delete><Object><Key>public.txt</Key></Object></Delete>"
    requests: list[tuple[str, str, bytes | None]] = [
        ("PUT", f"{base}/new.txt", b"anonymous write"),
        ("PUT", f"{base}/public.txt", b"overwritten"),
        ("DELETE", f"{base}/public.txt", None),
        ("POST", f"{base}?delete", delete_xml),
        ("POST", f"{base}/upload.bin?uploads", None),
        ("GET", f"{folio.s3_url}/", None),
        ("GET", f"{base}?acl", None),
        ("GET", f"{base}/public.txt?acl", None),
        ("PUT", f"{base}?acl", None),
        ("PUT", f"{base}/public.txt?acl", None),
        ("GET", f"{base}?versioning", None),
        ("GET", f"{base}?cors", None),
        ("DELETE", base, None),
    ]
    for method, url, body in requests:
        headers = {"x-amz-acl": "public-read"} if url.endswith("?acl") else {}
        response = anonymous(method, url, content=body, headers=headers)
        assert (response.status_code, xml_code(response)) == (403, "AccessDenied"), (method, url)
    # What the bucket's READ grant gives anyone: listing (objects, versions, uploads).
    for url in (base, f"{base}?list-type=2", f"{base}?versions", f"{base}?uploads"):
        assert anonymous("GET", url).status_code == 200, url
    assert anonymous("HEAD", base).status_code == 200

    # Nothing changed: same single version, same bytes, no upload, bucket still there.
    assert a_s3.list_object_versions(Bucket=bucket)["Versions"] == versions_before
    assert "DeleteMarkers" not in a_s3.list_object_versions(Bucket=bucket)
    assert a_s3.get_object(Bucket=bucket, Key="public.txt")["Body"].read() == b"original"
    assert a_s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert anonymous("GET", f"{base}/public.txt").content == b"original"


def test_aws_cli_without_signing_reads_public_objects_only(
    aws: AwsRunner, s3, bucket: str, tmp_path: Path
) -> None:
    source = tmp_path / "page.html"
    source.write_bytes(b"<h1>public page</h1>")
    aws("s3", "cp", str(source), f"s3://{bucket}/page.html", "--acl", "public-read")
    aws("s3", "cp", str(source), f"s3://{bucket}/draft.html")

    fetched = tmp_path / "fetched.html"
    aws("s3", "cp", f"s3://{bucket}/page.html", str(fetched), "--no-sign-request")
    assert fetched.read_bytes() == b"<h1>public page</h1>"

    draft = aws(
        "s3", "cp", f"s3://{bucket}/draft.html", str(tmp_path / "d"), "--no-sign-request", check=False
    )
    assert draft.returncode != 0
    assert "403" in draft.stderr or "Forbidden" in draft.stderr
    listing = aws("s3", "ls", f"s3://{bucket}/", "--no-sign-request", check=False)
    assert listing.returncode != 0
    assert "AccessDenied" in listing.stderr

    # The CLI's --acl went through PutObject's x-amz-acl: the grants say public-read.
    acl = s3.get_object_acl(Bucket=bucket, Key="page.html")
    assert ("Group", ALL_USERS, "READ") in grants_of(acl)
    assert ("Group", ALL_USERS, "READ") not in grants_of(s3.get_object_acl(Bucket=bucket, Key="draft.html"))


# ---------------------------------------------------------------- ACL documents and other ways in


def test_acl_documents_name_the_owner(a_s3, owner: dict, a_bucket: str) -> None:
    a_s3.put_object(Bucket=a_bucket, Key="k", Body=b"v")
    for response in (a_s3.get_bucket_acl(Bucket=a_bucket), a_s3.get_object_acl(Bucket=a_bucket, Key="k")):
        assert response["Owner"]["ID"] == owner["canonicalId"]
        assert response["Owner"]["DisplayName"] == owner["displayName"]
        (grant,) = response["Grants"]
        assert grant["Grantee"]["ID"] == owner["canonicalId"]
        assert grant["Grantee"]["DisplayName"] == owner["displayName"]
        assert grant["Permission"] == "FULL_CONTROL"


def test_access_control_policy_bodies_equal_to_canned_acls(
    folio: FolioProcess, a_s3, owner: dict, a_bucket: str
) -> None:
    a_s3.put_object(Bucket=a_bucket, Key="k", Body=b"v")
    url = f"{folio.s3_url}/{a_bucket}/k"
    me = {"Type": "CanonicalUser", "ID": owner["canonicalId"]}
    everyone = {"Type": "Group", "URI": ALL_USERS}
    owner_block = {"ID": owner["canonicalId"], "DisplayName": owner["displayName"]}
    public = {
        "Grants": [
            {"Grantee": me, "Permission": "FULL_CONTROL"},
            {"Grantee": everyone, "Permission": "READ"},
        ],
        "Owner": owner_block,
    }
    private = {"Grants": [{"Grantee": me, "Permission": "FULL_CONTROL"}], "Owner": owner_block}

    a_s3.put_object_acl(Bucket=a_bucket, Key="k", AccessControlPolicy=public)
    assert grants_of(a_s3.get_object_acl(Bucket=a_bucket, Key="k")) == public_grants(owner)
    assert anonymous("GET", url).status_code == 200
    a_s3.put_object_acl(Bucket=a_bucket, Key="k", AccessControlPolicy=private)
    assert anonymous("GET", url).status_code == 403

    a_s3.put_bucket_acl(Bucket=a_bucket, AccessControlPolicy=public)
    assert grants_of(a_s3.get_bucket_acl(Bucket=a_bucket)) == public_grants(owner)
    assert anonymous("GET", f"{folio.s3_url}/{a_bucket}").status_code == 200  # READ on a bucket: list
    assert anonymous("GET", url).status_code == 403  # ... not the private object

    # WRITE for everyone (public-read-write as a body): anyone may put objects.
    writable = {
        "Grants": public["Grants"] + [{"Grantee": everyone, "Permission": "WRITE"}],
        "Owner": owner_block,
    }
    a_s3.put_bucket_acl(Bucket=a_bucket, AccessControlPolicy=writable)
    assert sorted(grants_of(a_s3.get_bucket_acl(Bucket=a_bucket))) == sorted(
        public_grants(owner) + [("Group", ALL_USERS, "WRITE")]
    )
    assert anonymous("PUT", f"{folio.s3_url}/{a_bucket}/dropped", content=b"from anyone").status_code == 200
    assert a_s3.get_object(Bucket=a_bucket, Key="dropped")["Body"].read() == b"from anyone"

    a_s3.put_bucket_acl(Bucket=a_bucket, AccessControlPolicy=private)
    assert grants_of(a_s3.get_bucket_acl(Bucket=a_bucket)) == private_grants(owner)
    refused = anonymous("PUT", f"{folio.s3_url}/{a_bucket}/again", content=b"x")
    assert (refused.status_code, xml_code(refused)) == (403, "AccessDenied")


def test_copy_object_takes_the_acl_of_the_request_not_of_the_source(
    folio: FolioProcess, a_s3, owner: dict, a_bucket: str
) -> None:
    a_s3.put_object(Bucket=a_bucket, Key="private-src", Body=b"from private")
    a_s3.put_object(Bucket=a_bucket, Key="public-src", Body=b"from public", ACL="public-read")

    a_s3.copy_object(
        Bucket=a_bucket,
        Key="made-public",
        CopySource={"Bucket": a_bucket, "Key": "private-src"},
        ACL="public-read",
    )
    assert anonymous("GET", f"{folio.s3_url}/{a_bucket}/made-public").content == b"from private"
    assert grants_of(a_s3.get_object_acl(Bucket=a_bucket, Key="made-public")) == public_grants(owner)

    # As in S3, a copy does not inherit the source's ACL: no x-amz-acl means private.
    a_s3.copy_object(
        Bucket=a_bucket, Key="copied-private", CopySource={"Bucket": a_bucket, "Key": "public-src"}
    )
    assert anonymous("GET", f"{folio.s3_url}/{a_bucket}/copied-private").status_code == 403
    assert grants_of(a_s3.get_object_acl(Bucket=a_bucket, Key="copied-private")) == private_grants(owner)


def _upload_one_part(client, bucket: str, key: str, upload_id: str, body: bytes) -> dict:
    etag = client.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=body)["ETag"]
    return {"Parts": [{"PartNumber": 1, "ETag": etag}]}


def _client_sending_acl_on_complete(folio: FolioProcess, account: dict, acl: str):
    """boto3 has no ACL parameter on CompleteMultipartUpload: add the header before signing."""
    client = make_s3_client(folio, account["accessKey"], account["secretKey"])

    def add_acl(request: Any, **_kwargs: Any) -> None:
        request.headers["x-amz-acl"] = acl

    client.meta.events.register("before-sign.s3.CompleteMultipartUpload", add_acl)
    return client


def test_multipart_upload_with_acl_produces_a_public_object(
    folio: FolioProcess, a_s3, owner: dict, a_bucket: str
) -> None:
    # The ACL given when the upload starts...
    upload = a_s3.create_multipart_upload(Bucket=a_bucket, Key="on-create", ACL="public-read")
    parts = _upload_one_part(a_s3, a_bucket, "on-create", upload["UploadId"], b"created public")
    a_s3.complete_multipart_upload(
        Bucket=a_bucket, Key="on-create", UploadId=upload["UploadId"], MultipartUpload=parts
    )
    assert anonymous("GET", f"{folio.s3_url}/{a_bucket}/on-create").content == b"created public"
    assert grants_of(a_s3.get_object_acl(Bucket=a_bucket, Key="on-create")) == public_grants(owner)

    # ...or the one given when it completes.
    upload = a_s3.create_multipart_upload(Bucket=a_bucket, Key="on-complete")
    parts = _upload_one_part(a_s3, a_bucket, "on-complete", upload["UploadId"], b"completed public")
    completing = _client_sending_acl_on_complete(folio, owner, "public-read")
    completing.complete_multipart_upload(
        Bucket=a_bucket, Key="on-complete", UploadId=upload["UploadId"], MultipartUpload=parts
    )
    assert anonymous("GET", f"{folio.s3_url}/{a_bucket}/on-complete").content == b"completed public"

    # Without any ACL the result stays private.
    upload = a_s3.create_multipart_upload(Bucket=a_bucket, Key="no-acl")
    parts = _upload_one_part(a_s3, a_bucket, "no-acl", upload["UploadId"], b"private")
    a_s3.complete_multipart_upload(
        Bucket=a_bucket, Key="no-acl", UploadId=upload["UploadId"], MultipartUpload=parts
    )
    assert anonymous("GET", f"{folio.s3_url}/{a_bucket}/no-acl").status_code == 403


def test_explicit_private_acl_on_complete_overrides_public_read_of_create(
    folio: FolioProcess, a_s3, owner: dict, a_bucket: str
) -> None:
    # Complete accepts x-amz-acl; an explicit "private" there must win like "public-read"
    # does, not be mistaken for "no header" (see /tmp/folio-bugs.md).
    upload = a_s3.create_multipart_upload(Bucket=a_bucket, Key="k", ACL="public-read")
    parts = _upload_one_part(a_s3, a_bucket, "k", upload["UploadId"], b"should end private")
    completing = _client_sending_acl_on_complete(folio, owner, "private")
    completing.complete_multipart_upload(
        Bucket=a_bucket, Key="k", UploadId=upload["UploadId"], MultipartUpload=parts
    )
    assert grants_of(a_s3.get_object_acl(Bucket=a_bucket, Key="k")) == private_grants(owner)
    assert anonymous("GET", f"{folio.s3_url}/{a_bucket}/k").status_code == 403


def test_object_acls_belong_to_each_version(folio: FolioProcess, a_s3, owner: dict, a_bucket: str) -> None:
    # Buckets on this server keep versions by default.
    v1 = a_s3.put_object(Bucket=a_bucket, Key="k", Body=b"first", ACL="public-read")["VersionId"]
    v2 = a_s3.put_object(Bucket=a_bucket, Key="k", Body=b"second")["VersionId"]
    url = f"{folio.s3_url}/{a_bucket}/k"

    assert anonymous("GET", url).status_code == 403
    old = anonymous("GET", url, params={"versionId": v1})
    assert (old.status_code, old.content) == (200, b"first")
    assert grants_of(a_s3.get_object_acl(Bucket=a_bucket, Key="k", VersionId=v1)) == public_grants(owner)
    assert grants_of(a_s3.get_object_acl(Bucket=a_bucket, Key="k", VersionId=v2)) == private_grants(owner)

    a_s3.put_object_acl(Bucket=a_bucket, Key="k", VersionId=v1, ACL="private")
    a_s3.put_object_acl(Bucket=a_bucket, Key="k", VersionId=v2, ACL="public-read")
    assert anonymous("GET", url).content == b"second"
    assert anonymous("GET", url, params={"versionId": v1}).status_code == 403
    assert grants_of(a_s3.get_object_acl(Bucket=a_bucket, Key="k")) == public_grants(owner)


@pytest.mark.parametrize(
    ("acl", "expected"),
    [("everyone-may-read", (400, "InvalidArgument"))],
)
def test_unknown_canned_acls_are_refused_and_change_nothing(
    folio: FolioProcess, a_s3, owner: dict, a_bucket: str, acl: str, expected: tuple[int, str]
) -> None:
    a_s3.put_object(Bucket=a_bucket, Key="existing", Body=b"v")

    with pytest.raises(ClientError) as exc:
        a_s3.put_object(Bucket=a_bucket, Key="refused", Body=b"x", ACL=acl)
    assert s3_error(exc) == expected
    with pytest.raises(ClientError) as exc:
        a_s3.head_object(Bucket=a_bucket, Key="refused")
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404

    name = f"acl-refused-{uuid.uuid4().hex[:12]}"
    with pytest.raises(ClientError) as exc:
        a_s3.create_bucket(Bucket=name, ACL=acl)
    assert s3_error(exc) == expected
    assert name not in [b["Name"] for b in a_s3.list_buckets()["Buckets"]]

    for call in (
        lambda: a_s3.put_bucket_acl(Bucket=a_bucket, ACL=acl),
        lambda: a_s3.put_object_acl(Bucket=a_bucket, Key="existing", ACL=acl),
        lambda: a_s3.copy_object(Bucket=a_bucket, Key="copy", CopySource=f"{a_bucket}/existing", ACL=acl),
        lambda: a_s3.create_multipart_upload(Bucket=a_bucket, Key="mpu", ACL=acl),
    ):
        with pytest.raises(ClientError) as exc:
            call()
        assert s3_error(exc) == expected
    assert grants_of(a_s3.get_bucket_acl(Bucket=a_bucket)) == private_grants(owner)
    assert grants_of(a_s3.get_object_acl(Bucket=a_bucket, Key="existing")) == private_grants(owner)
    assert [o["Key"] for o in a_s3.list_objects_v2(Bucket=a_bucket)["Contents"]] == ["existing"]
    assert a_s3.list_multipart_uploads(Bucket=a_bucket).get("Uploads", []) == []


def test_grant_headers_must_name_real_grantees(folio: FolioProcess, a_s3, a_bucket: str) -> None:
    a_s3.put_object(Bucket=a_bucket, Key="granted", Body=b"x", GrantRead=f'uri="{ALL_USERS}"')
    assert anonymous("GET", f"{folio.s3_url}/{a_bucket}/granted").content == b"x"
    # An unknown canonical id, email or group grants nothing silently: refused, nothing stored.
    for call in (
        lambda: a_s3.put_bucket_acl(Bucket=a_bucket, GrantFullControl='id="someone-else"'),
        lambda: a_s3.put_object(
            Bucket=a_bucket, Key="k2", Body=b"x", GrantRead='uri="http://example.com/all"'
        ),
        lambda: a_s3.put_object(
            Bucket=a_bucket, Key="k3", Body=b"x", GrantRead='emailAddress="no@example.invalid"'
        ),
    ):
        with pytest.raises(ClientError) as exc:
            call()
        assert s3_error(exc)[0] == 400
    assert a_s3.list_objects_v2(Bucket=a_bucket)["KeyCount"] == 1
    with pytest.raises(ClientError) as exc:
        a_s3.put_object(
            Bucket=a_bucket, Key="k4", Body=b"x", ACL="public-read", GrantRead=f'uri="{ALL_USERS}"'
        )
    assert s3_error(exc) == (400, "InvalidRequest")


@pytest.mark.parametrize("acl", ["bucket-owner-full-control", "bucket-owner-read", "private"])
def test_owner_only_canned_acls_are_private(
    folio: FolioProcess, a_s3, owner: dict, a_bucket: str, acl: str
) -> None:
    a_s3.put_object(Bucket=a_bucket, Key="k", Body=b"v", ACL=acl)
    assert grants_of(a_s3.get_object_acl(Bucket=a_bucket, Key="k")) == private_grants(owner)
    assert anonymous("GET", f"{folio.s3_url}/{a_bucket}/k").status_code == 403


# ---------------------------------------------------------------- account isolation


@dataclass
class World:
    """Account A's bucket with an object, an upload in progress and settings, plus B's own
    bucket and upload (B's legitimate side of a copy)."""

    bucket: str
    key: str
    version_id: str
    upload_key: str
    upload_id: str
    part_etag: str
    b_bucket: str
    b_upload_id: str


CORS = {"CORSRules": [{"AllowedMethods": ["GET"], "AllowedOrigins": ["https://a.example"]}]}


@pytest.fixture(scope="module")
def world(a_s3, b_s3) -> Iterator[World]:
    bucket = f"iso-a-{uuid.uuid4().hex[:16]}"
    b_bucket = f"iso-b-{uuid.uuid4().hex[:16]}"
    a_s3.create_bucket(Bucket=bucket)
    b_s3.create_bucket(Bucket=b_bucket)
    version_id = a_s3.put_object(Bucket=bucket, Key="secret.txt", Body=b"A's secret")["VersionId"]
    a_s3.put_bucket_cors(Bucket=bucket, CORSConfiguration=CORS)
    upload_id = a_s3.create_multipart_upload(Bucket=bucket, Key="big.bin")["UploadId"]
    part_etag = a_s3.upload_part(
        Bucket=bucket, Key="big.bin", UploadId=upload_id, PartNumber=1, Body=b"part one"
    )["ETag"]
    b_s3.put_object(Bucket=b_bucket, Key="b-own.txt", Body=b"B's own")
    b_upload_id = b_s3.create_multipart_upload(Bucket=b_bucket, Key="mine.bin")["UploadId"]
    yield World(bucket, "secret.txt", version_id, "big.bin", upload_id, part_etag, b_bucket, b_upload_id)
    for client, name in ((a_s3, bucket), (b_s3, b_bucket)):
        try:
            for upload in client.list_multipart_uploads(Bucket=name).get("Uploads", []):
                client.abort_multipart_upload(Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"])
            empty_bucket(client, name)
            client.delete_bucket(Bucket=name)
        except Exception:  # noqa: BLE001 - cleanup must not mask the test's own result
            pass


def snapshot(a_s3, w: World) -> dict:
    """Everything of A's an intruder could have changed."""
    versions = a_s3.list_object_versions(Bucket=w.bucket)
    return {
        "versions": sorted(
            (v["Key"], v["VersionId"], v["ETag"], v["IsLatest"]) for v in versions.get("Versions", [])
        ),
        "markers": versions.get("DeleteMarkers", []),
        "uploads": sorted(
            (u["Key"], u["UploadId"]) for u in a_s3.list_multipart_uploads(Bucket=w.bucket).get("Uploads", [])
        ),
        "parts": [
            (p["PartNumber"], p["ETag"], p["Size"])
            for p in a_s3.list_parts(Bucket=w.bucket, Key=w.upload_key, UploadId=w.upload_id).get("Parts", [])
        ],
        "body": a_s3.get_object(Bucket=w.bucket, Key=w.key)["Body"].read(),
        "cors": a_s3.get_bucket_cors(Bucket=w.bucket)["CORSRules"],
        "versioning": a_s3.get_bucket_versioning(Bucket=w.bucket).get("Status"),
        "bucket_acl": grants_of(a_s3.get_bucket_acl(Bucket=w.bucket)),
        "object_acl": grants_of(a_s3.get_object_acl(Bucket=w.bucket, Key=w.key)),
    }


@pytest.fixture(scope="module")
def before(a_s3, world: World) -> dict:
    state = snapshot(a_s3, world)
    # Sanity: the snapshot really holds A's data, so "unchanged" means something.
    assert state["body"] == b"A's secret"
    assert state["uploads"] == [(world.upload_key, world.upload_id)]
    assert [p[0] for p in state["parts"]] == [1]
    return state


# Every operation B may try on A's bucket, as (name, call). Each must be 403 AccessDenied.
IntruderCall = Callable[[Any, World], object]
INTRUSIONS: list[tuple[str, IntruderCall]] = [
    ("ListObjects", lambda b, w: b.list_objects(Bucket=w.bucket)),
    ("ListObjectsV2", lambda b, w: b.list_objects_v2(Bucket=w.bucket)),
    ("ListObjectVersions", lambda b, w: b.list_object_versions(Bucket=w.bucket)),
    ("ListMultipartUploads", lambda b, w: b.list_multipart_uploads(Bucket=w.bucket)),
    ("GetObject", lambda b, w: b.get_object(Bucket=w.bucket, Key=w.key)),
    ("GetObject-version", lambda b, w: b.get_object(Bucket=w.bucket, Key=w.key, VersionId=w.version_id)),
    ("GetObject-missing", lambda b, w: b.get_object(Bucket=w.bucket, Key="missing")),
    ("PutObject-new", lambda b, w: b.put_object(Bucket=w.bucket, Key="intruder.txt", Body=b"B was here")),
    ("PutObject-overwrite", lambda b, w: b.put_object(Bucket=w.bucket, Key=w.key, Body=b"B was here")),
    ("DeleteObject", lambda b, w: b.delete_object(Bucket=w.bucket, Key=w.key)),
    (
        "DeleteObject-version",
        lambda b, w: b.delete_object(Bucket=w.bucket, Key=w.key, VersionId=w.version_id),
    ),
    ("DeleteObject-missing", lambda b, w: b.delete_object(Bucket=w.bucket, Key="missing")),
    ("DeleteObjects", lambda b, w: b.delete_objects(Bucket=w.bucket, Delete={"Objects": [{"Key": w.key}]})),
    (
        "CopyObject-from-A",
        lambda b, w: b.copy_object(
            Bucket=w.b_bucket, Key="stolen", CopySource={"Bucket": w.bucket, "Key": w.key}
        ),
    ),
    (
        "CopyObject-into-A",
        lambda b, w: b.copy_object(
            Bucket=w.bucket, Key=w.key, CopySource={"Bucket": w.b_bucket, "Key": "b-own.txt"}
        ),
    ),
    (
        "UploadPartCopy-from-A",
        lambda b, w: b.upload_part_copy(
            Bucket=w.b_bucket,
            Key="mine.bin",
            UploadId=w.b_upload_id,
            PartNumber=1,
            CopySource={"Bucket": w.bucket, "Key": w.key},
        ),
    ),
    ("CreateMultipartUpload", lambda b, w: b.create_multipart_upload(Bucket=w.bucket, Key="intruder.bin")),
    (
        "UploadPart",
        lambda b, w: b.upload_part(
            Bucket=w.bucket, Key=w.upload_key, UploadId=w.upload_id, PartNumber=2, Body=b"B's part"
        ),
    ),
    ("ListParts", lambda b, w: b.list_parts(Bucket=w.bucket, Key=w.upload_key, UploadId=w.upload_id)),
    (
        "AbortMultipartUpload",
        lambda b, w: b.abort_multipart_upload(Bucket=w.bucket, Key=w.upload_key, UploadId=w.upload_id),
    ),
    (
        "CompleteMultipartUpload",
        lambda b, w: b.complete_multipart_upload(
            Bucket=w.bucket,
            Key=w.upload_key,
            UploadId=w.upload_id,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": w.part_etag}]},
        ),
    ),
    ("GetBucketAcl", lambda b, w: b.get_bucket_acl(Bucket=w.bucket)),
    ("PutBucketAcl", lambda b, w: b.put_bucket_acl(Bucket=w.bucket, ACL="public-read")),
    ("GetObjectAcl", lambda b, w: b.get_object_acl(Bucket=w.bucket, Key=w.key)),
    ("PutObjectAcl", lambda b, w: b.put_object_acl(Bucket=w.bucket, Key=w.key, ACL="public-read")),
    ("GetBucketCors", lambda b, w: b.get_bucket_cors(Bucket=w.bucket)),
    (
        "PutBucketCors",
        lambda b, w: b.put_bucket_cors(
            Bucket=w.bucket,
            CORSConfiguration={"CORSRules": [{"AllowedMethods": ["PUT"], "AllowedOrigins": ["*"]}]},
        ),
    ),
    ("DeleteBucketCors", lambda b, w: b.delete_bucket_cors(Bucket=w.bucket)),
    ("GetBucketVersioning", lambda b, w: b.get_bucket_versioning(Bucket=w.bucket)),
    (
        "PutBucketVersioning",
        lambda b, w: b.put_bucket_versioning(
            Bucket=w.bucket, VersioningConfiguration={"Status": "Suspended"}
        ),
    ),
    ("GetBucketLocation", lambda b, w: b.get_bucket_location(Bucket=w.bucket)),
    ("DeleteBucket", lambda b, w: b.delete_bucket(Bucket=w.bucket)),
]


@pytest.mark.parametrize("call", [c for _, c in INTRUSIONS], ids=[name for name, _ in INTRUSIONS])
def test_other_account_is_denied_and_changes_nothing(
    a_s3, b_s3, world: World, before: dict, call: IntruderCall
) -> None:
    with pytest.raises(ClientError) as exc:
        call(b_s3, world)
    assert s3_error(exc) == (403, "AccessDenied")
    assert snapshot(a_s3, world) == before
    # Nothing of A's landed in B's bucket either (the copies).
    assert [o["Key"] for o in b_s3.list_objects_v2(Bucket=world.b_bucket)["Contents"]] == ["b-own.txt"]
    assert [
        p["PartNumber"]
        for p in b_s3.list_parts(Bucket=world.b_bucket, Key="mine.bin", UploadId=world.b_upload_id).get(
            "Parts", []
        )
    ] == []


@pytest.mark.parametrize("operation", ["head_object", "head_bucket"])
def test_other_account_head_requests_are_forbidden(
    a_s3, b_s3, world: World, before: dict, operation: str
) -> None:
    kwargs = (
        {"Bucket": world.bucket, "Key": world.key} if operation == "head_object" else {"Bucket": world.bucket}
    )
    with pytest.raises(ClientError) as exc:
        getattr(b_s3, operation)(**kwargs)
    # A HEAD answer has no body: boto3 only has the status to go on.
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert snapshot(a_s3, world) == before


def test_other_account_presigned_urls_are_denied(b_s3, a_s3, world: World, before: dict) -> None:
    get_url = b_s3.generate_presigned_url("get_object", Params={"Bucket": world.bucket, "Key": world.key})
    response = httpx.get(get_url, trust_env=False)
    assert (response.status_code, xml_code(response)) == (403, "AccessDenied")
    assert b"A's secret" not in response.content
    put_url = b_s3.generate_presigned_url("put_object", Params={"Bucket": world.bucket, "Key": world.key})
    response = httpx.put(put_url, content=b"B was here", trust_env=False)
    assert (response.status_code, xml_code(response)) == (403, "AccessDenied")
    assert snapshot(a_s3, world) == before


def test_other_account_does_not_see_or_take_a_buckets_name(
    a_s3, b_s3, world: World, before: dict, intruder: dict
) -> None:
    b_names = [b["Name"] for b in b_s3.list_buckets()["Buckets"]]
    assert world.bucket not in b_names
    assert world.b_bucket in b_names  # B's listing works; it just holds only B's buckets
    assert world.b_bucket not in [b["Name"] for b in a_s3.list_buckets()["Buckets"]]

    with pytest.raises(ClientError) as exc:
        b_s3.create_bucket(Bucket=world.bucket)
    assert s3_error(exc) == (409, "BucketAlreadyExists")
    assert world.bucket in [b["Name"] for b in a_s3.list_buckets()["Buckets"]]
    assert a_s3.get_bucket_acl(Bucket=world.bucket)["Owner"]["ID"] != intruder["canonicalId"]
    assert snapshot(a_s3, world) == before


def test_owner_still_completes_the_upload_the_intruder_tried_to_touch(
    a_s3, world: World, before: dict
) -> None:
    # Run last in this file's isolation group: completing consumes the upload.
    upload = a_s3.create_multipart_upload(Bucket=world.bucket, Key="after.bin")
    etag = a_s3.upload_part(
        Bucket=world.bucket, Key="after.bin", UploadId=upload["UploadId"], PartNumber=1, Body=b"fine"
    )["ETag"]
    a_s3.complete_multipart_upload(
        Bucket=world.bucket,
        Key="after.bin",
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]},
    )
    a_s3.complete_multipart_upload(
        Bucket=world.bucket,
        Key=world.upload_key,
        UploadId=world.upload_id,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": world.part_etag}]},
    )
    assert a_s3.get_object(Bucket=world.bucket, Key=world.upload_key)["Body"].read() == b"part one"
    assert a_s3.get_object(Bucket=world.bucket, Key=world.key)["Body"].read() == b"A's secret"


def test_other_account_reads_public_read_objects_like_anyone(
    folio: FolioProcess, a_s3, b_s3, a_bucket: str
) -> None:
    # S3's AllUsers group is "anyone, signed or not": a public-read object is as readable
    # to another account's signed request as to an anonymous one (see /tmp/folio-bugs.md).
    a_s3.put_object(Bucket=a_bucket, Key="public.txt", Body=b"for everyone", ACL="public-read")
    a_s3.put_object(Bucket=a_bucket, Key="private.txt", Body=b"for A")
    assert anonymous("GET", f"{folio.s3_url}/{a_bucket}/public.txt").content == b"for everyone"
    # Still private things stay private to B.
    with pytest.raises(ClientError) as exc:
        b_s3.get_object(Bucket=a_bucket, Key="private.txt")
    assert s3_error(exc) == (403, "AccessDenied")
    assert b_s3.get_object(Bucket=a_bucket, Key="public.txt")["Body"].read() == b"for everyone"
    assert b_s3.head_object(Bucket=a_bucket, Key="public.txt")["ContentLength"] == len(b"for everyone")
