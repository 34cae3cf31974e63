"""httpx on Folio's web listener for the dashboard tests: each client talks from its
own loopback address (the per-address sign-up and login limits never see two tests
as one client; all of 127/8 is loopback on Linux), never accepts a 5xx, and sends
the session cookie explicitly, as the seed's curl does."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from tests.folio_process import FolioProcess


@dataclass(frozen=True)
class Account:
    """An account's S3 key pair, as the REST and image APIs take it (X-API-Key)."""

    email: str
    access_key: str
    secret_key: str

    @property
    def api_key(self) -> str:
        return f"{self.access_key}:{self.secret_key}"


class _Server(ThreadingHTTPServer):
    # socketserver's listen backlog is 5: a burst of senders (webhook deliveries from several
    # nodes at once) overflowed it, and a refused connection is a failed attempt.
    request_queue_size = 128


def serve_in_thread(handler: type[BaseHTTPRequestHandler]) -> tuple[ThreadingHTTPServer, threading.Thread]:
    """A loopback HTTP server on a free port, answering from a daemon thread."""
    server = _Server(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


def page_handler(pages: dict[str, bytes]) -> type[BaseHTTPRequestHandler]:
    """A handler serving `pages` (path -> HTML, read at each request) and 404 for the rest."""

    class PageHandler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            page = pages.get(self.path)
            if page is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - base class signature
            pass  # keep the test output clean

    return PageHandler


@contextmanager
def page_server(pages: dict[str, bytes]) -> Iterator[str]:
    """A loopback origin serving `pages`; yields its base URL, stops after."""
    server, thread = serve_in_thread(page_handler(pages))
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def fresh_address() -> str:
    """A loopback address nobody else in this run uses (never 127.0.x.x, the default)."""
    return f"127.{random.randint(1, 254)}.{random.randint(0, 255)}.{random.randint(1, 254)}"


def never_5xx(response: httpx.Response) -> None:
    # Whatever a test sends, the answer must be a deliberate one.
    if response.status_code >= 500:
        response.read()
        raise AssertionError(
            f"{response.request.method} {response.request.url} -> {response.status_code}: {response.text}"
        )


class Web:
    """The cookie jar is emptied before every request: which session a request carries
    is never implicit."""

    def __init__(self, server: FolioProcess, address: str | None = None) -> None:
        self.server = server
        self.address = address or fresh_address()
        self.client = httpx.Client(
            base_url=server.web_url,
            transport=httpx.HTTPTransport(local_address=self.address),
            timeout=30,
            event_hooks={"response": [never_5xx]},
        )

    def request(
        self,
        method: str,
        path: str,
        *,
        cookie: str | None = None,
        api_key: str | None = None,
        origin: str | None = None,
        body: Any = None,
        content: bytes | None = None,
        params: dict[str, str] | None = None,
        files: dict[str, Any] | None = None,
        data: dict[str, str] | None = None,
    ) -> httpx.Response:
        self.client.cookies.clear()
        headers: dict[str, str] = {}
        if cookie is not None:
            headers["Cookie"] = f"session={cookie}"
        if api_key is not None:
            headers["X-API-Key"] = api_key
        if origin is not None:
            headers["Origin"] = origin
        if body is not None:
            content = json.dumps(body).encode()
        if content is not None:
            headers["Content-Type"] = "application/json"
        return self.client.request(
            method, path, headers=headers, content=content, params=params, files=files, data=data
        )

    def close(self) -> None:
        self.client.close()
