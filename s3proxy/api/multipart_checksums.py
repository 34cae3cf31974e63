"""Checksums of multipart objects, as S3 defines them.

- ETag: hex MD5 of the concatenated binary part MD5s, then "-<part count>".
- COMPOSITE checksum: the algorithm over the concatenated binary part checksums,
  base64, then "-<part count>" (it describes the parts, not the whole object).
- FULL_OBJECT checksum (CRC algorithms only): the CRC of the whole object,
  combined from the part CRCs without reading a byte.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass

from core import crc_combine
from core.strictparse import ascii_int
from s3proxy.api.errors import S3Error
from s3proxy.auth.checksums import (
    HEADER_PREFIX,
    NON_ALGORITHM_HEADERS,
    algorithm_from_header,
    compute,
    parse_checksum_value,
)
from s3proxy.store.multipart import Finalizer, Part, Upload, multipart_etag

# Our own combination (core.crc_combine): awscrt only has one since late 2025.
_COMBINE = crc_combine.BY_NAME
CHECKSUM_TYPES = ("COMPOSITE", "FULL_OBJECT")


def default_checksum_type(algorithm: str) -> str:
    return "FULL_OBJECT" if algorithm == "CRC64NVME" else "COMPOSITE"


def check_checksum_type(algorithm: str | None, checksum_type: str | None) -> str | None:
    """The upload's checksum type, validated as S3 does at CreateMultipartUpload."""
    if checksum_type is None:
        return default_checksum_type(algorithm) if algorithm else None
    if checksum_type not in CHECKSUM_TYPES:
        raise S3Error("InvalidRequest", "Value for x-amz-checksum-type header is invalid.")
    if algorithm is None:
        raise S3Error("InvalidRequest", "The x-amz-checksum-type header requires x-amz-checksum-algorithm.")
    if checksum_type == "FULL_OBJECT" and algorithm not in _COMBINE:
        raise S3Error("InvalidRequest", f"The FULL_OBJECT checksum type is not supported for {algorithm}.")
    if checksum_type == "COMPOSITE" and algorithm == "CRC64NVME":
        raise S3Error("InvalidRequest", "The COMPOSITE checksum type is not supported for CRC64NVME.")
    return checksum_type


def object_checksum(upload: Upload, parts: list[Part]) -> dict[str, str]:
    algorithm = upload.checksum_algorithm
    if algorithm is None:
        return {}
    values = []
    for part in parts:
        value = part.checksums.get(algorithm)
        if value is None:
            raise S3Error(
                "InvalidRequest",
                f"The upload was created with the {algorithm} checksum algorithm, "
                f"but part {part.part_number} has no {algorithm} checksum.",
            )
        values.append(base64.b64decode(value))
    if upload.checksum_type == "FULL_OBJECT":
        arithmetic = _COMBINE[algorithm]
        crc = int.from_bytes(values[0], "big")
        for part, value in zip(parts[1:], values[1:], strict=True):
            crc = arithmetic.combine(crc, int.from_bytes(value, "big"), part.size)
        return {algorithm: base64.b64encode(crc.to_bytes(arithmetic.width // 8, "big")).decode()}
    return {algorithm: f"{compute(algorithm, b''.join(values))}-{len(parts)}"}


def finalize(upload: Upload, parts: list[Part]) -> tuple[str, dict[str, str]]:
    """The Finalizer handed to the store's complete_upload."""
    if not parts:
        raise S3Error("MalformedXML", "You must specify at least one part.")
    return multipart_etag(parts), object_checksum(upload, parts)


@dataclass(frozen=True)
class ClaimedChecksum:
    """The object checksum a CompleteMultipartUpload request carries (x-amz-checksum-*)."""

    algorithm: str
    digest: bytes
    part_count: int | None  # the "-N" of a COMPOSITE value, when the client sent one


def claimed_checksum(headers: Mapping[str, str]) -> tuple[ClaimedChecksum | None, str | None]:
    """The object checksum and checksum type named on a Complete request, validated as
    a PutObject's headers are (InvalidRequest for a value that is not one)."""
    claims = []
    for name, raw in headers.items():
        if not name.startswith(HEADER_PREFIX) or name in NON_ALGORITHM_HEADERS:
            continue
        algorithm = algorithm_from_header(name)
        value, dash, count = raw.strip().partition("-")
        part_count = ascii_int(count, minimum=1, maximum=10000) if dash else None
        if dash and part_count is None:
            raise S3Error("InvalidRequest", f"Value for {name} header is invalid.")
        digest = base64.b64decode(parse_checksum_value(algorithm, value, name))
        claims.append(ClaimedChecksum(algorithm, digest, part_count))
    if len(claims) > 1:
        raise S3Error(
            "InvalidRequest",
            "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.",
        )
    raw_type = headers.get("x-amz-checksum-type")
    checksum_type = raw_type.strip().upper() if raw_type is not None else None
    if checksum_type is not None and checksum_type not in CHECKSUM_TYPES:
        raise S3Error("InvalidRequest", "Value for x-amz-checksum-type header is invalid.")
    return (claims[0] if claims else None), checksum_type


def claimed_object_size(headers: Mapping[str, str]) -> int | None:
    """x-amz-mp-object-size: the size the client expects the completed object to have."""
    raw = headers.get("x-amz-mp-object-size")
    if raw is None:
        return None
    size = ascii_int(raw, strip=True)
    if size is None:
        raise S3Error("InvalidArgument", "Value for x-amz-mp-object-size header is invalid.")
    return size


def verifying_finalizer(
    claim: ClaimedChecksum | None, checksum_type: str | None, object_size: int | None = None
) -> Finalizer:
    """A Finalizer that also checks the object checksum (and size) the client claimed: it
    runs inside the store's completing transaction, so a mismatch completes nothing."""

    def finalize_verified(upload: Upload, parts: list[Part]) -> tuple[str, dict[str, str]]:
        if object_size is not None and object_size != sum(part.size for part in parts):
            # As AWS: a size that is not the object's is InvalidRequest.
            raise S3Error(
                "InvalidRequest",
                "The provided 'x-amz-mp-object-size' header value does not match the object size.",
            )
        if checksum_type is not None and checksum_type != upload.checksum_type:
            raise S3Error(
                "InvalidRequest",
                f"The upload was created using the {upload.checksum_type or 'null'} checksum mode. "
                f"The complete request must use the same checksum mode.",
            )
        etag, values = finalize(upload, parts)
        if claim is None:
            return etag, values
        if claim.algorithm != upload.checksum_algorithm:
            raise S3Error(
                "InvalidRequest",
                f"The upload was created using the {upload.checksum_algorithm or 'null'} checksum algorithm. "
                f"The complete request must use the same checksum algorithm.",
            )
        value, _, count = values[claim.algorithm].partition("-")
        if base64.b64decode(value) != claim.digest or (
            claim.part_count is not None and str(claim.part_count) != count
        ):
            raise S3Error(
                "BadDigest", f"The {claim.algorithm} you specified did not match the calculated checksum."
            )
        return etag, values

    return finalize_verified
