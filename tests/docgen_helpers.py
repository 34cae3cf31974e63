"""Shared helpers for the document API tests (docs/document-api.md, seeds 000-003).

Everything here talks to a real Folio server with real clients: httpx for the JSON
API, curl through subprocess exactly as the seeds write it, and small loopback HTTP
servers of our own (a webhook receiver, a resource server that records every hit).
Accounts are signed up over the dashboard API from a loopback address of their own,
and get their `cl-` key from `POST /api/keys {"type": "docgen"}` with their S3 key
pair in `X-API-Key` (fast: `folio admin` takes seconds per call).
"""

from __future__ import annotations

import base64
import io
import json
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import httpx
import pypdfium2 as pdfium
from PIL import Image

from tests.folio_process import FolioProcess
from tests.web_client import fresh_address, serve_in_thread

PASSWORD = "correct horse battery staple"
HELLO_B64 = "PGgxPkhlbGxvIFdvcmxkPC9oMT4="  # the seeds' "<h1>Hello World</h1>"
assert base64.b64decode(HELLO_B64) == b"<h1>Hello World</h1>"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def never_5xx(response: httpx.Response) -> None:
    if response.status_code >= 500:
        response.read()
        raise AssertionError(
            f"{response.request.method} {response.request.url} -> {response.status_code}: {response.text}"
        )


def client(server: FolioProcess, key: str | None = None, timeout: float = 60) -> httpx.Client:
    headers = {"X-API-Key": key} if key else {}
    return httpx.Client(
        base_url=server.web_url, headers=headers, timeout=timeout, event_hooks={"response": [never_5xx]}
    )


@dataclass
class DocAccount:
    """A signed-up account: its S3 key pair and one document API key."""

    server: FolioProcess
    email: str
    id: str
    access_key: str
    secret_key: str
    key: str  # cl-...
    key_id: str  # dk_...
    http: httpx.Client = field(repr=False)

    @property
    def s3_pair(self) -> str:
        return f"{self.access_key}:{self.secret_key}"

    @property
    def bucket(self) -> str:
        return f"docs-{self.id[:12]}"

    def new_key(self, name: str = "another") -> httpx.Response:
        return dashboard(self.server, "POST", "/api/keys", self.s3_pair, {"name": name, "type": "docgen"})

    def close(self) -> None:
        self.http.close()


def dashboard(server: FolioProcess, method: str, path: str, api_key: str, body: Any = None) -> httpx.Response:
    with httpx.Client(base_url=server.web_url, timeout=30, event_hooks={"response": [never_5xx]}) as web:
        return web.request(method, path, headers={"X-API-Key": api_key}, json=body)


def signup(server: FolioProcess, tag: str = "doc") -> DocAccount:
    email = f"{tag}-{uuid.uuid4().hex[:12]}@example.com"
    transport = httpx.HTTPTransport(local_address=fresh_address())
    with httpx.Client(base_url=server.web_url, transport=transport, timeout=30) as web:
        response = web.post("/api/auth/signup", json={"email": email, "password": PASSWORD})
    assert response.status_code == 201, response.text
    account = response.json()
    pair = f"{account['accessKey']}:{account['secretKey']}"
    created = dashboard(server, "POST", "/api/keys", pair, {"name": "tests", "type": "docgen"})
    assert created.status_code == 201, created.text
    key = created.json()
    return DocAccount(
        server,
        email,
        account["id"],
        account["accessKey"],
        account["secretKey"],
        key["apiKey"],
        key["id"],
        client(server, key["apiKey"]),
    )


def signed_up(server: FolioProcess, tag: str = "doc") -> Iterator[DocAccount]:
    """`signup` for a fixture: the account's client is closed when the fixture ends."""
    account = signup(server, tag)
    try:
        yield account
    finally:
        account.close()


def assert_error(response: httpx.Response, status: int, field_name: str | None = None) -> dict[str, Any]:
    """The documented error JSON: {"error": {"code", "message", "details"}}."""
    assert response.status_code == status, (response.status_code, response.text[:2000])
    assert response.headers["content-type"].startswith("application/json"), response.headers
    error = response.json()["error"]
    assert isinstance(error["code"], str) and error["code"], error
    assert isinstance(error["message"], str) and error["message"], error
    assert isinstance(error["details"], dict), error
    if field_name is not None:
        assert error["details"].get("field") == field_name, error
    return error


def wait_job(http: httpx.Client, job_id: str, timeout: float = 45, version: int = 2) -> dict[str, Any]:
    """Poll GET /vN/jobs/{id} until the job leaves `pending`."""
    deadline = time.monotonic() + timeout
    while True:
        response = http.get(f"/v{version}/jobs/{job_id}")
        assert response.status_code == 200, response.text
        job = response.json()
        if job["status"] != "pending":
            return job
        assert time.monotonic() < deadline, f"job {job_id} still pending: {job}"
        time.sleep(0.15)


def run_curl(*args: str, timeout: float = 60) -> tuple[int, bytes]:
    """curl with the seed's arguments; -sS and -w only make its output parseable
    (the status code on a last line of its own)."""
    out = subprocess.run(["curl", "-sS", "-w", "\n%{http_code}", *args], capture_output=True, timeout=timeout)
    assert out.returncode == 0, out.stderr.decode(errors="replace")
    body, _, status = out.stdout.rpartition(b"\n")
    return int(status), body


# ------------------------------------------------------------------ PDFs and images


@dataclass
class PdfPage:
    width: float
    height: float
    text: str
    # (left, bottom, right, top) of every non-space character, with the character
    boxes: list[tuple[str, tuple[float, float, float, float]]]

    def first_box(self, needle: str) -> tuple[float, float, float, float]:
        """The box of the first character of `needle` in the page's text."""
        chars = "".join(ch for ch, _box in self.boxes)
        at = chars.find(needle.replace(" ", ""))
        assert at >= 0, (needle, self.text)
        return self.boxes[at][1]


def read_pdf(data: bytes) -> list[PdfPage]:
    assert data[:5] == b"%PDF-", data[:40]
    document = pdfium.PdfDocument(data)
    try:
        pages = []
        for page in document:
            width, height = page.get_size()
            textpage = page.get_textpage()
            count = textpage.count_chars()
            text = textpage.get_text_range() if count else ""
            boxes = []
            for index in range(count):
                ch = textpage.get_text_range(index, 1)
                if ch.strip():
                    boxes.append((ch, textpage.get_charbox(index)))
            pages.append(PdfPage(width, height, text, boxes))
            textpage.close()
            page.close()
        return pages
    finally:
        document.close()


def read_image(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


# ------------------------------------------------------------------ loopback servers


@dataclass
class Hit:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class Recorder:
    """An HTTP server on 127.0.0.1 recording every request (any method); it answers
    `status` with `body` (`content_type`) and `headers`, after `delay` seconds."""

    def __init__(
        self,
        status: int = 200,
        body: bytes = b"ok",
        content_type: str = "text/plain",
        delay: float = 0.0,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.status, self.body, self.content_type, self.delay = status, body, content_type, delay
        self.headers = headers or {}
        self.hits: list[Hit] = []
        self.lock = threading.Lock()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                with recorder.lock:
                    recorder.hits.append(
                        Hit(
                            self.command,
                            self.path,
                            {k.lower(): v for k, v in self.headers.items()},
                            body,
                            time.monotonic(),
                        )
                    )
                if recorder.delay:
                    time.sleep(recorder.delay)
                self.send_response(recorder.status)
                self.send_header("content-type", recorder.content_type)
                self.send_header("content-length", str(len(recorder.body)))
                for name, value in recorder.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(recorder.body)

            do_GET = do_POST = do_PUT = do_HEAD = _any  # noqa: N815 - http.server's naming

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base signature
                pass

        self.server, self.thread = serve_in_thread(Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def all(self) -> list[Hit]:
        with self.lock:
            return list(self.hits)

    def wait_for(self, count: int, timeout: float = 30) -> list[Hit]:
        deadline = time.monotonic() + timeout
        while len(self.all()) < count:
            assert time.monotonic() < deadline, f"only {len(self.all())} of {count} requests arrived"
            time.sleep(0.05)
        return self.all()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def recorder(**kwargs: Any) -> Iterator[Recorder]:
    found = Recorder(**kwargs)
    yield found
    found.close()
