"""The web listener's safety net for response headers: a response whose headers hold a
CR, LF or other control character (a request value echoed without a check) becomes a
400 JSON error. Without it uvicorn refuses the header and drops the connection, and
the client gets no answer at all. Pure ASGI, so it costs one regex pass per response."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.middleware import Middleware

from core.jsonapi import ApiError
from core.strictparse import header_safe

log = logging.getLogger("folio.web")

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[MutableMapping[str, Any], Receive, Send], Awaitable[None]]


def headers_safe(headers: list[tuple[bytes, bytes]]) -> bool:
    # Names and values joined by tabs (allowed in a header value): one regex search.
    return header_safe(b"\t".join(part for pair in headers for part in pair).decode("latin-1"))


class HeaderGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refused = False

        async def guarded_send(message: Message) -> None:
            nonlocal refused
            if refused:
                return  # the body of the response that was replaced: dropped
            if message["type"] == "http.response.start" and not headers_safe(
                list(message.get("headers", []))
            ):
                refused = True
                log.warning(
                    "%s %s: refused a response header with control characters", scope["method"], scope["path"]
                )
                await _send_refusal(send)
                return
            await send(message)

        await self.app(scope, receive, guarded_send)


async def _send_refusal(send: Send) -> None:
    response = ApiError(
        400,
        "InvalidArgument",
        "A request value cannot be used in a response header: it has control characters.",
    ).response()
    await send(
        {"type": "http.response.start", "status": response.status_code, "headers": response.raw_headers}
    )
    await send({"type": "http.response.body", "body": response.body})


# For Starlette(middleware=[...]).
HEADER_GUARD = Middleware(HeaderGuard)
