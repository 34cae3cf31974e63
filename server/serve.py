"""Running both listeners (S3 and web) in one process under uvicorn (default:
uvloop + httptools) or Hypercorn, with one signal handler that stops both:
stop accepting, let in-flight requests finish within the grace period, then
close the database cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable

from core.config import Config, parse_listen

log = logging.getLogger("folio.server")

ASGIApp = Callable


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
            http="httptools",
            lifespan="off",
            access_log=False,
            log_level=config.server.log_level,
            timeout_graceful_shutdown=int(config.server.shutdown_grace_seconds),
            server_header=False,
            # Large object bodies: let uvicorn buffer more before pausing the socket.
            h11_max_incomplete_event_size=None,
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


async def serve_apps(apps: list[tuple[ASGIApp, str]], config: Config) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if config.server.engine == "hypercorn":
        await _serve_hypercorn(apps, config, stop)
    else:
        await _serve_uvicorn(apps, config, stop)


def run(apps: list[tuple[ASGIApp, str]], config: Config) -> None:
    if config.server.engine == "uvicorn":
        import uvloop

        uvloop.run(serve_apps(apps, config))
    else:
        asyncio.run(serve_apps(apps, config))
