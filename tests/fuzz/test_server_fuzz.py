"""The server layer of the fuzzing (docs/fuzzing.md): generated requests against a real
Folio, on both listeners, anonymous and correctly signed, and for every one of them: an
answer (no connection dropped without one), within the client's timeout (no hang), and
never a 5xx but the deliberate ones (501 NotImplemented; 503 with Retry-After where the
code documents a limit). After each target a normal request (healthz, a signed GET of a
known object) must still be answered. The module prints one summary line: requests,
5xx, dropped, hangs, and the server's RSS (VmHWM of its process at the end).

State stays bounded: objects are written only to one scratch bucket (and one bucket name
that may be created), the known object lives in a bucket no generated request names.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
import pytest
from botocore.auth import HmacV1QueryAuth, S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.httpchecksum import AwsChunkedWrapper, Crc32Checksum
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from s3proxy.api.router import SUBRESOURCES
from tests.conftest import TEST_CONFIG, make_s3_client
from tests.folio_process import FolioProcess
from tests.fuzz.profiles import examples
from tests.fuzz.stats import SUMMARIES, FuzzStats
from tests.fuzz.strategies import (
    TRICKY_NUMBERS,
    header_text,
    json_values,
    numbers,
    percent_encode,
    query_value,
    text,
)
from tests.fuzz.web_strategies import document_bodies as document_options
from tests.fuzz.web_strategies import templates

pytestmark = pytest.mark.fuzz

TIMEOUT = 10.0  # seconds: an answer later than this is a hang
DOCUMENT_TIMEOUT = 30.0  # a document renders in a worker; the body caps its own timeout at 5 s
SCRATCH = "fuzz-scratch"
CONTROL = "fuzz-control"  # never named by a generated request
CREATABLE = "fuzz-maybe"  # the one new bucket a generated request may create
KNOWN = b"the known object"


@dataclass
class Target:
    server: FolioProcess
    s3: httpx.Client
    web: httpx.Client
    docgen_key: str
    upload_id: str
    stats: FuzzStats

    def __repr__(self) -> str:
        return f"Target(s3={self.server.s3_url}, web={self.server.web_url})"

    def _repr_pretty_(self, printer, cycle: bool) -> None:
        # Hypothesis prints a falsifying example's arguments with this (not field by field).
        printer.text(repr(self))

    @property
    def api_key(self) -> str:
        return f"{self.server.access_key}:{self.server.secret_key}"


def vm_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def tiny_png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (32, 24), (200, 40, 90)).save(out, "PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    server = FolioProcess(data_dir=tmp_path_factory.mktemp("fuzz") / "data", config_text=TEST_CONFIG)
    server.start()
    started = time.monotonic()
    s3 = make_s3_client(server)
    for name in (SCRATCH, CONTROL):
        s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=CONTROL, Key="known", Body=KNOWN)
    s3.put_object(Bucket=SCRATCH, Key="anchor/keep", Body=b"keeps the bucket from being deleted")
    s3.put_object(Bucket=SCRATCH, Key="obj", Body=b"0123456789" * 10)
    s3.put_object(Bucket=SCRATCH, Key="pub", Body=b"public bytes", ACL="public-read")
    s3.put_object(Bucket=SCRATCH, Key="img.png", Body=tiny_png(), ContentType="image/png")
    upload_id = s3.create_multipart_upload(Bucket=SCRATCH, Key="mp")["UploadId"]
    web = httpx.Client(base_url=server.web_url, timeout=TIMEOUT)
    s3_http = httpx.Client(base_url=server.s3_url, timeout=TIMEOUT)
    made = web.post(
        "/api/keys", headers={"X-API-Key": f"{server.access_key}:{server.secret_key}"}, json={"type": "docgen", "name": "fuzz"}
    )
    assert made.status_code == 201, made.text
    stats = FuzzStats()
    assert server.proc is not None
    start_rss = vm_kib(server.proc.pid, "VmRSS")
    found = Target(server, s3_http, web, made.json()["apiKey"], upload_id, stats)
    yield found
    still_answering(found)
    peak, end_rss = vm_kib(server.proc.pid, "VmHWM"), vm_kib(server.proc.pid, "VmRSS")
    line = stats.summary(peak, start_rss, end_rss, time.monotonic() - started)
    SUMMARIES.append(line)
    print(line)
    web.close()
    s3_http.close()
    server.stop()


# -- sending and judging ------------------------------------------------------------------


def deliberate(response: httpx.Response) -> bool:
    """The 5xx answers that are decisions, not failures."""
    if response.status_code == 501:
        return True  # S3 NotImplemented: an operation or header Folio does not support
    # /api/img: a full transform queue or a transform past its time limit (core/config.py, images).
    return response.status_code == 503 and "retry-after" in response.headers


def exchange(t: Target, client: httpx.Client, method: str, url: str | httpx.URL, *, headers=None, content: bytes = b"", timeout: float = TIMEOUT) -> httpx.Response:
    description = f"{method} {url} headers={headers!r} body={content[:300]!r}"
    if isinstance(headers, dict):
        headers = latin1(headers)
    try:
        response = client.request(method, url, headers=headers, content=content, timeout=timeout)
    except httpx.TimeoutException as exc:
        t.stats.hangs += 1
        raise AssertionError(f"no answer within {timeout} s: {description}") from exc
    except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError, httpx.ConnectError) as exc:
        t.stats.dropped += 1
        raise AssertionError(f"connection dropped without an answer ({exc!r}): {description}") from exc
    t.stats.answered(response.status_code)
    if response.status_code >= 500 and not deliberate(response):
        t.stats.server_errors += 1
        raise AssertionError(f"{response.status_code} {response.text[:500]!r} for {description}")
    return response


def still_answering(t: Target) -> None:
    """The normal requests every target must leave working."""
    health = exchange(t, t.web, "GET", "/healthz")
    assert health.status_code == 200, health.text
    path = f"/{CONTROL}/known"
    headers = signed_headers(t.server, "GET", path, "", b"", {})
    known = exchange(t, t.s3, "GET", path, headers=headers)
    assert known.status_code == 200 and known.content == KNOWN, known.text


@pytest.fixture(autouse=True)
def _still_answering_after(target: Target) -> Iterator[None]:
    yield
    still_answering(target)


def signed_headers(server: FolioProcess, method: str, path: str, query: str, body: bytes, headers: dict[str, str], *, payload: str | None = None) -> dict[str, str]:
    """botocore's SigV4 signature over the request exactly as it will be sent."""
    url = f"{server.s3_url}{path}" + (f"?{query}" if query else "")
    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers))
    signer = S3SigV4Auth if payload is None else _streaming_signer(payload)
    signer(Credentials(server.access_key, server.secret_key), "s3", "us-east-1").add_auth(request)
    return {k: (v.decode("latin-1") if isinstance(v, bytes) else v) for k, v in request.headers.items()}


def _streaming_signer(payload: str) -> type[S3SigV4Auth]:
    class StreamingAuth(S3SigV4Auth):
        """botocore's signer, told the body is a stream (as the CRT and newer SDKs sign it)."""

        def payload(self, request: AWSRequest) -> str:
            return payload

    return StreamingAuth


def presigned_query(server: FolioProcess, method: str, path: str, query: str, version: int) -> str:
    url = f"{server.s3_url}{path}" + (f"?{query}" if query else "")
    request = AWSRequest(method=method, url=url)
    credentials = Credentials(server.access_key, server.secret_key)
    if version == 4:
        S3SigV4QueryAuth(credentials, "s3", "us-east-1", expires=300).add_auth(request)
    else:
        HmacV1QueryAuth(credentials, expires=300).add_auth(request)
    return urlsplit(request.url).query


def latin1(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    # httpx would refuse non-ASCII str values: send the exact latin-1 bytes instead.
    # HTTP drops a value's leading and trailing whitespace (and h11 refuses to send it).
    return [(k.encode("latin-1"), v.strip(" \t").encode("latin-1")) for k, v in headers.items()]


# -- the S3 listener ------------------------------------------------------------------------

QUERY_NAMES = sorted(
    SUBRESOURCES
    | {
        "partNumber", "uploadId", "versionId", "max-keys", "max-parts", "part-number-marker", "max-uploads",
        "list-type", "continuation-token", "encoding-type", "prefix", "delimiter", "key-marker",
        "version-id-marker", "start-after", "fetch-owner", "marker", "upload-id-marker", "x-id",
        "response-content-type", "response-content-language", "response-expires", "response-cache-control",
        "response-content-disposition", "response-content-encoding", "X-Amz-Algorithm", "X-Amz-Credential",
        "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders", "X-Amz-Signature", "AWSAccessKeyId",
        "Signature", "Expires",
    }
)  # fmt: skip
HEADER_NAMES = (
    "range", "if-match", "if-none-match", "if-modified-since", "if-unmodified-since", "x-amz-copy-source",
    "x-amz-copy-source-range", "x-amz-copy-source-if-match", "x-amz-copy-source-if-modified-since",
    "x-amz-content-sha256", "x-amz-decoded-content-length", "content-encoding", "x-amz-trailer",
    "x-amz-checksum-crc32", "x-amz-checksum-sha256", "x-amz-checksum-algorithm", "x-amz-sdk-checksum-algorithm",
    "x-amz-acl", "x-amz-grant-read", "x-amz-meta-a", "content-md5", "x-amz-storage-class",
    "x-amz-metadata-directive", "content-type", "cache-control", "x-amz-date", "origin",
    "access-control-request-method", "access-control-request-headers", "x-amz-checksum-type", "expect",
)  # fmt: skip
LIKELY_HEADER_VALUES = {
    "range": ["bytes=0-1", "bytes=\u00b2-", "bytes =10001-1\u00b2", "bytes=-5", "bytes=5-", "bytes=0-0,2-3", "bytes=99999999999999999999999-"],
    "x-amz-copy-source": [f"{SCRATCH}/obj", f"/{SCRATCH}/pub?versionId=null", f"{CONTROL}/known", "a", "%FF/%FE", f"{SCRATCH}/obj?versionId=%0D%0A"],
    "x-amz-copy-source-range": ["bytes=0-5", "bytes=\u00b2-3", "bytes=5-1", "bytes=0-999999"],
    "x-amz-content-sha256": ["UNSIGNED-PAYLOAD", "STREAMING-UNSIGNED-PAYLOAD-TRAILER", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", "0" * 64],
    "x-amz-decoded-content-length": ["0", "\u00b2", "-1", "99999999999999999999999"],
    "content-encoding": ["aws-chunked", "gzip", "aws-chunked,gzip"],
    "x-amz-trailer": ["x-amz-checksum-crc32", "x-amz-checksum-bogus", ","],
    "x-amz-acl": ["public-read", "private", "public-read-write", "bogus"],
    "expect": ["100-continue", "bogus"],
    "content-md5": ["1B2M2Y8AsgTpgAmY7PhCfg==", "not base64", ""],
    "origin": ["http://example.com", "null"],
    "x-amz-checksum-algorithm": ["CRC32", "CRC64NVME", "MD5", "\u00b2"],
}  # fmt: skip


@st.composite
def s3_headers(draw: st.DrawFn) -> dict[str, str]:
    headers = {}
    for name in draw(st.lists(st.sampled_from(HEADER_NAMES), max_size=5, unique=True)):
        likely = LIKELY_HEADER_VALUES.get(name)
        value = draw(st.one_of(st.sampled_from(likely), header_text) if likely else header_text)
        if name == "expect" and value.lower() == "100-continue":
            continue  # httpx does not wait for 100 Continue; the case has its own tests
        headers[name] = value.strip(" \t") or "x"
    return headers


@st.composite
def s3_queries(draw: st.DrawFn) -> str:
    parts = []
    for name in draw(st.lists(st.one_of(st.sampled_from(QUERY_NAMES), text.map(percent_encode)), max_size=4)):
        if not name:
            continue
        if draw(st.integers(0, 5)) == 0:
            parts.append(name)
            continue
        value = draw(st.one_of(query_value, st.sampled_from(TRICKY_NUMBERS).map(percent_encode), st.just(percent_encode("a\r\nX-Injected: yes"))))
        parts.append(f"{name}={value}")
    return "&".join(parts)


buckets = st.one_of(st.sampled_from([SCRATCH, SCRATCH, SCRATCH, CREATABLE, "no-such-fuzz-bucket", "Bad_Name", "a", "xn--x", "192.168.1.1"]), text.map(percent_encode))
object_keys = st.one_of(st.sampled_from(["obj", "pub", "mp", "img.png", "new", "dir/new", "", "%FF", "%00", "a%0D%0Ab"]), text.map(percent_encode).map(lambda k: k.replace("%2F", "/")))


@st.composite
def s3_requests(draw: st.DrawFn) -> tuple:
    method = draw(st.sampled_from(["GET", "GET", "PUT", "POST", "DELETE", "HEAD", "OPTIONS", "PATCH"]))
    bucket = draw(buckets)
    key = draw(st.one_of(st.none(), object_keys))
    path = "/" + bucket + (f"/{key}" if key is not None else "")
    if draw(st.integers(0, 9)) == 0:
        path = "/"
    query = draw(s3_queries())
    headers = draw(s3_headers())
    body = draw(st.one_of(st.just(b""), st.binary(max_size=300))) if method in ("PUT", "POST") else b""
    auth = draw(st.sampled_from(["anonymous", "signed", "signed", "signed", "presigned-v4", "presigned-v2"]))
    tamper = None
    if auth.startswith("presigned") and draw(st.booleans()):
        tamper = (draw(st.integers(0, 10)), draw(st.one_of(query_value, st.sampled_from(TRICKY_NUMBERS).map(percent_encode))))
    return method, path, query, headers, body, auth, tamper


def send_s3(
    t: Target,
    method: str,
    path: str,
    query: str,
    headers: dict[str, str],
    body: bytes,
    auth: str,
    tamper: tuple[int, str] | None = None,
) -> httpx.Response:
    if auth == "signed":
        headers = signed_headers(t.server, method, path, query, body, headers)
    elif auth.startswith("presigned"):
        signed_query = presigned_query(t.server, method, path, "", 4 if "v4" in auth else 2)
        if tamper is not None:
            # One parameter of a real presigned URL replaced: every check past the first is reached.
            pairs = [pair.partition("=") for pair in signed_query.split("&")]
            index, value = tamper[0] % len(pairs), tamper[1]
            pairs[index] = (pairs[index][0], "=", value)
            signed_query = "&".join("".join(pair) for pair in pairs)
        query = f"{query}&{signed_query}" if query else signed_query
    url = httpx.URL(t.server.s3_url).copy_with(raw_path=(path + (f"?{query}" if query else "")).encode("ascii"))
    return exchange(t, t.s3, method, url, headers=latin1(headers), content=body)


@settings(max_examples=examples(150))
@given(s3_requests())
def test_s3_requests_of_every_shape_get_an_answer(target, request_parts) -> None:
    send_s3(target, *request_parts)


XML_BODIES = {
    ("POST", "uploadId"): "CompleteMultipartUpload",
    ("POST", "delete"): "Delete",
    ("PUT", "cors"): "CORSConfiguration",
    ("PUT", "acl"): "AccessControlPolicy",
    ("PUT", "versioning"): "VersioningConfiguration",
    ("PUT", "tagging"): "Tagging",
}
XML_CHILDREN = {
    "CompleteMultipartUpload": "<Part><PartNumber>{n}</PartNumber><ETag>{t}</ETag></Part>",
    "Delete": "<Object><Key>{t}</Key><VersionId>{t}</VersionId></Object><Quiet>{t}</Quiet>",
    "CORSConfiguration": "<CORSRule><AllowedOrigin>{t}</AllowedOrigin><AllowedMethod>GET</AllowedMethod><AllowedHeader>{t}</AllowedHeader><MaxAgeSeconds>{n}</MaxAgeSeconds></CORSRule>",
    "AccessControlPolicy": "<Owner><ID>{t}</ID></Owner><AccessControlList><Grant><Grantee><URI>{t}</URI></Grantee><Permission>READ</Permission></Grant></AccessControlList>",
    "VersioningConfiguration": "<Status>{t}</Status><MfaDelete>{t}</MfaDelete>",
    "Tagging": "<TagSet><Tag><Key>{t}</Key><Value>{t}</Value></Tag></TagSet>",
}  # fmt: skip
HOSTILE_XML = (
    b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]><Delete><Object><Key>&x;</Key></Object></Delete>',
    b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;"><!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;">]><CORSConfiguration><CORSRule><AllowedOrigin>&e;</AllowedOrigin><AllowedMethod>GET</AllowedMethod></CORSRule></CORSConfiguration>',
    b'<!DOCTYPE x SYSTEM "http://169.254.169.254/latest/meta-data/"><VersioningConfiguration/>',
    b"<a>" * 5000,
    b"\xff\xfe<\x00D\x00",
)  # fmt: skip


@st.composite
def xml_requests(draw: st.DrawFn) -> tuple[str, str, str, dict[str, str], bytes]:
    (method, sub), root = draw(st.sampled_from(sorted(XML_BODIES.items())))
    on_object = sub in ("uploadId", "acl", "tagging") and draw(st.booleans()) or sub == "uploadId"
    path = f"/{SCRATCH}/" + draw(st.sampled_from(["mp", "obj", "pub"])) if on_object else f"/{SCRATCH}"
    value = "" if sub != "uploadId" else draw(st.one_of(st.just("UPLOAD"), query_value))
    query = f"{sub}={value}" if value or sub == "uploadId" else sub
    if draw(st.integers(0, 4)) == 0:
        body = draw(st.sampled_from(HOSTILE_XML))
    else:
        template = XML_CHILDREN[root]
        inner = "".join(
            template.format(n=draw(numbers).replace("<", "&lt;").replace("&", "&amp;"), t=draw(text).replace("&", "&amp;").replace("<", "&lt;"))
            for _ in range(draw(st.integers(0, 3)))
        )
        body = f"<{root}>{inner}</{root}>".encode("utf-8", "surrogatepass")
    headers = {"content-md5": base64.b64encode(hashlib.md5(body).digest()).decode()}
    return method, path, query, headers, body


@settings(max_examples=examples(60))
@given(xml_requests())
def test_s3_xml_bodies_get_an_answer(target, parts) -> None:
    method, path, query, headers, body = parts
    query = query.replace("UPLOAD", target.upload_id)
    send_s3(target, method, path, query, headers, body, "signed")


@settings(max_examples=examples(40))
@given(
    payload=st.binary(max_size=2000),
    chunk_size=st.integers(1, 700),
    damage=st.one_of(st.none(), st.tuples(st.integers(0), st.binary(max_size=4))),
    declared=st.one_of(st.none(), st.sampled_from(["\u00b2", "-1", "1", "99999999999999999999999"])),
    key=st.sampled_from(["chunked", "dir/chunked"]),
)
def test_s3_aws_chunked_uploads_get_an_answer(target, payload, chunk_size, damage, declared, key) -> None:
    name = "x-amz-checksum-crc32"
    body = AwsChunkedWrapper(io.BytesIO(payload), Crc32Checksum, name, chunk_size=chunk_size).read()
    if damage is not None:
        position, replacement = damage
        position %= max(1, len(body))
        body = body[:position] + replacement + body[position + len(replacement) + 1 :]
    headers = {
        "content-encoding": "aws-chunked",
        "x-amz-decoded-content-length": declared if declared is not None else str(len(payload)),
        "x-amz-trailer": name,
    }
    path = f"/{SCRATCH}/{key}"
    signed = signed_headers(target.server, "PUT", path, "", body, headers, payload="STREAMING-UNSIGNED-PAYLOAD-TRAILER")
    response = exchange(target, target.s3, "PUT", f"{target.server.s3_url}{path}", headers=latin1(signed), content=body)
    if damage is None and declared is None:
        assert response.status_code == 200, response.text


def raw_exchange(t: Target, port: int, request: bytes) -> bytes:
    """One request over a plain socket (for targets httpx would normalize away: '..',
    raw bytes); returns the status line. Dropped and silent connections are failures."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(request)
        received = b""
        try:
            while b"\r\n" not in received:
                piece = sock.recv(4096)
                if not piece:
                    break
                received += piece
        except TimeoutError as exc:
            t.stats.hangs += 1
            raise AssertionError(f"no answer within {TIMEOUT} s to {request[:300]!r}") from exc
    status_line = received.split(b"\r\n", 1)[0]
    if not status_line.startswith(b"HTTP/1.1 "):
        t.stats.dropped += 1
        raise AssertionError(f"connection closed without an answer to {request[:300]!r}")
    status = int(status_line.split()[1])
    t.stats.answered(status)
    if status >= 500 and status not in (501,):
        t.stats.server_errors += 1
        raise AssertionError(f"{status_line!r} for {request[:300]!r}")
    return status_line


raw_targets = st.lists(
    st.one_of(
        st.sampled_from([b"/", b"..", b".", b"//", b"%2e%2e", b"%2F", b"%00", b"%FF", b"%", b"%zz", SCRATCH.encode(), b"obj", b"?", b"#", b";", b"\xff", b"\xc2\xb2"]),
        st.binary(min_size=1, max_size=6).filter(lambda b: not set(b) & set(b" \r\n\t\x00")),
    ),
    min_size=1,
    max_size=6,
).map(lambda parts: b"/" + b"/".join(parts))


@settings(max_examples=examples(40))
@given(request_target=raw_targets, method=st.sampled_from([b"GET", b"HEAD", b"DELETE", b"PUT", b"BREW"]), listener=st.sampled_from(["s3", "web"]))
def test_raw_request_targets_get_an_answer(target, request_target, method, listener) -> None:
    port = target.server.s3_port if listener == "s3" else target.server.web_port
    request = method + b" " + request_target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    raw_exchange(target, port, request)


# -- the web listener -----------------------------------------------------------------------

JSON_ENDPOINTS = (
    ("POST", "/api/auth/signup"), ("POST", "/api/auth/login"), ("POST", "/api/auth/logout"), ("GET", "/api/account"),
    ("GET", "/api/keys"), ("POST", "/api/keys"), ("DELETE", "/api/keys"), ("GET", "/api/buckets"),
    ("POST", "/api/buckets"), ("PATCH", "/api/buckets"), ("DELETE", "/api/buckets"), ("GET", "/api/versions"),
    ("PATCH", "/api/versions"), ("GET", "/api/webhooks"), ("POST", "/api/webhooks"), ("PATCH", "/api/webhooks"),
    ("DELETE", "/api/webhooks"), ("GET", "/api/shares"), ("POST", "/api/shares"), ("DELETE", "/api/shares"),
    ("POST", "/api/img/sign"), ("GET", "/api/v1/files"), ("GET", "/s/{text}"), ("GET", "/api/v1/files/{id}"),
    ("HEAD", "/api/v1/files/{id}"), ("DELETE", "/api/v1/files/{text}"), ("GET", "/v1/jobs"), ("GET", "/v2/jobs/{text}"),
    ("GET", "/v1/assets"), ("GET", "/v2/assets/{text}"), ("GET", "/v1/assets/{text}/file"), ("GET", "/v2/account"),
    ("GET", "/v1/getStatus"), ("GET", "/v2/templates"), ("POST", "/v2/templates"), ("DELETE", "/v1/templates/{text}"),
    ("GET", "/v2/storage"), ("POST", "/v2/storage"), ("DELETE", "/v2/storage"), ("GET", "/healthz/documents"),
)  # fmt: skip
FIELD_NAMES = (
    "email", "password", "name", "type", "bucket", "key", "fileId", "versionId", "expiresIn", "url", "events",
    "active", "public", "versioning", "params", "id", "template", "html", "data", "accessKeyId", "secretAccessKey",
    "endpoint", "region", "title", "restore",
)  # fmt: skip
QUERY_PARAMS = ("id", "bucket", "key", "fileId", "limit", "cursor", "prefix", "expires", "signature", "name", "download")
WEB_AUTH = ("none", "key", "docgen", "bearer", "junk")


def auth_headers(t: Target, kind: str) -> dict[str, str]:
    if kind == "key":
        return {"X-API-Key": t.api_key}
    if kind == "docgen":
        return {"X-API-Key": t.docgen_key}
    if kind == "bearer":
        return {"Authorization": f"Bearer {t.api_key}"}
    if kind == "junk":
        return {"X-API-Key": "AK:\u00b2", "Cookie": "session=%FF"}
    return {}


json_bodies = st.one_of(
    st.dictionaries(st.one_of(st.sampled_from(FIELD_NAMES), text), st.one_of(json_values(10), st.sampled_from([SCRATCH, "obj", "file.created", "http://127.0.0.1:1/", "https://169.254.169.254/"])), max_size=6).map(lambda b: json.dumps(b).encode()),
    json_values(20).map(lambda v: json.dumps(v).encode()),
    st.integers(1, 30000).map(lambda depth: b"[" * depth + b"]" * depth),
    st.binary(max_size=200),
    st.sampled_from([b"", b"NaN", b"1e999999", b'{"expiresIn": 1e308}', b'{"expiresIn": -0.0}', b"\xef\xbb\xbf{}", b'{"a": "\\ud800"}']),
)  # fmt: skip


def web_query(draw: st.DrawFn) -> str:
    pairs = draw(st.lists(st.tuples(st.sampled_from(QUERY_PARAMS), st.one_of(query_value, st.sampled_from(TRICKY_NUMBERS).map(percent_encode))), max_size=3))
    return "&".join(f"{k}={v}" for k, v in pairs)


@st.composite
def web_requests(draw: st.DrawFn) -> tuple[str, str, str, bytes, str, dict[str, str]]:
    method, path = draw(st.sampled_from(JSON_ENDPOINTS))
    if "{id}" in path:
        path = path.replace("{id}", "f_" + base64.urlsafe_b64encode(f"{SCRATCH}/obj".encode()).decode().rstrip("="))
    path = path.replace("{text}", percent_encode(draw(text)) or "x")
    body = draw(json_bodies) if method in ("POST", "PATCH", "DELETE") else b""
    extra = {}
    if draw(st.booleans()):
        extra["Content-Type"] = draw(st.sampled_from(["application/json", "text/plain", "application/json; charset=latin-1", "multipart/form-data"]))
    if draw(st.integers(0, 4)) == 0:
        extra["Origin"] = draw(st.sampled_from(["http://evil.example", "null"]))
    return method, path, web_query(draw), body, draw(st.sampled_from(WEB_AUTH)), extra


@settings(max_examples=examples(120))
@given(web_requests())
def test_web_json_endpoints_get_an_answer(target, parts) -> None:
    method, path, query, body, auth, extra = parts
    url = httpx.URL(target.server.web_url).copy_with(raw_path=(path + (f"?{query}" if query else "")).encode("ascii"))
    exchange(target, target.web, method, url, headers={**auth_headers(target, auth), **extra}, content=body)


@st.composite
def multipart_forms(draw: st.DrawFn) -> tuple[str, bytes]:
    boundary = draw(
        st.one_of(
            st.from_regex(r"[0-9A-Za-z'()+_,./:=?-]{1,70}", fullmatch=True),
            st.integers(60, 400).map(lambda n: "b" * n),
            header_text.filter(lambda v: v.isascii() and ";" not in v),
        )
    )
    quoted = draw(st.booleans())
    content_type = draw(st.sampled_from(["multipart/form-data", "multipart/mixed", "multipart/form-data; charset=x"]))
    content_type += f'; boundary="{boundary}"' if quoted else f"; boundary={boundary}"
    parts = []
    for _ in range(draw(st.integers(0, 3))):
        name = draw(st.sampled_from(["file", "key", "bucket", "file", "options", "template", "data", "x"]))
        filename = draw(st.one_of(st.none(), text.map(lambda t: t.replace('"', "").replace("\r", "").replace("\n", ""))))
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
        value = draw(st.one_of(st.binary(max_size=300), text.map(lambda t: t.encode("utf-8", "surrogatepass")), st.just(b"{{ 1 + 1 }}")))
        parts.append(f"Content-Disposition: {disposition}\r\n\r\n".encode("utf-8", "surrogatepass") + value)
    delimiter = b"--" + boundary.encode("latin-1", "replace")
    body = b"".join(delimiter + b"\r\n" + part + b"\r\n" for part in parts)
    if draw(st.integers(0, 4)):
        body += delimiter + b"--\r\n"
    return content_type, body


@settings(max_examples=examples(40))
@given(form=multipart_forms(), endpoint=st.sampled_from(["/api/v1/files", "/api/versions", "/v1/template/pdf", "/v2/template/image"]), auth=st.sampled_from(["key", "key", "docgen", "none"]))
def test_multipart_forms_with_odd_boundaries_get_an_answer(target, form, endpoint, auth) -> None:
    content_type, body = form
    headers = {**auth_headers(target, "docgen" if endpoint.startswith("/v") and auth == "key" else auth), "Content-Type": content_type}
    exchange(target, target.web, "POST", endpoint, headers=latin1(headers), content=body, timeout=DOCUMENT_TIMEOUT)


IMAGE_PARAMS = ("w", "h", "fit", "gravity", "format", "q", "dpr", "blur", "sharpen", "rotate", "expires", "key_id", "sig")


@settings(max_examples=examples(40))
@given(
    params=st.lists(st.tuples(st.sampled_from(IMAGE_PARAMS), st.one_of(st.integers(0, 5000).map(str), st.sampled_from(["cover", "sm", "webp", "avif", "1.5", "90"]), query_value)), max_size=4),
    key=st.sampled_from(["img.png", "obj", "pub", "missing.png", "%FF"]),
    auth=st.sampled_from(["key", "none", "junk"]),
)
def test_image_transform_parameters_get_an_answer(target, params, key, auth) -> None:
    query = "&".join(f"{k}={v}" for k, v in params)
    url = httpx.URL(target.server.web_url).copy_with(raw_path=f"/api/img/{SCRATCH}/{key}?{query}".encode("ascii"))
    exchange(target, target.web, "GET", url, headers=auth_headers(target, auth), timeout=DOCUMENT_TIMEOUT)


DOCUMENT_ROUTES = tuple(f"/v{v}/{source}/{output}" for v in (1, 2) for source in ("html", "url", "template") for output in ("pdf", "image"))
OUTBOUND_URLS = ("http://127.0.0.1:1/", "http://169.254.169.254/latest/meta-data/", "file:///etc/passwd", "http://[::1]/", "ftp://x/", "http://folio-fuzz.invalid/", "javascript:alert(1)", "")


@st.composite
def document_requests(draw: st.DrawFn) -> dict:
    body = draw(document_options)
    source = draw(st.sampled_from(["html", "url", "template", "templateId", "none"]))
    if source == "html":
        body["html"] = draw(st.one_of(st.just(base64.b64encode(b"<p>fuzz</p>").decode()), text))
    elif source == "url":
        body["url"] = draw(st.one_of(st.sampled_from(OUTBOUND_URLS), text))
    elif source == "template":
        body["template"] = base64.b64encode(draw(templates()).encode("utf-8", "surrogatepass")).decode()
        body["data"] = draw(json_values(6))
    elif source == "templateId":
        body["templateId"] = draw(st.one_of(st.sampled_from(["invoice", "receipt", "../etc"]), text))
    # A page that waits for the whole of a generated timeout would be slow, not broken.
    timeout = body.get("timeout")
    if isinstance(timeout, int | float) and not isinstance(timeout, bool) and timeout > 5000:
        body["timeout"] = 5000
    if draw(st.integers(0, 3)) == 0:
        body["async"] = draw(json_values(2))
    return body


@settings(max_examples=examples(15))
@given(route=st.sampled_from(DOCUMENT_ROUTES), body=document_requests(), auth=st.sampled_from(["docgen", "docgen", "docgen", "none", "key"]))
def test_document_options_get_an_answer(target, route, body, auth) -> None:
    content = json.dumps(body).encode()
    headers = {**auth_headers(target, auth), "Content-Type": "application/json"}
    exchange(target, target.web, "POST", route, headers=headers, content=content, timeout=DOCUMENT_TIMEOUT)


def test_fuzz_leaves_the_known_object_intact(target) -> None:
    """The generated requests never named the control bucket: its object is byte-exact."""
    path = f"/{CONTROL}/known"
    response = exchange(target, target.s3, "GET", path, headers=signed_headers(target.server, "GET", path, "", b"", {}))
    assert response.content == KNOWN
