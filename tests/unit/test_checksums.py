"""Flexible checksums against botocore's own implementations, and the request rules."""

from __future__ import annotations

import base64
import hashlib
import os

import pytest
from botocore.httpchecksum import (
    Crc32Checksum,
    CrtCrc32cChecksum,
    CrtCrc64NvmeChecksum,
    Sha1Checksum,
    Sha256Checksum,
)

from s3proxy.api.errors import S3Error
from s3proxy.auth.checksums import (
    ALGORITHMS,
    Checksummer,
    ChecksumRequest,
    compute,
    expected_with_trailers,
    parse_checksum_request,
    parse_content_md5,
    verify,
)

BOTOCORE = {
    "CRC32": Crc32Checksum,
    "CRC32C": CrtCrc32cChecksum,
    "CRC64NVME": CrtCrc64NvmeChecksum,
    "SHA1": Sha1Checksum,
    "SHA256": Sha256Checksum,
}
SAMPLES = [b"", b"a", b"The quick brown fox jumps over the lazy dog", os.urandom(3 * 1024 * 1024 + 7)]


def botocore_digest(algorithm: str, data: bytes) -> str:
    checksum = BOTOCORE[algorithm]()
    checksum.update(data)
    return checksum.b64digest()


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("data", SAMPLES, ids=["empty", "one", "fox", "3MiB"])
def test_compute_matches_botocore(algorithm: str, data: bytes) -> None:
    assert compute(algorithm, data) == botocore_digest(algorithm, data)


def test_streamed_memoryview_pieces_match_one_shot_for_all_algorithms() -> None:
    data = SAMPLES[-1]
    checksummer = Checksummer(ALGORITHMS)
    view = memoryview(data)
    for start in range(0, len(view), 1 << 20):
        checksummer.update(view[start : start + (1 << 20)])
    assert checksummer.digests() == {algorithm: botocore_digest(algorithm, data) for algorithm in ALGORITHMS}


def test_empty_checksummer_has_no_digests() -> None:
    checksummer = Checksummer([])
    checksummer.update(b"abc")
    assert checksummer.digests() == {}


def test_known_vectors() -> None:
    assert compute("CRC32", b"123456789") == base64.b64encode(bytes.fromhex("cbf43926")).decode()
    assert compute("CRC32C", b"123456789") == base64.b64encode(bytes.fromhex("e3069283")).decode()
    assert compute("CRC64NVME", b"123456789") == base64.b64encode(bytes.fromhex("ae8b14860a799888")).decode()


# -- request rules ------------------------------------------------------------------------


def test_header_checksum_is_expected() -> None:
    value = compute("CRC32", b"x")
    request = parse_checksum_request(
        {"x-amz-checksum-crc32": value, "x-amz-sdk-checksum-algorithm": "CRC32"}, ()
    )
    assert request == ChecksumRequest(expected={"CRC32": value}, trailer=None, algorithm="CRC32")
    assert request.algorithms() == {"CRC32"}


def test_trailer_checksum_is_announced_and_merged_when_it_arrives() -> None:
    request = parse_checksum_request(
        {"x-amz-sdk-checksum-algorithm": "crc64nvme"}, ("x-amz-checksum-crc64nvme",)
    )
    assert (request.trailer, request.algorithm, request.expected) == ("CRC64NVME", "CRC64NVME", {})
    value = compute("CRC64NVME", b"body")
    assert expected_with_trailers(request, {"x-amz-checksum-crc64nvme": value}) == {"CRC64NVME": value}
    with pytest.raises(S3Error) as info:
        expected_with_trailers(request, {})
    assert info.value.code == "InvalidRequest"
    with pytest.raises(S3Error) as info:
        expected_with_trailers(request, {"x-amz-checksum-crc64nvme": "AAAA"})
    assert info.value.code == "InvalidRequest"


def test_algorithm_only_asks_for_the_digest_to_be_computed() -> None:
    request = parse_checksum_request({"x-amz-checksum-algorithm": "SHA256"}, ())
    assert request.algorithms() == {"SHA256"} and request.expected == {}


def test_non_algorithm_checksum_headers_are_ignored() -> None:
    request = parse_checksum_request(
        {"x-amz-checksum-mode": "ENABLED", "x-amz-checksum-type": "FULL_OBJECT"}, ()
    )
    assert request.algorithms() == set()


@pytest.mark.parametrize(
    "headers",
    [
        {"x-amz-checksum-crc32": "not base64!"},
        {"x-amz-checksum-crc32": base64.b64encode(b"12345").decode()},
        {"x-amz-checksum-sha256": base64.b64encode(b"1" * 20).decode()},
        {"x-amz-checksum-md4": "AAAAAA=="},
        {"x-amz-sdk-checksum-algorithm": "MD5"},
        {"x-amz-checksum-crc32": "AAAAAA==", "x-amz-checksum-crc32c": "AAAAAA=="},
    ],
    ids=[
        "not-base64",
        "wrong-length",
        "sha256-too-short",
        "unknown-header",
        "unknown-algo",
        "two",
    ],
)
def test_invalid_checksum_requests_are_invalid_request(headers: dict[str, str]) -> None:
    with pytest.raises(S3Error) as info:
        parse_checksum_request(headers, ())
    assert info.value.code == "InvalidRequest"


def test_checksum_of_another_algorithm_than_the_sdk_header_names_is_bad_digest() -> None:
    # The S3 API reference (PutObject, ChecksumAlgorithm) names BadDigest for this conflict.
    with pytest.raises(S3Error) as info:
        parse_checksum_request(
            {"x-amz-checksum-crc32": "AAAAAA==", "x-amz-sdk-checksum-algorithm": "SHA1"}, ()
        )
    assert info.value.code == "BadDigest"


def test_value_error_names_the_header() -> None:
    with pytest.raises(S3Error) as info:
        parse_checksum_request({"x-amz-checksum-crc32": "zz"}, ())
    assert info.value.message == "Value for x-amz-checksum-crc32 header is invalid."


def test_two_trailers_are_refused() -> None:
    with pytest.raises(S3Error) as info:
        parse_checksum_request({}, ("x-amz-checksum-crc32", "x-amz-checksum-sha1"))
    assert info.value.code == "InvalidRequest"


def test_verify_accepts_equal_and_rejects_different_digests() -> None:
    good = compute("SHA256", b"data")
    verify({"SHA256": good}, {"SHA256": good, "CRC32": compute("CRC32", b"data")})
    with pytest.raises(S3Error) as info:
        verify({"SHA256": compute("SHA256", b"other")}, {"SHA256": good})
    assert info.value.code == "BadDigest"
    assert info.value.message == "The SHA256 you specified did not match the calculated checksum."


def test_content_md5_parsing() -> None:
    digest = hashlib.md5(b"x").digest()
    assert parse_content_md5(base64.b64encode(digest).decode()) == digest
    for bad in ("", "abc", base64.b64encode(b"short").decode(), "!!!!"):
        with pytest.raises(S3Error) as info:
            parse_content_md5(bad)
        assert info.value.code == "InvalidDigest"
