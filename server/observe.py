"""What each request cost, for /metrics and the access log: an ASGI middleware around
each listener's application.

Per request it keeps only plain numbers in a dict on the event loop: one entry per
(listener, operation) with counts by status class, a latency histogram as bucket
counts, and bytes in and out. No locks and no prometheus_client call on the request's
path; the metrics collector (server/metrics.py) turns these numbers into Prometheus
families when /metrics is scraped.

The operation of an S3 request is the dispatcher's (`PutObject`, `GetObject`, ...: the
S3 app leaves its request context in the scope as "folio.s3"); of a web request, the
method and the route template that matched (`GET /api/img/{bucket}/{path:path}`), so
neither keys nor ids make new series."""

from __future__ import annotations

import itertools
import logging
import secrets
import time
from bisect import bisect_left
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from core.acting import current_writer
from server.access_log import AccessLog, iso_time

log = logging.getLogger("folio.access")

Message = MutableMapping[str, Any]
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Latency histogram bounds in seconds (Prometheus `le`): from a cached small GET to a
# multi-GiB upload.
LATENCY_BOUNDS: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
)
# Status classes, indexed by status // 100; index 0: no response was sent (the client
# went away first, or the application failed before answering).
STATUS_CLASSES = ("none", "1xx", "2xx", "3xx", "4xx", "5xx")
# Web methods that name an operation; anything else (a client may send any token) is
# "OTHER", so a client cannot make new series.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
# What a request the concurrency bound refused is counted as (it never reached routing).
OVERLOADED = "(overloaded)"
# Where the S3 app leaves its request context in the scope. The context holds the scope
# too: the observer removes it once read, or every request would leave a reference cycle
# for the garbage collector (measured: 20% more CPU per small GET).
S3_CONTEXT = "folio.s3"


@dataclass(slots=True)
class OperationStats:
    """Totals of one (listener, operation) since start."""

    by_class: list[int] = field(default_factory=lambda: [0] * len(STATUS_CLASSES))
    # Non-cumulative bucket counts; the last one is +Inf.
    buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BOUNDS) + 1))
    seconds: float = 0.0
    bytes_in: int = 0
    bytes_out: int = 0


class RequestStats:
    """Every listener's request totals (written on the event loop, read by the collector)."""

    def __init__(self) -> None:
        self.operations: dict[tuple[str, str], OperationStats] = {}
        self.in_flight: dict[str, int] = {}

    def record(
        self, listener: str, operation: str, status: int, bytes_in: int, bytes_out: int, seconds: float
    ) -> None:
        key = (listener, operation)
        stats = self.operations.get(key)
        if stats is None:
            stats = self.operations[key] = OperationStats()
        status_class = status // 100
        stats.by_class[status_class if 0 < status_class < 6 else 0] += 1
        stats.buckets[bisect_left(LATENCY_BOUNDS, seconds)] += 1
        stats.seconds += seconds
        stats.bytes_in += bytes_in
        stats.bytes_out += bytes_out

    def snapshot(self) -> list[tuple[tuple[str, str], OperationStats]]:
        """A copy taken in one step (list() of a dict holds the GIL throughout): the
        collector runs on another thread than the loop that writes."""
        return [
            (key, OperationStats(list(s.by_class), list(s.buckets), s.seconds, s.bytes_in, s.bytes_out))
            for key, s in list(self.operations.items())
        ]


@dataclass(frozen=True)
class Described:
    """Who did what, for the access log (the metrics only need `operation`)."""

    operation: str
    request_id: str | None = None
    bucket: str | None = None
    key: str | None = None
    account: str | None = None
    principal: str | None = None


def s3_operation(scope: Scope) -> str:
    if scope.get("folio.overloaded"):
        return OVERLOADED
    ctx = scope.get(S3_CONTEXT)
    if ctx is None:
        return "(unparsed)"
    return ctx.operation or "(unresolved)"


def describe_s3(scope: Scope) -> Described:
    ctx = scope.get(S3_CONTEXT)
    if ctx is None:
        return Described(s3_operation(scope), scope.get("folio.request_id"))
    principal = ctx.auth.access_key if ctx.auth is not None else "anonymous"
    return Described(
        s3_operation(scope),
        ctx.request_id,
        ctx.bucket_name,
        ctx.key,
        ctx.account.id if ctx.account is not None else None,
        principal,
    )


def web_operation(scope: Scope) -> str:
    if scope.get("folio.overloaded"):
        return OVERLOADED
    method = scope["method"] if scope["method"] in METHODS else "OTHER"
    template = scope.get("folio.operation")
    if template is None:
        route = scope.get("route")
        template = getattr(route, "path", None) or "(unmatched)"
    return f"{method} {template}"


# (scope, the principal the request's key or session check recorded) -> (account id, principal)
Identify = Callable[[Scope, str | None], tuple[str | None, str | None]]


def web_describer(identify: Identify) -> Callable[[Scope], Described]:
    """`identify` finds the account behind the request's principal (an access key,
    "dashboard" and its session cookie, a document key), for the access log."""

    def describe(scope: Scope) -> Described:
        params = scope.get("path_params") or {}
        # Set by act_as() in this request's own task (contexts flow back up awaits).
        account, principal = identify(scope, current_writer())
        return Described(
            web_operation(scope),
            scope.get("folio.request_id"),
            params.get("bucket"),
            params.get("key") or params.get("path"),
            account,
            principal,
        )

    return describe


class Observe:
    """Counts each request of one listener into `stats`, and writes its access-log
    line when there is a log. Web responses get an `x-request-id` header (S3 ones have
    `x-amz-request-id` already)."""

    def __init__(
        self,
        app: ASGIApp,
        listener: str,
        stats: RequestStats,
        operation_of: Callable[[Scope], str],
        describe: Callable[[Scope], Described],
        access_log: AccessLog | None = None,
        *,
        add_request_id: bool = False,
    ) -> None:
        self.app = app
        self.listener = listener
        self.stats = stats
        self.operation_of = operation_of
        self.describe = describe
        self.access_log = access_log
        self.add_request_id = add_request_id
        stats.in_flight[listener] = 0
        self._id_prefix = secrets.token_hex(4).upper()
        self._ids = itertools.count(1)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0
        bytes_in = 0
        bytes_out = 0
        request_id: bytes | None = None
        if self.add_request_id:
            scope["folio.request_id"] = f"{self._id_prefix}{next(self._ids):08X}"
            request_id = scope["folio.request_id"].encode()

        async def counting_receive() -> Message:
            nonlocal bytes_in
            message = await receive()
            body = message.get("body")
            if body:
                bytes_in += len(body)
            return message

        async def counting_send(message: Message) -> None:
            nonlocal status, bytes_out
            if message["type"] == "http.response.start":
                status = message["status"]
                if request_id is not None:
                    message["headers"] = [*message.get("headers", ()), (b"x-request-id", request_id)]
            else:
                body = message.get("body")
                if body:
                    bytes_out += len(body)
            await send(message)

        in_flight = self.stats.in_flight
        in_flight[self.listener] += 1
        try:
            await self.app(scope, counting_receive, counting_send)
        finally:
            in_flight[self.listener] -= 1
            seconds = time.perf_counter() - started
            self.stats.record(self.listener, self.operation_of(scope), status, bytes_in, bytes_out, seconds)
            if self.access_log is not None:
                try:
                    self._log(scope, status, bytes_in, bytes_out, seconds)
                except Exception as exc:  # noqa: BLE001 - a log line never fails its request
                    log.warning("access log: no line for %s %s: %r", scope["method"], scope["path"], exc)
            scope.pop(S3_CONTEXT, None)  # breaks the scope <-> context cycle

    def _log(self, scope: Scope, status: int, bytes_in: int, bytes_out: int, seconds: float) -> None:
        assert self.access_log is not None
        described = self.describe(scope)
        client = scope.get("client")
        self.access_log.write(
            {
                "time": iso_time(time.time() - seconds),
                "requestId": described.request_id,
                "listener": self.listener,
                "method": scope["method"],
                "operation": described.operation,
                "bucket": described.bucket,
                "key": described.key,
                "account": described.account,
                "principal": described.principal,
                "status": status or None,
                "bytesIn": bytes_in,
                "bytesOut": bytes_out,
                "durationMs": round(seconds * 1000, 3),
                "remote": client[0] if client else None,
            }
        )
