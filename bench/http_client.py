"""A lean keep-alive HTTP/1.1 client on `asyncio.BufferedProtocol`, for the load generator.

One connection carries one request at a time (no pipelining). Responses are read by
Content-Length, chunked encoding or connection close, straight out of one reusable
receive buffer: a body the caller does not keep is only counted, never copied, so a
256 MiB GET costs the client next to nothing. Large request bodies are written from
one caller-owned buffer, in pieces, honouring the transport's flow control, so the
client never holds more than that buffer plus the transport's high-water mark.
"""

from __future__ import annotations

import asyncio
import re
import socket
from typing import cast

_READ_BUFFER = 1 << 20
_WRITE_HIGH_WATER = 4 << 20
_SMALL_BODY = 64 << 10
_HEAD_PIECE = 8 << 10
_MAX_HEAD = 256 << 10

_CONTENT_LENGTH = re.compile(r"^content-length:[ \t]*(\d+)", re.M | re.I)
_CONNECTION = re.compile(r"^connection:[ \t]*([\w-]+)", re.M | re.I)
_CHUNKED = re.compile(r"^transfer-encoding:.*chunked", re.M | re.I)

_IDLE, _HEAD, _BODY, _UNTIL_CLOSE, _CHUNK_LINE, _CHUNK_DATA, _CHUNK_CRLF, _TRAILER = range(8)


class Response:
    """Status, the raw head, the body when kept, and how many body bytes arrived."""

    __slots__ = ("status", "head", "body", "received")

    def __init__(self, status: int, head: str, body: bytes, received: int) -> None:
        self.status = status
        self.head = head
        self.body = body
        self.received = received

    @property
    def headers(self) -> dict[str, str]:
        """Lower-cased header names to values (parsed on demand: the hot path never needs them)."""
        headers: dict[str, str] = {}
        for line in self.head.split("\r\n")[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return headers


class HttpConnection(asyncio.BufferedProtocol):
    """One client connection; `request()` sends a request and returns its `Response`."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._view = memoryview(bytearray(_READ_BUFFER))
        self._state = _IDLE
        self._head = bytearray()
        self._line = bytearray()
        self._body = bytearray()
        self._keep_body = False
        self._no_body = False
        self._remaining = 0
        self._received = 0
        self._status = 0
        self._raw_head = ""
        self._waiter: asyncio.Future[Response] | None = None
        self._drain: asyncio.Future[None] | None = None
        self._paused = False
        self.closed = False
        self._must_close = False

    # -- protocol callbacks ---------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._transport.set_write_buffer_limits(high=_WRITE_HIGH_WATER)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._state == _UNTIL_CLOSE:
            self._finish()
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionError(f"connection closed mid-response: {exc}"))
        self._wake_writer(ConnectionError("connection closed"))

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self._wake_writer(None)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._view

    def buffer_updated(self, nbytes: int) -> None:
        self._feed(self._view[:nbytes])

    # -- parsing --------------------------------------------------------------------
    def _feed(self, data: memoryview) -> None:
        while data:
            state = self._state
            if state in (_BODY, _CHUNK_DATA):
                take = min(len(data), self._remaining)
                if self._keep_body:
                    self._body += data[:take]
                self._received += take
                self._remaining -= take
                data = data[take:]
                if self._remaining == 0:
                    if state == _BODY:
                        self._finish()
                        return
                    self._state, self._remaining = _CHUNK_CRLF, 2
            elif state == _HEAD:
                # Append a piece at a time so the body bytes after the head are never copied.
                before = len(self._head)
                self._head += data[:_HEAD_PIECE]
                end = self._head.find(b"\r\n\r\n", max(0, before - 3))
                if end < 0:
                    data = data[_HEAD_PIECE:]
                    if len(self._head) > _MAX_HEAD:
                        raise ValueError("response head too large")
                    continue
                data = data[end + 4 - before :]
                self._parse_head(bytes(self._head[:end]))
                if self._state == _IDLE:
                    return
            elif state in (_CHUNK_LINE, _TRAILER):
                # Size lines are short: take a little at a time so chunk data is never copied here.
                self._line += data[:128]
                data = data[128:]
                rest = self._advance_chunk_lines()
                if rest:
                    self._feed(rest)
            elif state == _CHUNK_CRLF:
                take = min(len(data), self._remaining)
                self._remaining -= take
                data = data[take:]
                if self._remaining == 0:
                    self._state = _CHUNK_LINE
            elif state == _UNTIL_CLOSE:
                if self._keep_body:
                    self._body += data
                self._received += len(data)
                return
            else:  # bytes nobody asked for: the connection is no longer usable
                self._must_close = True
                return

    def _advance_chunk_lines(self) -> memoryview:
        """Consume chunk-size lines and the trailer from `_line`; return the chunk bytes that follow."""
        while True:
            if self._state == _TRAILER:
                if self._line.startswith(b"\r\n") or b"\r\n\r\n" in self._line:
                    self._finish()
                return memoryview(b"")
            end = self._line.find(b"\r\n")
            if end < 0:
                return memoryview(b"")
            size = int(bytes(self._line[:end]).split(b";", 1)[0], 16)
            rest = bytes(self._line[end + 2 :])
            self._line.clear()
            if size == 0:
                self._state = _TRAILER
                self._line += rest
                continue
            self._state, self._remaining = _CHUNK_DATA, size
            return memoryview(rest)

    def _parse_head(self, head: bytes) -> None:
        text = self._raw_head = head.decode("latin-1")
        self._status = int(text[9:12])
        connection = _CONNECTION.search(text)
        closing = connection.group(1).lower() if connection else ""
        if closing == "close" or (text.startswith("HTTP/1.0") and closing != "keep-alive"):
            self._must_close = True
        if self._status >= 300:
            self._keep_body = True
        length = _CONTENT_LENGTH.search(text)
        if self._no_body or self._status in (204, 304) or 100 <= self._status < 200:
            self._finish()
        elif _CHUNKED.search(text):
            self._state = _CHUNK_LINE
        elif length:
            self._remaining = int(length.group(1))
            self._state = _BODY
            if self._remaining == 0:
                self._finish()
        else:
            self._state = _UNTIL_CLOSE
            self._must_close = True

    def _finish(self) -> None:
        self._state = _IDLE
        response = Response(self._status, self._raw_head, bytes(self._body), self._received)
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(response)
        if self._must_close and self._transport is not None:
            self.closed = True  # now, not at connection_lost: the caller must not reuse it
            self._transport.close()

    def _wake_writer(self, exc: Exception | None) -> None:
        drain, self._drain = self._drain, None
        if drain is not None and not drain.done():
            if exc is None:
                drain.set_result(None)
            else:
                drain.set_exception(exc)

    # -- requests -------------------------------------------------------------------
    def _begin(self, keep_body: bool, no_body: bool) -> asyncio.Future[Response]:
        if self.closed or self._transport is None:
            raise ConnectionError("connection is closed")
        self._state = _HEAD
        self._head.clear()
        self._line.clear()
        self._body = bytearray()
        self._keep_body = keep_body
        self._no_body = no_body
        self._received = 0
        self._waiter = self._loop.create_future()
        return self._waiter

    async def request(
        self, head: bytes, body: bytes | memoryview = b"", *, keep_body: bool = False, no_body: bool = False
    ) -> Response:
        """Send `head` (request line and headers, CRLF-terminated) and `body`; await the response."""
        waiter = self._begin(keep_body, no_body)
        assert self._transport is not None
        if len(body) <= _SMALL_BODY:
            self._transport.write(head + bytes(body))
        else:
            self._transport.write(head)
            self._transport.write(body)
        return await waiter

    async def request_streamed(
        self, head: bytes, piece: memoryview, total: int, *, keep_body: bool = False
    ) -> Response:
        """Send a body of `total` bytes by writing `piece` over and over (the last one cut short)."""
        waiter = self._begin(keep_body, False)
        transport = self._transport
        assert transport is not None
        transport.write(head)
        left = total
        while left > 0 and not waiter.done():
            n = min(left, len(piece))
            transport.write(piece[:n])
            left -= n
            if self._paused:
                self._drain = self._loop.create_future()
                await self._drain
        if left > 0:  # the server answered before taking the whole body
            self._must_close = True
        return await waiter

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


async def connect(host: str, port: int) -> HttpConnection:
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_connection(HttpConnection, host, port)
    return protocol
