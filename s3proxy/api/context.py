"""One S3 request as the handlers see it, and the response they return."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from core.accounts import Account
from s3proxy.api.errors import S3Error
from s3proxy.auth.sigv4 import AuthResult
from s3proxy.store.models import Bucket

Headers = list[tuple[bytes, bytes]]


def check_version_id(value: str, argument_name: str) -> None:
    """Folio's version ids are URL-safe base64 or "null": anything with a control or
    non-ASCII character is none of ours, and must not reach a response header."""
    if not (value.isascii() and value.isprintable()):
        raise S3Error(
            "InvalidArgument",
            "Invalid version id specified",
            extra={"ArgumentName": argument_name, "ArgumentValue": value},
        )


@dataclass
class Response:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    # A streamed body (GET of a stored object); `body` is ignored when set.
    stream: AsyncIterator[bytes] | None = None
    content_length: int | None = None

    @classmethod
    def xml(cls, body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        return cls(status=status, headers={"content-type": "application/xml", **(headers or {})}, body=body)


@dataclass
class RequestContext:
    scope: dict[str, Any]
    receive: Any
    method: str
    raw_path: str  # percent-encoded, as on the wire
    bucket_name: str | None
    key: str | None
    query: dict[str, str]
    query_string: str
    headers: dict[str, str]
    request_id: str
    operation: str = ""
    auth: AuthResult | None = None
    account: Account | None = None
    # The bucket of a bucket or object operation, found (and the caller's access to it
    # decided) by the dispatcher.
    bucket: Bucket | None = None
    # aws-chunked trailers, once the body has been read
    trailers: dict[str, str] = field(default_factory=dict)
    # The bucket came from the Host header (virtual-hosted-style), not the path.
    virtual_host: bool = False
    # Set once the last byte of the request body has been received.
    body_done: bool = False

    @property
    def has_body(self) -> bool:
        length = self.headers.get("content-length", "0").strip()
        return length not in ("0", "") or "transfer-encoding" in self.headers

    @property
    def resource(self) -> str:
        if self.bucket_name is None:
            return "/"
        return f"/{self.bucket_name}" + (f"/{self.key}" if self.key is not None else "")

    def version_id(self) -> str | None:
        """The `versionId` query parameter, checked before it can be echoed back in
        x-amz-version-id: a CR or LF there would make the server drop the connection."""
        value = self.query.get("versionId")
        if value is None:
            return None
        if not value:
            raise S3Error(
                "InvalidArgument",
                "Version id cannot be the empty string",
                extra={"ArgumentName": "versionId", "ArgumentValue": value},
            )
        check_version_id(value, "versionId")
        return value

    @property
    def account_id(self) -> str | None:
        """The caller's account id; None when the request is anonymous."""
        return self.account.id if self.account is not None else None

    def require_account(self) -> Account:
        assert self.account is not None, "authenticated routes only"
        return self.account
