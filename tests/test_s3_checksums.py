"""Flexible checksums as AWS S3 answers them: a checksum that does not match the bytes
is BadDigest whatever its algorithm and however it is sent (header or aws-chunked
trailer, PutObject or UploadPart); FULL_OBJECT multipart checksums are the CRC of the
whole object and a Complete that claims one is verified (BadDigest completes nothing);
COMPOSITE checksums are the hash of the part digests with "-N"; GetObjectAttributes
answers ETag, Checksum, ObjectParts, StorageClass and ObjectSize (shape compared with
moto where moto implements it)."""

from __future__ import annotations

import base64
import os
import uuid

import boto3
import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tests.folio_process import FolioProcess
from tests.test_malformed_input import Reply, assert_s3_error, signed
from tests.test_s3_objects import local_checksum, s3_error

ALL_ALGORITHMS = ("CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256")
CRC_ALGORITHMS = ("CRC32", "CRC32C", "CRC64NVME")
MIB = 1024 * 1024


def _wrong(algorithm: str, data: bytes) -> str:
    """A well-formed checksum of the right length that is not the one of `data`."""
    return local_checksum(algorithm, data + b"x")


def _upload_parts(
    s3, bucket: str, key: str, upload_id: str, algorithm: str, parts: list[bytes]
) -> list[dict]:
    done = []
    for number, part in enumerate(parts, start=1):
        reply = s3.upload_part(
            Bucket=bucket,
            Key=key,
            UploadId=upload_id,
            PartNumber=number,
            Body=part,
            ChecksumAlgorithm=algorithm,
        )
        assert reply[f"Checksum{algorithm}"] == local_checksum(algorithm, part)
        done.append(
            {
                "PartNumber": number,
                "ETag": reply["ETag"],
                f"Checksum{algorithm}": reply[f"Checksum{algorithm}"],
            }
        )
    return done


def _two_parts() -> list[bytes]:
    return [os.urandom(5 * MIB), os.urandom(123_457)]


# ---------------------------------------------------------------- FULL_OBJECT


@pytest.mark.parametrize("algorithm", CRC_ALGORITHMS)
def test_full_object_checksum_sent_on_complete_is_accepted_and_is_the_crc_of_the_whole_object(
    s3, bucket: str, algorithm: str
) -> None:
    key = f"full-{algorithm}"
    created = s3.create_multipart_upload(
        Bucket=bucket, Key=key, ChecksumAlgorithm=algorithm, ChecksumType="FULL_OBJECT"
    )
    assert created["ChecksumType"] == "FULL_OBJECT"
    parts = _two_parts()
    done = _upload_parts(s3, bucket, key, created["UploadId"], algorithm, parts)
    whole = local_checksum(algorithm, b"".join(parts))
    completed = s3.complete_multipart_upload(
        Bucket=bucket,
        Key=key,
        UploadId=created["UploadId"],
        MultipartUpload={"Parts": done},
        ChecksumType="FULL_OBJECT",
        **{f"Checksum{algorithm}": whole},
    )
    assert completed[f"Checksum{algorithm}"] == whole
    assert completed["ChecksumType"] == "FULL_OBJECT"
    head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert head[f"Checksum{algorithm}"] == whole
    assert head["ChecksumType"] == "FULL_OBJECT"
    got = s3.get_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert got[f"Checksum{algorithm}"] == whole
    assert got["ChecksumType"] == "FULL_OBJECT"
    assert got["Body"].read() == b"".join(parts)


@pytest.mark.parametrize("algorithm", CRC_ALGORITHMS)
def test_wrong_full_object_checksum_on_complete_is_bad_digest_and_completes_nothing(
    s3, bucket: str, algorithm: str
) -> None:
    key = f"wrong-{algorithm}"
    upload_id = s3.create_multipart_upload(
        Bucket=bucket, Key=key, ChecksumAlgorithm=algorithm, ChecksumType="FULL_OBJECT"
    )["UploadId"]
    parts = _two_parts()
    done = _upload_parts(s3, bucket, key, upload_id, algorithm, parts)
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(
            Bucket=bucket,
            Key=key,
            UploadId=upload_id,
            MultipartUpload={"Parts": done},
            **{f"Checksum{algorithm}": _wrong(algorithm, b"".join(parts))},
        )
    assert s3_error(exc) == (400, "BadDigest")
    with pytest.raises(ClientError) as missing:
        s3.head_object(Bucket=bucket, Key=key)
    assert missing.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    # The upload is untouched: its parts are listed and a right Complete still works.
    listed = s3.list_parts(Bucket=bucket, Key=key, UploadId=upload_id)
    assert [p["PartNumber"] for p in listed["Parts"]] == [1, 2]
    whole = local_checksum(algorithm, b"".join(parts))
    completed = s3.complete_multipart_upload(
        Bucket=bucket,
        Key=key,
        UploadId=upload_id,
        MultipartUpload={"Parts": done},
        **{f"Checksum{algorithm}": whole},
    )
    assert completed[f"Checksum{algorithm}"] == whole


def test_complete_naming_another_checksum_type_than_the_upload_is_invalid_request(s3, bucket: str) -> None:
    upload_id = s3.create_multipart_upload(
        Bucket=bucket, Key="k", ChecksumAlgorithm="CRC32", ChecksumType="FULL_OBJECT"
    )["UploadId"]
    done = _upload_parts(s3, bucket, "k", upload_id, "CRC32", [b"only part"])
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(
            Bucket=bucket,
            Key="k",
            UploadId=upload_id,
            MultipartUpload={"Parts": done},
            ChecksumType="COMPOSITE",
        )
    assert s3_error(exc) == (400, "InvalidRequest")
    s3.list_parts(Bucket=bucket, Key="k", UploadId=upload_id)  # still there


def test_complete_with_an_object_size_that_is_not_the_sum_of_the_parts_is_invalid_request(
    s3, bucket: str
) -> None:
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="sized", ChecksumAlgorithm="CRC32")["UploadId"]
    parts = _two_parts()
    done = _upload_parts(s3, bucket, "sized", upload_id, "CRC32", parts)
    size = sum(map(len, parts))
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(
            Bucket=bucket,
            Key="sized",
            UploadId=upload_id,
            MultipartUpload={"Parts": done},
            MpuObjectSize=size + 1,
        )
    assert s3_error(exc) == (400, "InvalidRequest")
    s3.complete_multipart_upload(
        Bucket=bucket, Key="sized", UploadId=upload_id, MultipartUpload={"Parts": done}, MpuObjectSize=size
    )
    assert s3.head_object(Bucket=bucket, Key="sized")["ContentLength"] == size


# ---------------------------------------------------------------- COMPOSITE


def _composite(algorithm: str, parts: list[bytes]) -> str:
    digests = b"".join(base64.b64decode(local_checksum(algorithm, part)) for part in parts)
    return f"{local_checksum(algorithm, digests)}-{len(parts)}"


@pytest.mark.parametrize("algorithm", ("CRC32", "CRC32C", "SHA1", "SHA256"))
def test_composite_checksum_is_the_hash_of_the_part_digests_with_the_part_count(
    s3, bucket: str, algorithm: str
) -> None:
    key = f"composite-{algorithm}"
    created = s3.create_multipart_upload(Bucket=bucket, Key=key, ChecksumAlgorithm=algorithm)
    assert created["ChecksumType"] == "COMPOSITE"
    parts = _two_parts()
    done = _upload_parts(s3, bucket, key, created["UploadId"], algorithm, parts)
    expected = _composite(algorithm, parts)
    completed = s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=created["UploadId"], MultipartUpload={"Parts": done}
    )
    assert completed[f"Checksum{algorithm}"] == expected
    assert completed["ChecksumType"] == "COMPOSITE"
    head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert (head[f"Checksum{algorithm}"], head["ChecksumType"]) == (expected, "COMPOSITE")


def test_composite_checksum_claimed_on_complete_is_verified(s3, folio: FolioProcess, bucket: str) -> None:
    parts = [os.urandom(5 * MIB), b"tail"]
    for claimed, status in ((lambda good: good, 200), (lambda good: _wrong("SHA256", b"?") + "-2", 400)):
        key = f"claimed-{status}"
        upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key, ChecksumAlgorithm="SHA256")["UploadId"]
        done = _upload_parts(s3, bucket, key, upload_id, "SHA256", parts)
        body = "<CompleteMultipartUpload>" + "".join(
            f"<Part><PartNumber>{p['PartNumber']}</PartNumber><ETag>{p['ETag']}</ETag>"
            f"<ChecksumSHA256>{p['ChecksumSHA256']}</ChecksumSHA256></Part>"
            for p in done
        )
        body += "</CompleteMultipartUpload>"
        reply = signed(
            folio,
            "POST",
            f"/{bucket}/{key}",
            query=f"uploadId={upload_id}",
            body=body.encode(),
            headers={"x-amz-checksum-sha256": claimed(_composite("SHA256", parts))},
        )
        if status == 200:
            assert reply.status == 200, reply.body
            assert s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")["ChecksumSHA256"] == (
                _composite("SHA256", parts)
            )
        else:
            assert_s3_error(reply, 400, "BadDigest")
            s3.list_parts(Bucket=bucket, Key=key, UploadId=upload_id)


# ---------------------------------------------------------------- BadDigest everywhere


@pytest.mark.parametrize("algorithm", ALL_ALGORITHMS)
def test_put_object_with_a_checksum_that_does_not_match_is_bad_digest_and_stores_nothing(
    s3, folio: FolioProcess, bucket: str, algorithm: str
) -> None:
    data = b"the bytes that were sent"
    reply = signed(
        folio,
        "PUT",
        f"/{bucket}/bad-{algorithm}",
        body=data,
        headers={f"x-amz-checksum-{algorithm.lower()}": _wrong(algorithm, data)},
    )
    assert_s3_error(reply, 400, "BadDigest")
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key=f"bad-{algorithm}")
    good = s3.put_object(
        Bucket=bucket,
        Key=f"good-{algorithm}",
        Body=data,
        **{f"Checksum{algorithm}": local_checksum(algorithm, data)},
    )
    assert good[f"Checksum{algorithm}"] == local_checksum(algorithm, data)


def test_put_object_whose_checksum_header_is_not_the_sdk_algorithm_is_bad_digest(
    s3, folio: FolioProcess, bucket: str
) -> None:
    # The API reference (PutObject, ChecksumAlgorithm) answers this conflict with BadDigest.
    data = b"two algorithms"
    reply = signed(
        folio,
        "PUT",
        f"/{bucket}/conflict",
        body=data,
        headers={
            "x-amz-checksum-crc32": local_checksum("CRC32", data),
            "x-amz-sdk-checksum-algorithm": "SHA256",
        },
    )
    assert_s3_error(reply, 400, "BadDigest")
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="conflict")


@pytest.mark.parametrize("algorithm", ALL_ALGORITHMS)
def test_upload_part_with_a_checksum_that_does_not_match_is_bad_digest(
    s3, bucket: str, algorithm: str
) -> None:
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="p", ChecksumAlgorithm=algorithm)["UploadId"]
    data = os.urandom(1000)
    with pytest.raises(ClientError) as exc:
        s3.upload_part(
            Bucket=bucket,
            Key="p",
            UploadId=upload_id,
            PartNumber=1,
            Body=data,
            **{f"Checksum{algorithm}": _wrong(algorithm, data)},
        )
    assert s3_error(exc) == (400, "BadDigest")
    assert "Parts" not in s3.list_parts(Bucket=bucket, Key="p", UploadId=upload_id)


def _chunked_put_with_trailer(
    folio: FolioProcess, path: str, data: bytes, algorithm: str, value: str
) -> Reply:
    """An aws-chunked unsigned-payload PUT whose checksum comes in the trailer."""
    trailer = f"x-amz-checksum-{algorithm.lower()}"
    body = f"{len(data):x}\r\n".encode() + data + b"\r\n0\r\n" + f"{trailer}:{value}\r\n\r\n".encode()
    url = f"{folio.s3_url}{path}"
    request = AWSRequest(
        method="PUT",
        url=url,
        headers={
            "Content-Encoding": "aws-chunked",
            "X-Amz-Content-SHA256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
            "X-Amz-Decoded-Content-Length": str(len(data)),
            "X-Amz-Trailer": trailer,
        },
    )
    SigV4Auth(Credentials(folio.access_key, folio.secret_key), "s3", "us-east-1").add_auth(request)
    with httpx.Client(timeout=30) as client:
        return Reply.of(client.put(url, content=body, headers=dict(request.headers.items())))


@pytest.mark.parametrize("algorithm", ALL_ALGORITHMS)
def test_aws_chunked_trailer_checksum_that_does_not_match_is_bad_digest(
    s3, folio: FolioProcess, bucket: str, algorithm: str
) -> None:
    data = os.urandom(3000)
    reply = _chunked_put_with_trailer(folio, f"/{bucket}/t", data, algorithm, _wrong(algorithm, data))
    assert_s3_error(reply, 400, "BadDigest")
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="t")
    reply = _chunked_put_with_trailer(folio, f"/{bucket}/t", data, algorithm, local_checksum(algorithm, data))
    assert reply.status == 200, reply.body
    assert s3.get_object(Bucket=bucket, Key="t")["Body"].read() == data


@pytest.mark.parametrize("algorithm", ("CRC32", "SHA256"))
def test_upload_part_whose_trailer_checksum_does_not_match_is_bad_digest(
    s3, folio: FolioProcess, bucket: str, algorithm: str
) -> None:
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="tp", ChecksumAlgorithm=algorithm)["UploadId"]
    data = os.urandom(2000)
    path = f"/{bucket}/tp?partNumber=1&uploadId={upload_id}"
    reply = _chunked_put_with_trailer(folio, path, data, algorithm, _wrong(algorithm, data))
    assert_s3_error(reply, 400, "BadDigest")
    assert "Parts" not in s3.list_parts(Bucket=bucket, Key="tp", UploadId=upload_id)
    reply = _chunked_put_with_trailer(folio, path, data, algorithm, local_checksum(algorithm, data))
    assert reply.status == 200, reply.body
    assert reply.headers[f"x-amz-checksum-{algorithm.lower()}"] == local_checksum(algorithm, data)


# ---------------------------------------------------------------- GetObjectAttributes


@pytest.fixture(scope="module")
def moto_s3(moto_url: str):
    return boto3.client(
        "s3", endpoint_url=moto_url, region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b"
    )


ATTRIBUTES = ["ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize"]


def _shape(reply: dict) -> dict:
    return {k: v for k, v in reply.items() if k not in ("ResponseMetadata", "LastModified", "VersionId")}


def test_get_object_attributes_of_a_single_put_object_answers_as_moto(s3, moto_s3, bucket: str) -> None:
    moto_bucket = f"attrs-{uuid.uuid4().hex[:12]}"
    moto_s3.create_bucket(Bucket=moto_bucket)
    data = b"attributes, please"
    answers = []
    for client, name in ((s3, bucket), (moto_s3, moto_bucket)):
        client.put_object(Bucket=name, Key="a", Body=data, ChecksumAlgorithm="SHA256")
        answers.append(client.get_object_attributes(Bucket=name, Key="a", ObjectAttributes=ATTRIBUTES))
    ours, theirs = answers
    # moto leaves ChecksumType out; the API reference's Checksum type has it (AWS wins).
    without_type = {**_shape(ours), "Checksum": {"ChecksumSHA256": ours["Checksum"]["ChecksumSHA256"]}}
    assert without_type == _shape(theirs)
    assert _shape(ours) == {
        "ETag": ours["ETag"],
        "Checksum": {"ChecksumSHA256": local_checksum("SHA256", data), "ChecksumType": "FULL_OBJECT"},
        "StorageClass": "STANDARD",
        "ObjectSize": len(data),
    }
    assert "LastModified" in ours and "VersionId" in ours  # our buckets keep versions by default


def test_get_object_attributes_of_a_multipart_object_lists_its_parts_and_pages_them(s3, bucket: str) -> None:
    upload_id = s3.create_multipart_upload(
        Bucket=bucket, Key="mp", ChecksumAlgorithm="CRC32C", ChecksumType="FULL_OBJECT"
    )["UploadId"]
    parts = [os.urandom(5 * MIB), os.urandom(5 * MIB), b"end"]
    done = _upload_parts(s3, bucket, "mp", upload_id, "CRC32C", parts)
    completed = s3.complete_multipart_upload(
        Bucket=bucket, Key="mp", UploadId=upload_id, MultipartUpload={"Parts": done}
    )
    reply = s3.get_object_attributes(Bucket=bucket, Key="mp", ObjectAttributes=ATTRIBUTES)
    assert reply["ETag"] == completed["ETag"].strip('"')
    assert reply["ETag"].endswith("-3")
    assert reply["ObjectSize"] == sum(map(len, parts))
    assert reply["Checksum"] == {
        "ChecksumCRC32C": local_checksum("CRC32C", b"".join(parts)),
        "ChecksumType": "FULL_OBJECT",
    }
    object_parts = reply["ObjectParts"]
    assert object_parts["TotalPartsCount"] == 3
    assert object_parts["IsTruncated"] is False
    assert [(p["PartNumber"], p["Size"], p["ChecksumCRC32C"]) for p in object_parts["Parts"]] == [
        (n, len(part), local_checksum("CRC32C", part)) for n, part in enumerate(parts, start=1)
    ]
    page = s3.get_object_attributes(
        Bucket=bucket, Key="mp", ObjectAttributes=["ObjectParts"], MaxParts=1, PartNumberMarker=1
    )["ObjectParts"]
    assert page["IsTruncated"] is True
    assert page["NextPartNumberMarker"] == 2
    assert [p["PartNumber"] for p in page["Parts"]] == [2]
    assert page["TotalPartsCount"] == 3


def test_get_object_attributes_asks_only_what_it_names_and_of_a_version(s3, bucket: str) -> None:
    first = s3.put_object(Bucket=bucket, Key="v", Body=b"one")
    s3.put_object(Bucket=bucket, Key="v", Body=b"three")
    reply = s3.get_object_attributes(
        Bucket=bucket, Key="v", VersionId=first["VersionId"], ObjectAttributes=["ObjectSize"]
    )
    assert reply["ObjectSize"] == 3
    assert reply["VersionId"] == first["VersionId"]
    assert "ETag" not in reply and "StorageClass" not in reply


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"x-amz-object-attributes": "ETag,Colour"},
        {"x-amz-object-attributes": "ETag", "x-amz-max-parts": "1x"},
        {"x-amz-object-attributes": "ObjectParts", "x-amz-part-number-marker": "-1"},
    ],
)
def test_get_object_attributes_with_bad_arguments_is_invalid_argument(
    s3, folio: FolioProcess, bucket: str, headers: dict[str, str]
) -> None:
    s3.put_object(Bucket=bucket, Key="x", Body=b"x")
    reply = signed(folio, "GET", f"/{bucket}/x", query="attributes", headers=headers)
    assert_s3_error(reply, 400, "InvalidArgument")


def test_get_object_attributes_of_a_missing_key_is_no_such_key(folio: FolioProcess, bucket: str) -> None:
    reply = signed(
        folio, "GET", f"/{bucket}/missing", query="attributes", headers={"x-amz-object-attributes": "ETag"}
    )
    assert_s3_error(reply, 404, "NoSuchKey")
