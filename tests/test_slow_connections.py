"""Slow and silent connections (issue 13, finding 10): a connection that sends half a
request head, or nothing, or stops sending its body, is closed after its timeout; an
idle keep-alive connection closes; a listener holds a bounded number of connections
(more are closed as they are accepted); a request head has a size limit (431). A slow
upload that keeps making progress is never cut.

Servers of their own with short timeouts, so each test takes seconds."""

from __future__ import annotations

import selectors
import socket
import time
import uuid
from collections.abc import Iterator

import boto3
import httpx
import pytest

from tests.conftest import TEST_CONFIG, make_s3_client
from tests.folio_process import FolioProcess, running_server

HEADER_TIMEOUT = 2.0
KEEP_ALIVE = 1.0
BODY_TIMEOUT = 1.0  # S3's RequestTimeout answer; the listener closes 5 s later (idle timeout 6 s)
IDLE_TIMEOUT = BODY_TIMEOUT + 5.0
CAP = 300
SLOW = 200

LIMITS = f"""
[server]
header_timeout_seconds = {HEADER_TIMEOUT}
keep_alive_timeout_seconds = {KEEP_ALIVE}
body_timeout_seconds = {BODY_TIMEOUT}
max_connections = {CAP}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FolioProcess]:
    yield from running_server(tmp_path_factory, "slow", LIMITS + TEST_CONFIG)


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setblocking(False)
    return sock


def wait_all_closed(socks: list[socket.socket], timeout: float) -> dict[socket.socket, float]:
    """Read every socket until the server closes it (EOF or reset); returns when each
    closed, seconds from now. Sockets still open at `timeout` are missing from the result."""
    start = time.monotonic()
    closed: dict[socket.socket, float] = {}
    with selectors.DefaultSelector() as selector:
        for sock in socks:
            selector.register(sock, selectors.EVENT_READ)
        while len(closed) < len(socks):
            left = timeout - (time.monotonic() - start)
            if left <= 0:
                break
            for key, _events in selector.select(left):
                sock = key.fileobj
                try:
                    data = sock.recv(65536)
                except ConnectionResetError:
                    data = b""
                except BlockingIOError:
                    continue
                if not data:
                    closed[sock] = time.monotonic() - start
                    selector.unregister(sock)
    return closed


def close_all(socks: list[socket.socket]) -> None:
    for sock in socks:
        sock.close()


def healthy(server: FolioProcess) -> None:
    assert httpx.get(f"{server.web_url}/healthz", timeout=5).status_code == 200
    assert httpx.get(f"{server.s3_url}/", timeout=5).status_code == 403  # answered: anonymous ListBuckets


def test_half_request_lines_are_closed_after_the_header_timeout(server: FolioProcess) -> None:
    socks = [connect(server.s3_port) for _ in range(SLOW)]
    socks += [connect(server.web_port) for _ in range(SLOW // 4)]
    for sock in socks:
        sock.send(b"GET /some-bucket/some-key HT")
    try:
        closed = wait_all_closed(socks, HEADER_TIMEOUT + 4)
        assert len(closed) == len(socks), f"{len(socks) - len(closed)} of {len(socks)} still open"
        # Closed by the header timeout, not by anything sooner.
        assert min(closed.values()) >= HEADER_TIMEOUT - 0.5
    finally:
        close_all(socks)
    healthy(server)


def test_a_connection_that_sends_nothing_is_closed(server: FolioProcess) -> None:
    socks = [connect(server.s3_port), connect(server.web_port)]
    try:
        closed = wait_all_closed(socks, HEADER_TIMEOUT + 4)
        assert len(closed) == 2
        assert min(closed.values()) >= HEADER_TIMEOUT - 0.5
    finally:
        close_all(socks)


def test_a_slowly_sent_head_counts_from_the_first_byte(server: FolioProcess) -> None:
    """Trickling a head byte by byte does not extend the header timeout."""
    sock = connect(server.web_port)
    try:
        start = time.monotonic()
        head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 1000
        for byte in head:
            try:
                sock.send(bytes([byte]))
            except OSError:
                break
            if time.monotonic() - start > HEADER_TIMEOUT + 4:
                break
            time.sleep(0.1)
        assert wait_all_closed([sock], 2) , "the trickled head was never cut off"
        assert time.monotonic() - start < HEADER_TIMEOUT + 4
    finally:
        sock.close()


def test_connections_over_the_cap_are_closed_at_once(server: FolioProcess) -> None:
    held = [connect(server.web_port) for _ in range(CAP)]
    try:
        time.sleep(0.5)  # the server accepts them
        extra = connect(server.web_port)
        closed = wait_all_closed([extra], HEADER_TIMEOUT / 2)
        extra.close()
        assert closed, "a connection over the cap was accepted and held"
        # The other listener has a cap of its own.
        assert httpx.get(f"{server.s3_url}/", timeout=5).status_code == 403
    finally:
        close_all(held)
    time.sleep(0.3)
    healthy(server)


def test_an_idle_keep_alive_connection_closes(server: FolioProcess) -> None:
    sock = socket.create_connection(("127.0.0.1", server.web_port), timeout=10)
    try:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        reply = b""
        while b'"ok"' not in reply:
            reply += sock.recv(65536)
        assert reply.startswith(b"HTTP/1.1 200")
        start = time.monotonic()
        sock.setblocking(False)
        closed = wait_all_closed([sock], KEEP_ALIVE + 3)
        assert closed and time.monotonic() - start >= KEEP_ALIVE - 0.3
    finally:
        sock.close()


def test_a_request_head_too_large_is_431(server: FolioProcess) -> None:
    sock = socket.create_connection(("127.0.0.1", server.web_port), timeout=10)
    try:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        reply = b""
        try:
            for _ in range(200):  # 200 KiB of headers, never ended
                sock.sendall(b"X-Filler: " + b"a" * 1012 + b"\r\n")
        except OSError:
            pass  # the server closed while we were still sending
        try:
            while chunk := sock.recv(65536):
                reply += chunk
        except ConnectionResetError:
            pass
        assert reply.startswith(b"HTTP/1.1 431"), reply[:100]
    finally:
        sock.close()
    healthy(server)


def test_a_silent_body_is_cut_off_on_the_web_listener(server: FolioProcess) -> None:
    """No RequestTimeout answer there (S3 has one): the connection is closed."""
    sock = socket.create_connection(("127.0.0.1", server.web_port), timeout=10)
    key = f"{server.access_key}:{server.secret_key}"
    try:
        sock.sendall(
            b"POST /api/v1/files?key=silent.bin HTTP/1.1\r\nHost: x\r\nX-API-Key: "
            + key.encode()
            + b"\r\nContent-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\n"
            + b"x" * 100
        )
        start = time.monotonic()
        sock.setblocking(False)
        closed = wait_all_closed([sock], IDLE_TIMEOUT + 4)
        assert closed, "a silent request body held its connection"
        assert time.monotonic() - start >= IDLE_TIMEOUT - 1.5
    finally:
        sock.close()
    healthy(server)


def _send_slowly(sock: socket.socket, head: bytes, body: bytes, pieces: int, pause: float) -> bytes:
    sock.sendall(head)
    size = len(body) // pieces
    for index in range(pieces):
        piece = body[index * size :] if index == pieces - 1 else body[index * size : (index + 1) * size]
        sock.sendall(piece)
        time.sleep(pause)
    reply = b""
    while b"\r\n\r\n" not in reply:
        chunk = sock.recv(65536)
        assert chunk, f"closed without an answer after {reply!r}"
        reply += chunk
    return reply


def test_a_slow_steady_upload_is_not_cut(server: FolioProcess) -> None:
    """Longer in total than every timeout, but never idle for long: both listeners keep it."""
    pieces, pause = 16, 0.5  # 8 s: more than the header (2 s) and idle (6 s) timeouts
    assert pieces * pause > IDLE_TIMEOUT + 1
    body = bytes(range(256)) * 64  # 16 KiB
    s3 = make_s3_client(server)
    bucket = f"slow-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    url = boto3.client(
        "s3",
        endpoint_url=server.s3_url,
        region_name="us-east-1",
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
    ).generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "slow.bin"}, ExpiresIn=300)
    target = url.split(f"127.0.0.1:{server.s3_port}", 1)[1]
    s3_sock = socket.create_connection(("127.0.0.1", server.s3_port), timeout=20)
    web_sock: socket.socket | None = None
    try:
        head = (
            f"PUT {target} HTTP/1.1\r\nHost: 127.0.0.1:{server.s3_port}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        reply = _send_slowly(s3_sock, head, body, pieces, pause)
        assert reply.startswith(b"HTTP/1.1 200"), reply[:300]
        assert s3.get_object(Bucket=bucket, Key="slow.bin")["Body"].read() == body

        key = f"{server.access_key}:{server.secret_key}"
        head = (
            f"POST /api/v1/files?bucket={bucket}&key=slow-rest.bin HTTP/1.1\r\nHost: x\r\nX-API-Key: {key}\r\n"
            f"Content-Type: application/octet-stream\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        web_sock = socket.create_connection(("127.0.0.1", server.web_port), timeout=20)
        reply = _send_slowly(web_sock, head, body, pieces, pause)
        assert reply.startswith(b"HTTP/1.1 201"), reply[:300]
        assert s3.get_object(Bucket=bucket, Key="slow-rest.bin")["Body"].read() == body
    finally:
        s3_sock.close()
        if web_sock is not None:
            web_sock.close()


@pytest.fixture(scope="module")
def hypercorn_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FolioProcess]:
    folio = FolioProcess(
        data_dir=tmp_path_factory.mktemp("slow-hypercorn") / "data",
        config_text=LIMITS.replace("[server]\n", "") + TEST_CONFIG,
        engine="hypercorn",
    )
    folio.start()
    yield folio
    folio.stop()


def test_hypercorn_closes_half_request_lines_too(hypercorn_server: FolioProcess) -> None:
    """Under Hypercorn a connection is idle until its request head is complete: its
    keep-alive timeout closes silent and half-sent requests."""
    socks = [connect(hypercorn_server.s3_port) for _ in range(50)]
    for sock in socks[:40]:
        sock.send(b"GET /some-bucket/some-key HT")
    try:
        closed = wait_all_closed(socks, KEEP_ALIVE + 4)
        assert len(closed) == len(socks), f"{len(socks) - len(closed)} of {len(socks)} still open"
    finally:
        close_all(socks)
    assert httpx.get(f"{hypercorn_server.web_url}/healthz", timeout=5).status_code == 200


def _soft_open_files(pid: int) -> int:
    for line in open(f"/proc/{pid}/limits"):  # noqa: SIM115 - a short read of /proc
        if line.startswith("Max open files"):
            return int(line.split()[3])
    raise AssertionError("no 'Max open files' in /proc/<pid>/limits")


def test_the_descriptor_limit_fits_the_connection_cap(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Started with the common soft limit of 1,024 descriptors, the server raises its own
    so that max_connections (not EMFILE on accept) is what bounds its connections."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 2 * 1024 + 512  # two listeners at the default cap, and spare descriptors
    if hard != resource.RLIM_INFINITY and hard < wanted:
        wanted = hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 1024), hard))
    try:  # the server inherits the lowered limit
        started = running_server(tmp_path_factory, "fd-limit", TEST_CONFIG)
        folio = next(started)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    try:
        assert folio.proc is not None
        assert _soft_open_files(folio.proc.pid) >= wanted
        assert httpx.get(f"{folio.web_url}/healthz", timeout=10).status_code == 200
    finally:
        started.close()
