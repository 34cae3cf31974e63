"""DNS rebinding cannot get past the outbound guard (issue 13, finding 11).

Each test answers for the resolver with a name that rebinds: its first lookup gives
the "checked" address, every later lookup the "rebound" one. The guard's address
policy is replaced for these tests so that 127.0.0.1 stands for a public address
(allowed) and 127.0.0.2 for loopback or the metadata service (refused): both can
have a real listener on the same port, and no packet leaves the machine. Code that
checks the name and then connects to it by name looks it up twice and reaches the
rebound listener; pinned code looks it up once, connects to the checked listener,
and sends the original Host header (and TLS server name).

Every outbound client Folio has is driven through the function the server itself
calls: the webhook worker (`Webhooks.run`), WeasyPrint's `GuardedFetcher`, the
Chromium engine's route fetch (`ChromiumEngine.render`) and the `/v2/storage`
upload (`user_storage.upload`, into Folio's own S3 port, so SigV4 is verified by a
real server)."""

from __future__ import annotations

import asyncio
import datetime
import http.server
import os
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import core.netguard as netguard
from core.config import WebhooksConfig
from core.db import Database
from core.netguard import BlockedTarget, resolve_checked
from core.pinned_http import pinned_client
from core.secrets import SecretBox
from core.webhooks import Webhooks
from docgen import user_storage
from docgen.chromium import ChromiumEngine
from docgen.options import ImageOptions, RenderJob
from docgen.render import GuardedFetcher
from server.runtime import MIGRATIONS
from tests.browser import MISSING_MESSAGE, chromium_path
from tests.folio_process import FolioProcess

CHECKED = "127.0.0.1"  # stands for the public address the guard approved
REBOUND = "127.0.0.2"  # stands for 127.0.0.1 / 169.254.169.254: the guard refuses it
REAL_GETADDRINFO = socket.getaddrinfo


class RebindingResolver:
    """socket.getaddrinfo for names ending in `.rebind.test`: the first lookup of each
    name answers CHECKED, every later one REBOUND; other names resolve as usual."""

    def __init__(self) -> None:
        self.lookups: dict[str, int] = {}
        self.lock = threading.Lock()

    def __call__(self, host, port, family=0, type=0, proto=0, flags=0):  # noqa: A002, ANN001 - getaddrinfo's
        name = host.decode() if isinstance(host, bytes) else str(host)
        name = name.rstrip(".").lower()
        if not name.endswith(".rebind.test"):
            return REAL_GETADDRINFO(host, port, family, type, proto, flags)
        with self.lock:
            self.lookups[name] = self.lookups.get(name, 0) + 1
            address = CHECKED if self.lookups[name] == 1 else REBOUND
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, int(port or 0)))]


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> RebindingResolver:
    fake = RebindingResolver()
    monkeypatch.setattr(socket, "getaddrinfo", fake)
    # The guard's policy: CHECKED plays a public address, anything else is refused.
    monkeypatch.setattr(netguard, "_address_allowed", lambda address, *, allow_loopback: address == CHECKED)
    return fake


@dataclass
class Hit:
    listener: str
    method: str
    path: str
    host: str
    body: bytes


@dataclass
class Listeners:
    port: int
    hits: list[Hit] = field(default_factory=list)

    def at(self, listener: str) -> list[Hit]:
        return [hit for hit in self.hits if hit.listener == listener]


PAGE = b"<html><body><h1>checked page</h1><img src='/pixel.png'></body></html>"


def _handler(label: str, hits: list[Hit]) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            hits.append(Hit(label, self.command, self.path, self.headers.get("host", ""), body))
            port = self.server.server_address[1]
            if self.path == "/redirect":
                self.send_response(302)
                self.send_header("location", f"http://hop.rebind.test:{port}/page")
                self.send_header("content-length", "0")
                self.end_headers()
                return
            payload = PAGE.replace(b"checked", label.encode())
            self.send_response(200)
            self.send_header("content-type", "text/html")
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = _answer

        def log_message(self, *args: object) -> None:
            pass

    return Handler


def _serve(address: tuple[str, int], label: str, hits: list[Hit]) -> http.server.ThreadingHTTPServer:
    server = http.server.ThreadingHTTPServer(address, _handler(label, hits))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def listeners() -> Iterator[Listeners]:
    """An HTTP listener on CHECKED and another on REBOUND, on the same port."""
    hits: list[Hit] = []
    for _ in range(20):
        checked = _serve((CHECKED, 0), "checked", hits)
        port = checked.server_address[1]
        try:
            rebound = _serve((REBOUND, port), "rebound", hits)
        except OSError:
            checked.shutdown()
            checked.server_close()
            continue
        break
    else:
        raise RuntimeError("no port free on both loopback addresses")
    yield Listeners(port, hits)
    for server in (checked, rebound):
        server.shutdown()
        server.server_close()


# ---------------------------------------------------------------- the shared mechanism


def test_a_name_is_resolved_once_and_every_address_checked(resolver: RebindingResolver) -> None:
    target = resolve_checked("once.rebind.test", 80, allow_private=False)
    assert target.addresses == (CHECKED,) and resolver.lookups == {"once.rebind.test": 1}
    # The second lookup answers the refused address: refused, whatever the first said.
    with pytest.raises(BlockedTarget):
        resolve_checked("once.rebind.test", 80, allow_private=False)


def test_the_pinned_client_connects_to_the_checked_address(resolver: RebindingResolver, listeners: Listeners) -> None:
    with pinned_client(allow_private=False, allow_loopback=False, timeout=5) as client:
        response = client.get(f"http://api.rebind.test:{listeners.port}/x")
    assert response.status_code == 200 and b"checked page" in response.content
    assert [(h.listener, h.host) for h in listeners.hits] == [("checked", f"api.rebind.test:{listeners.port}")]
    assert resolver.lookups == {"api.rebind.test": 1}


def test_a_new_connection_checks_the_name_again(resolver: RebindingResolver, listeners: Listeners) -> None:
    """Each connection is checked as it is made: a later one, after the name rebound,
    is refused rather than sent to the rebound address."""
    url = f"http://again.rebind.test:{listeners.port}/x"
    with pinned_client(allow_private=False, allow_loopback=False, timeout=5) as client:
        assert client.get(url).status_code == 200
    with pinned_client(allow_private=False, allow_loopback=False, timeout=5) as client, pytest.raises(BlockedTarget):
        client.get(url)
    assert listeners.at("rebound") == [] and len(listeners.at("checked")) == 1


def _certificate(ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate, name: str, key) -> x509.Certificate:  # noqa: ANN001
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )


def test_tls_keeps_the_hostname_for_sni_and_verification(
    resolver: RebindingResolver, listeners: Listeners, tmp_path: Path
) -> None:
    """Connected to an address, TLS still names and verifies the original host: the
    server sees the hostname in SNI, and a certificate for another name is refused."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Folio test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _certificate(ca_key, ca, "tls.rebind.test", key)
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    server_names: list[str | None] = []
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    server_context.sni_callback = lambda _sock, name, _ctx: server_names.append(name)
    hits: list[Hit] = []
    server = http.server.ThreadingHTTPServer((CHECKED, 0), _handler("tls", hits))
    server.socket = server_context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    verify = ssl.create_default_context(cadata=ca.public_bytes(serialization.Encoding.PEM).decode())
    try:
        with pinned_client(allow_private=False, allow_loopback=False, timeout=5, verify=verify) as client:
            response = client.get(f"https://tls.rebind.test:{port}/x")
            assert response.status_code == 200
            assert server_names == ["tls.rebind.test"]
            assert hits[0].host == f"tls.rebind.test:{port}"
            # Same address, another name: the certificate does not match it.
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED|certificate"):
                client.get(f"https://other.rebind.test:{port}/x")
    finally:
        server.shutdown()
        server.server_close()


# ---------------------------------------------------------------- each outbound client


def test_webhook_delivery_goes_to_the_checked_address(
    resolver: RebindingResolver, listeners: Listeners, tmp_path: Path
) -> None:
    db = Database(tmp_path / "folio.db")
    db.open(MIGRATIONS)
    hooks = Webhooks(db, SecretBox(os.urandom(32)), WebhooksConfig(allow_http=True, timeout_seconds=5, retries=0))
    url = f"http://hook.rebind.test:{listeners.port}/hook"

    async def deliver() -> tuple[str, str | None]:
        await hooks.send_once("acct_1", url, "document.completed", '{"ok":true}')
        worker = asyncio.create_task(hooks.run(poll_seconds=0.05))
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                row = db.read(lambda c: c.execute("SELECT status, last_error FROM deliveries").fetchone())
                if row[0] != "pending":
                    return row
                await asyncio.sleep(0.05)
            raise AssertionError("the delivery was never attempted")
        finally:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)

    try:
        status, error = asyncio.run(deliver())
    finally:
        db.close()
    assert listeners.at("rebound") == [], "the delivery followed the rebound name"
    assert (status, error) == ("delivered", None)
    [hit] = listeners.at("checked")
    assert (hit.method, hit.path, hit.host, hit.body) == (
        "POST", "/hook", f"hook.rebind.test:{listeners.port}", b'{"ok":true}'
    )


def test_weasyprint_fetches_pin_every_redirect_hop(resolver: RebindingResolver, listeners: Listeners) -> None:
    fetcher = GuardedFetcher(allow_private=False, allow_loopback=False, max_bytes=1_000_000, timeout=5)
    response = fetcher.fetch(f"http://doc.rebind.test:{listeners.port}/redirect")
    assert listeners.at("rebound") == [], "a fetch followed the rebound name"
    assert b"checked page" in response.read()
    assert [(h.path, h.host) for h in listeners.at("checked")] == [
        ("/redirect", f"doc.rebind.test:{listeners.port}"),
        ("/page", f"hop.rebind.test:{listeners.port}"),
    ]


def test_chromium_route_fetches_are_pinned(resolver: RebindingResolver, listeners: Listeners) -> None:
    executable = chromium_path()
    assert executable is not None, MISSING_MESSAGE  # a failure, not a skip (as the other Chromium tests)
    engine = ChromiumEngine(str(executable), 1, 10, allow_private=False, allow_loopback=False)
    job = RenderJob(
        kind="image", url=f"http://page.rebind.test:{listeners.port}/", image=ImageOptions(), engine="chromium"
    )

    async def render() -> None:
        try:
            await engine.render(job, 30)
        finally:
            await engine.close()

    asyncio.run(render())
    assert listeners.at("rebound") == [], "the browser's requests followed the rebound name"
    paths = [(h.path, h.host) for h in listeners.at("checked")]
    assert ("/", f"page.rebind.test:{listeners.port}") in paths
    # The page's image: a second request on the same (checked) origin, fetched by Folio.
    assert ("/pixel.png", f"page.rebind.test:{listeners.port}") in paths


@pytest.fixture
def decoy_on_s3_port(folio: FolioProcess) -> Iterator[Listeners]:
    """Folio's own S3 port answers on CHECKED; a decoy listens on REBOUND, same port."""
    hits: list[Hit] = []
    decoy = _serve((REBOUND, folio.s3_port), "rebound", hits)
    yield Listeners(folio.s3_port, hits)
    decoy.shutdown()
    decoy.server_close()


def test_storage_upload_is_pinned_and_still_signed(
    resolver: RebindingResolver, decoy_on_s3_port: Listeners, folio: FolioProcess, s3, bucket: str
) -> None:
    storage = user_storage.UserStorage(
        bucket=bucket,
        region="us-east-1",
        access_key_id=folio.access_key,
        secret_access_key=folio.secret_key,
        endpoint=f"http://s3.rebind.test:{folio.s3_port}",
        prefix="pinned/",
        acl="private",
    )
    outcome = user_storage.upload(
        storage, "doc.pdf", b"%PDF-1.4 pinned", "application/pdf", allow_private=False, allow_loopback=False
    )
    assert decoy_on_s3_port.hits == [], "the upload followed the rebound name"
    # Delivered into Folio: the SigV4 signature over the original Host was accepted.
    assert outcome == {"status": "delivered", "bucket": bucket, "key": "pinned/doc.pdf"}
    assert s3.get_object(Bucket=bucket, Key="pinned/doc.pdf")["Body"].read() == b"%PDF-1.4 pinned"


def test_storage_upload_to_a_refused_address_is_recorded(resolver: RebindingResolver) -> None:
    resolver.lookups["blocked.rebind.test"] = 1  # its next lookup answers the refused address
    storage = user_storage.UserStorage(
        "b", "us-east-1", "AKIDEXAMPLE", "secret", "http://blocked.rebind.test:9", "", "private"
    )
    outcome = user_storage.upload(storage, "x.pdf", b"x", "application/pdf", allow_private=False, allow_loopback=False)
    assert outcome["status"] == "failed" and outcome["error"].startswith("endpoint refused:"), outcome
