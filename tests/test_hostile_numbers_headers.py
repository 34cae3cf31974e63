"""Issue 13, findings 1 and 2, against the real server.

1. Digits that are not ASCII: '²' (U+00B2) and '①' pass `str.isdigit()`, which `int()`
   then refuses. Every numeric input the probing found (signed-URL expiries, Range,
   part numbers, list limits, XML numbers, decoded lengths) answers a 4xx in its API's
   own error format, never a 500; a malformed Range is ignored as S3 ignores it.
2. CR/LF in a request value that is echoed into a response header: uvicorn refuses
   the header and drops the connection without an answer. Those values are checked
   first (400 InvalidArgument), and both listeners have a safety net under the checks.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from s3proxy.api.app import S3App
from s3proxy.api.context import Response
from server.header_guard import HeaderGuard
from tests.folio_process import FolioProcess
from tests.test_malformed_input import Reply, assert_s3_error, sign

SUPERSCRIPT_TWO = "\u00b2"  # '²': str.isdigit() is True, int() raises ValueError
CIRCLED_ONE = "\u2460"  # '①': the same
ENCODED_TWO = "%C2%B2"  # '²' in a URL


# ---------------------------------------------------------------- helpers


def send_raw(
    server: FolioProcess,
    method: str,
    path: str,
    *,
    query: str = "",
    body: bytes = b"",
    headers: dict[str, str],
) -> Reply:
    """Like test_malformed_input.send, but header values go out as latin-1 bytes, so a
    header can carry the single byte 0xB2 ('²' once the server decodes it)."""
    url = f"{server.s3_url}{path}" + (f"?{query}" if query else "")
    raw_headers = {name: value.encode("latin-1") for name, value in headers.items()}
    with httpx.Client(timeout=30) as client:
        return Reply.of(client.request(method, url, content=body, headers=raw_headers))


class WireBytesSigner(S3SigV4Auth):
    """botocore's SigV4 over the bytes that go on the wire: a header holding the single
    byte 0xB2 is hashed as that byte (botocore would hash '²' as UTF-8, two bytes)."""

    def string_to_sign(self, request: AWSRequest, canonical_request: str) -> str:
        digest = hashlib.sha256(canonical_request.encode("latin-1")).hexdigest()
        return "\n".join(
            ["AWS4-HMAC-SHA256", request.context["timestamp"], self.credential_scope(request), digest]
        )


def sign_wire(
    server: FolioProcess, method: str, path: str, *, query: str, headers: dict[str, str]
) -> dict[str, str]:
    url = f"{server.s3_url}{path}" + (f"?{query}" if query else "")
    request = AWSRequest(method=method, url=url, data=b"", headers=dict(headers))
    WireBytesSigner(Credentials(server.access_key, server.secret_key), "s3", "us-east-1").add_auth(request)
    return dict(request.headers.items())


def signed_raw(
    server: FolioProcess,
    method: str,
    path: str,
    *,
    query: str = "",
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> Reply:
    all_headers = sign(server, method, path, query=query, body=body, headers=headers)
    return send_raw(server, method, path, query=query, body=body, headers=all_headers)


def xml_field(reply: Reply, name: str) -> str:
    root = ET.fromstring(reply.body)
    for element in root.iter():
        if element.tag.rsplit("}", 1)[-1] == name:
            return element.text or ""
    raise AssertionError(f"<{name}> not in {reply.body!r}")


def web_error(response: httpx.Response, status: int, code: str) -> None:
    """The web listener's JSON error shape, with the status and code expected."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code, error
    assert error["message"]


@pytest.fixture
def web(folio: FolioProcess) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=folio.web_url, headers={"X-API-Key": f"{folio.access_key}:{folio.secret_key}"}, timeout=30
    ) as client:
        yield client


@pytest.fixture
def public_object(s3: Any, bucket: str) -> tuple[str, str, bytes]:
    """A public-read object of one byte (what the Range probes were run against)."""
    key = "pub"
    s3.put_object(Bucket=bucket, Key=key, Body=b"x", ACL="public-read")
    return bucket, key, b"x"


@pytest.fixture
def upload(s3: Any, bucket: str) -> tuple[str, str, str]:
    key = "mp"
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    yield bucket, key, upload_id
    s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)


@pytest.fixture(scope="module")
def doc_key(folio: FolioProcess) -> str:
    """A document API key (an account holds at most five: one for the module)."""
    made = json.loads(folio.admin("create-api-key", "--email", "admin@localhost", "--name", "hostile"))
    return made["apiKey"]


def amz_now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")


# ---------------------------------------------------------------- 1. before authentication


@pytest.mark.parametrize("value", [ENCODED_TWO, "%E2%91%A0"])
def test_presigned_v4_expires_of_unicode_digits_is_a_query_error(folio: FolioProcess, value: str) -> None:
    # An invented credential: the expiry is read before any key is looked up.
    stamp = amz_now()
    query = (
        "X-Amz-Algorithm=AWS4-HMAC-SHA256"
        f"&X-Amz-Credential=AKIDINVENTED0000%2F{stamp[:8]}%2Fus-east-1%2Fs3%2Faws4_request"
        f"&X-Amz-Date={stamp}&X-Amz-Expires={value}&X-Amz-SignedHeaders=host&X-Amz-Signature=00"
    )
    reply = send_raw(folio, "GET", "/some-bucket/k", query=query, headers={})
    fields = assert_s3_error(reply, 400, "AuthorizationQueryParametersError")
    assert "X-Amz-Expires" in fields["Message"]


@pytest.mark.parametrize("value", [ENCODED_TWO, "%E2%91%A0"])
def test_presigned_v2_expires_of_unicode_digits_is_access_denied(folio: FolioProcess, value: str) -> None:
    query = f"AWSAccessKeyId=AKIDINVENTED0000&Expires={value}&Signature=abc"
    reply = send_raw(folio, "GET", "/some-bucket/k", query=query, headers={})
    assert_s3_error(reply, 403, "AccessDenied")


def test_decoded_content_length_of_unicode_digits_is_invalid_argument(
    folio: FolioProcess, bucket: str
) -> None:
    # Only a key id (a real one, no secret: the signature is zeros), a streaming payload
    # and a '²' length: the length is read before the signature is checked.
    stamp = amz_now()
    headers = {
        "Authorization": (
            f"AWS4-HMAC-SHA256 Credential={folio.access_key}/{stamp[:8]}/us-east-1/s3/aws4_request, "
            "SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=" + "0" * 64
        ),
        "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        "x-amz-date": stamp,
        "x-amz-decoded-content-length": SUPERSCRIPT_TWO,
    }
    reply = send_raw(folio, "PUT", f"/{bucket}/k", body=b"0;chunk-signature=00\r\n\r\n", headers=headers)
    assert_s3_error(reply, 400, "InvalidArgument")


# ---------------------------------------------------------------- 1. Range: ignored, as S3 does


@pytest.mark.parametrize(
    "header",
    [
        f"bytes ={10001}-1{SUPERSCRIPT_TWO}",  # 416 before: '1²' passed isdigit(), 10001 is past the end
        f"bytes={SUPERSCRIPT_TWO}-",  # 500 before
        f"bytes=-{SUPERSCRIPT_TWO}",
        f"bytes=0-{SUPERSCRIPT_TWO}",
    ],
)
def test_s3_range_with_unicode_digits_is_ignored(
    folio: FolioProcess, public_object: tuple[str, str, bytes], header: str
) -> None:
    bucket, key, data = public_object
    reply = send_raw(folio, "GET", f"/{bucket}/{key}", headers={"Range": header})  # anonymous
    assert reply.status == 200, (reply.status, reply.body[:300])
    assert reply.body == data
    assert "content-range" not in reply.headers


def test_s3_range_of_very_long_ascii_digits_is_still_a_position(
    folio: FolioProcess, public_object: tuple[str, str, bytes]
) -> None:
    # Valid digits, just many of them: past the end (416), and a leading-zero 1 is 1.
    bucket, key, _ = public_object
    past = send_raw(folio, "GET", f"/{bucket}/{key}", headers={"Range": "bytes=" + "9" * 30 + "-"})
    assert_s3_error(past, 416, "InvalidRange")
    whole = send_raw(
        folio, "GET", f"/{bucket}/{key}", headers={"Range": "bytes=" + "0" * 30 + "-" + "9" * 30}
    )
    assert whole.status == 206 and whole.body == b"x"


@pytest.mark.parametrize("header", [f"bytes={SUPERSCRIPT_TWO}-", f"bytes =10001-1{SUPERSCRIPT_TWO}"])
def test_rest_download_range_with_unicode_digits_is_ignored(
    web: httpx.Client, bucket: str, header: str
) -> None:
    made = web.post("/api/v1/files", params={"key": "r.bin", "bucket": bucket}, content=b"x")
    assert made.status_code == 201, made.text
    got = web.get(f"/api/v1/files/{made.json()['id']}", headers={"Range": header.encode("latin-1")})
    assert got.status_code == 200, (got.status_code, got.text[:300])
    assert got.content == b"x"


def test_if_modified_since_with_a_huge_year_is_ignored(folio: FolioProcess, public_object) -> None:
    # parsedate_to_datetime raises OverflowError for a 20-digit year: a 500 before.
    bucket, key, data = public_object
    header = "Mon, 01 Jan 99999999999999999999 00:00:00 GMT"
    reply = send_raw(folio, "GET", f"/{bucket}/{key}", headers={"If-Modified-Since": header})
    assert reply.status == 200 and reply.body == data


# ---------------------------------------------------------------- 1. web listener signed links


@pytest.mark.parametrize("value", [ENCODED_TWO, "%E2%91%A0"])
def test_image_link_expires_of_unicode_digits_is_denied(
    folio: FolioProcess, public_object: tuple[str, str, bytes], value: str
) -> None:
    bucket, key, _ = public_object
    got = httpx.get(f"{folio.web_url}/api/img/{bucket}/{key}?expires={value}&key_id=x&sig=x", timeout=30)
    web_error(got, 403, "AccessDenied")


@pytest.mark.parametrize("value", [ENCODED_TWO, "%E2%91%A0"])
def test_asset_link_expires_of_unicode_digits_is_forbidden(folio: FolioProcess, value: str) -> None:
    got = httpx.get(f"{folio.web_url}/v1/assets/x/file?expires={value}&signature=x", timeout=30)
    web_error(got, 403, "Forbidden")


@pytest.mark.parametrize(
    "query",
    ["offset=" + "9" * 23, "offset=%C2%B2", "offset=%D9%A3", "limit=1_0", "limit=%E2%91%A0", "offset=-1"],
)
def test_document_asset_pages_take_ascii_numbers_only(folio: FolioProcess, doc_key: str, query: str) -> None:
    # A 23-digit offset went to SQLite as is: OverflowError, a 500.
    got = httpx.get(f"{folio.web_url}/v1/assets?{query}", headers={"X-API-Key": doc_key}, timeout=30)
    web_error(got, 400, "BadRequest")


# ---------------------------------------------------------------- 1. signed S3 operations


@pytest.mark.parametrize("value", [ENCODED_TWO, "%E2%91%A0", "1" + ENCODED_TWO])
def test_get_object_part_number_of_unicode_digits(folio: FolioProcess, public_object, value: str) -> None:
    bucket, key, _ = public_object
    reply = signed_raw(folio, "GET", f"/{bucket}/{key}", query=f"partNumber={value}")
    fields = assert_s3_error(reply, 400, "InvalidArgument")
    assert fields["ArgumentName"] == "partNumber"


@pytest.mark.parametrize(
    ("operation", "query"),
    [
        ("UploadPart", "partNumber={v}&uploadId={u}"),
        ("ListParts max-parts", "max-parts={v}&uploadId={u}"),
        ("ListParts part-number-marker", "part-number-marker={v}&uploadId={u}"),
    ],
)
def test_multipart_numbers_of_unicode_digits(folio: FolioProcess, upload, operation: str, query: str) -> None:
    bucket, key, upload_id = upload
    method = "PUT" if operation == "UploadPart" else "GET"
    reply = signed_raw(
        folio, method, f"/{bucket}/{key}", query=query.format(v=ENCODED_TWO, u=upload_id), body=b"part"
    )
    assert_s3_error(reply, 400, "InvalidArgument")


@pytest.mark.parametrize(
    "query",
    [
        "max-uploads={v}&uploads=",
        "max-keys={v}",
        "list-type=2&max-keys={v}",
        "max-keys={v}&versions=",
        "max-keys=%D9%A3",  # '٣', an Arabic-Indic three: int() took it before
        "max-keys=1_0",  # int() took underscores too
    ],
)
def test_bucket_listing_limits_of_unicode_digits(folio: FolioProcess, bucket: str, query: str) -> None:
    reply = signed_raw(folio, "GET", f"/{bucket}", query=query.format(v=ENCODED_TWO))
    assert_s3_error(reply, 400, "InvalidArgument")


def test_complete_multipart_part_number_of_unicode_digits(folio: FolioProcess, upload) -> None:
    bucket, key, upload_id = upload
    body = (
        f"<CompleteMultipartUpload><Part><PartNumber>{SUPERSCRIPT_TWO}</PartNumber>"
        '<ETag>"abc"</ETag></Part></CompleteMultipartUpload>'
    ).encode()
    reply = signed_raw(folio, "POST", f"/{bucket}/{key}", query=f"uploadId={upload_id}", body=body)
    assert_s3_error(reply, 400, "MalformedXML")


@pytest.mark.parametrize("header", [f"bytes={SUPERSCRIPT_TWO}-1", f"bytes=0-{SUPERSCRIPT_TWO}"])
def test_copy_source_range_of_unicode_digits(folio: FolioProcess, public_object, upload, header: str) -> None:
    source_bucket, source_key, _ = public_object
    bucket, key, upload_id = upload
    path, query = f"/{bucket}/{key}", f"partNumber=1&uploadId={upload_id}"
    headers = {"x-amz-copy-source": f"/{source_bucket}/{source_key}", "x-amz-copy-source-range": header}
    reply = send_raw(
        folio, "PUT", path, query=query, headers=sign_wire(folio, "PUT", path, query=query, headers=headers)
    )
    fields = assert_s3_error(reply, 400, "InvalidArgument")
    assert fields["ArgumentName"] == "x-amz-copy-source-range"


@pytest.mark.parametrize("value", [SUPERSCRIPT_TWO, CIRCLED_ONE, "9" * 40])
def test_cors_max_age_of_unicode_digits_is_malformed_xml(
    folio: FolioProcess, bucket: str, value: str
) -> None:
    body = (
        "<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod>GET</AllowedMethod>"
        f"<MaxAgeSeconds>{value}</MaxAgeSeconds></CORSRule></CORSConfiguration>"
    ).encode()
    reply = signed_raw(folio, "PUT", f"/{bucket}", query="cors=", body=body)
    assert_s3_error(reply, 400, "MalformedXML")


# ---------------------------------------------------------------- 2. CR/LF echoed into headers


def test_delete_with_crlf_in_version_id_is_invalid_argument(
    folio: FolioProcess, s3: Any, bucket: str
) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"kept")
    reply = signed_raw(folio, "DELETE", f"/{bucket}/k", query="versionId=x%0D%0Ay")
    fields = assert_s3_error(reply, 400, "InvalidArgument")
    assert fields["ArgumentName"] == "versionId"
    assert "y" not in reply.headers
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"kept"


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_get_with_control_characters_in_version_id_is_invalid_argument(
    folio: FolioProcess, public_object, method: str
) -> None:
    bucket, key, _ = public_object
    for value in ("x%0D%0Ay", "x%00", "x%7F", "%C2%B2"):
        reply = signed_raw(folio, method, f"/{bucket}/{key}", query=f"versionId={value}")
        assert reply.status == 400, (value, reply.status)
        # S3 writes a NUL as &#x0; (which XML 1.0 parsers refuse): look for the code as text.
        assert method == "HEAD" or b"<Code>InvalidArgument</Code>" in reply.body, reply.body


def test_empty_version_id_is_invalid_argument(folio: FolioProcess, public_object) -> None:
    bucket, key, _ = public_object
    reply = signed_raw(folio, "DELETE", f"/{bucket}/{key}", query="versionId=")
    assert_s3_error(reply, 400, "InvalidArgument")


def test_object_acl_with_crlf_in_version_id_is_invalid_argument(folio: FolioProcess, public_object) -> None:
    bucket, key, _ = public_object
    reply = signed_raw(folio, "GET", f"/{bucket}/{key}", query="acl=&versionId=x%0D%0Ay")
    assert_s3_error(reply, 400, "InvalidArgument")


def test_copy_source_version_id_with_crlf_is_invalid_argument(folio: FolioProcess, public_object) -> None:
    bucket, key, _ = public_object
    reply = signed_raw(
        folio, "PUT", f"/{bucket}/copy", headers={"x-amz-copy-source": f"/{bucket}/{key}?versionId=x%0D%0Ay"}
    )
    assert_s3_error(reply, 400, "InvalidArgument")


@pytest.mark.parametrize(
    "param",
    [
        "response-content-type",
        "response-content-disposition",
        "response-cache-control",
        "response-content-language",
        "response-expires",
        "response-content-encoding",
    ],
)
def test_anonymous_response_override_with_crlf_is_invalid_argument(
    folio: FolioProcess, public_object, param: str
) -> None:
    bucket, key, _ = public_object
    reply = send_raw(folio, "GET", f"/{bucket}/{key}", query=f"{param}=a%0D%0AX-Injected:%20yes", headers={})
    fields = assert_s3_error(reply, 400, "InvalidArgument")
    assert fields["ArgumentName"] == param
    assert "x-injected" not in reply.headers


def test_anonymous_response_override_is_refused_as_s3_refuses_it(folio: FolioProcess, public_object) -> None:
    bucket, key, _ = public_object
    reply = send_raw(folio, "GET", f"/{bucket}/{key}", query="response-content-type=text%2Fhtml", headers={})
    fields = assert_s3_error(reply, 400, "InvalidRequest")
    assert "anonymous" in fields["Message"]
    assert reply.headers.get("content-type") != "text/html"


def test_signed_response_override_with_crlf_is_invalid_argument(folio: FolioProcess, public_object) -> None:
    bucket, key, _ = public_object
    reply = signed_raw(
        folio, "GET", f"/{bucket}/{key}", query="response-content-type=a%0D%0AX-Injected%3A%20yes"
    )
    assert_s3_error(reply, 400, "InvalidArgument")
    assert "x-injected" not in reply.headers
    # A clean override still works.
    fine = signed_raw(folio, "GET", f"/{bucket}/{key}", query="response-content-type=text%2Fplain")
    assert fine.status == 200 and fine.headers["content-type"] == "text/plain"


def test_rest_upload_with_control_characters_in_its_type_is_refused(
    web: httpx.Client, s3: Any, bucket: str
) -> None:
    # The part's Content-Type is stored and served back as a header by both listeners:
    # with a control character in it, every later download dropped its connection.
    boundary = "b0undary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="f.txt"\r\n'
        f"Content-Type: text/plain\x01x\r\n\r\nhello\r\n--{boundary}--\r\n"
    ).encode("latin-1")
    made = web.post(
        "/api/v1/files",
        params={"bucket": bucket, "key": "ctl.txt"},
        content=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    web_error(made, 400, "BadRequest")
    listed = s3.list_objects_v2(Bucket=bucket)
    assert listed.get("KeyCount", 0) == 0


# ---------------------------------------------------------------- 2. the safety nets


def _asgi_call(
    app: Any, scope_extra: dict[str, Any] | None = None
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Drive an ASGI app with one GET and collect what it sends."""
    import asyncio

    sent: list[dict[str, Any]] = []
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/b/k",
        "raw_path": b"/b/k",
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1")],
        "client": ("127.0.0.1", 1),
        **(scope_extra or {}),
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    starts = [m for m in sent if m["type"] == "http.response.start"]
    assert len(starts) == 1, sent
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return starts[0]["status"], starts[0]["headers"], body


def test_s3_app_turns_an_unsafe_response_header_into_invalid_argument() -> None:
    # Whatever handler echoes a request value unchecked, the client gets an answer.
    config = SimpleNamespace(
        server=SimpleNamespace(domain=""), auth=SimpleNamespace(max_clock_skew_seconds=900)
    )
    app = S3App(SimpleNamespace(config=config))  # type: ignore[arg-type]

    async def dispatch(_ctx: Any) -> Response:
        return Response(headers={"x-amz-version-id": "x\r\nX-Injected: yes"})

    app._dispatch = dispatch  # type: ignore[method-assign]
    status, headers, body = _asgi_call(app)
    assert status == 400
    assert all(b"\r" not in value and b"\n" not in value for _, value in headers)
    assert b"x-injected" not in {name.lower() for name, _ in headers}
    root = ET.fromstring(body)
    assert root.findtext("Code") == "InvalidArgument"


def test_web_header_guard_turns_an_unsafe_response_header_into_a_json_400() -> None:
    async def echo(scope: Any, receive: Any, send: Any) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-disposition", b"a\r\nX-Injected: yes")],
            }
        )
        await send({"type": "http.response.body", "body": b"secret", "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    status, headers, body = _asgi_call(HeaderGuard(echo))
    assert status == 400
    assert b"x-injected" not in {name.lower() for name, _ in headers}
    assert json.loads(body)["error"]["code"] == "InvalidArgument"
    assert b"secret" not in body


def test_web_header_guard_passes_clean_responses_through() -> None:
    async def fine(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 201, "headers": [(b"x-a", b"1\t2")]})
        await send({"type": "http.response.body", "body": b"ok"})

    assert _asgi_call(HeaderGuard(fine)) == (201, [(b"x-a", b"1\t2")], b"ok")


def test_server_still_answers_after_the_hostile_requests(folio: FolioProcess, s3: Any) -> None:
    name = f"after-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="k", Body=b"v")
    assert s3.get_object(Bucket=name, Key="k")["Body"].read() == b"v"
    s3.delete_object(Bucket=name, Key="k")
    # No request above reached int() or a date with digits it could not take.
    log = folio.log()
    assert "invalid literal for int()" not in log
    assert "OverflowError" not in log
    assert "Invalid HTTP header value" not in log
