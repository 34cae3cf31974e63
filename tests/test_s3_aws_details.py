"""Other details of issue 14 where clients depend on AWS's answer: x-amz-version-id on an
unversioned bucket, Content-Encoding with aws-chunked, NoSuchBucket after DeleteBucket
(signed and anonymous, every kind of operation), presigned URLs whose X-Amz-Expires is
out of range or spent, and CORS headers on anonymous answers. moto is compared where it
implements the behaviour (version ids on unversioned buckets, NoSuchBucket for signed
requests); it does not strip aws-chunked, nor check presigned URLs: those follow the S3
API reference and AWS's own error bodies (see docs/s3-compatibility.md)."""

from __future__ import annotations

import datetime
import uuid
import xml.etree.ElementTree as ET
from typing import Any
from unittest import mock
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import pytest
from botocore.auth import S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from tests.conftest import make_s3_client, moto_client, new_bucket
from tests.folio_process import FolioProcess
from tests.test_malformed_input import Reply, assert_s3_error, signed


@pytest.fixture(scope="module")
def moto_s3(moto_url: str):
    return moto_client(moto_url)


def headers_of(response: dict[str, Any]) -> dict[str, str]:
    return response["ResponseMetadata"]["HTTPHeaders"]


# ---------------------------------------------------------------- 4. x-amz-version-id


def test_unversioned_bucket_answers_no_version_id_as_moto(
    s3_aws_like, unversioned_bucket: str, moto_s3
) -> None:
    name = f"unv-{uuid.uuid4().hex[:12]}"
    moto_s3.create_bucket(Bucket=name)
    try:
        for client, bucket in ((s3_aws_like, unversioned_bucket), (moto_s3, name)):
            put = client.put_object(Bucket=bucket, Key="k", Body=b"1")
            assert "x-amz-version-id" not in headers_of(put)
            assert "VersionId" not in put
            head = client.head_object(Bucket=bucket, Key="k")
            assert "x-amz-version-id" not in headers_of(head)
            deleted = client.delete_object(Bucket=bucket, Key="k")
            assert "x-amz-version-id" not in headers_of(deleted)
    finally:
        moto_s3.delete_bucket(Bucket=name)


def test_suspended_bucket_names_its_null_version(s3_aws_like, unversioned_bucket: str) -> None:
    # A suspended bucket stores the "null" version (S3 user guide, "Adding objects to
    # versioning-suspended buckets"); Folio names it on PUT and GET as it names every
    # version of a bucket that has versioning. (moto omits the header here.)
    bucket = unversioned_bucket
    s3_aws_like.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    kept = s3_aws_like.put_object(Bucket=bucket, Key="k", Body=b"1")["VersionId"]
    s3_aws_like.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    assert s3_aws_like.put_object(Bucket=bucket, Key="k", Body=b"2")["VersionId"] == "null"
    assert s3_aws_like.head_object(Bucket=bucket, Key="k")["VersionId"] == "null"
    versions = s3_aws_like.list_object_versions(Bucket=bucket)["Versions"]
    assert sorted(v["VersionId"] for v in versions) == sorted(["null", kept])
    for v in versions:
        s3_aws_like.delete_object(Bucket=bucket, Key="k", VersionId=v["VersionId"])


# ---------------------------------------------------------------- 5. Content-Encoding


@pytest.mark.parametrize(
    ("sent", "stored"),
    [("gzip, aws-chunked", "gzip"), ("aws-chunked", None), ("aws-chunked,gzip", "gzip"), ("gzip", "gzip")],
)
def test_aws_chunked_is_not_stored_as_content_encoding(
    folio: FolioProcess, s3, bucket: str, sent: str, stored: str | None
) -> None:
    reply = signed(folio, "PUT", f"/{bucket}/enc", body=b"body", headers={"content-encoding": sent})
    assert reply.status == 200, reply.body
    head = s3.head_object(Bucket=bucket, Key="enc")
    assert head.get("ContentEncoding") == stored
    got = s3.get_object(Bucket=bucket, Key="enc")
    assert got.get("ContentEncoding") == stored and got["Body"].read() == b"body"


def test_boto3_streaming_upload_with_gzip_encoding_stores_gzip(folio: FolioProcess, bucket: str) -> None:
    # With a trailing checksum botocore may frame the body as aws-chunked and add that to
    # the caller's Content-Encoding ("gzip, aws-chunked"; it does over HTTPS): either
    # way S3 keeps the caller's "gzip". CreateMultipartUpload keeps only "gzip" too.
    client = make_s3_client(folio, config=Config(request_checksum_calculation="when_supported"))
    client.put_object(
        Bucket=bucket, Key="gz", Body=b"x" * 1000, ContentEncoding="gzip", ChecksumAlgorithm="CRC32"
    )
    assert client.head_object(Bucket=bucket, Key="gz")["ContentEncoding"] == "gzip"
    upload = client.create_multipart_upload(Bucket=bucket, Key="mpu", ContentEncoding="gzip, aws-chunked")
    part = client.upload_part(Bucket=bucket, Key="mpu", UploadId=upload["UploadId"], PartNumber=1, Body=b"p")
    client.complete_multipart_upload(
        Bucket=bucket,
        Key="mpu",
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    assert client.head_object(Bucket=bucket, Key="mpu")["ContentEncoding"] == "gzip"


# ---------------------------------------------------------------- 6. deleted buckets

# (method, path under the bucket, query): every kind of operation.
OPERATIONS = [
    ("GET", "/k", ""),
    ("HEAD", "/k", ""),
    ("PUT", "/k", ""),
    ("DELETE", "/k", ""),
    ("GET", "", ""),
    ("GET", "", "list-type=2"),
    ("GET", "", "versions"),
    ("GET", "", "uploads"),
    ("POST", "/k", "uploads"),
    ("GET", "", "versioning"),
    ("GET", "", "cors"),
    ("GET", "", "acl"),
    ("GET", "", "location"),
    ("HEAD", "", ""),
    ("DELETE", "", ""),
]


def _status_and_code(reply: Reply) -> tuple[int, str | None]:
    if not reply.body:
        return reply.status, None
    return reply.status, ET.fromstring(reply.body).findtext("Code")


@pytest.mark.parametrize(("method", "path", "query"), OPERATIONS)
def test_deleted_bucket_is_no_such_bucket_signed_as_moto(
    folio: FolioProcess, s3, moto_url: str, method: str, path: str, query: str
) -> None:
    name = f"gone-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    s3.delete_bucket(Bucket=name)
    # Right after DeleteBucket: nothing of the bucket answers any more.
    mine = signed(folio, method, f"/{name}{path}", query=query)
    theirs = Reply.of(httpx.request(method, f"{moto_url}/{name}{path}" + (f"?{query}" if query else "")))
    assert mine.status == theirs.status == 404, (mine.body, theirs.body)
    if method != "HEAD":
        assert_s3_error(mine, 404, "NoSuchBucket")
        assert _status_and_code(theirs) == (404, "NoSuchBucket")


@pytest.mark.parametrize(("method", "path", "query"), OPERATIONS)
def test_deleted_bucket_is_no_such_bucket_anonymously(
    folio: FolioProcess, s3, method: str, path: str, query: str
) -> None:
    name = f"gone-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    s3.delete_bucket(Bucket=name)
    reply = Reply.of(httpx.request(method, f"{folio.s3_url}/{name}{path}" + (f"?{query}" if query else "")))
    if method == "HEAD":
        assert reply.status == 404
    else:
        assert_s3_error(reply, 404, "NoSuchBucket")


def test_existing_private_bucket_stays_access_denied_anonymously(folio: FolioProcess, bucket: str) -> None:
    for method, path, query in OPERATIONS:
        if method == "HEAD":
            continue
        reply = Reply.of(
            httpx.request(method, f"{folio.s3_url}/{bucket}{path}" + (f"?{query}" if query else ""))
        )
        status, code = _status_and_code(reply)
        # An object read of a missing key may say so; everything else is refused.
        assert (status, code) == (403, "AccessDenied") or (method, path, code) == ("GET", "/k", "NoSuchKey")


# ---------------------------------------------------------------- 7. presigned expiry


def with_expires(url: str, value: str) -> str:
    parts = urlsplit(url)
    query = [(k, value if k == "X-Amz-Expires" else v) for k, v in parse_qsl(parts.query)]
    return urlunsplit(parts._replace(query=urlencode(query)))


def error_fields(response: httpx.Response) -> tuple[int, str | None, str | None]:
    root = ET.fromstring(response.content)
    return response.status_code, root.findtext("Code"), root.findtext("Message")


@pytest.fixture
def sigv4(folio: FolioProcess):
    return make_s3_client(folio, config=Config(signature_version="s3v4"))


def presigned(folio: FolioProcess, path: str, expires: int, at: datetime.datetime | None = None) -> str:
    """A SigV4 presigned GET URL (botocore's pure-Python signer: the CRT one refuses 0)."""
    request = AWSRequest(method="GET", url=f"{folio.s3_url}{path}")
    auth = S3SigV4QueryAuth(
        Credentials(folio.access_key, folio.secret_key), "s3", "us-east-1", expires=expires
    )
    if at is None:
        auth.add_auth(request)
    else:
        with mock.patch("botocore.auth.get_current_datetime", return_value=at):
            auth.add_auth(request)
    return request.url


def test_presigned_zero_expiry_is_expired(folio: FolioProcess, s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    url = presigned(folio, f"/{bucket}/k", 0)
    assert "X-Amz-Expires=0" in url
    assert error_fields(httpx.get(url)) == (403, "AccessDenied", "Request has expired")
    # The control: the same URL with a minute to live reads the object.
    assert httpx.get(presigned(folio, f"/{bucket}/k", 60)).content == b"x"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("-1", "X-Amz-Expires must be non-negative"),
        ("-604800", "X-Amz-Expires must be non-negative"),
        (
            "604801",
            "X-Amz-Expires must be less than a week (in seconds); that is, the given X-Amz-Expires "
            "must be less than 604800 seconds",
        ),
        ("99999999999999999999", None),
        ("1e3", "X-Amz-Expires should be a number"),
    ],
)
def test_presigned_expires_out_of_range_is_a_query_parameters_error(
    sigv4, bucket: str, value: str, message: str | None
) -> None:
    # AWS answers 400 AuthorizationQueryParametersError for these, with these messages
    # (its own error bodies, as users quote them), before looking at the signature.
    url = sigv4.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=60)
    status, code, got = error_fields(httpx.get(with_expires(url, value)))
    assert (status, code) == (400, "AuthorizationQueryParametersError")
    if message is not None:
        assert got == message


def test_presigned_url_past_its_expiry_is_access_denied(folio: FolioProcess, s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    # Signed two minutes ago for one minute: expired a minute ago.
    past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=2)
    url = presigned(folio, f"/{bucket}/k", 60, at=past)
    assert error_fields(httpx.get(url)) == (403, "AccessDenied", "Request has expired")


# ---------------------------------------------------------------- 8. CORS, anonymous


def test_cors_headers_on_anonymous_answers(folio: FolioProcess, s3) -> None:
    origin = "https://app.example.com"
    for bucket in new_bucket(s3, "cors-anon"):
        s3.put_bucket_cors(
            Bucket=bucket,
            CORSConfiguration={
                "CORSRules": [
                    {"AllowedOrigins": [origin], "AllowedMethods": ["GET", "HEAD"], "ExposeHeaders": ["ETag"]}
                ]
            },
        )
        s3.put_object(Bucket=bucket, Key="public.txt", Body=b"hello", ACL="public-read")
        s3.put_object(Bucket=bucket, Key="private.txt", Body=b"secret")
        base = f"{folio.s3_url}/{bucket}"
        public = httpx.get(f"{base}/public.txt", headers={"Origin": origin})
        assert public.status_code == 200 and public.content == b"hello"
        assert public.headers["access-control-allow-origin"] == origin
        assert public.headers["access-control-expose-headers"] == "ETag"
        # Refusals and errors carry them too (a page can then read the status).
        for key, status in (("private.txt", 403), ("missing.txt", 403)):
            refused = httpx.get(f"{base}/{key}", headers={"Origin": origin})
            assert refused.status_code in (status, 404)
            assert refused.headers["access-control-allow-origin"] == origin
        # Another origin gets no CORS headers.
        other = httpx.get(f"{base}/public.txt", headers={"Origin": "https://evil.example"})
        assert other.status_code == 200 and "access-control-allow-origin" not in other.headers
