"""Object operations through boto3 with its default configuration, against the real server:
put/get/head/delete with their headers, transfers, conditional requests, ranges, checksums,
odd keys, DeleteObjects, and who may touch an object at all."""

from __future__ import annotations

import base64
import hashlib
import os
import uuid
import zlib
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from awscrt import checksums as crt_checksums
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.conftest import make_s3_client
from tests.folio_process import FolioProcess
from tests.transport import folio_over_both, payload_modes, s3_over_both  # noqa: F401 - http and https


def s3_error(exc: pytest.ExceptionInfo[ClientError]) -> tuple[int, str]:
    """(HTTP status, S3 error code) of a failed boto3 call."""
    response = exc.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]


def status_of(response: dict) -> int:
    return response["ResponseMetadata"]["HTTPStatusCode"]


def put_many(s3, bucket: str, keys: list[str], body: bytes = b"x") -> None:
    with ThreadPoolExecutor(max_workers=10) as pool:
        list(pool.map(lambda key: s3.put_object(Bucket=bucket, Key=key, Body=body), keys))


def all_keys(s3, bucket: str) -> list[str]:
    paginator = s3.get_paginator("list_objects_v2")
    return [o["Key"] for page in paginator.paginate(Bucket=bucket) for o in page.get("Contents", [])]


def head_status(s3, bucket: str, key: str) -> int:
    try:
        return status_of(s3.head_object(Bucket=bucket, Key=key))
    except ClientError as exc:
        return exc.response["ResponseMetadata"]["HTTPStatusCode"]


def local_checksum(algorithm: str, data: bytes) -> str:
    """The base64 of the big-endian digest, computed here without botocore."""
    if algorithm == "CRC32":
        raw = zlib.crc32(data).to_bytes(4, "big")
    elif algorithm == "CRC32C":
        raw = crt_checksums.crc32c(data).to_bytes(4, "big")
    elif algorithm == "CRC64NVME":
        raw = crt_checksums.crc64nvme(data).to_bytes(8, "big")
    else:
        raw = hashlib.new(algorithm.lower(), data).digest()
    return base64.b64encode(raw).decode()


# ---------------------------------------------------------------- put / get / head / delete


def test_put_get_head_delete_round_trips_body_and_headers(s3, bucket: str) -> None:
    body = os.urandom(4096)
    expires = datetime(2031, 5, 17, 8, 30, tzinfo=UTC)
    put = s3.put_object(
        Bucket=bucket,
        Key="doc.bin",
        Body=body,
        ContentType="application/x-folio-test",
        CacheControl="max-age=3600, private",
        ContentDisposition='attachment; filename="report.bin"',
        ContentEncoding="gzip",
        ContentLanguage="de-CH",
        Expires=expires,
        Metadata={"color": "blue", "multi-word": "a b  c"},
    )
    assert status_of(put) == 200
    assert put["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'

    for response in (
        s3.get_object(Bucket=bucket, Key="doc.bin"),
        s3.head_object(Bucket=bucket, Key="doc.bin"),
    ):
        assert response["ETag"] == put["ETag"]
        assert response["ContentLength"] == len(body)
        assert response["ContentType"] == "application/x-folio-test"
        assert response["CacheControl"] == "max-age=3600, private"
        assert response["ContentDisposition"] == 'attachment; filename="report.bin"'
        assert response["ContentEncoding"] == "gzip"
        assert response["ContentLanguage"] == "de-CH"
        assert response["ExpiresString"] == "Sat, 17 May 2031 08:30:00 GMT"
        assert response["Metadata"] == {"color": "blue", "multi-word": "a b  c"}
        assert isinstance(response["LastModified"], datetime)
        assert "x-amz-request-id" in response["ResponseMetadata"]["HTTPHeaders"]
    assert s3.get_object(Bucket=bucket, Key="doc.bin")["Body"].read() == body

    assert status_of(s3.delete_object(Bucket=bucket, Key="doc.bin")) == 204
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="doc.bin")
    assert s3_error(exc) == (404, "NoSuchKey")
    assert head_status(s3, bucket, "doc.bin") == 404


def test_put_without_content_type_defaults_to_binary_octet_stream(s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="plain", Body=b"hello")
    assert s3.head_object(Bucket=bucket, Key="plain")["ContentType"] == "binary/octet-stream"


def test_empty_object_round_trips(s3, bucket: str) -> None:
    put = s3.put_object(Bucket=bucket, Key="empty", Body=b"")
    assert put["ETag"] == f'"{hashlib.md5(b"").hexdigest()}"'
    got = s3.get_object(Bucket=bucket, Key="empty")
    assert got["ContentLength"] == 0
    assert got["Body"].read() == b""


def test_overwrite_replaces_body_and_metadata(s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"first", Metadata={"old": "1"}, ContentType="text/plain")
    s3.put_object(Bucket=bucket, Key="k", Body=b"second version")
    got = s3.get_object(Bucket=bucket, Key="k")
    assert got["Body"].read() == b"second version"
    assert got["Metadata"] == {}
    assert got["ContentType"] == "binary/octet-stream"


def test_get_from_missing_bucket_is_no_such_bucket(s3) -> None:
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=f"missing-{uuid.uuid4().hex}", Key="k")
    assert s3_error(exc) == (404, "NoSuchBucket")


def test_delete_of_missing_key_answers_204(s3, bucket: str) -> None:
    assert status_of(s3.delete_object(Bucket=bucket, Key="never-written")) == 204


def test_upload_file_and_download_file_of_5_mib_are_byte_identical(s3, bucket: str, tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(os.urandom(5 * 1024 * 1024))
    s3.upload_file(str(source), bucket, "big/five.bin")
    assert s3.head_object(Bucket=bucket, Key="big/five.bin")["ContentLength"] == 5 * 1024 * 1024
    target = tmp_path / "target.bin"
    s3.download_file(bucket, "big/five.bin", str(target))
    assert hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(source.read_bytes()).digest()


# ---------------------------------------------------------------- conditional PUT


def test_put_if_none_match_star_succeeds_when_absent_and_fails_412_when_present(s3, bucket: str) -> None:
    assert status_of(s3.put_object(Bucket=bucket, Key="once", Body=b"v1", IfNoneMatch="*")) == 200
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="once", Body=b"v2", IfNoneMatch="*")
    assert s3_error(exc) == (412, "PreconditionFailed")
    assert s3.get_object(Bucket=bucket, Key="once")["Body"].read() == b"v1"


def test_put_if_match_overwrites_only_with_the_current_etag(s3, bucket: str) -> None:
    etag = s3.put_object(Bucket=bucket, Key="cas", Body=b"v1")["ETag"]
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="cas", Body=b"v2", IfMatch='"' + "0" * 32 + '"')
    assert s3_error(exc) == (412, "PreconditionFailed")
    assert s3.get_object(Bucket=bucket, Key="cas")["Body"].read() == b"v1"

    assert status_of(s3.put_object(Bucket=bucket, Key="cas", Body=b"v2", IfMatch=etag)) == 200
    assert s3.get_object(Bucket=bucket, Key="cas")["Body"].read() == b"v2"
    # The ETag of v1 is stale now.
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="cas", Body=b"v3", IfMatch=etag)
    assert s3_error(exc) == (412, "PreconditionFailed")


def test_put_if_match_on_missing_key_fails_and_stores_nothing(s3, bucket: str) -> None:
    # AWS answers 404 NoSuchKey here (conditional-writes guide); 412 is what RFC 7232 says.
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="absent", Body=b"v1", IfMatch='"' + "0" * 32 + '"')
    assert s3_error(exc)[0] in (404, 412)
    assert head_status(s3, bucket, "absent") == 404


# ---------------------------------------------------------------- conditional GET


@pytest.fixture
def stored(s3, bucket: str) -> dict:
    """One object and its HEAD response."""
    s3.put_object(Bucket=bucket, Key="cond", Body=b"conditional body")
    return s3.head_object(Bucket=bucket, Key="cond")


def conditional_get_status(s3, bucket: str, **conditions) -> int:
    try:
        response = s3.get_object(Bucket=bucket, Key="cond", **conditions)
    except ClientError as exc:
        return exc.response["ResponseMetadata"]["HTTPStatusCode"]
    assert response["Body"].read() == b"conditional body"
    return status_of(response)


def test_get_if_match_and_if_none_match(s3, bucket: str, stored: dict) -> None:
    etag = stored["ETag"]
    other = '"' + "f" * 32 + '"'
    assert conditional_get_status(s3, bucket, IfMatch=etag) == 200
    assert conditional_get_status(s3, bucket, IfMatch="*") == 200
    assert conditional_get_status(s3, bucket, IfMatch=other) == 412
    assert conditional_get_status(s3, bucket, IfNoneMatch=etag) == 304
    assert conditional_get_status(s3, bucket, IfNoneMatch="*") == 304
    assert conditional_get_status(s3, bucket, IfNoneMatch=other) == 200


def test_get_if_modified_since_and_if_unmodified_since(s3, bucket: str, stored: dict) -> None:
    modified: datetime = stored["LastModified"]
    before, after = modified - timedelta(days=1), modified + timedelta(days=1)
    assert conditional_get_status(s3, bucket, IfModifiedSince=before) == 200
    assert conditional_get_status(s3, bucket, IfModifiedSince=modified) == 304
    assert conditional_get_status(s3, bucket, IfUnmodifiedSince=after) == 200
    assert conditional_get_status(s3, bucket, IfUnmodifiedSince=modified) == 200
    assert conditional_get_status(s3, bucket, IfUnmodifiedSince=before) == 412


def test_get_etag_conditions_take_precedence_over_dates_as_s3_documents(
    s3, bucket: str, stored: dict
) -> None:
    # GetObject docs: If-Match true + If-Unmodified-Since false -> 200;
    # If-None-Match false + If-Modified-Since true -> 304.
    before = stored["LastModified"] - timedelta(days=1)
    assert conditional_get_status(s3, bucket, IfMatch=stored["ETag"], IfUnmodifiedSince=before) == 200
    assert conditional_get_status(s3, bucket, IfNoneMatch=stored["ETag"], IfModifiedSince=before) == 304


def test_get_not_modified_answer_carries_the_etag(s3, bucket: str, stored: dict) -> None:
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="cond", IfNoneMatch=stored["ETag"])
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 304
    assert exc.value.response["ResponseMetadata"]["HTTPHeaders"]["etag"] == stored["ETag"]


def test_head_honours_conditions(s3, bucket: str, stored: dict) -> None:
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bucket, Key="cond", IfNoneMatch=stored["ETag"])
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 304
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bucket, Key="cond", IfMatch='"' + "0" * 32 + '"')
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    assert status_of(s3.head_object(Bucket=bucket, Key="cond", IfMatch=stored["ETag"])) == 200


# ---------------------------------------------------------------- range GET

HUNDRED = bytes(range(100))


@pytest.fixture
def hundred(s3, bucket: str) -> str:
    s3.put_object(Bucket=bucket, Key="hundred", Body=HUNDRED)
    return "hundred"


@pytest.mark.parametrize(
    ("range_header", "first", "last"),
    [
        ("bytes=0-9", 0, 9),
        ("bytes=10-", 10, 99),
        ("bytes=-5", 95, 99),
        ("bytes=95-200", 95, 99),
        ("bytes=-500", 0, 99),
        ("bytes=99-99", 99, 99),
    ],
)
def test_range_get_answers_206_with_content_range(
    s3, bucket: str, hundred: str, range_header: str, first: int, last: int
) -> None:
    response = s3.get_object(Bucket=bucket, Key=hundred, Range=range_header)
    assert status_of(response) == 206
    assert response["ContentRange"] == f"bytes {first}-{last}/100"
    assert response["ContentLength"] == last - first + 1
    assert response["Body"].read() == HUNDRED[first : last + 1]


@pytest.mark.parametrize("range_header", ["bytes=100-", "bytes=100-200", "bytes=500-600"])
def test_range_beyond_the_end_is_invalid_range_416(s3, bucket: str, hundred: str, range_header: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key=hundred, Range=range_header)
    assert s3_error(exc) == (416, "InvalidRange")


def test_unparseable_range_is_ignored_and_the_whole_object_returned(s3, bucket: str, hundred: str) -> None:
    response = s3.get_object(Bucket=bucket, Key=hundred, Range="bytes=abc")
    assert status_of(response) == 200
    assert response["Body"].read() == HUNDRED


def test_full_get_advertises_byte_ranges(s3, bucket: str, hundred: str) -> None:
    assert s3.get_object(Bucket=bucket, Key=hundred)["AcceptRanges"] == "bytes"


# ---------------------------------------------------------------- response-* overrides


def test_response_overrides_replace_the_stored_headers(s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="data.csv", Body=b"a,b\n", ContentType="application/octet-stream")
    response = s3.get_object(
        Bucket=bucket,
        Key="data.csv",
        ResponseContentType="text/csv; charset=utf-8",
        ResponseContentDisposition='attachment; filename="data.csv"',
        ResponseCacheControl="no-store",
        ResponseContentLanguage="fr",
        ResponseContentEncoding="identity",
        ResponseExpires=datetime(2030, 1, 1, tzinfo=UTC),
    )
    assert response["ContentType"] == "text/csv; charset=utf-8"
    assert response["ContentDisposition"] == 'attachment; filename="data.csv"'
    assert response["CacheControl"] == "no-store"
    assert response["ContentLanguage"] == "fr"
    assert response["ContentEncoding"] == "identity"
    assert response["ExpiresString"] == "Tue, 01 Jan 2030 00:00:00 GMT"
    assert response["Body"].read() == b"a,b\n"
    # Overrides change one response only.
    assert s3.head_object(Bucket=bucket, Key="data.csv")["ContentType"] == "application/octet-stream"


# ---------------------------------------------------------------- checksums

ALGORITHMS = ["CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_checksum_round_trip_with_checksum_mode_enabled(s3, bucket: str, algorithm: str) -> None:
    body = os.urandom(100_000)
    expected = local_checksum(algorithm, body)
    put = s3.put_object(Bucket=bucket, Key=f"sum-{algorithm}", Body=body, ChecksumAlgorithm=algorithm)
    assert put[f"Checksum{algorithm}"] == expected

    got = s3.get_object(Bucket=bucket, Key=f"sum-{algorithm}", ChecksumMode="ENABLED")
    assert got[f"Checksum{algorithm}"] == expected
    assert got["Body"].read() == body
    head = s3.head_object(Bucket=bucket, Key=f"sum-{algorithm}", ChecksumMode="ENABLED")
    assert head[f"Checksum{algorithm}"] == expected


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_checksum_given_by_value_is_accepted_and_returned(s3, bucket: str, algorithm: str) -> None:
    body = b"value given by the caller"
    expected = local_checksum(algorithm, body)
    s3.put_object(Bucket=bucket, Key="given", Body=body, **{f"Checksum{algorithm}": expected})
    head = s3.head_object(Bucket=bucket, Key="given", ChecksumMode="ENABLED")
    assert head[f"Checksum{algorithm}"] == expected


def test_default_client_checksum_is_stored_without_asking(s3, bucket: str) -> None:
    # Newest boto3 sends a CRC32 on every PutObject unless told otherwise.
    body = b"default checksum"
    s3.put_object(Bucket=bucket, Key="default", Body=body)
    head = s3.head_object(Bucket=bucket, Key="default", ChecksumMode="ENABLED")
    assert head["ChecksumCRC32"] == local_checksum("CRC32", body)


def test_bodies_go_in_the_payload_mode_of_the_transport_and_their_checksums_are_kept(
    s3, folio: FolioProcess, bucket: str, tmp_path: Path
) -> None:
    # What makes this module's [https] run more than the [http] one: over HTTPS the
    # default client sends every body aws-chunked, unsigned, with its CRC32 in a trailer
    # (STREAMING-UNSIGNED-PAYLOAD-TRAILER); over HTTP it signs the body's SHA-256.
    sent = payload_modes(s3)
    first = len(sent)
    small = os.urandom(300_000)
    s3.put_object(Bucket=bucket, Key="single", Body=small)
    large = tmp_path / "large.bin"
    large.write_bytes(os.urandom(12 * 1024 * 1024))
    s3.upload_file(str(large), bucket, "multipart")  # two parts (boto3 splits at 8 MiB)

    puts = [mode for method, mode in sent[first:] if method == "PUT"]
    assert len(puts) == 3, sent[first:]
    if folio.tls:
        assert set(puts) == {"STREAMING-UNSIGNED-PAYLOAD-TRAILER"}
    else:
        assert all(len(mode) == 64 and set(mode) <= set("0123456789abcdef") for mode in puts), puts

    single = s3.get_object(Bucket=bucket, Key="single", ChecksumMode="ENABLED")
    assert single["ChecksumCRC32"] == local_checksum("CRC32", small)
    assert single["Body"].read() == small
    back = tmp_path / "back.bin"
    s3.download_file(bucket, "multipart", str(back))
    assert back.read_bytes() == large.read_bytes()
    parts = s3.get_object_attributes(Bucket=bucket, Key="multipart", ObjectAttributes=["ObjectParts"])
    assert parts["ObjectParts"]["TotalPartsCount"] == 2


def test_wrong_crc32_is_bad_digest_and_stores_nothing(s3, bucket: str) -> None:
    body = b"the body the checksum does not describe"
    wrong = local_checksum("CRC32", b"something else")
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="bad-sum", Body=body, ChecksumCRC32=wrong)
    assert s3_error(exc) == (400, "BadDigest")
    assert head_status(s3, bucket, "bad-sum") == 404
    assert all_keys(s3, bucket) == []


def test_wrong_crc32_on_overwrite_keeps_the_previous_version(s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="keep", Body=b"original", ContentType="text/plain")
    with pytest.raises(ClientError) as exc:
        s3.put_object(
            Bucket=bucket, Key="keep", Body=b"replacement", ChecksumCRC32=local_checksum("CRC32", b"nope")
        )
    assert s3_error(exc) == (400, "BadDigest")
    got = s3.get_object(Bucket=bucket, Key="keep")
    assert got["Body"].read() == b"original"
    assert got["ContentType"] == "text/plain"


def test_wrong_content_md5_is_bad_digest_and_stores_nothing(s3, bucket: str) -> None:
    wrong = base64.b64encode(hashlib.md5(b"other bytes").digest()).decode()
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="bad-md5", Body=b"payload", ContentMD5=wrong)
    assert s3_error(exc) == (400, "BadDigest")
    assert head_status(s3, bucket, "bad-md5") == 404


def test_malformed_content_md5_is_invalid_digest(s3, bucket: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="bad-md5", Body=b"payload", ContentMD5="not-an-md5")
    assert s3_error(exc) == (400, "InvalidDigest")
    assert head_status(s3, bucket, "bad-md5") == 404


def test_right_content_md5_is_accepted(s3, bucket: str) -> None:
    body = b"payload"
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    put = s3.put_object(Bucket=bucket, Key="md5", Body=body, ContentMD5=md5)
    assert put["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'


# ---------------------------------------------------------------- keys

ODD_KEYS = [
    "with space.txt",
    "  two  spaces  ",
    "ünï/cødé ☃.txt",
    "emoji/😀.png",
    "a+b=c",
    "100%",
    "%2F",
    "%",
    "../x",
    "./y",
    "/leading",
    "a//b",
    "trailing/",
    "q?x=1&y=2#frag",
    "tab\there",
    "xml<&>'\"",
    "~tilde!$'()*,;:@",
    "k" * 1024,
    "é" * 512,
]


@pytest.mark.parametrize("key", ODD_KEYS, ids=lambda k: repr(k)[:40])
def test_odd_key_round_trips_exactly(s3, bucket: str, key: str) -> None:
    body = key.encode("utf-8")
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body
    assert s3.head_object(Bucket=bucket, Key=key)["ContentLength"] == len(body)
    assert all_keys(s3, bucket) == [key]
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=key)
    assert [o["Key"] for o in listed["Contents"]] == [key]
    assert status_of(s3.delete_object(Bucket=bucket, Key=key)) == 204
    assert all_keys(s3, bucket) == []


@pytest.mark.parametrize(
    "key", ["k" * 1025, "é" * 512 + "k", "☃" * 342], ids=["ascii", "two-byte", "three-byte"]
)
def test_key_over_1024_utf8_bytes_is_key_too_long(s3, bucket: str, key: str) -> None:
    assert len(key.encode("utf-8")) > 1024
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    assert s3_error(exc) == (400, "KeyTooLongError")
    assert all_keys(s3, bucket) == []


def test_keys_differing_only_in_case_or_normalisation_are_distinct(s3, bucket: str) -> None:
    composed, decomposed = "caf\u00e9", "cafe\u0301"
    for key in ("Key", "key", composed, decomposed):
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    assert sorted(all_keys(s3, bucket)) == sorted(["Key", "key", composed, decomposed])
    assert s3.get_object(Bucket=bucket, Key=decomposed)["Body"].read() == decomposed.encode()


# ---------------------------------------------------------------- DeleteObjects


def test_delete_objects_of_1000_keys_reports_each_deleted(s3, bucket: str) -> None:
    keys = [f"batch/{i:04d}" for i in range(1000)]
    put_many(s3, bucket, keys)
    response = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys]})
    assert sorted(d["Key"] for d in response["Deleted"]) == keys
    assert response.get("Errors", []) == []
    assert all_keys(s3, bucket) == []


def test_delete_objects_quiet_reports_nothing_and_deletes_all(s3, bucket: str) -> None:
    # 1000 keys in one request, 200 of them present: quiet mode reports neither.
    keys = [f"quiet/{i:04d}" for i in range(1000)]
    put_many(s3, bucket, keys[::5])
    response = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True})
    assert response.get("Deleted", []) == []
    assert response.get("Errors", []) == []
    assert all_keys(s3, bucket) == []


def test_delete_objects_reports_missing_keys_as_deleted_and_keeps_the_rest(s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="present", Body=b"x")
    s3.put_object(Bucket=bucket, Key="kept", Body=b"x")
    response = s3.delete_objects(
        Bucket=bucket, Delete={"Objects": [{"Key": "present"}, {"Key": "never-there"}]}
    )
    assert sorted(d["Key"] for d in response["Deleted"]) == ["never-there", "present"]
    assert all_keys(s3, bucket) == ["kept"]


def test_delete_objects_handles_odd_keys(s3, bucket: str) -> None:
    keys = ["xml<&>'\"", "ünï/cødé ☃.txt", " lead space", "a+b", "%2F", "tab\there"]
    put_many(s3, bucket, keys)
    response = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys]})
    assert sorted(d["Key"] for d in response["Deleted"]) == sorted(keys)
    assert all_keys(s3, bucket) == []


def test_delete_objects_over_1000_keys_is_malformed_xml_and_deletes_nothing(s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="survivor", Body=b"x")
    objects = [{"Key": "survivor"}] + [{"Key": f"k{i}"} for i in range(1000)]
    with pytest.raises(ClientError) as exc:
        s3.delete_objects(Bucket=bucket, Delete={"Objects": objects})
    assert s3_error(exc) == (400, "MalformedXML")
    assert all_keys(s3, bucket) == ["survivor"]


def test_put_rejected_before_its_body_is_read_leaves_the_connection_usable(
    folio: FolioProcess, other_account: dict, bucket: str
) -> None:
    # boto3 sends PutObject with "Expect: 100-continue" and, on an early error, never
    # sends the body: the server must not read the next request as that body.
    s3 = make_s3_client(folio, config=Config(max_pool_connections=1))
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="k" * 1025, Body=b"body never sent")
    assert s3_error(exc) == (400, "KeyTooLongError")
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0

    other = make_s3_client(
        folio, other_account["accessKey"], other_account["secretKey"], config=Config(max_pool_connections=1)
    )
    with pytest.raises(ClientError) as exc:
        other.put_object(Bucket=bucket, Key="intruder", Body=b"body never sent")
    assert s3_error(exc) == (403, "AccessDenied")
    with pytest.raises(ClientError) as exc:
        other.get_object(Bucket=bucket, Key="intruder")
    assert s3_error(exc) == (403, "AccessDenied")


# ---------------------------------------------------------------- authentication


def test_wrong_secret_is_signature_does_not_match(folio: FolioProcess, bucket: str) -> None:
    client = make_s3_client(folio, folio.access_key, folio.secret_key + "x")
    with pytest.raises(ClientError) as exc:
        client.list_buckets()
    assert s3_error(exc) == (403, "SignatureDoesNotMatch")
    with pytest.raises(ClientError) as exc:
        client.put_object(Bucket=bucket, Key="forged", Body=b"x")
    assert s3_error(exc) == (403, "SignatureDoesNotMatch")
    assert head_status(make_s3_client(folio), bucket, "forged") == 404


def test_unknown_access_key_is_invalid_access_key_id(folio: FolioProcess, bucket: str) -> None:
    client = make_s3_client(folio, "AKIAFOLIONOSUCHKEY00", "any-secret-at-all-0000000000000000000000")
    with pytest.raises(ClientError) as exc:
        client.list_buckets()
    assert s3_error(exc) == (403, "InvalidAccessKeyId")
    with pytest.raises(ClientError) as exc:
        client.get_object(Bucket=bucket, Key="k")
    assert s3_error(exc) == (403, "InvalidAccessKeyId")


# ---------------------------------------------------------------- a second account


@pytest.fixture(scope="module")
def other_account(folio: FolioProcess) -> dict:
    return folio.create_account(f"other-{uuid.uuid4().hex[:8]}@example.com")


@pytest.fixture(scope="module")
def other_s3(folio: FolioProcess, other_account: dict):
    return make_s3_client(folio, other_account["accessKey"], other_account["secretKey"])


@pytest.fixture
def owned_object(s3, bucket: str) -> str:
    s3.put_object(Bucket=bucket, Key="private.txt", Body=b"mine")
    return "private.txt"


def test_second_account_cannot_list_or_read_first_accounts_bucket(
    other_s3, bucket: str, owned_object: str
) -> None:
    for call in (
        lambda: other_s3.list_objects_v2(Bucket=bucket),
        lambda: other_s3.list_objects(Bucket=bucket),
        lambda: other_s3.get_object(Bucket=bucket, Key=owned_object),
        lambda: other_s3.get_bucket_location(Bucket=bucket),
    ):
        with pytest.raises(ClientError) as exc:
            call()
        assert s3_error(exc) == (403, "AccessDenied")
    for call in (
        lambda: other_s3.head_object(Bucket=bucket, Key=owned_object),
        lambda: other_s3.head_bucket(Bucket=bucket),
    ):
        with pytest.raises(ClientError) as exc:
            call()
        assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_second_account_cannot_write_or_delete_in_first_accounts_bucket(
    s3, other_s3, bucket: str, owned_object: str
) -> None:
    with pytest.raises(ClientError) as exc:
        other_s3.put_object(Bucket=bucket, Key="intruder.txt", Body=b"x")
    assert s3_error(exc) == (403, "AccessDenied")
    with pytest.raises(ClientError) as exc:
        other_s3.put_object(Bucket=bucket, Key=owned_object, Body=b"overwritten")
    assert s3_error(exc) == (403, "AccessDenied")
    with pytest.raises(ClientError) as exc:
        other_s3.delete_object(Bucket=bucket, Key=owned_object)
    assert s3_error(exc) == (403, "AccessDenied")
    with pytest.raises(ClientError) as exc:
        other_s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": owned_object}]})
    assert s3_error(exc) == (403, "AccessDenied")
    with pytest.raises(ClientError) as exc:
        other_s3.delete_bucket(Bucket=bucket)
    assert s3_error(exc) == (403, "AccessDenied")

    assert all_keys(s3, bucket) == [owned_object]
    assert s3.get_object(Bucket=bucket, Key=owned_object)["Body"].read() == b"mine"


def test_second_account_does_not_see_first_accounts_bucket_but_uses_its_own(
    s3, other_s3, bucket: str
) -> None:
    assert bucket not in [b["Name"] for b in other_s3.list_buckets()["Buckets"]]
    own = f"other-{uuid.uuid4().hex[:16]}"
    other_s3.create_bucket(Bucket=own)
    try:
        other_s3.put_object(Bucket=own, Key="theirs", Body=b"theirs")
        assert other_s3.get_object(Bucket=own, Key="theirs")["Body"].read() == b"theirs"
        assert own in [b["Name"] for b in other_s3.list_buckets()["Buckets"]]
        assert own not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
        with pytest.raises(ClientError) as exc:
            s3.get_object(Bucket=own, Key="theirs")
        assert s3_error(exc) == (403, "AccessDenied")
    finally:
        other_s3.delete_object(Bucket=own, Key="theirs")
        other_s3.delete_bucket(Bucket=own)
