"""Streams a request body from ASGI into a store writer: decodes aws-chunked,
feeds the hashes, enforces Content-Length, and after the last byte checks
every integrity claim (x-amz-content-sha256, Content-MD5, x-amz-checksum-*)
before anything is stored."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from core.strictparse import ascii_int
from s3proxy.api.context import RequestContext
from s3proxy.api.errors import S3Error
from s3proxy.auth import checksums
from s3proxy.auth.chunked import ChunkedDecoder
from s3proxy.auth.sigv4 import PayloadMode
from s3proxy.store.engine import Store
from s3proxy.store.quota import Reservation
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


def plan_body(ctx: RequestContext, *, require_length: bool = True, checksum_headers: bool = True) -> BodyPlan:
    headers = ctx.headers
    claims = headers
    if not checksum_headers:
        claims = {k: v for k, v in headers.items() if not k.startswith(checksums.HEADER_PREFIX)}
    raw_length = headers.get("content-length")
    content_length: int | None = None
    if raw_length is not None:
        content_length = ascii_int(raw_length, strip=True)
        if content_length is None:
            raise S3Error("InvalidArgument", "Content-Length must be a non-negative integer.")
    elif require_length and "chunked" not in headers.get("transfer-encoding", "").lower():
        raise S3Error("MissingContentLength")
    auth = ctx.auth
    streaming = auth is not None and auth.payload_mode.is_streaming
    trailer_names = auth.trailer_names if auth is not None else ()
    md5_header = headers.get("content-md5")
    return BodyPlan(
        content_length=content_length,
        decoded_length=auth.decoded_content_length if streaming and auth is not None else None,
        checksum_request=checksums.parse_checksum_request(claims, trailer_names),
        content_md5=checksums.parse_content_md5(md5_header) if md5_header is not None else None,
        signed_sha256=auth.payload_sha256
        if auth is not None and auth.payload_mode is PayloadMode.SIGNED
        else None,
        streaming=streaming,
    )


class IdleWatchdog:
    """Times out request bodies left idle: one periodic check for all of them, not a
    timer per request (creating one cost more than the rest of a small PUT)."""

    def __init__(self, idle_timeout: float) -> None:
        self.idle_timeout = idle_timeout
        self.interval = min(1.0, idle_timeout / 4)
        self._waiting: dict[BodyReceiver, float] = {}
        self._timer: asyncio.TimerHandle | None = None

    def started(self, receiver: BodyReceiver, loop: asyncio.AbstractEventLoop) -> None:
        self._waiting[receiver] = loop.time() + self.idle_timeout
        if self._timer is None:
            self._timer = loop.call_later(self.interval, self._check, loop)

    def ended(self, receiver: BodyReceiver) -> None:
        self._waiting.pop(receiver, None)

    def _check(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        for receiver, deadline in list(self._waiting.items()):
            if now >= deadline:
                del self._waiting[receiver]
                receiver.expire()
        self._timer = loop.call_later(self.interval, self._check, loop) if self._waiting else None


class BodyReceiver:
    """`receive()` for a request body, answered RequestTimeout when the client leaves
    it idle longer than the watchdog allows (time spent writing to disk does not count)."""

    def __init__(self, ctx: RequestContext, watchdog: IdleWatchdog) -> None:
        self.ctx = ctx
        self.watchdog = watchdog
        self._task: asyncio.Task | None = None
        self._timed_out = False

    def expire(self) -> None:
        self._timed_out = True
        if self._task is not None:
            self._task.cancel()

    async def receive(self) -> dict:
        self._task = asyncio.current_task()
        self.watchdog.started(self, asyncio.get_running_loop())
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
            self.watchdog.ended(self)
        if message["type"] == "http.disconnect":
            raise ClientDisconnected()
        if not message.get("more_body", False):
            self.ctx.body_done = True
        return message


Consume = Callable[[bytes | memoryview], Awaitable[None]]


async def _pump(ctx: RequestContext, plan: BodyPlan, watchdog: IdleWatchdog, consume: Consume) -> None:
    """Every payload byte of the body to `consume`, aws-chunked decoded, with the
    declared lengths enforced; the trailers end up in `ctx.trailers`."""
    decoder = ChunkedDecoder(ctx.auth) if plan.streaming and ctx.auth is not None else None
    receiver = BodyReceiver(ctx, watchdog)
    received = 0
    more = True
    while more:
        message = await receiver.receive()
        data = message.get("body", b"")
        more = message.get("more_body", False)
        if data:
            received += len(data)
            if plan.content_length is not None and received > plan.content_length:
                raise S3Error("IncompleteBody", "The request body is longer than its Content-Length.")
            if decoder is None:
                await consume(data)
            else:
                for piece in decoder.feed(data):
                    await consume(piece)
    if plan.content_length is not None and received < plan.content_length:
        raise S3Error("IncompleteBody")
    ctx.trailers = decoder.finish() if decoder is not None else {}


def verify_integrity(
    ctx: RequestContext, plan: BodyPlan, md5_digest: bytes, sha256_hex: str | None, computed: dict[str, str]
) -> None:
    """Check every claim about the bytes: signed SHA-256, Content-MD5, checksums."""
    if sha256_hex is not None and sha256_hex != plan.signed_sha256:
        raise S3Error("XAmzContentSHA256Mismatch")
    if plan.content_md5 is not None and md5_digest != plan.content_md5:
        raise S3Error("BadDigest", "The Content-MD5 you specified did not match what was received.")
    checksums.verify(checksums.expected_with_trailers(plan.checksum_request, ctx.trailers), computed)


async def receive_object_body(
    ctx: RequestContext,
    store: Store,
    watchdog: IdleWatchdog,
    *,
    reservation: Reservation | None = None,
    also_compute: Iterable[str] = (),
) -> tuple[ObjectWriter, dict[str, str]]:
    """Stream the body into a new store writer, hashing as it goes, and check it.
    Returns the finished writer (not yet stored) and the checksums computed: the
    requested ones plus `also_compute` (a multipart upload's algorithm). With a
    quota `reservation`, a declared length is reserved before any byte is read
    (QuotaExceeded costs no transfer); an undeclared one as the bytes arrive.
    On any failure nothing is left behind."""
    plan = plan_body(ctx)
    if reservation is not None and plan.expected_length is not None:
        await reservation.require(plan.expected_length)
    checksummer = checksums.Checksummer(plan.checksum_request.algorithms() | set(also_compute))
    sha256 = hashlib.sha256() if plan.signed_sha256 is not None else None
    writer = store.new_writer([h for h in (checksummer, sha256) if h is not None])
    consume: Consume = writer.write
    if reservation is not None and plan.expected_length is None:

        async def consume(piece: bytes | memoryview) -> None:
            await reservation.require(writer.size + len(piece))
            await writer.write(piece)

    try:
        await _pump(ctx, plan, watchdog, consume)
        if plan.expected_length is not None and writer.size != plan.expected_length:
            raise S3Error("IncompleteBody")
        await writer.finish()
        computed = checksummer.digests()
        verify_integrity(ctx, plan, writer.md5.digest(), sha256.hexdigest() if sha256 else None, computed)
    except BaseException:
        await writer.aclose_pending()
        writer.abort()
        raise
    return writer, computed


async def read_small_body(
    ctx: RequestContext, limit: int, *, watchdog: IdleWatchdog, checksum_headers_describe_body: bool = True
) -> bytes:
    """A whole small body in memory (XML documents), integrity-checked. On
    CompleteMultipartUpload the x-amz-checksum-* headers describe the object being
    completed, not the XML (checksum_headers_describe_body=False)."""
    plan = plan_body(ctx, require_length=False, checksum_headers=checksum_headers_describe_body)
    if plan.expected_length is not None and plan.expected_length > limit:
        raise S3Error("MaxMessageLengthExceeded")
    data = bytearray()

    async def collect(piece: bytes | memoryview) -> None:
        data.extend(piece)
        if len(data) > limit:
            raise S3Error("MaxMessageLengthExceeded")

    await _pump(ctx, plan, watchdog, collect)
    body = bytes(data)
    checksummer = checksums.Checksummer(plan.checksum_request.algorithms())
    checksummer.update(body)
    sha256 = hashlib.sha256(body).hexdigest() if plan.signed_sha256 is not None else None
    verify_integrity(ctx, plan, hashlib.md5(body).digest(), sha256, checksummer.digests())
    return body
