"""Request bodies on the web listener: read within a size limit, parsed as JSON with
a nesting limit, and multipart boundaries checked, so that no body a client sends can
cost a 500, a stall or a gigabyte.

- A body with a limit is refused from its Content-Length before a byte of it is read,
  and a chunked one (no Content-Length) as soon as it passes the limit: the 413 says
  `Connection: close`, so the server answers and hangs up instead of taking the rest.
- JSON nested deeper than MAX_JSON_DEPTH is refused before `json.loads` sees it (30,000
  `[` raise RecursionError there, and any later recursive code would meet it again), and
  so is JSON with more than MAX_JSON_CONTAINERS arrays and objects (memory).
- A client that hangs up mid-body is normal: one INFO line, and an ApiError whose
  answer nobody reads, so no handler lets Starlette's ClientDisconnect escape as a 500."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator
from itertools import accumulate
from typing import Any

from python_multipart.multipart import parse_options_header
from starlette.requests import ClientDisconnect, Request

from core.jsonapi import ApiError
from core.strictparse import ascii_int

log = logging.getLogger("folio.web")

MAX_JSON_DEPTH = 64
# RFC 2046 section 5.1.1: 1 to 70 characters from `bchars`, the last one not a space.
MAX_BOUNDARY = 70
_BOUNDARY = re.compile(rb"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")

# What counts for nesting and size: brackets outside strings, found with C-speed bytes
# operations (never a Python loop over the body): escaped backslashes and quotes go
# first, then every string (an unterminated one runs to the end: the pattern never fails
# and never rescans), then every byte that is not a bracket.
_STRING = re.compile(rb'"[^"]*(?:"|\Z)')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_DEPTH_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}.__getitem__
# Arrays and objects in one body: each costs Python 50 to 250 bytes once parsed, so 20 MB
# of `[{},{},...]` would be about a gigabyte. Real documents' data stays far below this.
MAX_JSON_CONTAINERS = 250_000
# Bodies above this are checked and parsed in a thread: each step is one C call that
# holds the GIL, but between the steps the event loop gets it back (20 MB: 0.1 to 0.4 s).
PARSE_INLINE_BYTES = 256 * 1024


class BodyProblem(ApiError):
    """A request body refused: 400 unless said otherwise (413 for size)."""

    def __init__(
        self,
        message: str,
        status: int = 400,
        code: str = "BadRequest",
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(status, code, message, details, headers)


class ClientGone(BodyProblem):
    """The client hung up before its body was complete; nobody reads this answer."""

    def __init__(self) -> None:
        super().__init__("The client closed the connection before the body was complete.")


def too_large(limit: int, what: str = "Request bodies") -> BodyProblem:
    # `Connection: close`: the server answers now and closes rather than read (and
    # throw away) the rest of a body it has refused.
    return BodyProblem(
        f"{what} are limited to {limit} bytes.",
        413,
        "PayloadTooLarge",
        {"limit": limit},
        {"connection": "close"},
    )


def declared_length(request: Request, limit: int, what: str = "Request bodies") -> int | None:
    """The Content-Length, or None for a chunked body; over `limit` is a 413 at once."""
    raw = request.headers.get("content-length")
    if raw is None:
        return None
    length = ascii_int(raw, strip=True)
    if length is None:
        raise BodyProblem("Content-Length is not a number.")
    if length > limit:
        raise too_large(limit, what)
    return length


async def stream_limited(request: Request, limit: int, what: str = "Request bodies") -> AsyncIterator[bytes]:
    """The body's chunks, refused (413) from its Content-Length before any is read, or
    as soon as a chunked body passes `limit`: nothing past the limit is read."""
    declared_length(request, limit, what)
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise too_large(limit, what)
            if chunk:
                yield chunk
    except ClientDisconnect:
        log.info("%s %s: the client hung up after %d body bytes", request.method, request.url.path, received)
        raise ClientGone() from None


async def read_limited(request: Request, limit: int, what: str = "Request bodies") -> bytes:
    body = bytearray()
    async for chunk in stream_limited(request, limit, what):
        body += chunk
    return bytes(body)


def _utf8(raw: bytes | str, what: str) -> bytes:
    if isinstance(raw, str):
        return raw.encode("utf-8", "surrogatepass")
    encoding = json.detect_encoding(raw)  # json.loads accepts UTF-8, -16 and -32 bytes
    if encoding == "utf-8":
        return raw
    try:
        return raw.decode(encoding, "surrogatepass").encode("utf-8", "surrogatepass")
    except UnicodeDecodeError as exc:
        raise BodyProblem(f"{what} is not valid JSON (not UTF-8 text).") from exc


def _shape_problem(data: bytes, what: str) -> tuple[str, int] | None:
    if data.count(b"[") + data.count(b"{") <= MAX_JSON_DEPTH:
        return None  # neither deep nor large, whatever the strings hold
    unescaped = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    brackets = _STRING.sub(b"", unescaped).translate(None, _NOT_BRACKETS)
    if brackets.count(b"[") + brackets.count(b"{") > MAX_JSON_CONTAINERS:
        return f"{what} has more than {MAX_JSON_CONTAINERS} arrays and objects.", MAX_JSON_CONTAINERS
    if max(accumulate(map(_DEPTH_STEP, brackets)), default=0) > MAX_JSON_DEPTH:
        return f"{what} is nested more than {MAX_JSON_DEPTH} levels deep.", MAX_JSON_DEPTH
    return None


def json_value(raw: bytes | str, what: str = "The body", *, field: str | None = None) -> Any:
    """Any JSON value; 400 for invalid JSON, nesting past MAX_JSON_DEPTH, more than
    MAX_JSON_CONTAINERS arrays and objects, or numbers past CPython's digit limit.
    An empty body is an empty object. `field` names the request field in the error."""
    named = {"field": field} if field else {}
    if not raw:
        return {}
    problem = _shape_problem(_utf8(raw, what), what)
    if problem is not None:
        message, limit = problem
        raise BodyProblem(message, details={**named, "limit": limit})
    try:
        return json.loads(raw)
    except RecursionError as exc:  # unbalanced brackets, deep enough to reach the limit
        raise BodyProblem(f"{what} is not valid JSON.", details=named) from exc
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, integers too long for int()
        raise BodyProblem(f"{what} is not valid JSON.", details={**named, "reason": str(exc)[:200]}) from exc


def json_object(raw: bytes | str, what: str = "The body", *, field: str | None = None) -> dict[str, Any]:
    value = json_value(raw, what, field=field)
    if not isinstance(value, dict):
        raise BodyProblem(f"{what} must be a JSON object.", details={"field": field} if field else {})
    return value


async def read_json_object(request: Request, limit: int) -> dict[str, Any]:
    """A JSON object body of at most `limit` bytes."""
    raw = await read_limited(request, limit, "JSON bodies")
    if len(raw) > PARSE_INLINE_BYTES:
        return await asyncio.to_thread(json_object, raw)
    return json_object(raw)


def multipart_boundary(content_type: str) -> bytes:
    """The boundary of a multipart/form-data Content-Type, checked against RFC 2046
    (python-multipart raises its own error past 256 bytes, mid-parse)."""
    kind, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or boundary is None:
        raise BodyProblem("A multipart upload needs Content-Type: multipart/form-data with a boundary.")
    if not _BOUNDARY.fullmatch(boundary):
        raise BodyProblem(
            f"The multipart boundary must be 1 to {MAX_BOUNDARY} characters allowed by RFC 2046.",
            details={"limit": MAX_BOUNDARY},
        )
    return boundary
