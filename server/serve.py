"""Running both listeners (S3 and web) in one process under uvicorn (default:
uvloop + httptools) or Hypercorn, with one signal handler that stops both:
stop accepting, let in-flight requests finish within the grace period, then
close the database cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from core.config import Config, parse_listen

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

    def __getattr__(self, name: str) -> object:
        return getattr(self._transport, name)


def _protocol_class() -> type:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class FolioHttpToolsProtocol(HttpToolsProtocol):
        """uvicorn's httptools protocol with two changes.

        Writes go through a `CorkedTransport`. And bytes that follow a complete request
        and do not parse (a body longer than its Content-Length) no longer make uvicorn
        answer a plain-text 400 and close at once, dropping the S3 answer to the request
        it already has: that request is answered first, then the connection closes."""

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self.transport = CorkedTransport(transport, self.loop)  # type: ignore[assignment]

        def send_400_response(self, msg: str) -> None:
            cycle = getattr(self, "cycle", None)
            if cycle is not None and not cycle.response_complete:
                cycle.keep_alive = False
                return
            super().send_400_response(msg)

    return FolioHttpToolsProtocol


async def _serve_uvicorn(apps: list[tuple[ASGIApp, str]], config: Config, stop: asyncio.Event) -> None:
    import uvicorn

    class _Server(uvicorn.Server):
        # Signals are ours: two servers must stop together.
        @contextlib.contextmanager
        def capture_signals(self):  # type: ignore[override]
            yield

    servers = []
    for app, listen in apps:
        host, port = parse_listen(listen)
        uv_config = uvicorn.Config(
            app,
            host=host,
            port=port,
            loop="none",
            http=_protocol_class(),
            lifespan="off",
            access_log=False,
            log_level=config.server.log_level,
            timeout_graceful_shutdown=int(config.server.shutdown_grace_seconds),
            server_header=False,
        )
        servers.append(_Server(uv_config))

    async def stopper() -> None:
        await stop.wait()
        for server in servers:
            server.should_exit = True

    stop_task = asyncio.create_task(stopper())
    try:
        await asyncio.gather(*(server.serve() for server in servers))
    finally:
        stop_task.cancel()


async def _serve_hypercorn(apps: list[tuple[ASGIApp, str]], config: Config, stop: asyncio.Event) -> None:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config as HypercornConfig

    tasks = []
    for app, listen in apps:
        hc = HypercornConfig()
        host, port = parse_listen(listen)
        hc.bind = [f"{host}:{port}"]
        hc.graceful_timeout = config.server.shutdown_grace_seconds
        hc.accesslog = None
        hc.loglevel = config.server.log_level.upper()
        tasks.append(serve(app, hc, shutdown_trigger=stop.wait, mode="asgi"))
    await asyncio.gather(*tasks)


Background = Callable[[], Coroutine[Any, Any, None]]


async def serve_apps(apps: list[tuple[ASGIApp, str]], config: Config, background: list[Background]) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tasks = [asyncio.create_task(job()) for job in background]
    try:
        if config.server.engine == "hypercorn":
            await _serve_hypercorn(apps, config, stop)
        else:
            await _serve_uvicorn(apps, config, stop)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def run(apps: list[tuple[ASGIApp, str]], config: Config, background: Sequence[Background] = ()) -> None:
    """Serve until SIGTERM/SIGINT, with the background jobs running alongside."""
    jobs = list(background)
    if config.server.engine == "uvicorn":
        import uvloop

        uvloop.run(serve_apps(apps, config, jobs))
    else:
        asyncio.run(serve_apps(apps, config, jobs))
