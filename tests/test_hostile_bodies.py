"""Request bodies that try to hurt the web listener (issue 13, findings 3, 4, 7, 8): a
multipart boundary past python-multipart's limit, JSON nested 30,000 deep, bodies far
past their size limit (declared, and chunked with no declaration), and uploads the
client cuts off half-way. Each answer is a deliberate 4xx JSON error, memory stays
flat, and a cut upload leaves no object, no temporary file and no ERROR in the log.

The server is this module's own, so its log and its memory are this module's alone."""

from __future__ import annotations

import json
import select
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from core.requestbody import (
    MAX_JSON_DEPTH,
    BodyProblem,
    json_object,
    json_value,
    multipart_boundary,
)
from tests.conftest import TEST_CONFIG
from tests.docgen_helpers import DocAccount, assert_error, b64, signed_up
from tests.folio_process import FolioProcess, running_server
from tests.web_client import fresh_address

NESTED = b"[" * 30000 + b"]" * 30000
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FolioProcess]:
    yield from running_server(tmp_path_factory, "hostile-bodies", TEST_CONFIG)


@pytest.fixture(scope="module")
def account(server: FolioProcess) -> Iterator[DocAccount]:
    yield from signed_up(server, "hostile")


def web(server: FolioProcess) -> httpx.Client:
    return httpx.Client(
        base_url=server.web_url, timeout=30, transport=httpx.HTTPTransport(local_address=fresh_address())
    )


def multipart(boundary: str, fields: dict[str, bytes], filename: str = "f.bin") -> bytes:
    out = b""
    for name, value in fields.items():
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if name == "file" else "")
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + value + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def open_request(server: FolioProcess, method: str, path: str, headers: dict[str, str]) -> socket.socket:
    """A raw connection that has sent a request head and nothing else."""
    sock = socket.create_connection(("127.0.0.1", server.web_port), timeout=10, source_address=(fresh_address(), 0))
    head = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{server.web_port}"]
    head += [f"{name}: {value}" for name, value in headers.items()]
    sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
    return sock


def read_answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of one HTTP/1.1 answer (Content-Length framed)."""
    data = b""
    while b"\r\n\r\n" not in data:
        piece = sock.recv(65536)
        assert piece, f"connection closed without an answer: {data!r}"
        data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        piece = sock.recv(65536)
        if not piece:
            break
        body += piece
    return status, headers, body


def assert_json_error(status: int, headers: dict[str, str], body: bytes, expected: int) -> dict:
    assert status == expected, (status, body[:500])
    assert headers["content-type"].startswith("application/json"), headers
    error = json.loads(body)["error"]
    assert error["code"] and error["message"] and isinstance(error["details"], dict), error
    return error


# --------------------------------------------------------------- the helper itself


def test_json_helper_refuses_deep_nesting_and_parses_the_rest() -> None:
    assert json_object(b'{"a": [1, {"b": "[[[[{{{{"}], "c": "\\"]]]"}') == {"a": [1, {"b": "[[[[{{{{"}], "c": '"]]]'}
    assert json_object(b"") == {}
    deep_ok = b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH
    assert json_value(deep_ok) is not None
    for hostile in (
        NESTED,
        b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1),
        b'{"a":' * 30000 + b"1" + b"}" * 30000,
        b"[" * 30000,  # never closed
        b"[" * 30000 + b"}" * 30000,  # closed wrongly
        b"1" * 5000,  # past CPython's int() digit limit
        b"[" + b"{}," * 300_000 + b"{}]",  # each 3 bytes of JSON a 64-byte dict: too many containers
        b"\xff\xfe",
        b"[1, 2",
    ):
        with pytest.raises(BodyProblem):
            json_value(hostile)
    with pytest.raises(BodyProblem):
        json_object(b"[1]")


def test_multipart_boundary_follows_rfc_2046() -> None:
    assert multipart_boundary("multipart/form-data; boundary=abc-123") == b"abc-123"
    assert multipart_boundary('multipart/form-data; boundary="a b:c"') == b"a b:c"
    assert multipart_boundary("multipart/form-data; boundary=" + "x" * 70) == b"x" * 70
    for bad in ("x" * 71, "x" * 300, "", "a\x01b", "ab "):
        with pytest.raises(BodyProblem):
            multipart_boundary(f'multipart/form-data; boundary="{bad}"')
    with pytest.raises(BodyProblem):
        multipart_boundary("text/plain; boundary=abc")


# --------------------------------------------------------------- finding 3: boundaries


@pytest.mark.parametrize("path", ["/api/v1/files", "/api/versions"])
@pytest.mark.parametrize("length", [71, 300])
def test_overlong_multipart_boundary_is_a_400_json_error(
    server: FolioProcess, account: DocAccount, path: str, length: int
) -> None:
    boundary = "b" * length
    body = multipart(boundary, {"key": b"long-boundary.txt", "file": b"hello"})
    with web(server) as client:
        response = client.post(
            path,
            content=body,
            headers={"X-API-Key": account.s3_pair, "Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        assert_error(response, 400)
        # A boundary of the RFC's 70 characters is fine.
        ok = "c" * 70
        good = client.post(
            path,
            content=multipart(ok, {"key": b"good-boundary.txt", "file": b"hello"}),
            headers={"X-API-Key": account.s3_pair, "Content-Type": f"multipart/form-data; boundary={ok}"},
        )
        assert good.status_code == 201, good.text


def test_overlong_boundary_on_the_document_form_is_a_400(server: FolioProcess, account: DocAccount) -> None:
    boundary = "d" * 300
    body = multipart(boundary, {"template": b"<p>{{ x }}</p>", "data": b'{"x": 1}'})
    response = account.http.post(
        "/v2/template/pdf", content=body, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    assert_error(response, 400)


# --------------------------------------------------------------- finding 4: nesting


def test_deeply_nested_json_is_a_400_everywhere(server: FolioProcess, account: DocAccount) -> None:
    key = {"X-API-Key": account.s3_pair, "Content-Type": "application/json"}
    doc = {"X-API-Key": account.key, "Content-Type": "application/json"}
    wrapped = b'{"name": "x", "html": "' + b64("<p>x</p>").encode() + b'", "data": ' + NESTED + b"}"
    attempts = [
        ("POST", "/api/auth/signup", {"Content-Type": "application/json"}, NESTED),
        ("POST", "/api/auth/login", {"Content-Type": "application/json"}, NESTED),
        ("POST", "/api/keys", key, NESTED),
        ("POST", "/api/keys", key, wrapped),
        ("POST", "/api/webhooks", key, NESTED),
        ("PATCH", "/api/webhooks", key, NESTED),
        ("PATCH", "/api/versions", key, NESTED),
        ("POST", "/api/buckets", key, NESTED),
        ("POST", "/api/shares", key, NESTED),
        ("POST", "/api/img/sign", key, NESTED),
        ("POST", "/v1/html/pdf", doc, NESTED),
        ("POST", "/v2/html/image", doc, wrapped),
        ("POST", "/v2/template/pdf", doc, wrapped),
        ("POST", "/v2/templates", doc, NESTED),
        ("POST", "/v2/storage", doc, NESTED),
        # `data` may be a JSON string in the body: it is parsed with the same limits.
        (
            "POST",
            "/v1/template/pdf",
            doc,
            json.dumps({"template": b64("<p>{{ x }}</p>"), "data": NESTED.decode()}).encode(),
        ),
    ]
    with web(server) as client:
        for method, path, headers, body in attempts:
            response = client.request(method, path, content=body, headers=headers)
            assert response.status_code == 400, (method, path, response.status_code, response.text[:300])
            assert_error(response, 400)
        # The document form's `options` and `data` parts too.
        for part in ("options", "data"):
            boundary = uuid.uuid4().hex
            fields = {"template": b"<p>{{ x }}</p>", part: NESTED}
            response = client.post(
                "/v2/template/pdf",
                content=multipart(boundary, fields),
                headers={"X-API-Key": account.key, "Content-Type": f"multipart/form-data; boundary={boundary}"},
            )
            assert_error(response, 400)
        # A normal request is still answered.
        assert client.get("/api/keys", headers={"X-API-Key": account.s3_pair}).status_code == 200


# --------------------------------------------------------------- finding 7: size limits


@pytest.mark.parametrize(
    ("path", "declared", "auth"),
    [
        ("/api/auth/login", 300 * MIB, None),
        ("/api/auth/signup", 300 * MIB, None),
        ("/api/keys", 300 * MIB, "s3"),
        ("/v1/html/pdf", 300 * MIB, "doc"),
        ("/api/v1/files", 6 * 1024 * MIB, "s3"),
    ],
)
def test_declared_oversized_body_is_refused_before_it_is_sent(
    server: FolioProcess, account: DocAccount, path: str, declared: int, auth: str | None
) -> None:
    headers = {"Content-Type": "application/json", "Content-Length": str(declared)}
    if auth:
        headers["X-API-Key"] = account.s3_pair if auth == "s3" else account.key
    sock = open_request(server, "POST", path, headers)
    try:
        sock.settimeout(5)
        try:
            status, answer_headers, body = read_answer(sock)
        except TimeoutError:
            pytest.fail(f"{path}: no answer within 5 s to a {declared}-byte declaration (the server waits for it)")
        assert_json_error(status, answer_headers, body, 413)
        # Answered and closed: the rest of the body is not wanted.
        assert answer_headers.get("connection", "").lower() == "close", answer_headers
        assert sock.recv(1) == b""
    finally:
        sock.close()


def test_chunked_body_is_cut_off_as_it_passes_the_limit(server: FolioProcess) -> None:
    assert server.proc is not None
    pid = server.proc.pid
    before = peak = rss_kib(pid)
    sock = open_request(
        server, "POST", "/api/auth/login", {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}
    )
    chunk = b" " * MIB  # whitespace: valid JSON so far, whatever the server does with it
    frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    sent = 0
    try:
        while sent < 300 * MIB:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
            try:
                sock.sendall(frame)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
            peak = max(peak, rss_kib(pid))
        sock.settimeout(10)
        status, headers, body = read_answer(sock)
    finally:
        sock.close()
    assert_json_error(status, headers, body, 413)
    grown_mib = (peak - before) / 1024
    assert grown_mib < 64, f"the server grew by {grown_mib:.0f} MiB while {sent // MIB} MiB were sent"
    assert sent < 64 * MIB, f"the server took {sent // MIB} MiB of a body limited to 64 KiB"
    with web(server) as client:
        assert client.get("/healthz").status_code == 200


# --------------------------------------------------------------- finding 8: cut uploads


def cut_upload(server: FolioProcess, path: str, api_key: str, key: str, *, form: bool) -> None:
    """Declare 4 MiB, send the head and about half of it, hang up."""
    payload = b"x" * (4 * MIB)
    if form:
        boundary = uuid.uuid4().hex
        body = multipart(boundary, {"key": key.encode(), "file": payload})
        content_type = f"multipart/form-data; boundary={boundary}"
        target = path
    else:
        body, content_type, target = payload, "application/octet-stream", f"{path}?key={key}"
    headers = {"X-API-Key": api_key, "Content-Type": content_type, "Content-Length": str(len(body))}
    sock = open_request(server, "POST", target, headers)
    try:
        sock.sendall(body[: len(body) // 2])
        time.sleep(0.2)  # let the server get into the body before the hang-up
    finally:
        sock.close()


def test_cut_uploads_log_no_error_and_store_nothing(server: FolioProcess, account: DocAccount) -> None:
    log_before = len(server.log())
    keys = []
    for round_number in range(4):
        for path, form in (("/api/versions", True), ("/api/v1/files", True), ("/api/v1/files", False)):
            key = f"cut-{round_number}-{uuid.uuid4().hex[:8]}.bin"
            keys.append(key)
            cut_upload(server, path, account.s3_pair, key, form=form)
    time.sleep(1.5)  # the server notices each hang-up on its own schedule
    with web(server) as client:
        # Still serving; none of the cut files exists.
        listed = client.get("/api/v1/files", params={"limit": "1000"}, headers={"X-API-Key": account.s3_pair})
        assert listed.status_code == 200, listed.text
        stored = {item["key"] for item in listed.json()["files"]}
        assert not stored & set(keys), stored & set(keys)
    log = server.log()[log_before:]
    assert "Traceback" not in log, log[-4000:]
    assert " ERROR " not in log, log[-4000:]
    tmp = server.data_dir / "tmp"
    leftovers = [p.name for p in tmp.iterdir()] if tmp.exists() else []
    assert not leftovers, leftovers


def _upload_body(boundary: str, parts: list[tuple[str, bytes]]) -> bytes:
    """Parts given as (headers block, value): the headers as sent, CRLF-separated."""
    out = b""
    for headers, value in parts:
        out += f"--{boundary}\r\n{headers}\r\n\r\n".encode() + value + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


@pytest.mark.parametrize("path", ["/api/v1/files", "/api/versions"])
def test_form_parts_and_their_headers_are_bounded(server: FolioProcess, account: DocAccount, path: str) -> None:
    """A part's headers, the number of parts and the text fields together are bounded: an
    upload's Content-Length may be gigabytes, and only the file may use them."""
    boundary = "bounded"
    file_part = ('Content-Disposition: form-data; name="file"; filename="f.txt"', b"hello")
    huge_header = (f'Content-Disposition: form-data; name="key"\r\nX-Filler: {"x" * 200_000}', b"k.txt")
    many_parts = [(f'Content-Disposition: form-data; name="f{i}"', b"v") for i in range(200)]
    many_fields = [(f'Content-Disposition: form-data; name="g{i}"', b"v" * 60_000) for i in range(8)]
    rss_before = rss_kib(server.proc.pid)  # type: ignore[union-attr]
    with web(server) as client:
        for parts in ([huge_header, file_part], [*many_parts, file_part], [*many_fields, file_part]):
            response = client.post(
                path,
                content=_upload_body(boundary, parts),
                headers={"X-API-Key": account.s3_pair, "Content-Type": f"multipart/form-data; boundary={boundary}"},
            )
            assert_error(response, 400)
        # The same form within the bounds is stored.
        good = client.post(
            path,
            content=_upload_body(boundary, [('Content-Disposition: form-data; name="key"', b"bounded.txt"), file_part]),
            headers={"X-API-Key": account.s3_pair, "Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        assert good.status_code == 201, good.text
    assert rss_kib(server.proc.pid) - rss_before < 50 * 1024  # type: ignore[union-attr]
