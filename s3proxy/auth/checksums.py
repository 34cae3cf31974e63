"""Flexible checksums: the algorithms S3 accepts (x-amz-checksum-*), computing them over a
streamed body, and the rules that say which ones a request asks for and how they are given
(a header, a trailer, or only named by x-amz-sdk-checksum-algorithm).

Digests travel as base64 of the big-endian digest bytes, the way S3 sends them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from awscrt import checksums as crt_checksums

from s3proxy.api.errors import S3Error

ALGORITHMS = ("CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256")
DIGEST_SIZES = {"CRC32": 4, "CRC32C": 4, "CRC64NVME": 8, "SHA1": 20, "SHA256": 32}
HEADER_PREFIX = "x-amz-checksum-"
# x-amz-checksum-* headers that name no algorithm.
NON_ALGORITHM_HEADERS = frozenset({"x-amz-checksum-algorithm", "x-amz-checksum-type", "x-amz-checksum-mode"})

Buffer = bytes | bytearray | memoryview


def header_name(algorithm: str) -> str:
    """CRC32 -> x-amz-checksum-crc32."""
    return HEADER_PREFIX + algorithm.lower()


class _Crc:
    """A running CRC over a function of (data, previous) -> int."""

    __slots__ = ("_function", "_size", "_value")

    def __init__(self, function: Callable[[Buffer, int], int], size: int) -> None:
        self._function = function
        self._size = size
        self._value = 0

    def update(self, data: Buffer) -> None:
        self._value = self._function(data, self._value)

    def digest(self) -> bytes:
        return self._value.to_bytes(self._size, "big")


def _new_state(algorithm: str) -> _Crc | hashlib._Hash:
    if algorithm == "CRC32":
        return _Crc(zlib.crc32, 4)
    if algorithm == "CRC32C":
        return _Crc(crt_checksums.crc32c, 4)
    if algorithm == "CRC64NVME":
        return _Crc(crt_checksums.crc64nvme, 8)
    if algorithm == "SHA1":
        return hashlib.sha1()
    if algorithm == "SHA256":
        return hashlib.sha256()
    raise ValueError(f"unknown checksum algorithm {algorithm!r}")


class Checksummer:
    """Runs any subset of ALGORITHMS over the same stream of bytes, without copying it."""

    def __init__(self, algorithms: Iterable[str]) -> None:
        self._states = {algorithm: _new_state(algorithm) for algorithm in algorithms}
        self._updates = [state.update for state in self._states.values()]

    def update(self, data: Buffer) -> None:
        for update in self._updates:
            update(data)

    def digests(self) -> dict[str, str]:
        return {
            algorithm: base64.b64encode(state.digest()).decode("ascii")
            for algorithm, state in self._states.items()
        }


def compute(algorithm: str, data: Buffer) -> str:
    """base64 digest of `data` with one algorithm."""
    checksummer = Checksummer((algorithm,))
    checksummer.update(data)
    return checksummer.digests()[algorithm]


def _unsupported_algorithm(name: str) -> S3Error:
    return S3Error(
        "InvalidRequest",
        f"Checksum algorithm {name} is not supported. Please try again with any of the valid types: "
        "[CRC32, CRC32C, CRC64NVME, SHA1, SHA256]",
    )


def algorithm_from_header(name: str) -> str:
    """x-amz-checksum-crc32c -> CRC32C; InvalidRequest for an algorithm we do not know."""
    algorithm = name[len(HEADER_PREFIX) :].upper()
    if algorithm not in DIGEST_SIZES:
        raise _unsupported_algorithm(algorithm)
    return algorithm


def parse_checksum_value(algorithm: str, value: str, name: str | None = None) -> str:
    """Validate a base64 digest for `algorithm`; returns it stripped. InvalidRequest if it is not
    base64 or has the wrong length."""
    value = value.strip()
    try:
        decoded = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        decoded = b""
    if len(decoded) != DIGEST_SIZES[algorithm]:
        raise S3Error("InvalidRequest", f"Value for {name or header_name(algorithm)} header is invalid.")
    return value


@dataclass(frozen=True)
class ChecksumRequest:
    """What a request asks of the checksum layer."""

    expected: dict[str, str] = field(
        default_factory=dict
    )  # algorithm -> base64 from an x-amz-checksum-* header
    trailer: str | None = None  # algorithm whose value comes in the aws-chunked trailer
    algorithm: str | None = None  # x-amz-sdk-checksum-algorithm / x-amz-checksum-algorithm

    def algorithms(self) -> set[str]:
        """Every algorithm the body must be run through."""
        wanted = set(self.expected)
        if self.trailer:
            wanted.add(self.trailer)
        if self.algorithm:
            wanted.add(self.algorithm)
        return wanted


def parse_checksum_request(headers: Mapping[str, str], trailer_names: Iterable[str]) -> ChecksumRequest:
    """Read the checksum headers (lowercase names) and the declared trailer names of a request."""
    expected: dict[str, str] = {}
    for name, value in headers.items():
        if not name.startswith(HEADER_PREFIX) or name in NON_ALGORITHM_HEADERS:
            continue
        algorithm = algorithm_from_header(name)
        expected[algorithm] = parse_checksum_value(algorithm, value, name)
    if len(expected) > 1:
        raise S3Error(
            "InvalidRequest",
            "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.",
        )

    trailer: str | None = None
    for name in trailer_names:
        name = name.strip().lower()
        if not name.startswith(HEADER_PREFIX):
            continue
        if trailer is not None:
            raise S3Error(
                "InvalidRequest",
                "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.",
            )
        trailer = algorithm_from_header(name)
    if trailer is not None and expected:
        raise S3Error(
            "InvalidRequest",
            "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.",
        )

    algorithm: str | None = None
    for name in ("x-amz-sdk-checksum-algorithm", "x-amz-checksum-algorithm"):
        raw = headers.get(name)
        if raw is None:
            continue
        algorithm = raw.strip().upper()
        if algorithm not in DIGEST_SIZES:
            raise _unsupported_algorithm(raw.strip())
        given = next(iter(expected), None) or trailer
        if given is not None and given != algorithm:
            # The API reference (PutObject, ChecksumAlgorithm): a checksum of another
            # algorithm than x-amz-sdk-checksum-algorithm names fails with BadDigest.
            raise S3Error(
                "BadDigest", f"The {given} checksum given does not match the {name} header ({algorithm})."
            )
        break
    return ChecksumRequest(expected=expected, trailer=trailer, algorithm=algorithm)


def expected_with_trailers(request: ChecksumRequest, trailers: Mapping[str, str]) -> dict[str, str]:
    """The header checksums plus the one the trailer delivered (validated)."""
    expected = dict(request.expected)
    if request.trailer is not None:
        name = header_name(request.trailer)
        value = trailers.get(name)
        if value is None:
            raise S3Error("InvalidRequest", f"The trailer {name} declared in x-amz-trailer was not sent.")
        expected[request.trailer] = parse_checksum_value(request.trailer, value, name)
    return expected


def verify(expected: Mapping[str, str], actual: Mapping[str, str]) -> None:
    """BadDigest unless every expected checksum equals the computed one."""
    for algorithm, value in expected.items():
        computed = actual.get(algorithm)
        if computed is None:
            raise ValueError(f"{algorithm} was not computed")
        if base64.b64decode(value) != base64.b64decode(computed):
            raise S3Error(
                "BadDigest", f"The {algorithm} you specified did not match the calculated checksum."
            )


def parse_content_md5(value: str) -> bytes:
    """Content-MD5 (base64 of 16 bytes) -> the digest; InvalidDigest otherwise."""
    try:
        digest = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        digest = b""
    if len(digest) != 16:
        raise S3Error("InvalidDigest", "The Content-MD5 you specified is not valid.")
    return digest
