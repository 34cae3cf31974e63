"""CopyObject against the real server with boto3 and the aws CLI: same and cross-bucket
copies, metadata COPY/REPLACE, copying onto itself, source conditions, errors, and the
shared blobs (reference counted) that make a copy a metadata operation."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError

from tests.conftest import AwsRunner, make_s3_client
from tests.folio_process import FolioProcess
from tests.server_db import server_db

INLINE_SIZE = 1024  # under the 64 KiB inline threshold: bytes in the metadata row
BLOB_SIZE = 20 * 1024 * 1024  # a blob file


def s3_error(exc: pytest.ExceptionInfo[ClientError]) -> tuple[int, str]:
    response = exc.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]


def payload(size: int) -> bytes:
    return os.urandom(size)


def read(s3, bucket: str, key: str) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


@pytest.fixture
def other_bucket(s3) -> Iterator[str]:
    name = f"copy-{uuid.uuid4().hex[:16]}"
    s3.create_bucket(Bucket=name)
    yield name
    for obj in s3.list_objects_v2(Bucket=name).get("Contents", []):
        s3.delete_object(Bucket=name, Key=obj["Key"])
    s3.delete_bucket(Bucket=name)


# ---------------------------------------------------------------- plain copies


@pytest.mark.parametrize("size", [INLINE_SIZE, BLOB_SIZE], ids=["inline-1KiB", "blob-20MiB"])
def test_copy_within_a_bucket_is_byte_identical_with_the_same_etag(s3, bucket: str, size: int) -> None:
    data = payload(size)
    put = s3.put_object(Bucket=bucket, Key="src", Body=data)
    result = s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"})
    assert result["CopyObjectResult"]["ETag"] == put["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    assert isinstance(result["CopyObjectResult"]["LastModified"], datetime)
    got = s3.get_object(Bucket=bucket, Key="dst")
    assert got["ContentLength"] == size
    assert got["Body"].read() == data
    assert read(s3, bucket, "src") == data


def test_copy_to_another_bucket_of_the_account(s3, bucket: str, other_bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="dir/source file.txt", Body=b"cross-bucket", ContentType="text/plain")
    s3.copy_object(
        Bucket=other_bucket,
        Key="copied/é ü+.txt",
        CopySource={"Bucket": bucket, "Key": "dir/source file.txt"},
    )
    got = s3.get_object(Bucket=other_bucket, Key="copied/é ü+.txt")
    assert got["Body"].read() == b"cross-bucket"
    assert got["ContentType"] == "text/plain"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=other_bucket)["Contents"]]
    assert keys == ["copied/é ü+.txt"]


def test_copy_source_as_a_string_is_decoded_with_or_without_leading_slash(
    folio: FolioProcess, s3, bucket: str
) -> None:
    s3.put_object(Bucket=bucket, Key="a b/c?d+é", Body=b"encoded")
    s3.copy_object(Bucket=bucket, Key="plain", CopySource=f"{bucket}/a b/c?d+é")
    assert read(s3, bucket, "plain") == b"encoded"
    client = make_s3_client(folio)

    def set_source(request, **_kwargs) -> None:
        del request.headers["x-amz-copy-source"]
        request.headers["x-amz-copy-source"] = f"/{bucket}/a%20b/c%3Fd%2B%C3%A9"

    client.meta.events.register("before-sign.s3.CopyObject", set_source)
    client.copy_object(Bucket=bucket, Key="slashed", CopySource=f"{bucket}/ignored")
    assert read(s3, bucket, "slashed") == b"encoded"


def test_copy_source_naming_the_null_version_copies_it(s3_aws_like, unversioned_bucket: str) -> None:
    s3, bucket = s3_aws_like, unversioned_bucket
    s3.put_object(Bucket=bucket, Key="src", Body=b"null version")
    s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src", "VersionId": "null"})
    assert read(s3, bucket, "dst") == b"null version"


def test_copy_overwrites_an_existing_destination(s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="dst", Body=payload(200 * 1024))
    s3.put_object(Bucket=bucket, Key="src", Body=b"new bytes")
    s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"})
    assert read(s3, bucket, "dst") == b"new bytes"


# ---------------------------------------------------------------- metadata directive


SOURCE_META = {"owner": "alice", "purpose": "test"}


@pytest.fixture
def described_source(s3, bucket: str) -> str:
    """An object with a content type, stored headers and user metadata."""
    s3.put_object(
        Bucket=bucket,
        Key="src",
        Body=b"meta",
        ContentType="text/markdown",
        CacheControl="max-age=60",
        ContentDisposition='attachment; filename="a.md"',
        Metadata=SOURCE_META,
    )
    return "src"


def test_metadata_directive_copy_keeps_content_type_and_user_metadata(
    s3, bucket: str, described_source: str
) -> None:
    # With COPY (the default) the request's own metadata headers are ignored.
    s3.copy_object(
        Bucket=bucket,
        Key="dst",
        CopySource={"Bucket": bucket, "Key": described_source},
        ContentType="image/png",
        Metadata={"owner": "mallory"},
    )
    head = s3.head_object(Bucket=bucket, Key="dst")
    assert head["ContentType"] == "text/markdown"
    assert head["CacheControl"] == "max-age=60"
    assert head["ContentDisposition"] == 'attachment; filename="a.md"'
    assert head["Metadata"] == SOURCE_META


def test_metadata_directive_replace_sets_the_requests_metadata(
    s3, bucket: str, described_source: str
) -> None:
    s3.copy_object(
        Bucket=bucket,
        Key="dst",
        CopySource={"Bucket": bucket, "Key": described_source},
        MetadataDirective="REPLACE",
        ContentType="application/json",
        Metadata={"owner": "bob"},
    )
    head = s3.head_object(Bucket=bucket, Key="dst")
    assert head["ContentType"] == "application/json"
    assert head["Metadata"] == {"owner": "bob"}
    assert "CacheControl" not in head and "ContentDisposition" not in head
    assert read(s3, bucket, "dst") == b"meta"
    # The source keeps its own.
    assert s3.head_object(Bucket=bucket, Key=described_source)["Metadata"] == SOURCE_META


def test_unknown_metadata_directive_is_invalid_argument(folio: FolioProcess, s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="src", Body=b"x")
    client = make_s3_client(folio)

    def set_directive(request, **_kwargs) -> None:
        request.headers["x-amz-metadata-directive"] = "MERGE"

    client.meta.events.register("before-sign.s3.CopyObject", set_directive)
    with pytest.raises(ClientError) as exc:
        client.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"})
    assert s3_error(exc) == (400, "InvalidArgument")


# ---------------------------------------------------------------- onto itself


@pytest.mark.parametrize("size", [INLINE_SIZE, 200 * 1024], ids=["inline", "blob"])
def test_copy_onto_itself_without_replace_is_invalid_request(s3, bucket: str, size: int) -> None:
    data = payload(size)
    s3.put_object(Bucket=bucket, Key="self", Body=data, Metadata={"v": "1"})
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key="self", CopySource={"Bucket": bucket, "Key": "self"})
    assert s3_error(exc) == (400, "InvalidRequest")
    assert exc.value.response["Error"]["Message"] == (
        "This copy request is illegal because it is trying to copy an object to itself without changing "
        "the object's metadata, storage class, website redirect location or encryption attributes."
    )
    assert read(s3, bucket, "self") == data


@pytest.mark.parametrize("size", [INLINE_SIZE, 200 * 1024], ids=["inline", "blob"])
def test_copy_onto_itself_with_replace_changes_metadata_and_keeps_bytes(s3, bucket: str, size: int) -> None:
    data = payload(size)
    s3.put_object(Bucket=bucket, Key="self", Body=data, ContentType="text/plain", Metadata={"v": "1"})
    s3.copy_object(
        Bucket=bucket,
        Key="self",
        CopySource={"Bucket": bucket, "Key": "self"},
        MetadataDirective="REPLACE",
        ContentType="application/pdf",
        Metadata={"v": "2"},
    )
    time.sleep(0.2)  # freed blobs are deleted in the background: give a wrong deletion time to happen
    got = s3.get_object(Bucket=bucket, Key="self")
    assert got["ContentType"] == "application/pdf"
    assert got["Metadata"] == {"v": "2"}
    assert got["Body"].read() == data


def test_copy_onto_itself_changing_storage_class_is_allowed(s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="self", Body=b"cold", Metadata={"v": "1"})
    s3.copy_object(
        Bucket=bucket, Key="self", CopySource={"Bucket": bucket, "Key": "self"}, StorageClass="STANDARD_IA"
    )
    head = s3.head_object(Bucket=bucket, Key="self")
    assert head["StorageClass"] == "STANDARD_IA"
    assert head["Metadata"] == {"v": "1"}


# ---------------------------------------------------------------- source conditions


@pytest.fixture
def source(s3, bucket: str) -> dict:
    put = s3.put_object(Bucket=bucket, Key="cond-src", Body=b"conditional")
    head = s3.head_object(Bucket=bucket, Key="cond-src")
    return {"etag": put["ETag"], "modified": head["LastModified"]}


def _conditions(source: dict, which: str, holds: bool) -> dict:
    before = source["modified"] - timedelta(days=1)
    after = source["modified"] + timedelta(days=1)
    if which == "IfMatch":
        return {"CopySourceIfMatch": source["etag"] if holds else '"0123456789abcdef0123456789abcdef"'}
    if which == "IfNoneMatch":
        return {"CopySourceIfNoneMatch": '"0123456789abcdef0123456789abcdef"' if holds else source["etag"]}
    if which == "IfModifiedSince":
        return {"CopySourceIfModifiedSince": before if holds else after}
    return {"CopySourceIfUnmodifiedSince": after if holds else before}


CONDITIONS = ["IfMatch", "IfNoneMatch", "IfModifiedSince", "IfUnmodifiedSince"]


def conditional_copy(s3, bucket: str, **conditions) -> None:
    s3.copy_object(
        Bucket=bucket, Key="cond-dst", CopySource={"Bucket": bucket, "Key": "cond-src"}, **conditions
    )


@pytest.mark.parametrize("which", CONDITIONS)
def test_copy_source_condition_that_fails_is_412_and_writes_nothing(
    s3, bucket: str, source: dict, which: str
) -> None:
    with pytest.raises(ClientError) as exc:
        conditional_copy(s3, bucket, **_conditions(source, which, holds=False))
    assert s3_error(exc) == (412, "PreconditionFailed")
    with pytest.raises(ClientError) as missing:
        s3.head_object(Bucket=bucket, Key="cond-dst")
    assert missing.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


@pytest.mark.parametrize("which", CONDITIONS)
def test_copy_source_condition_that_holds_copies(s3, bucket: str, source: dict, which: str) -> None:
    conditional_copy(s3, bucket, **_conditions(source, which, holds=True))
    assert read(s3, bucket, "cond-dst") == b"conditional"


def test_if_match_that_holds_overrides_a_failing_if_unmodified_since(s3, bucket: str, source: dict) -> None:
    conditional_copy(
        s3,
        bucket,
        **_conditions(source, "IfMatch", holds=True),
        **_conditions(source, "IfUnmodifiedSince", holds=False),
    )
    assert read(s3, bucket, "cond-dst") == b"conditional"


def test_failing_if_none_match_wins_over_a_holding_if_modified_since(s3, bucket: str, source: dict) -> None:
    with pytest.raises(ClientError) as exc:
        conditional_copy(
            s3,
            bucket,
            **_conditions(source, "IfNoneMatch", holds=False),
            **_conditions(source, "IfModifiedSince", holds=True),
        )
    assert s3_error(exc) == (412, "PreconditionFailed")


def test_destination_if_none_match_star_refuses_to_overwrite(s3, bucket: str, source: dict) -> None:
    s3.put_object(Bucket=bucket, Key="cond-dst", Body=b"already here")
    with pytest.raises(ClientError) as exc:
        conditional_copy(s3, bucket, IfNoneMatch="*")
    assert s3_error(exc) == (412, "PreconditionFailed")
    assert read(s3, bucket, "cond-dst") == b"already here"


# ---------------------------------------------------------------- errors


def test_copy_of_a_missing_key_is_no_such_key(s3, bucket: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "never-written"})
    assert s3_error(exc) == (404, "NoSuchKey")


def test_copy_of_a_deleted_key_is_no_such_key(s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="gone", Body=b"x")
    s3.delete_object(Bucket=bucket, Key="gone")
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "gone"})
    assert s3_error(exc) == (404, "NoSuchKey")


def test_copy_from_a_missing_bucket_is_no_such_bucket(s3, bucket: str) -> None:
    missing = f"missing-{uuid.uuid4().hex[:12]}"
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": missing, "Key": "k"})
    assert s3_error(exc) == (404, "NoSuchBucket")


def test_copy_source_without_a_key_is_invalid_argument(s3, bucket: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key="dst", CopySource=bucket)
    assert s3_error(exc) == (400, "InvalidArgument")


@pytest.fixture(scope="module")
def other_account_s3(folio: FolioProcess):
    account = folio.create_account(f"copy-{uuid.uuid4().hex[:8]}@example.com")
    return make_s3_client(folio, account["accessKey"], account["secretKey"])


def test_copy_from_another_accounts_bucket_is_access_denied(s3, other_account_s3, bucket: str) -> None:
    theirs = f"theirs-{uuid.uuid4().hex[:12]}"
    other_account_s3.create_bucket(Bucket=theirs)
    try:
        other_account_s3.put_object(Bucket=theirs, Key="secret", Body=b"not yours")
        with pytest.raises(ClientError) as exc:
            s3.copy_object(Bucket=bucket, Key="stolen", CopySource={"Bucket": theirs, "Key": "secret"})
        assert s3_error(exc) == (403, "AccessDenied")
        # Nor into it, from a bucket of one's own.
        s3.put_object(Bucket=bucket, Key="mine", Body=b"mine")
        with pytest.raises(ClientError) as exc:
            s3.copy_object(Bucket=theirs, Key="planted", CopySource={"Bucket": bucket, "Key": "mine"})
        assert s3_error(exc) == (403, "AccessDenied")
        assert [o["Key"] for o in other_account_s3.list_objects_v2(Bucket=theirs)["Contents"]] == ["secret"]
    finally:
        other_account_s3.delete_object(Bucket=theirs, Key="secret")
        other_account_s3.delete_bucket(Bucket=theirs)
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="stolen")


# ---------------------------------------------------------------- shared bytes


@pytest.mark.parametrize("size", [INLINE_SIZE, BLOB_SIZE], ids=["inline-1KiB", "blob-20MiB"])
def test_deleting_or_overwriting_the_source_leaves_the_copy_intact(s3, bucket: str, size: int) -> None:
    data = payload(size)
    s3.put_object(Bucket=bucket, Key="src", Body=data)
    s3.copy_object(Bucket=bucket, Key="copy-a", CopySource={"Bucket": bucket, "Key": "src"})
    s3.copy_object(Bucket=bucket, Key="copy-b", CopySource={"Bucket": bucket, "Key": "src"})
    s3.put_object(Bucket=bucket, Key="src", Body=b"overwritten")
    assert read(s3, bucket, "copy-a") == data
    s3.delete_object(Bucket=bucket, Key="src")
    s3.delete_object(Bucket=bucket, Key="copy-a")
    time.sleep(0.2)  # freed blobs are deleted in the background
    assert read(s3, bucket, "copy-b") == data


def _blob_ids(folio: FolioProcess, bucket: str, key: str) -> list[str]:
    with server_db(folio) as conn:
        row = conn.execute(
            "SELECT o.segments FROM objects o JOIN buckets b ON b.id = o.bucket_id"
            " WHERE b.name = ? AND o.key = ? AND o.is_latest = 1",
            (bucket, key.encode()),
        ).fetchone()
    assert row is not None and row[0], "a blob-backed object lists its segments"
    return [segment[0] for segment in json.loads(row[0])]


def _refcounts(folio: FolioProcess, blob_ids: list[str]) -> dict[str, int]:
    with server_db(folio) as conn:
        marks = ",".join("?" * len(blob_ids))
        rows = conn.execute(f"SELECT id, refcount FROM blobs WHERE id IN ({marks})", blob_ids).fetchall()
    return dict(rows)


def test_blob_reference_counts_follow_copies_and_deletes(
    folio_aws_like: FolioProcess, s3_aws_like, unversioned_bucket: str
) -> None:
    folio, s3, bucket = folio_aws_like, s3_aws_like, unversioned_bucket
    s3.put_object(Bucket=bucket, Key="src", Body=payload(300 * 1024))
    blob_ids = _blob_ids(folio, bucket, "src")
    assert _refcounts(folio, blob_ids) == {blob_id: 1 for blob_id in blob_ids}

    s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"})
    assert _blob_ids(folio, bucket, "dst") == blob_ids
    assert _refcounts(folio, blob_ids) == {blob_id: 2 for blob_id in blob_ids}

    s3.delete_object(Bucket=bucket, Key="src")
    assert _refcounts(folio, blob_ids) == {blob_id: 1 for blob_id in blob_ids}
    s3.delete_object(Bucket=bucket, Key="dst")
    assert _refcounts(folio, blob_ids) == {}


def test_copy_onto_itself_keeps_one_reference(
    folio_aws_like: FolioProcess, s3_aws_like, unversioned_bucket: str
) -> None:
    folio, s3, bucket = folio_aws_like, s3_aws_like, unversioned_bucket
    s3.put_object(Bucket=bucket, Key="self", Body=payload(300 * 1024))
    blob_ids = _blob_ids(folio, bucket, "self")
    s3.copy_object(
        Bucket=bucket, Key="self", CopySource={"Bucket": bucket, "Key": "self"}, MetadataDirective="REPLACE"
    )
    assert _refcounts(folio, blob_ids) == {blob_id: 1 for blob_id in blob_ids}
    s3.delete_object(Bucket=bucket, Key="self")
    assert _refcounts(folio, blob_ids) == {}


# ---------------------------------------------------------------- checksums


def test_copy_keeps_the_source_checksum(s3, bucket: str) -> None:
    put = s3.put_object(Bucket=bucket, Key="src", Body=b"checksummed", ChecksumAlgorithm="SHA256")
    result = s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"})
    assert result["CopyObjectResult"]["ChecksumSHA256"] == put["ChecksumSHA256"]
    head = s3.head_object(Bucket=bucket, Key="dst", ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == put["ChecksumSHA256"]


def test_copy_with_a_new_checksum_algorithm_computes_it(s3, bucket: str) -> None:
    data = payload(200 * 1024)
    s3.put_object(Bucket=bucket, Key="src", Body=data, ChecksumAlgorithm="CRC32")
    result = s3.copy_object(
        Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"}, ChecksumAlgorithm="SHA256"
    )
    expected = base64.b64encode(hashlib.sha256(data).digest()).decode()
    assert result["CopyObjectResult"]["ChecksumSHA256"] == expected
    head = s3.head_object(Bucket=bucket, Key="dst", ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == expected
    assert "ChecksumCRC32" not in head


# ---------------------------------------------------------------- aws CLI


def test_aws_cli_cp_between_keys_copies_on_the_server(aws: AwsRunner, s3, bucket: str) -> None:
    data = payload(100 * 1024)
    s3.put_object(Bucket=bucket, Key="x", Body=data, ContentType="image/png")
    aws("s3", "cp", f"s3://{bucket}/x", f"s3://{bucket}/y")
    got = s3.get_object(Bucket=bucket, Key="y")
    assert got["Body"].read() == data
    assert got["ContentType"] == "image/png"


def test_copy_timestamp_is_the_copys_own(s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="src", Body=b"t")
    time.sleep(1.1)
    result = s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"})
    copied = result["CopyObjectResult"]["LastModified"]
    assert copied > s3.head_object(Bucket=bucket, Key="src")["LastModified"]
    assert abs(copied - datetime.now(UTC)) < timedelta(seconds=30)
    assert s3.head_object(Bucket=bucket, Key="dst")["LastModified"] == copied
