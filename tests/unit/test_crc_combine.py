"""CRC combination (core.crc_combine) against the same bytes hashed whole (zlib, awscrt),
for random buffers split at random points, and the FULL_OBJECT / COMPOSITE multipart
checksums built from it."""

from __future__ import annotations

import base64
import hashlib
import zlib
from collections.abc import Callable

import pytest
from awscrt import checksums as crt
from hypothesis import given, settings
from hypothesis import strategies as st

from core.crc_combine import BY_NAME, CRC32, CRC32C, CRC64NVME, ReflectedCrc
from s3proxy.api.errors import S3Error
from s3proxy.api.multipart_checksums import claimed_checksum, object_checksum, verifying_finalizer
from s3proxy.auth.checksums import compute
from s3proxy.store.models import ObjectMeta
from s3proxy.store.multipart import Part, Upload

WHOLE: dict[str, Callable[[bytes], int]] = {
    "CRC32": zlib.crc32,
    "CRC32C": crt.crc32c,
    "CRC64NVME": crt.crc64nvme,
}


def _pieces(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(cut, len(data)) for cut in cuts})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


@settings(max_examples=200, deadline=None)
@given(
    algorithm=st.sampled_from(sorted(BY_NAME)),
    data=st.binary(max_size=4096),
    cuts=st.lists(st.integers(min_value=0, max_value=4096), max_size=8),
)
def test_combined_crc_of_random_splits_equals_the_crc_of_the_whole(
    algorithm: str, data: bytes, cuts: list[int]
) -> None:
    whole = WHOLE[algorithm]
    arithmetic: ReflectedCrc = BY_NAME[algorithm]
    pieces = _pieces(data, cuts)
    crc = whole(pieces[0])
    for piece in pieces[1:]:
        crc = arithmetic.combine(crc, whole(piece), len(piece))
    assert crc == whole(data)


@pytest.mark.parametrize("arithmetic", [CRC32, CRC32C, CRC64NVME], ids=lambda a: a.name)
def test_combining_with_an_empty_buffer_changes_nothing(arithmetic: ReflectedCrc) -> None:
    crc = WHOLE[arithmetic.name](b"folio")
    assert arithmetic.combine(crc, WHOLE[arithmetic.name](b""), 0) == crc


def test_combination_over_a_large_length_matches_the_whole_buffer() -> None:
    # 5 MiB + 3 bytes: exercises many powers of x, as real parts do.
    first, second = b"\x01" * 1000, bytes(range(256)) * (5 * 4096) + b"end"
    for name, whole in WHOLE.items():
        assert BY_NAME[name].combine(whole(first), whole(second), len(second)) == whole(first + second)


def _upload(algorithm: str, checksum_type: str) -> Upload:
    return Upload("u", 1, "k", 0.0, ObjectMeta(), algorithm, checksum_type)


def _parts(algorithm: str, pieces: list[bytes]) -> list[Part]:
    return [
        Part(
            number,
            len(piece),
            hashlib.md5(piece).hexdigest(),
            {algorithm: compute(algorithm, piece)},
            0.0,
            (),
        )
        for number, piece in enumerate(pieces, start=1)
    ]


@settings(max_examples=50, deadline=None)
@given(
    algorithm=st.sampled_from(sorted(BY_NAME)),
    pieces=st.lists(st.binary(min_size=0, max_size=2000), min_size=1, max_size=6),
)
def test_full_object_checksum_of_parts_is_the_checksum_of_the_whole_object(
    algorithm: str, pieces: list[bytes]
) -> None:
    values = object_checksum(_upload(algorithm, "FULL_OBJECT"), _parts(algorithm, pieces))
    assert values == {algorithm: compute(algorithm, b"".join(pieces))}


@pytest.mark.parametrize("algorithm", ["CRC32", "CRC32C", "SHA1", "SHA256"])
def test_composite_checksum_is_the_checksum_of_the_part_digests_with_the_count(algorithm: str) -> None:
    pieces = [b"one", b"two", b"three"]
    digests = b"".join(base64.b64decode(compute(algorithm, piece)) for piece in pieces)
    values = object_checksum(_upload(algorithm, "COMPOSITE"), _parts(algorithm, pieces))
    assert values == {algorithm: f"{compute(algorithm, digests)}-3"}


def test_verifying_finalizer_accepts_the_right_claim_and_refuses_a_wrong_one() -> None:
    pieces = [b"a" * 10, b"b" * 20]
    upload, parts = _upload("CRC32", "FULL_OBJECT"), _parts("CRC32", pieces)
    right = compute("CRC32", b"".join(pieces))
    claim, checksum_type = claimed_checksum(
        {"x-amz-checksum-crc32": right, "x-amz-checksum-type": "full_object"}
    )
    assert checksum_type == "FULL_OBJECT"
    assert verifying_finalizer(claim, checksum_type)(upload, parts)[1] == {"CRC32": right}
    wrong, _ = claimed_checksum({"x-amz-checksum-crc32": compute("CRC32", b"other")})
    with pytest.raises(S3Error) as exc:
        verifying_finalizer(wrong, None)(upload, parts)
    assert exc.value.code == "BadDigest"


@pytest.mark.parametrize(
    "headers",
    [
        {"x-amz-checksum-crc32": "not base64!"},
        {"x-amz-checksum-crc32": "AAAAAA==-x"},
        {"x-amz-checksum-crc32": "AAAAAA==", "x-amz-checksum-sha1": "AAAAAAAAAAAAAAAAAAAAAAAAAAA="},
        {"x-amz-checksum-type": "HALF_OBJECT"},
        {"x-amz-checksum-md5": "AAAAAA=="},
    ],
)
def test_malformed_claims_on_complete_are_invalid_request(headers: dict[str, str]) -> None:
    with pytest.raises(S3Error) as exc:
        claimed_checksum(headers)
    assert exc.value.code == "InvalidRequest"
