"""Bounded concurrency per listener (`[server] max_concurrent_requests`, 0: no bound).

A listener serves at most that many requests at once; one more is answered at once
with 503 and `Retry-After`: S3's `SlowDown` error on the S3 listener (the code every
AWS SDK treats as throttling and retries with backoff), the JSON error on the web
listener. A burst then turns into retries spread over the SDKs' backoff instead of
queues that grow memory and latency without bound. Refusing costs no body read: a
request with a body is answered before it is read, and its connection closed (the
client may be sending it still).

The count is a plain integer: the event loop is the only writer."""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any
from xml.sax.saxutils import escape

Message = MutableMapping[str, Any]
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Seconds a refused client is told to wait. The SDKs back off on their own schedule
# (AWS standard retries: up to 1 s, then 2 s, ...); this is for the clients that read it.
RETRY_AFTER_SECONDS = 1
SLOW_DOWN_MESSAGE = "Please reduce your request rate."
Refusal = Callable[[Scope], tuple[list[tuple[bytes, bytes]], bytes]]


def _has_body(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() not in (b"0", b"")):
            return True
    return False


def s3_slow_down(scope: Scope) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """S3's 503 SlowDown as S3 writes it, with a request id of its own."""
    request_id = scope.setdefault("folio.request_id", "SLOWDOWN" + secrets.token_hex(4).upper())
    # The path as sent (percent-encoded, so plain ASCII: no character XML refuses).
    raw_path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1").split("?", 1)[0]
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>SlowDown</Code><Message>{SLOW_DOWN_MESSAGE}</Message>"
        f"<Resource>{escape(raw_path)}</Resource><RequestId>{request_id}</RequestId></Error>"
    ).encode()
    headers = [
        (b"content-type", b"application/xml"),
        (b"x-amz-request-id", request_id.encode()),
        (b"x-amz-id-2", request_id.encode()),
    ]
    return headers, body


def web_busy(scope: Scope) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """The JSON APIs' error format (seed 001) for the same refusal."""
    body = json.dumps(
        {
            "error": {
                "code": "SlowDown",
                "message": f"The server is busy. {SLOW_DOWN_MESSAGE} Retry after Retry-After seconds.",
                "details": {"retryAfterSeconds": RETRY_AFTER_SECONDS},
            }
        },
        separators=(",", ":"),
    ).encode()
    return [(b"content-type", b"application/json")], body


class ConcurrencyLimit:
    def __init__(self, app: ASGIApp, limit: int, refusal: Refusal, exempt: Iterable[str] = ()) -> None:
        """`exempt`: paths always served (health checks: a load balancer must see the
        process alive while it sheds load)."""
        if limit <= 0:
            raise ValueError("the bound must be positive (0 means: do not install the limit)")
        self.app = app
        self.limit = limit
        self.refusal = refusal
        self.exempt = frozenset(exempt)
        self.active = 0
        self.refused = 0  # since start, for /metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        if self.active >= self.limit:
            self.refused += 1
            await self._refuse(scope, send)
            return
        self.active += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.active -= 1

    async def _refuse(self, scope: Scope, send: Send) -> None:
        scope["folio.overloaded"] = True
        headers, body = self.refusal(scope)
        headers += [
            (b"retry-after", str(RETRY_AFTER_SECONDS).encode()),
            (b"content-length", str(len(body)).encode()),
        ]
        if _has_body(scope):
            # Its body is not read: the connection cannot carry another request.
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})
