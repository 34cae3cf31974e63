"""Hostile and broken requests against the S3 listener, sent raw (httpx, or plain
sockets where HTTP itself must be wrong) and signed with botocore's own SigV4 signer
before being broken: each gets the S3 error code AWS answers with, as S3 XML with a
request id, never a 500, and nothing is stored."""

from __future__ import annotations

import base64
import datetime
import hashlib
import socket
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import httpx
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from tests.conftest import make_s3_client
from tests.folio_process import FolioProcess

BODY_TIMEOUT_SECONDS = 1.0


@dataclass
class Reply:
    status: int
    headers: dict[str, str]  # lowercase names
    body: bytes

    @classmethod
    def of(cls, response: httpx.Response) -> Reply:
        return cls(
            response.status_code, {k.lower(): v for k, v in response.headers.items()}, response.content
        )


def sign(
    server: FolioProcess,
    method: str,
    path: str,
    *,
    query: str = "",
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    at: datetime.datetime | None = None,
    unsigned_payload: bool = False,
) -> dict[str, str]:
    """Headers of a correctly SigV4-signed request (payload sha256 of `body` unless unsigned)."""
    url = f"{server.s3_url}{path}" + (f"?{query}" if query else "")
    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    if unsigned_payload:
        request.context["client_config"] = Config(s3={"payload_signing_enabled": False})
    signer = S3SigV4Auth(Credentials(server.access_key, server.secret_key), "s3", "us-east-1")
    if at is None:
        signer.add_auth(request)
    else:
        with mock.patch("botocore.auth.get_current_datetime", return_value=at):
            signer.add_auth(request)
    return dict(request.headers.items())


def send(
    server: FolioProcess,
    method: str,
    path: str,
    *,
    query: str = "",
    body: bytes = b"",
    headers: dict[str, str],
) -> Reply:
    url = f"{server.s3_url}{path}" + (f"?{query}" if query else "")
    with httpx.Client(timeout=30) as client:
        return Reply.of(client.request(method, url, content=body, headers=headers))


def signed(
    server: FolioProcess,
    method: str,
    path: str,
    *,
    query: str = "",
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> Reply:
    """Send a correctly signed request (the control case, or with a broken body/header)."""
    all_headers = sign(server, method, path, query=query, body=body, headers=headers)
    return send(server, method, path, query=query, body=body, headers=all_headers)


def assert_s3_error(reply: Reply, status: int, code: str) -> dict[str, str]:
    """S3's error shape: the status, an XML <Error> with Code, Message, Resource and RequestId,
    and the same request id in x-amz-request-id. Returns the XML fields."""
    assert reply.status == status, f"expected {status} {code}, got {reply.status}: {reply.body[:500]!r}"
    request_id = reply.headers.get("x-amz-request-id")
    assert request_id, f"no x-amz-request-id header: {reply.headers}"
    root = ET.fromstring(reply.body)
    assert root.tag == "Error", reply.body
    fields = {child.tag: child.text or "" for child in root}
    assert fields.get("Code") == code, f"expected {code}, got {fields}"
    for name in ("Message", "Resource", "RequestId"):
        assert name in fields, f"<{name}> missing from {reply.body!r}"
    assert fields["Message"]
    assert fields["RequestId"] == request_id
    return fields


def object_exists(server: FolioProcess, bucket: str, key: str) -> bool:
    reply = signed(server, "HEAD", f"/{bucket}/{key}")
    assert reply.status in (200, 404), reply
    return reply.status == 200


@dataclass
class DiskSnapshot:
    blobs: set[str]
    tmp: list[str]


def disk_snapshot(server: FolioProcess) -> DiskSnapshot:
    blobs = {p.name for p in (server.data_dir / "blobs").rglob("*") if p.is_file()}
    tmp = sorted(p.name for p in (server.data_dir / "tmp").iterdir())
    return DiskSnapshot(blobs, tmp)


def assert_nothing_stored(server: FolioProcess, bucket: str, key: str, before: DiskSnapshot) -> None:
    """The key is absent, no blob file appeared and tmp/ holds nothing of the rejected upload."""
    assert not object_exists(server, bucket, key), f"{key} was stored"
    after = disk_snapshot(server)
    assert after.blobs <= before.blobs, f"new blob files: {sorted(after.blobs - before.blobs)}"
    assert set(after.tmp) <= set(before.tmp), f"left in tmp/: {sorted(set(after.tmp) - set(before.tmp))}"


def raw_request_head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1"] + [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def host_header(server: FolioProcess) -> dict[str, str]:
    return {"Host": f"127.0.0.1:{server.s3_port}"}


def read_reply(sock: socket.socket, timeout: float = 15) -> Reply:
    """One HTTP/1.1 response from a raw socket (Content-Length bodies only)."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed before a complete response head: {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return Reply(int(status_line.split()[1]), headers, body[:length])


@pytest.fixture(scope="module")
def short_timeout_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FolioProcess]:
    """A server that gives up on an idle request body after one second."""
    server = FolioProcess(
        data_dir=tmp_path_factory.mktemp("folio-timeout") / "data",
        config_text=f"[server]\nbody_timeout_seconds = {BODY_TIMEOUT_SECONDS}\n",
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module", autouse=True)
def log_offset(folio: FolioProcess) -> int:
    """Where the shared server's log stood before this module's requests."""
    return len(folio.log())


# -- XML bodies --------------------------------------------------------------------------------

MALFORMED_DELETE_BODIES = {
    "not-xml": b"this is not xml",
    "unclosed": b"<Delete><Object><Key>keep</Key></Object>",
    "wrong-root": b"<Remove><Object><Key>keep</Key></Object></Remove>",
    "object-without-key": b"<Delete><Object><VersionId>x</VersionId></Object></Delete>",
    "no-objects": b"<Delete><Quiet>true</Quiet></Delete>",
    "mismatched-tags": b"<Delete><Object><Key>keep</Object></Key></Delete>",
    "empty": b"",
    "two-roots": b"<Delete><Object><Key>keep</Key></Object></Delete><Delete/>",
}


@pytest.mark.parametrize("body", MALFORMED_DELETE_BODIES.values(), ids=MALFORMED_DELETE_BODIES.keys())
def test_delete_objects_with_malformed_xml_is_malformed_xml_and_deletes_nothing(
    folio: FolioProcess, s3, bucket: str, body: bytes
) -> None:
    s3.put_object(Bucket=bucket, Key="keep", Body=b"still here")
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    reply = signed(folio, "POST", f"/{bucket}", query="delete", body=body, headers={"Content-MD5": md5})
    assert_s3_error(reply, 400, "MalformedXML")
    assert s3.get_object(Bucket=bucket, Key="keep")["Body"].read() == b"still here"


MALFORMED_CREATE_BUCKET_BODIES = {
    "unclosed": b"<CreateBucketConfiguration><LocationConstraint>eu-west-1</LocationConstraint>",
    "not-xml": b'{"LocationConstraint": "eu-west-1"}',
    "wrong-root": b"<BucketConfiguration><LocationConstraint>eu-west-1</LocationConstraint></BucketConfiguration>",
}


@pytest.mark.parametrize(
    "body", MALFORMED_CREATE_BUCKET_BODIES.values(), ids=MALFORMED_CREATE_BUCKET_BODIES.keys()
)
def test_create_bucket_with_malformed_xml_is_malformed_xml_and_creates_nothing(
    folio: FolioProcess, s3, body: bytes
) -> None:
    name = f"bad-xml-{uuid.uuid4().hex[:12]}"
    reply = signed(folio, "PUT", f"/{name}", body=body)
    assert_s3_error(reply, 400, "MalformedXML")
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_xml_with_an_external_entity_is_refused_without_reading_the_file(
    folio: FolioProcess, s3, bucket: str, tmp_path: Path
) -> None:
    # If the entity were resolved, the key would be the canary file's text and that object
    # would be deleted; the file's text would also show up in any echo of the key.
    canary_key = f"canary-{uuid.uuid4().hex}"
    canary = tmp_path / "canary.txt"
    canary.write_text(canary_key)
    s3.put_object(Bucket=bucket, Key=canary_key, Body=b"must survive")
    body = (
        f'<?xml version="1.0"?>\n<!DOCTYPE Delete [<!ENTITY xxe SYSTEM "file://{canary}">]>\n'
        "<Delete><Object><Key>&xxe;</Key></Object></Delete>"
    ).encode()
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    reply = signed(folio, "POST", f"/{bucket}", query="delete", body=body, headers={"Content-MD5": md5})
    assert_s3_error(reply, 400, "MalformedXML")
    assert canary_key.encode() not in reply.body
    assert s3.get_object(Bucket=bucket, Key=canary_key)["Body"].read() == b"must survive"

    create = (
        f'<!DOCTYPE c [<!ENTITY xxe SYSTEM "file://{canary}">]>'
        "<CreateBucketConfiguration><LocationConstraint>&xxe;</LocationConstraint></CreateBucketConfiguration>"
    ).encode()
    name = f"xxe-{uuid.uuid4().hex[:12]}"
    reply = signed(folio, "PUT", f"/{name}", body=create)
    assert_s3_error(reply, 400, "MalformedXML")
    assert canary_key.encode() not in reply.body
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_xml_entity_expansion_bomb_is_malformed_xml(folio: FolioProcess, bucket: str) -> None:
    entities = '<!ENTITY a0 "lol">' + "".join(
        f'<!ENTITY a{i} "{("&a" + str(i - 1) + ";") * 10}">' for i in range(1, 10)
    )
    body = f"<!DOCTYPE Delete [{entities}]><Delete><Object><Key>&a9;</Key></Object></Delete>".encode()
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    began = time.monotonic()
    reply = signed(folio, "POST", f"/{bucket}", query="delete", body=body, headers={"Content-MD5": md5})
    assert_s3_error(reply, 400, "MalformedXML")
    assert time.monotonic() - began < 5


# -- Authorization -----------------------------------------------------------------------------


def _with_authorization(headers: dict[str, str], value: str) -> dict[str, str]:
    return {**{k: v for k, v in headers.items() if k.lower() != "authorization"}, "Authorization": value}


def _authorization_parts(headers: dict[str, str]) -> dict[str, str]:
    value = headers["Authorization"]
    algorithm, _, rest = value.partition(" ")
    parts = dict(part.strip().split("=", 1) for part in rest.split(","))
    return {"algorithm": algorithm, **parts}


def test_garbage_authorization_scheme_is_invalid_argument(folio: FolioProcess, bucket: str) -> None:
    headers = _with_authorization(sign(folio, "GET", f"/{bucket}"), "garbage")
    fields = assert_s3_error(send(folio, "GET", f"/{bucket}", headers=headers), 400, "InvalidArgument")
    # AWS: "Unsupported Authorization Type", naming the header.
    assert fields.get("ArgumentName") == "Authorization"


def test_sigv2_authorization_is_refused_as_an_unsupported_mechanism(folio: FolioProcess, bucket: str) -> None:
    headers = _with_authorization(sign(folio, "GET", f"/{bucket}"), f"AWS {folio.access_key}:c2lnbmF0dXJl")
    fields = assert_s3_error(send(folio, "GET", f"/{bucket}", headers=headers), 400, "InvalidRequest")
    assert "AWS4-HMAC-SHA256" in fields["Message"]


def _rebuild(parts: dict[str, str], drop: str | None = None, **changes: str) -> str:
    fields = {k: v for k, v in parts.items() if k != "algorithm" and k != drop}
    fields.update(changes)
    return f"{parts['algorithm']} " + ", ".join(f"{k}={v}" for k, v in fields.items())


@pytest.mark.parametrize(
    "case",
    [
        "missing-signed-headers",
        "missing-signature",
        "missing-credential",
        "credential-too-short",
        "credential-wrong-terminator",
        "credential-wrong-service",
        "credential-date-not-request-date",
        "component-without-equals",
    ],
)
def test_broken_sigv4_authorization_header_is_authorization_header_malformed(
    folio: FolioProcess, bucket: str, case: str
) -> None:
    good = sign(folio, "GET", f"/{bucket}")
    parts = _authorization_parts(good)
    access_key, date, region, service, terminator = parts["Credential"].split("/")
    broken = {
        "missing-signed-headers": _rebuild(parts, drop="SignedHeaders"),
        "missing-signature": _rebuild(parts, drop="Signature"),
        "missing-credential": _rebuild(parts, drop="Credential"),
        "credential-too-short": _rebuild(parts, Credential=f"{access_key}/{date}/{region}"),
        "credential-wrong-terminator": _rebuild(
            parts, Credential=f"{access_key}/{date}/{region}/{service}/aws5_request"
        ),
        "credential-wrong-service": _rebuild(
            parts, Credential=f"{access_key}/{date}/{region}/ec2/{terminator}"
        ),
        "credential-date-not-request-date": _rebuild(
            parts, Credential=f"{access_key}/19990101/{region}/{service}/{terminator}"
        ),
        "component-without-equals": parts["algorithm"] + " Credential, SignedHeaders, Signature",
    }[case]
    reply = send(folio, "GET", f"/{bucket}", headers=_with_authorization(good, broken))
    assert_s3_error(reply, 400, "AuthorizationHeaderMalformed")


def test_wrong_signature_is_signature_does_not_match(folio: FolioProcess, bucket: str) -> None:
    good = sign(folio, "PUT", f"/{bucket}/signed", body=b"data")
    parts = _authorization_parts(good)
    flipped = ("0" if parts["Signature"][0] != "0" else "1") + parts["Signature"][1:]
    headers = _with_authorization(good, _rebuild(parts, Signature=flipped))
    reply = send(folio, "PUT", f"/{bucket}/signed", body=b"data", headers=headers)
    assert_s3_error(reply, 403, "SignatureDoesNotMatch")
    assert not object_exists(folio, bucket, "signed")


def test_unknown_access_key_is_invalid_access_key_id(folio: FolioProcess, bucket: str) -> None:
    good = sign(folio, "GET", f"/{bucket}")
    parts = _authorization_parts(good)
    credential = parts["Credential"].replace(folio.access_key, "AKIANOSUCHKEY0000000")
    reply = send(
        folio, "GET", f"/{bucket}", headers=_with_authorization(good, _rebuild(parts, Credential=credential))
    )
    assert_s3_error(reply, 403, "InvalidAccessKeyId")


def test_missing_content_sha256_header_is_invalid_request(folio: FolioProcess, bucket: str) -> None:
    headers = {
        k: v for k, v in sign(folio, "GET", f"/{bucket}").items() if k.lower() != "x-amz-content-sha256"
    }
    assert_s3_error(send(folio, "GET", f"/{bucket}", headers=headers), 400, "InvalidRequest")


@pytest.mark.parametrize("skew_minutes", [-20, 20])
def test_request_dated_20_minutes_off_is_request_time_too_skewed(
    folio: FolioProcess, bucket: str, skew_minutes: int
) -> None:
    at = datetime.datetime.now(datetime.UTC).replace(tzinfo=None) + datetime.timedelta(minutes=skew_minutes)
    headers = sign(folio, "PUT", f"/{bucket}/skewed", body=b"late", at=at)
    reply = send(folio, "PUT", f"/{bucket}/skewed", body=b"late", headers=headers)
    assert_s3_error(reply, 403, "RequestTimeTooSkewed")
    assert not object_exists(folio, bucket, "skewed")


def test_request_dated_10_minutes_off_is_still_accepted(folio: FolioProcess, bucket: str) -> None:
    at = datetime.datetime.now(datetime.UTC).replace(tzinfo=None) - datetime.timedelta(minutes=10)
    headers = sign(folio, "GET", f"/{bucket}", at=at)
    assert send(folio, "GET", f"/{bucket}", headers=headers).status == 200


def test_anonymous_requests_are_access_denied(folio: FolioProcess, s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="private", Body=b"secret")
    with httpx.Client(base_url=folio.s3_url, timeout=30) as client:
        for method, path, body in [
            ("GET", "/", b""),
            ("GET", f"/{bucket}", b""),
            ("GET", f"/{bucket}/private", b""),
            ("PUT", f"/{bucket}/anonymous", b"anonymous write"),
            ("DELETE", f"/{bucket}/private", b""),
        ]:
            reply = Reply.of(client.request(method, path, content=body))
            assert_s3_error(reply, 403, "AccessDenied")
        head = client.head(f"/{bucket}/private")
        assert head.status_code == 403
        assert head.headers.get("x-amz-request-id")
    assert s3.get_object(Bucket=bucket, Key="private")["Body"].read() == b"secret"
    assert not object_exists(folio, bucket, "anonymous")


def test_expect_100_continue_with_a_wrong_signature_gets_403_before_the_body_is_sent(
    folio: FolioProcess, bucket: str
) -> None:
    body = b"x" * (1024 * 1024)
    good = sign(folio, "PUT", f"/{bucket}/expect", body=body, headers={"Expect": "100-continue"})
    parts = _authorization_parts(good)
    bad_signature = _rebuild(parts, Signature="0" * 64)
    headers = {
        **host_header(folio),
        **_with_authorization(good, bad_signature),
        "Content-Length": str(len(body)),
    }
    with socket.create_connection(("127.0.0.1", folio.s3_port)) as sock:
        sock.sendall(raw_request_head("PUT", f"/{bucket}/expect", headers))
        reply = read_reply(sock, timeout=10)  # never send the body
    assert reply.status != 100, "the server asked for the body of an unauthenticated request"
    assert_s3_error(reply, 403, "SignatureDoesNotMatch")
    assert not object_exists(folio, bucket, "expect")


def test_expect_100_continue_with_a_good_signature_gets_100_then_stores_the_body(
    folio: FolioProcess, s3, bucket: str
) -> None:
    body = b"y" * (256 * 1024)
    good = sign(folio, "PUT", f"/{bucket}/expect", body=body, headers={"Expect": "100-continue"})
    headers = {**host_header(folio), **good, "Content-Length": str(len(body))}
    with socket.create_connection(("127.0.0.1", folio.s3_port)) as sock:
        sock.sendall(raw_request_head("PUT", f"/{bucket}/expect", headers))
        sock.settimeout(10)
        interim = sock.recv(4096)
        assert interim.startswith(b"HTTP/1.1 100"), interim
        sock.sendall(body)
        reply = read_reply(sock)
    assert reply.status == 200, reply
    assert s3.get_object(Bucket=bucket, Key="expect")["Body"].read() == body


# -- Integrity of the body ---------------------------------------------------------------------


@pytest.mark.parametrize("size", [100, 200 * 1024], ids=["inline", "blob"])
def test_body_not_matching_its_signed_sha256_is_rejected_and_not_stored(
    folio: FolioProcess, bucket: str, size: int
) -> None:
    promised = b"a" * size
    sent = b"b" * size
    before = disk_snapshot(folio)
    headers = sign(folio, "PUT", f"/{bucket}/mismatch", body=promised)
    reply = send(folio, "PUT", f"/{bucket}/mismatch", body=sent, headers=headers)
    assert_s3_error(reply, 400, "XAmzContentSHA256Mismatch")
    assert_nothing_stored(folio, bucket, "mismatch", before)


@pytest.mark.parametrize("value", ["not base64!!", "AAAA", base64.b64encode(b"x" * 15).decode()])
def test_content_md5_that_is_not_a_base64_md5_is_invalid_digest(
    folio: FolioProcess, bucket: str, value: str
) -> None:
    reply = signed(folio, "PUT", f"/{bucket}/digest", body=b"payload", headers={"Content-MD5": value})
    assert_s3_error(reply, 400, "InvalidDigest")
    assert not object_exists(folio, bucket, "digest")


def test_content_md5_of_other_bytes_is_bad_digest(folio: FolioProcess, bucket: str) -> None:
    wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    reply = signed(folio, "PUT", f"/{bucket}/digest", body=b"payload", headers={"Content-MD5": wrong})
    assert_s3_error(reply, 400, "BadDigest")
    assert not object_exists(folio, bucket, "digest")


# -- Listing parameters, names, keys -----------------------------------------------------------


@pytest.mark.parametrize("list_type", ["list-type=2&", ""], ids=["v2", "v1"])
@pytest.mark.parametrize("value", ["-1", "abc", "2147483648", "99999999999999999999999"])
def test_max_keys_negative_or_not_an_int32_is_invalid_argument(
    folio: FolioProcess, bucket: str, list_type: str, value: str
) -> None:
    reply = signed(folio, "GET", f"/{bucket}", query=f"{list_type}max-keys={value}")
    fields = assert_s3_error(reply, 400, "InvalidArgument")
    assert fields.get("ArgumentValue") == value


@pytest.mark.parametrize("list_type", ["list-type=2&", ""], ids=["v2", "v1"])
def test_max_keys_above_1000_but_in_range_lists_normally(
    folio: FolioProcess, s3, bucket: str, list_type: str
) -> None:
    for i in range(3):
        s3.put_object(Bucket=bucket, Key=f"k{i}", Body=b"")
    reply = signed(folio, "GET", f"/{bucket}", query=f"{list_type}max-keys=2147483647")
    assert reply.status == 200, reply
    ns = "{http://s3.amazonaws.com/doc/2006-03-01/}"
    root = ET.fromstring(reply.body)
    assert [e.text for e in root.iter(f"{ns}Key")] == ["k0", "k1", "k2"]
    assert root.findtext(f"{ns}IsTruncated") == "false"


BAD_BUCKET_NAMES = [
    "ab",
    "a" * 64,
    "UpperCase",
    "under_score",
    "-leading-hyphen",
    "trailing-hyphen-",
    "double..dot",
    "dot.-hyphen",
    "192.168.5.4",
    "xn--punycode",
    "sthree-reserved",
    "ends-s3alias",
    "ends--ol-s3",
    "has space",
]


@pytest.mark.parametrize("name", BAD_BUCKET_NAMES)
def test_create_bucket_with_an_invalid_name_is_invalid_bucket_name(
    folio: FolioProcess, s3, name: str
) -> None:
    path = "/" + name.replace(" ", "%20")
    reply = signed(folio, "PUT", path)
    assert_s3_error(reply, 400, "InvalidBucketName")
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


@pytest.mark.parametrize(
    "key", ["k" * 1025, "é" * 513, "dir/" * 256 + "x"], ids=["1025-ascii", "1026-bytes-513-chars", "slashes"]
)
def test_key_longer_than_1024_utf8_bytes_is_key_too_long_and_not_stored(
    folio: FolioProcess, s3, bucket: str, key: str
) -> None:
    assert len(key.encode()) > 1024
    path = f"/{bucket}/" + httpx.URL("/" + key).raw_path.decode()[1:]
    reply = signed(folio, "PUT", path, body=b"too long")
    assert_s3_error(reply, 400, "KeyTooLongError")
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_key_of_exactly_1024_bytes_is_accepted(folio: FolioProcess, s3, bucket: str) -> None:
    key = "k" * 1024
    assert signed(folio, "PUT", f"/{bucket}/{key}", body=b"fits").status == 200
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"fits"


# -- Bodies that disagree with Content-Length ---------------------------------------------------


def test_body_shorter_than_content_length_times_out_with_request_timeout(
    short_timeout_server: FolioProcess,
) -> None:
    server = short_timeout_server
    bucket = f"short-{uuid.uuid4().hex[:12]}"
    make_s3_client(server).create_bucket(Bucket=bucket)
    body = b"s" * 100_000
    before = disk_snapshot(server)
    headers = {**host_header(server), **sign(server, "PUT", f"/{bucket}/short", body=body)}
    headers["Content-Length"] = str(len(body))
    with socket.create_connection(("127.0.0.1", server.s3_port)) as sock:
        sock.sendall(raw_request_head("PUT", f"/{bucket}/short", headers))
        sock.sendall(body[:70_000])  # then go quiet, connection open
        began = time.monotonic()
        reply = read_reply(sock, timeout=BODY_TIMEOUT_SECONDS + 10)
        waited = time.monotonic() - began
    assert_s3_error(reply, 400, "RequestTimeout")
    assert waited < BODY_TIMEOUT_SECONDS + 5
    assert_nothing_stored(server, bucket, "short", before)


def test_body_shorter_than_content_length_then_closed_stores_nothing(
    folio: FolioProcess, bucket: str
) -> None:
    body = b"c" * 300_000
    before = disk_snapshot(folio)
    headers = {**host_header(folio), **sign(folio, "PUT", f"/{bucket}/closed", body=body)}
    headers["Content-Length"] = str(len(body))
    with socket.create_connection(("127.0.0.1", folio.s3_port)) as sock:
        sock.sendall(raw_request_head("PUT", f"/{bucket}/closed", headers))
        sock.sendall(body[:150_000])
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(10)
        try:
            answer = sock.recv(65536)
        except OSError:
            answer = b""
    # Nobody is left to read an answer; if one is sent it must not be a 500.
    assert not answer.startswith(b"HTTP/1.1 5"), answer
    deadline = time.monotonic() + 5
    while disk_snapshot(folio).tmp != before.tmp and time.monotonic() < deadline:
        time.sleep(0.05)
    assert_nothing_stored(folio, bucket, "closed", before)


@pytest.mark.parametrize("delivery", ["one-write", "extra-bytes-after-a-pause"])
@pytest.mark.parametrize("size", [1000, 200 * 1024], ids=["inline", "blob"])
def test_body_longer_than_content_length_fails_the_signed_sha256_and_stores_nothing(
    folio: FolioProcess, bucket: str, size: int, delivery: str
) -> None:
    body = b"L" * size
    extra = b"EXTRA-BYTES-BEYOND-CONTENT-LENGTH"
    before = disk_snapshot(folio)
    # The signature covers all the bytes sent; Content-Length announces fewer of them, so
    # the server reads Content-Length bytes, whose sha256 is not the signed one.
    headers = {**host_header(folio), **sign(folio, "PUT", f"/{bucket}/longer", body=body + extra)}
    headers["Content-Length"] = str(len(body))
    with socket.create_connection(("127.0.0.1", folio.s3_port)) as sock:
        if delivery == "one-write":
            sock.sendall(raw_request_head("PUT", f"/{bucket}/longer", headers) + body + extra)
        else:
            sock.sendall(raw_request_head("PUT", f"/{bucket}/longer", headers) + body)
            time.sleep(0.2)
            sock.sendall(extra)
        reply = read_reply(sock)
    assert_s3_error(reply, 400, "XAmzContentSHA256Mismatch")
    assert_nothing_stored(folio, bucket, "longer", before)


def test_no_malformed_request_made_the_server_log_an_internal_error(
    folio: FolioProcess, log_offset: int, short_timeout_server: FolioProcess
) -> None:
    for log in (folio.log()[log_offset:], short_timeout_server.log()):
        assert "Traceback" not in log, log[-5000:]
        assert "InternalError" not in log, log[-5000:]
