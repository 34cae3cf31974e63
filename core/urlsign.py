"""Signed URLs for private images (docs/image-transforms.md, "Signed URLs"): an
HMAC-SHA256, under an access key's secret, of the path and the canonical query.
The recipe is public so users can mint URLs without calling Folio."""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import quote

SIGNATURE = "sig"
EXPIRES = "expires"
KEY_ID = "key_id"


def _encode(text: str) -> str:
    return quote(text, safe="-_.~")


def canonical_query(params: dict[str, str]) -> str:
    """Every parameter but the signature, sorted by name, RFC 3986-encoded."""
    return "&".join(
        f"{_encode(name)}={_encode(value)}" for name, value in sorted(params.items()) if name != SIGNATURE
    )


def string_to_sign(path: str, params: dict[str, str]) -> str:
    return f"{path}\n{canonical_query(params)}"


def signature(secret: str, path: str, params: dict[str, str]) -> str:
    return hmac.new(secret.encode(), string_to_sign(path, params).encode(), hashlib.sha256).hexdigest()


def signature_matches(secret: str, path: str, params: dict[str, str]) -> bool:
    given = params.get(SIGNATURE, "")
    return hmac.compare_digest(signature(secret, path, params).encode(), given.encode())


def signed_query(secret: str, access_key: str, path: str, params: dict[str, str], expires: int) -> str:
    """The query string of a signed URL for `path` (not percent-encoded)."""
    signed = {**params, EXPIRES: str(expires), KEY_ID: access_key}
    return f"{canonical_query(signed)}&{SIGNATURE}={signature(secret, path, signed)}"
