"""Request authentication for the S3 port: SigV4 (header and presigned), aws-chunked
streaming bodies, and flexible checksums."""

from s3proxy.auth.checksums import (
    ALGORITHMS,
    Checksummer,
    ChecksumRequest,
    parse_checksum_request,
    parse_content_md5,
)
from s3proxy.auth.chunked import ChunkedDecoder
from s3proxy.auth.presign import verify_presigned
from s3proxy.auth.sigv4 import AuthResult, PayloadMode, authenticate, derive_signing_key

__all__ = [
    "ALGORITHMS",
    "AuthResult",
    "ChecksumRequest",
    "Checksummer",
    "ChunkedDecoder",
    "PayloadMode",
    "authenticate",
    "derive_signing_key",
    "parse_checksum_request",
    "parse_content_md5",
    "verify_presigned",
]
