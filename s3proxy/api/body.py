"""Streams a request body from ASGI into a store writer: decodes aws-chunked,
feeds the hashes, enforces Content-Length, and after the last byte checks
every integrity claim (x-amz-content-sha256, Content-MD5, x-amz-checksum-*)
before anything is stored."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from dataclasses import dataclass

from s3proxy.api.context import RequestContext
from s3proxy.api.errors import S3Error
from s3proxy.auth import checksums
from s3proxy.auth.chunked import ChunkedDecoder
from s3proxy.auth.sigv4 import PayloadMode
from s3proxy.store.writer import ObjectWriter


class ClientDisconnected(Exception):
    """The client went away mid-request: nothing to answer, nothing stored."""


@dataclass
class BodyPlan:
    """What a body must satisfy, decided from the headers before any byte is read."""

    content_length: int | None
    decoded_length: int | None
    checksum_request: checksums.ChecksumRequest
    content_md5: bytes | None
    signed_sha256: str | None
    streaming: bool

    @property
    def expected_length(self) -> int | None:
        return self.decoded_length if self.streaming else self.content_length


def plan_body(ctx: RequestContext, *, require_length: bool = True) -> BodyPlan:
    headers = ctx.headers
    raw_length = headers.get("content-length")
    content_length: int | None = None
    if raw_length is not None:
        if not raw_length.strip().isdigit():
            raise S3Error("InvalidArgument", "Content-Length must be a non-negative integer.")
        content_length = int(raw_length)
    elif require_length and "chunked" not in headers.get("transfer-encoding", "").lower():
        raise S3Error("MissingContentLength")
    auth = ctx.auth
    streaming = auth is not None and auth.payload_mode.is_streaming
    trailer_names = auth.trailer_names if auth is not None else ()
    md5_header = headers.get("content-md5")
    return BodyPlan(
        content_length=content_length,
        decoded_length=auth.decoded_content_length if streaming and auth is not None else None,
        checksum_request=checksums.parse_checksum_request(headers, trailer_names),
        content_md5=checksums.parse_content_md5(md5_header) if md5_header is not None else None,
        signed_sha256=auth.payload_sha256
        if auth is not None and auth.payload_mode is PayloadMode.SIGNED
        else None,
        streaming=streaming,
    )


class BodyReceiver:
    """`receive()` for request bodies with an idle timeout: one timer for the whole
    body, pushed back whenever bytes arrive (a timer per message costs more than a
    small PUT's other work)."""

    def __init__(self, ctx: RequestContext, idle_timeout: float) -> None:
        self.ctx = ctx
        self.idle_timeout = idle_timeout
        self._loop = asyncio.get_running_loop()
        self._deadline = self._loop.time() + idle_timeout
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task | None = None
        self._timed_out = False
        self._waiting = False

    def _on_timer(self) -> None:
        remaining = self._deadline - self._loop.time()
        if remaining > 0 or not self._waiting:
            # Only time spent waiting for the client counts, not our own disk writes.
            self._timer = self._loop.call_later(max(remaining, self.idle_timeout), self._on_timer)
            return
        self._timed_out = True
        if self._task is not None:
            self._task.cancel()

    async def receive(self) -> dict:
        self._deadline = self._loop.time() + self.idle_timeout
        if self._timer is None:
            self._task = asyncio.current_task()
            self._timer = self._loop.call_later(self.idle_timeout, self._on_timer)
        self._waiting = True
        try:
            message = await self.ctx.receive()
        except asyncio.CancelledError as exc:
            if self._timed_out:
                raise S3Error(
                    "RequestTimeout",
                    "Your socket connection to the server was not read from or written to within the "
                    "timeout period.",
                ) from exc
            raise
        finally:
            self._waiting = False
        if message["type"] == "http.disconnect":
            self.close()
            raise ClientDisconnected()
        if not message.get("more_body", False):
            self.ctx.body_done = True
            self.close()
        return message

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


async def stream_into(
    ctx: RequestContext, plan: BodyPlan, writer: ObjectWriter, *, idle_timeout: float
) -> None:
    """Read the whole body into `writer` (hashers already attached by the caller)."""
    decoder = ChunkedDecoder(ctx.auth) if plan.streaming and ctx.auth is not None else None
    receiver = BodyReceiver(ctx, idle_timeout)
    received = 0
    more = True
    try:
        while more:
            message = await receiver.receive()
            data = message.get("body", b"")
            more = message.get("more_body", False)
            if data:
                received += len(data)
                if plan.content_length is not None and received > plan.content_length:
                    raise S3Error("IncompleteBody", "The request body is longer than its Content-Length.")
                if decoder is None:
                    await writer.write(data)
                else:
                    for piece in decoder.feed(data):
                        await writer.write(piece)
    finally:
        receiver.close()
    if plan.content_length is not None and received < plan.content_length:
        raise S3Error("IncompleteBody")
    ctx.trailers = decoder.finish() if decoder is not None else {}
    if plan.expected_length is not None and writer.size != plan.expected_length:
        raise S3Error("IncompleteBody")
    await writer.finish()


def make_hashers(plan: BodyPlan) -> tuple[checksums.Checksummer, hashlib._Hash | None]:
    checksummer = checksums.Checksummer(plan.checksum_request.algorithms())
    sha256 = hashlib.sha256() if plan.signed_sha256 is not None else None
    return checksummer, sha256


def verify_integrity(
    ctx: RequestContext,
    plan: BodyPlan,
    writer: ObjectWriter,
    checksummer: checksums.Checksummer,
    sha256: hashlib._Hash | None,
) -> dict[str, str]:
    """Check every claim about the bytes; returns the computed checksums to store."""
    if sha256 is not None and sha256.hexdigest() != plan.signed_sha256:
        raise S3Error("XAmzContentSHA256Mismatch")
    if plan.content_md5 is not None and writer.md5.digest() != plan.content_md5:
        raise S3Error("BadDigest", "The Content-MD5 you specified did not match what was received.")
    computed = checksummer.digests()
    expected = checksums.expected_with_trailers(plan.checksum_request, ctx.trailers)
    checksums.verify(expected, computed)
    return computed


async def read_small_body(ctx: RequestContext, limit: int, *, idle_timeout: float) -> bytes:
    """A whole small body in memory (XML documents), integrity-checked."""
    plan = plan_body(ctx, require_length=False)
    if plan.expected_length is not None and plan.expected_length > limit:
        raise S3Error("MaxMessageLengthExceeded")
    decoder = ChunkedDecoder(ctx.auth) if plan.streaming and ctx.auth is not None else None
    data = bytearray()
    receiver = BodyReceiver(ctx, idle_timeout)
    received = 0
    more = True
    try:
        while more:
            message = await receiver.receive()
            chunk = message.get("body", b"")
            more = message.get("more_body", False)
            received += len(chunk)
            if plan.content_length is not None and received > plan.content_length:
                raise S3Error("IncompleteBody", "The request body is longer than its Content-Length.")
            for piece in decoder.feed(chunk) if decoder is not None else [chunk]:
                data += piece
            if len(data) > limit:
                raise S3Error("MaxMessageLengthExceeded")
    finally:
        receiver.close()
    if plan.content_length is not None and received < plan.content_length:
        raise S3Error("IncompleteBody")
    trailers = decoder.finish() if decoder is not None else {}
    body = bytes(data)
    if plan.signed_sha256 is not None and hashlib.sha256(body).hexdigest() != plan.signed_sha256:
        raise S3Error("XAmzContentSHA256Mismatch")
    if plan.content_md5 is not None and hashlib.md5(body).digest() != plan.content_md5:
        raise S3Error("BadDigest", "The Content-MD5 you specified did not match what was received.")
    checksummer = checksums.Checksummer(plan.checksum_request.algorithms())
    checksummer.update(body)
    checksums.verify(checksums.expected_with_trailers(plan.checksum_request, trailers), checksummer.digests())
    return body


def b64_md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()
