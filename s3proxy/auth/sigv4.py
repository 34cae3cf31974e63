"""AWS Signature Version 4: header-based request verification and the signing helpers
shared with presigned URLs (`presign.py`) and aws-chunked streaming (`chunked.py`).

This module owns the canonical request (URI, query, headers), the signing-key
derivation and its cache, the request-time checks, and the decision of how the
body is covered by the signature (`PayloadMode`). It knows nothing of HTTP
frameworks: the caller passes the method, the raw path and query, and headers.
"""

from __future__ import annotations

import calendar
import enum
import functools
import hashlib
import hmac
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from urllib.parse import quote, unquote_to_bytes

from core.strictparse import ascii_int
from s3proxy.api.errors import S3Error

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "s3"
TERMINATOR = "aws4_request"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()

STREAMING_SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
STREAMING_SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"

DATE_REQUIRED_MESSAGE = "AWS authentication requires a valid Date or x-amz-date header"


class PayloadMode(enum.Enum):
    """How the request body is covered by the signature."""

    SIGNED = "signed"
    UNSIGNED = "unsigned"
    STREAMING_SIGNED = "streaming-signed"
    STREAMING_UNSIGNED_TRAILER = "streaming-unsigned-trailer"
    STREAMING_SIGNED_TRAILER = "streaming-signed-trailer"

    @property
    def is_streaming(self) -> bool:
        return self in _STREAMING_MODES


_STREAMING_MODES = frozenset(
    {
        PayloadMode.STREAMING_SIGNED,
        PayloadMode.STREAMING_UNSIGNED_TRAILER,
        PayloadMode.STREAMING_SIGNED_TRAILER,
    }
)
_CONTENT_SHA256_MODES = {
    UNSIGNED_PAYLOAD: PayloadMode.UNSIGNED,
    STREAMING_SIGNED: PayloadMode.STREAMING_SIGNED,
    STREAMING_UNSIGNED_TRAILER: PayloadMode.STREAMING_UNSIGNED_TRAILER,
    STREAMING_SIGNED_TRAILER: PayloadMode.STREAMING_SIGNED_TRAILER,
}


@dataclass(frozen=True)
class AuthResult:
    """A verified request: who signed it and how its body must be checked."""

    access_key: str
    payload_mode: PayloadMode
    payload_sha256: str | None  # lowercase hex, only for SIGNED
    signing_key: bytes
    seed_signature: str  # the request signature; the chunk signature chain starts from it
    amz_date: str  # e.g. 20130524T000000Z
    scope: str  # e.g. 20130524/us-east-1/s3/aws4_request
    decoded_content_length: int | None  # x-amz-decoded-content-length for streaming modes
    trailer_names: tuple[str, ...]  # lowercased names from x-amz-trailer
    presigned: bool


# Compiled once: authenticate() is on the hot path of every request.
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_AMZ_DATE = re.compile(r"[0-9]{8}T[0-9]{6}Z")  # \d would also take non-ASCII digits
# Already-canonical text (what SDKs send) is detected with two regex scans instead of a
# decode/re-encode round trip: only unreserved characters and uppercase %XX escapes, and
# no escape of a character that canonical form leaves bare.
_URI_CANONICAL = re.compile(r"(?:[A-Za-z0-9\-._~/]|%[0-9A-F]{2})*")
_QUERY_CANONICAL = re.compile(r"(?:[A-Za-z0-9\-._~]|%[0-9A-F]{2})*")
_ESCAPED_UNRESERVED = re.compile(r"%(?:2[DE]|3[0-9]|4[1-9A-F]|5[0-9AF]|6[1-9A-F]|7[0-9AE])")
_ESCAPED_UNRESERVED_OR_SLASH = re.compile(r"%(?:2[DEF]|3[0-9]|4[1-9A-F]|5[0-9AF]|6[1-9A-F]|7[0-9AE])")

# Derived signing keys change once a day per (key, region); a small bounded cache
# saves four HMACs per request.
_SIGNING_KEY_CACHE: dict[tuple[str, str, str, str], bytes] = {}
_SIGNING_KEY_CACHE_MAX = 1024


def derive_signing_key(secret: str, date: str, region: str, service: str = SERVICE) -> bytes:
    """kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request")."""
    cache_key = (secret, date, region, service)
    key = _SIGNING_KEY_CACHE.get(cache_key)
    if key is not None:
        return key
    key = hmac.new(("AWS4" + secret).encode(), date.encode(), hashlib.sha256).digest()
    for part in (region, service, TERMINATOR):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    if len(_SIGNING_KEY_CACHE) >= _SIGNING_KEY_CACHE_MAX:
        # Crude but bounded: the working set is tiny (one entry per key per day).
        _SIGNING_KEY_CACHE.clear()
    _SIGNING_KEY_CACHE[cache_key] = key
    return key


def sign(signing_key: bytes, string_to_sign: str) -> str:
    return hmac.new(signing_key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def signatures_equal(expected: str, given: str) -> bool:
    """Constant-time comparison, so timing does not reveal how much of a signature matched."""
    return hmac.compare_digest(expected.encode(), given.lower().encode())


def chunk_string_to_sign(amz_date: str, scope: str, previous_signature: str, chunk_sha256_hex: str) -> str:
    """String to sign of one aws-chunked data chunk (STREAMING-AWS4-HMAC-SHA256-PAYLOAD)."""
    return (
        f"AWS4-HMAC-SHA256-PAYLOAD\n{amz_date}\n{scope}\n{previous_signature}\n"
        f"{EMPTY_SHA256}\n{chunk_sha256_hex}"
    )


def trailer_string_to_sign(
    amz_date: str, scope: str, previous_signature: str, trailer_sha256_hex: str
) -> str:
    """String to sign of the trailing-headers chunk (x-amz-trailer-signature)."""
    return f"AWS4-HMAC-SHA256-TRAILER\n{amz_date}\n{scope}\n{previous_signature}\n{trailer_sha256_hex}"


def uri_encode_path(raw_path: str) -> str:
    """S3's canonical URI: decode the path as sent, then encode every byte but the unreserved
    set and '/'. S3 does not normalize paths: '//', '..' and trailing slashes stay."""
    if _URI_CANONICAL.fullmatch(raw_path) and (
        "%" not in raw_path or not _ESCAPED_UNRESERVED_OR_SLASH.search(raw_path)
    ):
        return raw_path
    return quote(unquote_to_bytes(wire_bytes(raw_path)), safe="/")


def wire_bytes(text: str) -> bytes:
    """The bytes of a path, query or header as they were on the wire.

    The HTTP layer decodes them latin-1, so encoding back recovers them exactly; text that
    came another way (characters past U+00FF) is taken as UTF-8."""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape")


def _encode_query_part(part: str) -> str:
    if _QUERY_CANONICAL.fullmatch(part) and ("%" not in part or not _ESCAPED_UNRESERVED.search(part)):
        return part
    return quote(unquote_to_bytes(wire_bytes(part)), safe="")


def parse_query(query_string: str) -> list[tuple[str, str]]:
    """Split a raw query string into (name, value) pairs, both still percent-encoded.
    A parameter without '=' has an empty value."""
    pairs: list[tuple[str, str]] = []
    if not query_string:
        return pairs
    for item in query_string.split("&"):
        if not item:
            continue
        name, _, value = item.partition("=")
        pairs.append((name, value))
    return pairs


def decode_query_value(value: str) -> str:
    """Percent-decode without turning '+' into a space, as SigV4 does."""
    if "%" not in value:
        return value
    return unquote_to_bytes(wire_bytes(value)).decode("utf-8", "replace")


def canonical_query(pairs: Iterable[tuple[str, str]], exclude: str | None = None) -> str:
    encoded = sorted(
        (_encode_query_part(name), _encode_query_part(value)) for name, value in pairs if name != exclude
    )
    return "&".join(f"{name}={value}" for name, value in encoded)


def _canonical_header_value(value: str) -> str:
    # Trim and collapse runs of whitespace the way every AWS SDK signs them.
    if "  " in value or value[:1].isspace() or value[-1:].isspace() or "\t" in value:
        return " ".join(value.split())
    return value


def canonical_headers(headers: Mapping[str, str], signed_headers: Iterable[str]) -> str:
    return "".join(f"{name}:{_canonical_header_value(headers.get(name, ''))}\n" for name in signed_headers)


def string_to_sign(
    method: str,
    canonical_uri: str,
    canonical_query_string: str,
    canonical_headers_block: str,
    signed_headers: str,
    payload_hash: str,
    amz_date: str,
    scope: str,
) -> str:
    canonical_request = (
        f"{method}\n{canonical_uri}\n{canonical_query_string}\n{canonical_headers_block}\n"
        f"{signed_headers}\n{payload_hash}"
    )
    digest = hashlib.sha256(wire_bytes(canonical_request)).hexdigest()
    return f"{ALGORITHM}\n{amz_date}\n{scope}\n{digest}"


def verify_signature(
    *,
    method: str,
    raw_path: str,
    canonical_query_string: str,
    canonical_headers_block: str,
    signed_headers: str,
    payload_hashes: Iterable[str],
    amz_date: str,
    scope: str,
    signing_key: bytes,
    signature: str,
) -> bool:
    """Try the strictly encoded path first, then the path exactly as sent (some clients sign
    that), for each candidate payload hash."""
    uris = [uri_encode_path(raw_path)]
    if uris[0] != raw_path:
        uris.append(raw_path)
    for payload_hash in payload_hashes:
        for uri in uris:
            sts = string_to_sign(
                method,
                uri,
                canonical_query_string,
                canonical_headers_block,
                signed_headers,
                payload_hash,
                amz_date,
                scope,
            )
            if signatures_equal(sign(signing_key, sts), signature):
                return True
    return False


@functools.lru_cache(maxsize=1024)  # requests within the same second share the timestamp
def parse_amz_date(value: str) -> float | None:
    """Seconds since the epoch of an ISO 8601 basic timestamp (20130524T000000Z), or None."""
    if not _AMZ_DATE.fullmatch(value):
        return None
    try:
        return float(
            calendar.timegm(
                (
                    int(value[0:4]),
                    int(value[4:6]),
                    int(value[6:8]),
                    int(value[9:11]),
                    int(value[11:13]),
                    int(value[13:15]),
                    0,
                    0,
                    0,
                )
            )
        )
    except (ValueError, OverflowError):
        return None


def _amz_date_from_http_date(value: str) -> str | None:
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):  # OverflowError: a 20-digit year
        return None
    if parsed is None:
        return None
    return parsed.strftime("%Y%m%dT%H%M%SZ")


def split_credential(credential: str) -> tuple[str, str, str, str, str] | None:
    """AK/date/region/service/aws4_request -> its five parts, or None when it has another shape."""
    parts = credential.rsplit("/", 4)
    if len(parts) != 5 or not all(parts):
        return None
    return parts[0], parts[1], parts[2], parts[3], parts[4]


def payload_mode_for(content_sha256: str) -> PayloadMode | None:
    mode = _CONTENT_SHA256_MODES.get(content_sha256)
    if mode is not None:
        return mode
    if _HEX64.fullmatch(content_sha256):
        return PayloadMode.SIGNED
    return None


def streaming_details(mode: PayloadMode, headers: Mapping[str, str]) -> tuple[int | None, tuple[str, ...]]:
    """x-amz-decoded-content-length and x-amz-trailer of a streaming request."""
    trailer_header = headers.get("x-amz-trailer", "")
    trailer_names = tuple(n.strip().lower() for n in trailer_header.split(",") if n.strip())
    if not mode.is_streaming:
        return None, trailer_names
    raw_length = headers.get("x-amz-decoded-content-length")
    if raw_length is None:
        raise S3Error("MissingContentLength", "You must provide the Content-Length HTTP header.")
    length = ascii_int(raw_length, strip=True)
    if length is None:
        raise S3Error("InvalidArgument", "x-amz-decoded-content-length must be a non-negative integer.")
    return length, trailer_names


def _reject_other_schemes(authorization: str) -> S3Error:
    if authorization.startswith("AWS "):
        # SigV2 in a header: a known mechanism that we do not accept.
        return S3Error(
            "InvalidRequest",
            "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.",
        )
    return S3Error(
        "InvalidArgument",
        "Unsupported Authorization Type",
        extra={"ArgumentName": "Authorization", "ArgumentValue": authorization[:256]},
    )


def _malformed(message: str) -> S3Error:
    return S3Error("AuthorizationHeaderMalformed", f"The authorization header is malformed; {message}")


def _parse_authorization(value: str) -> tuple[str, list[str], str]:
    """Credential, signed header names and signature of an AWS4-HMAC-SHA256 Authorization header."""
    fields: dict[str, str] = {}
    for part in value[len(ALGORITHM) :].split(","):
        name, sep, field_value = part.strip().partition("=")
        if not sep:
            raise _malformed(f"the authorization component '{part.strip()}' is malformed.")
        fields[name.strip()] = field_value.strip()
    credential = fields.get("Credential")
    signed = fields.get("SignedHeaders")
    signature = fields.get("Signature")
    if not credential or not signed or not signature:
        raise _malformed("it must contain Credential, SignedHeaders and Signature.")
    return credential, signed.split(";"), signature


def authenticate(
    method: str,
    raw_path: str,
    query_string: str,
    headers: Mapping[str, str],
    lookup_secret: Callable[[str], str | None],
    now: float,
    max_skew_seconds: int = 900,
    *,
    virtual_host_bucket: str | None = None,
) -> AuthResult | None:
    """Verify a request's SigV4 signature (header or presigned query).

    None for an anonymous request (no Authorization header and no X-Amz-Algorithm or
    X-Amz-Signature query parameter). Raises S3Error for every other failure.

    SigV2 presigned URLs (AWSAccessKeyId/Signature/Expires) are accepted too, because
    boto3's generate_presigned_url produces them by default for a custom endpoint; they
    sign the bucket name, which `virtual_host_bucket` supplies for virtual-hosted requests.
    """
    authorization = headers.get("authorization")
    query_auth = bool(query_string) and (
        "X-Amz-Algorithm=" in query_string or "X-Amz-Signature=" in query_string
    )
    if authorization is None:
        if query_auth:
            from s3proxy.auth.presign import verify_presigned  # presign imports this module

            return verify_presigned(
                method, raw_path, query_string, headers, lookup_secret, now, max_skew_seconds=max_skew_seconds
            )
        if query_string and "Signature=" in query_string and "AWSAccessKeyId=" in query_string:
            from s3proxy.auth.presign import verify_presigned_v2

            return verify_presigned_v2(
                method,
                raw_path,
                query_string,
                headers,
                lookup_secret,
                now,
                virtual_host_bucket=virtual_host_bucket,
            )
        return None
    if query_auth:
        raise S3Error(
            "InvalidArgument",
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query "
            "string parameter or the Authorization header should be specified",
        )
    if not authorization.startswith(ALGORITHM + " "):
        raise _reject_other_schemes(authorization)

    credential, signed_header_names, signature = _parse_authorization(authorization)
    parts = split_credential(credential)
    if parts is None:
        raise _malformed(
            'the Credential is mal-formed; expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".'
        )
    access_key, scope_date, region, service, terminator = parts
    if terminator != TERMINATOR:
        raise _malformed(f'incorrect terminal "{terminator}". This endpoint uses "aws4_request".')
    if service != SERVICE:
        raise _malformed(f'incorrect service "{service}". This endpoint belongs to "s3".')
    if "host" not in signed_header_names:
        raise _malformed("the host header must be signed.")

    amz_date = headers.get("x-amz-date")
    if amz_date is None:
        http_date = headers.get("date")
        amz_date = _amz_date_from_http_date(http_date) if http_date else None
        if amz_date is None:
            raise S3Error("AccessDenied", DATE_REQUIRED_MESSAGE)
    request_time = parse_amz_date(amz_date)
    if request_time is None:
        raise S3Error("AccessDenied", DATE_REQUIRED_MESSAGE)
    if scope_date != amz_date[:8]:
        raise _malformed(f'invalid credential date "{scope_date}". Date is not the same as X-Amz-Date.')

    content_sha256 = headers.get("x-amz-content-sha256")
    if content_sha256 is None:
        raise S3Error("InvalidRequest", "Missing required header for this request: x-amz-content-sha256")
    payload_mode = payload_mode_for(content_sha256)
    if payload_mode is None:
        raise invalid_content_sha256(content_sha256)

    secret = lookup_secret(access_key)
    if secret is None:
        raise S3Error("InvalidAccessKeyId", extra={"AWSAccessKeyId": access_key})
    if abs(now - request_time) > max_skew_seconds:
        raise S3Error(
            "RequestTimeTooSkewed", extra={"MaxAllowedSkewMilliseconds": str(max_skew_seconds * 1000)}
        )

    return signed_result(
        method=method,
        raw_path=raw_path,
        canonical_query_string=canonical_query(parse_query(query_string)),
        headers=headers,
        signed_header_names=signed_header_names,
        payload_hashes=(content_sha256,),
        payload_mode=payload_mode,
        content_sha256=content_sha256,
        amz_date=amz_date,
        scope_parts=(scope_date, region, service),
        access_key=access_key,
        secret=secret,
        signature=signature,
        presigned=False,
    )


def invalid_content_sha256(value: str) -> S3Error:
    return S3Error(
        "InvalidArgument",
        "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-UNSIGNED-PAYLOAD-TRAILER, "
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER "
        "or a valid sha256 value.",
        extra={"ArgumentName": "x-amz-content-sha256", "ArgumentValue": value},
    )


def signed_result(
    *,
    method: str,
    raw_path: str,
    canonical_query_string: str,
    headers: Mapping[str, str],
    signed_header_names: list[str],
    payload_hashes: Iterable[str],
    payload_mode: PayloadMode,
    content_sha256: str | None,
    amz_date: str,
    scope_parts: tuple[str, str, str],
    access_key: str,
    secret: str,
    signature: str,
    presigned: bool,
) -> AuthResult:
    """The last step shared by header and query (presigned) SigV4: derive the key,
    check the signature (SignatureDoesNotMatch), describe the verified request."""
    scope_date, region, service = scope_parts
    decoded_length, trailer_names = streaming_details(payload_mode, headers)
    scope = f"{scope_date}/{region}/{service}/{TERMINATOR}"
    signing_key = derive_signing_key(secret, scope_date, region, service)
    if not verify_signature(
        method=method,
        raw_path=raw_path,
        canonical_query_string=canonical_query_string,
        canonical_headers_block=canonical_headers(headers, signed_header_names),
        signed_headers=";".join(signed_header_names),
        payload_hashes=payload_hashes,
        amz_date=amz_date,
        scope=scope,
        signing_key=signing_key,
        signature=signature,
    ):
        raise S3Error("SignatureDoesNotMatch", extra={"AWSAccessKeyId": access_key})
    return AuthResult(
        access_key=access_key,
        payload_mode=payload_mode,
        payload_sha256=content_sha256.lower()
        if content_sha256 and payload_mode is PayloadMode.SIGNED
        else None,
        signing_key=signing_key,
        seed_signature=signature.lower(),
        amz_date=amz_date,
        scope=scope,
        decoded_content_length=decoded_length,
        trailer_names=trailer_names,
        presigned=presigned,
    )
