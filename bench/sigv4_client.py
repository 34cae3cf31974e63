"""SigV4 header signing for the load generator: cheap enough to sign every request.

Only what the benchmark sends: path-style requests, header authentication, signed
headers `host;x-amz-content-sha256;x-amz-date` (plus any `x-amz-*` header a request adds,
such as CopyObject's `x-amz-copy-source`) and `UNSIGNED-PAYLOAD`. The signing
key changes once a day and the date strings once a second, so both are cached and a
signature costs two SHA-256 and one HMAC (about 5 microseconds here).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import quote

UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
_SIGNED_HEADERS = "host;x-amz-content-sha256;x-amz-date"


def encode_query(params: dict[str, str]) -> str:
    """The canonical (sorted, RFC 3986 encoded) query string, also used on the wire."""
    return "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(params.items()))


def encode_path(path: str) -> str:
    """S3 canonical URI: every byte but unreserved ones and '/' percent-encoded, once."""
    return quote(path, safe="/-_.~")


class SigV4Signer:
    """Signs requests for one access key, host and region."""

    def __init__(self, access_key: str, secret_key: str, host: str, region: str = "us-east-1") -> None:
        self.access_key = access_key
        self._secret = secret_key
        self.host = host
        self.region = region
        self._day = ""
        self._second = -1
        self._amz_date = ""
        self._key = b""
        self._scope = ""
        self._credential = ""

    def _refresh(self) -> None:
        now = int(time.time())
        if now == self._second:
            return
        self._second = now
        self._amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
        day = self._amz_date[:8]
        if day != self._day:
            self._day = day
            key = hmac.digest(("AWS4" + self._secret).encode(), day.encode(), "sha256")
            for part in (self.region, "s3", "aws4_request"):
                key = hmac.digest(key, part.encode(), "sha256")
            self._key = key
            self._scope = f"{day}/{self.region}/s3/aws4_request"
            self._credential = f"{self.access_key}/{self._scope}"

    def headers(
        self, method: str, encoded_path: str, encoded_query: str = "", extra: dict[str, str] | None = None
    ) -> str:
        """The signed header lines (each ending in CRLF) for one request; `extra` headers are sent and
        signed too (names lower-cased, runs of spaces in values folded, as SigV4 canonicalises them)."""
        self._refresh()
        if extra:
            return self._headers_with(method, encoded_path, encoded_query, extra)
        canonical = (
            f"{method}\n{encoded_path}\n{encoded_query}\n"
            f"host:{self.host}\nx-amz-content-sha256:{UNSIGNED_PAYLOAD}\nx-amz-date:{self._amz_date}\n\n"
            f"{_SIGNED_HEADERS}\n{UNSIGNED_PAYLOAD}"
        )
        return self._lines(canonical, _SIGNED_HEADERS, "")

    def _headers_with(self, method: str, encoded_path: str, encoded_query: str, extra: dict[str, str]) -> str:
        fields = {
            "host": self.host,
            "x-amz-content-sha256": UNSIGNED_PAYLOAD,
            "x-amz-date": self._amz_date,
            **{name.lower(): " ".join(value.split()) for name, value in extra.items()},
        }
        names = sorted(fields)
        signed = ";".join(names)
        canonical = (
            f"{method}\n{encoded_path}\n{encoded_query}\n"
            + "".join(f"{name}:{fields[name]}\n" for name in names)
            + f"\n{signed}\n{UNSIGNED_PAYLOAD}"
        )
        return self._lines(
            canonical, signed, "".join(f"{name}: {fields[name]}\r\n" for name in sorted(extra))
        )

    def _lines(self, canonical: str, signed: str, extra_lines: str) -> str:
        to_sign = (
            f"AWS4-HMAC-SHA256\n{self._amz_date}\n{self._scope}\n"
            f"{hashlib.sha256(canonical.encode()).hexdigest()}"
        )
        signature = hmac.new(self._key, to_sign.encode(), hashlib.sha256).hexdigest()
        return (
            f"Host: {self.host}\r\n"
            f"x-amz-content-sha256: {UNSIGNED_PAYLOAD}\r\n"
            f"x-amz-date: {self._amz_date}\r\n"
            f"{extra_lines}"
            f"Authorization: AWS4-HMAC-SHA256 Credential={self._credential}, "
            f"SignedHeaders={signed}, Signature={signature}\r\n"
        )
