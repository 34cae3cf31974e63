"""Running both listeners (S3 and web) in one process under uvicorn (default:
uvloop + httptools) or Hypercorn, with one signal handler that stops both:
stop accepting, let in-flight requests finish within the grace period, then
close the database cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from core.config import Config, ServerConfig, parse_listen
from server.workers import Listeners

log = logging.getLogger("folio.server")

ASGIApp = Callable


CORK_LIMIT = 64 * 1024


class CorkedTransport:
    """Coalesces the small writes of one loop iteration into one send.

    uvicorn writes a response's head and its body separately, and each write is a
    system call that wakes the client; on this kind of VM that was half the event
    loop's time for a 4 KiB GET. Writes are held until the end of the iteration (or
    until 64 KiB pile up) and sent together. Large writes go out at once, uncopied."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []
        self._size = 0
        self._scheduled = False

    def write(self, data: bytes) -> None:
        if not data:
            return
        if len(data) >= CORK_LIMIT:
            self.flush()
            self._transport.write(data)
            return
        self._pending.append(data)
        self._size += len(data)
        if self._size >= CORK_LIMIT:
            self.flush()
        elif not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        if self._pending:
            pending, self._pending, self._size = self._pending, [], 0
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def idle(self) -> bool:
        """Nothing written is still waiting to be sent (here or in the transport's buffer)."""
        return not self._pending and self._transport.get_write_buffer_size() == 0

    def __getattr__(self, name: str) -> object:
        return getattr(self._transport, name)


# A connection whose request body (or response) makes no progress is closed this long
# after the S3 listener would have answered 400 RequestTimeout: that answer comes first.
BODY_GRACE_SECONDS = 5.0
TOO_LARGE_HEAD = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
)


@dataclass(frozen=True)
class ConnectionLimits:
    """What one connection may cost a listener (see `[server]` in config.toml)."""

    header_timeout: float  # connection open / end of the last response -> request head complete
    keep_alive_timeout: float  # idle between requests (uvicorn's own timer)
    idle_timeout: float  # a request body, or a response the client stopped reading, without progress
    max_connections: int  # per listener; more are closed as they are accepted
    max_header_bytes: int  # request line and headers

    @classmethod
    def of(cls, server: ServerConfig) -> ConnectionLimits:
        return cls(
            header_timeout=server.header_timeout_seconds,
            keep_alive_timeout=server.keep_alive_timeout_seconds,
            idle_timeout=server.body_timeout_seconds + BODY_GRACE_SECONDS,
            max_connections=server.max_connections,
            max_header_bytes=server.max_header_bytes,
        )


class ConnectionWatch:
    """The timeouts of every connection of one listener, checked by one periodic timer
    (a timer per connection, re-armed on every read, would cost more than a small request)."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self.interval = max(0.05, min(1.0, limits.header_timeout / 4, limits.idle_timeout / 4))
        self.connections: set[Any] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._warned_at = 0.0

    def add(self, connection: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.connections.add(connection)
        if self._timer is None:
            self._timer = loop.call_later(self.interval, self._check, loop)

    def discard(self, connection: Any) -> None:
        self.connections.discard(connection)

    def _check(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        try:
            for connection in list(self.connections):
                connection.check_timeouts(now)
        finally:  # whatever one connection does, the others stay watched
            self._timer = loop.call_later(self.interval, self._check, loop) if self.connections else None

    def refused(self, client: object) -> None:
        # Once a minute at most: a flood must not flood the log as well.
        if time.monotonic() - self._warned_at >= 60:
            self._warned_at = time.monotonic()
            log.warning(
                "connection limit (%d per listener) reached: closing new connections (%s and others)",
                self.limits.max_connections,
                client,
            )


def _protocol_class(limits: ConnectionLimits) -> type:
    """A protocol class for one listener (each has its own connection count and watch)."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    watch = ConnectionWatch(limits)

    class FolioHttpToolsProtocol(HttpToolsProtocol):
        """uvicorn's httptools protocol with these changes.

        Writes go through a `CorkedTransport`. Bytes that follow a complete request
        and do not parse (a body longer than its Content-Length) no longer make uvicorn
        answer a plain-text 400 and close at once, dropping the S3 answer to the request
        it already has: that request is answered first, then the connection closes.

        And a connection cannot be held for nothing. uvicorn only times out a connection
        idle after a response; one that never sends a request, or half of one, or stops
        sending its body, or stops reading its response, stayed open for ever. Here the
        request head must be complete `header_timeout` after the connection opened (or
        the last response ended) and within `max_header_bytes` (431 beyond), a body or a
        response without progress for `idle_timeout` closes the connection, and a
        listener holds at most `max_connections`: more are closed as soon as they are
        accepted. Closing, not answering 503: an answer would have to wait for a request
        head, which is what a client holding connections never sends, and the client
        retries a refused connection as it would a 503."""

        _head_since: float | None = None
        _head_bytes = 0
        _body_since: float | None = None
        _stalled_since: float | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)  # sets self.scheme: "https" on a TLS transport
            self.transport = CorkedTransport(transport, self.loop)  # type: ignore[assignment]
            if len(self.connections) > limits.max_connections:
                watch.refused(self.client)
                self.transport.close()
                return
            self._head_since = self.loop.time()
            watch.add(self, self.loop)

        def connection_lost(self, exc: Exception | None) -> None:
            watch.discard(self)
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self._body_since is not None:
                self._body_since = self.loop.time()
            self._head_bytes += len(data)
            super().data_received(data)
            too_large = self._head_since is not None and self._head_bytes > limits.max_header_bytes
            if too_large and not self.transport.is_closing():
                self.transport.write(TOO_LARGE_HEAD)
                self.transport.close()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._begin_head()  # a pipelined request: its own head time starts now

        def on_headers_complete(self) -> None:
            self._head_since = None
            self._head_bytes = 0
            self._body_since = self.loop.time()
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._body_since = None
            if self.cycle is not None and self.cycle.response_complete:
                # Answered before its body was read (a refused upload): the body is drained
                # now, and the time for the next request head starts.
                self._begin_head()
            super().on_message_complete()

        def on_response_complete(self) -> None:
            pipelined = bool(self.pipeline)
            super().on_response_complete()
            # While the request's body is still arriving, what comes next is body, not a head.
            if not pipelined and self._body_since is None:
                self._begin_head()

        def _begin_head(self) -> None:
            if self._head_since is None:
                self._head_since = self.loop.time()
                self._head_bytes = 0

        def pause_writing(self) -> None:
            self._stalled_since = self.loop.time()
            super().pause_writing()

        def resume_writing(self) -> None:
            self._stalled_since = None
            super().resume_writing()

        def check_timeouts(self, now: float) -> None:
            if self.transport is None or self.transport.is_closing():
                return
            if self._head_since is not None and now - self._head_since > limits.header_timeout:
                # Everything the client sent was read: close() ends with a clean EOF.
                self._close_idle()
                return
            waiting_for_body = (
                self._body_since is not None
                and not self.flow.read_paused  # paused by us (the app is busy): not the client's fault
                and not (self.cycle is not None and self.cycle.waiting_for_100_continue)  # waits for our 100
                and now - self._body_since > limits.idle_timeout
            )
            stalled = self._stalled_since is not None and now - self._stalled_since > limits.idle_timeout
            if waiting_for_body or stalled:
                # abort(): close() would wait for a write buffer the client is not reading.
                self.transport.abort()

        def shutdown(self) -> None:
            if self.cycle is None or self.cycle.response_complete:
                self._close_idle()
            else:
                super().shutdown()

        def timeout_keep_alive_handler(self) -> None:
            if not self.transport.is_closing():
                self._close_idle()

        def _close_idle(self) -> None:
            """Close a connection with no request in progress (keep-alive timeout, header
            timeout, server shutdown). Over TLS, close() sends close_notify and then waits
            for the client's, which a client holding the connection idle in its pool never
            sends: the connection would stay open for the SSL shutdown timeout (30 s),
            holding a connection slot and the server's graceful shutdown. With nothing left
            to send it is aborted instead; the client sees the connection closed, as it
            would after close()."""
            if self.scheme == "https" and self.transport.idle():
                self.transport.abort()
            else:
                self.transport.close()

        def send_400_response(self, msg: str) -> None:
            cycle = getattr(self, "cycle", None)
            if cycle is not None and not cycle.response_complete:
                cycle.keep_alive = False
                return
            super().send_400_response(msg)

    return FolioHttpToolsProtocol


async def _serve_uvicorn(
    apps: list[tuple[ASGIApp, str]],
    config: Config,
    stop: asyncio.Event,
    tls: ssl.SSLContext | None,
    listeners: Listeners | None,
) -> None:
    import uvicorn

    class _Server(uvicorn.Server):
        # Signals are ours: two servers must stop together.
        @contextlib.contextmanager
        def capture_signals(self):  # type: ignore[override]
            yield

    servers = []
    limits = ConnectionLimits.of(config.server)
    for app, listen in apps:
        host, port = parse_listen(listen)
        uv_config = uvicorn.Config(
            app,
            host=host,
            port=port,
            loop="none",
            http=_protocol_class(limits),
            timeout_keep_alive=limits.keep_alive_timeout,  # type: ignore[arg-type] - a float works
            lifespan="off",
            access_log=False,
            log_level=config.server.log_level,
            timeout_graceful_shutdown=int(config.server.shutdown_grace_seconds),
            server_header=False,
            # X-Forwarded-For/-Proto are believed only from the proxies named in config:
            # uvicorn's default trusts them from 127.0.0.1, where any local client could
            # then pick its address (rate limits, policy IpAddress) and aws:SecureTransport.
            proxy_headers=bool(config.server.forwarded_allow_ips),
            forwarded_allow_ips=config.server.forwarded_allow_ips or None,
            # The context checked at start-up (server/tls.py), not one uvicorn builds from
            # the files: asyncio wraps the transport, so the protocol class above is unchanged.
            ssl_context_factory=(lambda _config, _default: tls) if tls is not None else None,
        )
        servers.append(_Server(uv_config))

    async def stopper() -> None:
        await stop.wait()
        for server in servers:
            server.should_exit = True

    stop_task = asyncio.create_task(stopper())
    try:
        await asyncio.gather(
            *(
                # A worker serves on the sockets its supervisor bound (server/workers.py).
                server.serve(sockets=listeners[listen] if listeners is not None else None)
                for server, (_app, listen) in zip(servers, apps, strict=True)
            )
        )
    finally:
        stop_task.cancel()


async def _serve_hypercorn(
    apps: list[tuple[ASGIApp, str]],
    config: Config,
    stop: asyncio.Event,
    tls: ssl.SSLContext | None,
    listeners: Listeners | None,
) -> None:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config as HypercornConfig

    class _Config(HypercornConfig):
        def create_ssl_context(self) -> ssl.SSLContext | None:
            return tls  # the context checked at start-up (server/tls.py)

    tasks = []
    for app, listen in apps:
        hc = _Config()
        host, port = parse_listen(listen)
        hc.bind = [f"{host}:{port}"]
        if listeners is not None:  # a worker: the sockets its supervisor bound
            hc.bind = [f"fd://{sock.fileno()}" for sock in listeners[listen]]
        if tls is not None:
            # Hypercorn serves TLS when both are set; the context above is what it uses.
            hc.certfile, hc.keyfile = config.server.tls_cert, config.server.tls_key
        hc.graceful_timeout = config.server.shutdown_grace_seconds
        hc.accesslog = None
        hc.loglevel = config.server.log_level.upper()
        # Hypercorn counts a connection as idle until a whole request head has arrived, so
        # its keep-alive timeout also closes silent and half-sent requests. Its read_timeout
        # is left off: it limits every read, so it would cut requests that take long to
        # answer (documents). No per-listener connection cap or body-idle close here.
        hc.keep_alive_timeout = config.server.keep_alive_timeout_seconds
        hc.h11_max_incomplete_size = config.server.max_header_bytes
        tasks.append(serve(app, hc, shutdown_trigger=stop.wait, mode="asgi"))
    await asyncio.gather(*tasks)


# Under Hypercorn, how long a closing TLS connection may take to send what it still has
# and get the client's close_notify (asyncio's default is 30 s). Hypercorn closes idle
# keep-alive connections with close(), and a client holding one in its pool never answers
# close_notify: every such connection would hold Hypercorn's shutdown for the full time.
HYPERCORN_TLS_SHUTDOWN_SECONDS = 5.0


class _HypercornLoop(asyncio.SelectorEventLoop):
    """The event loop Hypercorn runs on: its listeners' TLS shutdown timeout shortened."""

    async def create_server(self, *args: Any, **kwargs: Any) -> asyncio.Server:  # type: ignore[override]
        if kwargs.get("ssl") is not None:
            kwargs.setdefault("ssl_shutdown_timeout", HYPERCORN_TLS_SHUTDOWN_SECONDS)
        return await super().create_server(*args, **kwargs)

    def default_exception_handler(self, context: dict[str, Any]) -> None:
        # Hypercorn lets the timeout above escape from its connection task, and asyncio
        # would log it as an unhandled error with a traceback. It is the expected end of an
        # idle connection whose client never answered close_notify: closed, nothing lost.
        exc = context.get("exception")
        if isinstance(exc, TimeoutError) and str(exc) == "SSL shutdown timed out":
            log.debug("TLS connection closed without the client's close_notify")
            return
        super().default_exception_handler(context)


Background = Callable[[], Coroutine[Any, Any, None]]


async def serve_apps(
    apps: list[tuple[ASGIApp, str]],
    config: Config,
    background: list[Background],
    tls: ssl.SSLContext | None = None,
    listeners: Listeners | None = None,
) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tasks = [asyncio.create_task(job()) for job in background]
    try:
        if config.server.engine == "hypercorn":
            await _serve_hypercorn(apps, config, stop, tls, listeners)
        else:
            await _serve_uvicorn(apps, config, stop, tls, listeners)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def run(
    apps: list[tuple[ASGIApp, str]],
    config: Config,
    background: Sequence[Background] = (),
    tls: ssl.SSLContext | None = None,
    listeners: Listeners | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT, with the background jobs running alongside; over
    HTTPS on both listeners when `tls` is given (server/tls.py); on `listeners` (bound by
    a supervisor, server/workers.py) instead of binding the configured addresses."""
    jobs = list(background)
    if config.server.engine == "uvicorn":
        import uvloop

        uvloop.run(serve_apps(apps, config, jobs, tls, listeners))
    else:
        with asyncio.Runner(loop_factory=_HypercornLoop) as runner:
            runner.run(serve_apps(apps, config, jobs, tls, listeners))
