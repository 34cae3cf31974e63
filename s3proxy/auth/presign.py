"""Query-string authentication (presigned URLs): SigV4 (the X-Amz-* parameters, their
validity window, the signature over the request with X-Amz-Signature left out) and the
legacy SigV2 form (AWSAccessKeyId, Expires, Signature).

SigV2 stays because boto3's `generate_presigned_url` still produces it by default for a
client with a custom endpoint (unless configured with signature_version="s3v4"); header
SigV2 is refused in `sigv4.py`. Accepts what boto3 and `aws s3 presign` produce.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Mapping

from core.strictparse import ascii_int
from s3proxy.api.errors import S3Error
from s3proxy.auth.sigv4 import (
    ALGORITHM,
    SERVICE,
    TERMINATOR,
    UNSIGNED_PAYLOAD,
    AuthResult,
    PayloadMode,
    canonical_query,
    decode_query_value,
    invalid_content_sha256,
    parse_amz_date,
    parse_query,
    payload_mode_for,
    signed_result,
    split_credential,
    wire_bytes,
)

# Sub-resources that are part of a SigV2 canonical resource (with their decoded values).
SIGV2_SUBRESOURCES = frozenset(
    {
        "accelerate", "acl", "analytics", "cors", "defaultObjectAcl", "delete", "inventory", "lifecycle",
        "location", "logging", "metrics", "notification", "object-lock", "partNumber", "policy",
        "replication", "requestPayment", "response-cache-control", "response-content-disposition",
        "response-content-encoding", "response-content-language", "response-content-type",
        "response-expires", "restore", "select", "select-type", "storageClass", "tagging", "torrent",
        "uploadId", "uploads", "versionId", "versioning", "versions", "website",
    }
)  # fmt: skip

MAX_EXPIRES_SECONDS = 604800  # seven days, as AWS allows
_REQUIRED = (
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
)


def _query_error(message: str) -> S3Error:
    return S3Error("AuthorizationQueryParametersError", message)


def verify_presigned(
    method: str,
    raw_path: str,
    query_string: str,
    headers: Mapping[str, str],
    lookup_secret: Callable[[str], str | None],
    now: float,
    max_skew_seconds: int = 900,
) -> AuthResult:
    """Verify a presigned request; raises S3Error when it is malformed, expired or forged."""
    pairs = parse_query(query_string)
    params: dict[str, str] = {}
    for name, value in pairs:
        if name.startswith("X-Amz-") and name not in params:
            params[name] = decode_query_value(value)

    missing = [name for name in _REQUIRED if not params.get(name)]
    if missing:
        raise _query_error(
            "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, "
            "X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters."
        )
    if params["X-Amz-Algorithm"] != ALGORITHM:
        raise _query_error('X-Amz-Algorithm only supports "AWS4-HMAC-SHA256"')

    parts = split_credential(params["X-Amz-Credential"])
    if parts is None:
        raise _query_error(
            "Error parsing the X-Amz-Credential parameter; the Credential is mal-formed; "
            'expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".'
        )
    access_key, scope_date, region, service, terminator = parts
    if terminator != TERMINATOR:
        raise _query_error(
            f'Error parsing the X-Amz-Credential parameter; incorrect terminal "{terminator}". '
            'This endpoint uses "aws4_request".'
        )
    if service != SERVICE:
        raise _query_error(
            f'Error parsing the X-Amz-Credential parameter; incorrect service "{service}". '
            'This endpoint belongs to "s3".'
        )

    amz_date = params["X-Amz-Date"]
    request_time = parse_amz_date(amz_date)
    if request_time is None:
        raise _query_error("X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"")
    if scope_date != amz_date[:8]:
        raise _query_error(
            f'Error parsing the X-Amz-Credential parameter; invalid credential date "{scope_date}". '
            "Date is not the same as X-Amz-Date."
        )

    # What AWS answers (its messages, as its own error bodies quote them): a negative or
    # over-a-week lifetime is a 400 AuthorizationQueryParametersError; zero is accepted
    # and has expired by the time it is checked (403 AccessDenied, "Request has expired").
    raw_expires = params["X-Amz-Expires"]
    negative = raw_expires.startswith("-")
    expires = ascii_int(raw_expires[1:] if negative else raw_expires)
    if expires is None:
        raise _query_error("X-Amz-Expires should be a number")
    if negative and expires > 0:
        raise _query_error("X-Amz-Expires must be non-negative")
    if expires > MAX_EXPIRES_SECONDS:
        raise _query_error(
            "X-Amz-Expires must be less than a week (in seconds); that is, the given X-Amz-Expires "
            f"must be less than {MAX_EXPIRES_SECONDS} seconds"
        )

    signed_header_names = params["X-Amz-SignedHeaders"].split(";")
    if "host" not in signed_header_names:
        raise _query_error("Query-string authentication requires the host header to be signed.")

    secret = lookup_secret(access_key)
    if secret is None:
        raise S3Error("InvalidAccessKeyId", extra={"AWSAccessKeyId": access_key})
    if now >= request_time + expires:
        raise S3Error("AccessDenied", "Request has expired")
    if request_time - now > max_skew_seconds:
        raise S3Error("AccessDenied", "Request is not valid yet")

    # The payload is unsigned unless the client chose to sign a hash (a header or a parameter).
    content_sha256 = headers.get("x-amz-content-sha256") or params.get("X-Amz-Content-Sha256")
    payload_hashes = [UNSIGNED_PAYLOAD]
    payload_mode = PayloadMode.UNSIGNED
    if content_sha256:
        mode = payload_mode_for(content_sha256)
        if mode is None:
            raise invalid_content_sha256(content_sha256)
        payload_mode = mode
        # Signers differ on whether the hash enters a presigned canonical request: try both.
        payload_hashes = (
            [content_sha256, UNSIGNED_PAYLOAD] if content_sha256 != UNSIGNED_PAYLOAD else payload_hashes
        )
    return signed_result(
        method=method,
        raw_path=raw_path,
        canonical_query_string=canonical_query(pairs, exclude="X-Amz-Signature"),
        headers=headers,
        signed_header_names=signed_header_names,
        payload_hashes=payload_hashes,
        payload_mode=payload_mode,
        content_sha256=content_sha256,
        amz_date=amz_date,
        scope_parts=(scope_date, region, service),
        access_key=access_key,
        secret=secret,
        signature=params["X-Amz-Signature"],
        presigned=True,
    )


def verify_presigned_v2(
    method: str,
    raw_path: str,
    query_string: str,
    headers: Mapping[str, str],
    lookup_secret: Callable[[str], str | None],
    now: float,
    *,
    virtual_host_bucket: str | None = None,
) -> AuthResult:
    """Verify a SigV2 presigned URL. The result has no signing key, date or scope: SigV2
    never carries a streaming body."""
    pairs = parse_query(query_string)
    params: dict[str, str] = {}
    for name, value in pairs:
        params.setdefault(name, decode_query_value(value))
    access_key = params.get("AWSAccessKeyId", "")
    signature = params.get("Signature", "")
    raw_expires = params.get("Expires", "")
    if not access_key or not signature or not raw_expires:
        raise S3Error(
            "AccessDenied",
            "Query-string authentication requires the Signature, Expires and AWSAccessKeyId parameters",
        )
    expires = ascii_int(raw_expires)
    if expires is None:
        raise S3Error("AccessDenied", "Invalid date (should be seconds since epoch): " + raw_expires)
    secret = lookup_secret(access_key)
    if secret is None:
        raise S3Error("InvalidAccessKeyId", extra={"AWSAccessKeyId": access_key})
    if now > expires:
        raise S3Error("AccessDenied", "Request has expired")

    # botocore moves Content-Type, Content-MD5 and x-amz-* headers into the query string of
    # a SigV2 URL; the caller may send them as headers as well.
    amz_headers: dict[str, str] = {}
    for name, value in params.items():
        if name.lower().startswith("x-amz-"):
            amz_headers[name.lower()] = value.strip()
    for name, value in headers.items():
        if name.startswith("x-amz-"):
            amz_headers[name] = ",".join(part.strip() for part in value.split(","))
    content_md5 = headers.get("content-md5", params.get("content-md5", "")).strip()
    content_type = headers.get("content-type", params.get("content-type", "")).strip()
    canonical_amz = "".join(f"{name}:{amz_headers[name]}\n" for name in sorted(amz_headers))

    subresources = sorted(
        (
            (name, decode_query_value(value) if value else None)
            for name, value in pairs
            if name in SIGV2_SUBRESOURCES
        ),
        key=lambda pair: pair[0],
    )
    resource = raw_path if virtual_host_bucket is None else f"/{virtual_host_bucket}{raw_path}"
    if subresources:
        resource += "?" + "&".join(
            name if value is None else f"{name}={value}" for name, value in subresources
        )

    string_to_sign = f"{method}\n{content_md5}\n{content_type}\n{raw_expires}\n{canonical_amz}{resource}"
    expected = base64.b64encode(hmac.new(secret.encode(), wire_bytes(string_to_sign), hashlib.sha1).digest())
    if not hmac.compare_digest(expected, signature.encode("utf-8", "replace")):
        raise S3Error("SignatureDoesNotMatch", extra={"AWSAccessKeyId": access_key})
    return AuthResult(
        access_key=access_key,
        payload_mode=PayloadMode.UNSIGNED,
        payload_sha256=None,
        signing_key=b"",
        seed_signature=signature,
        amz_date="",
        scope="",
        decoded_content_length=None,
        trailer_names=(),
        presigned=True,
    )
