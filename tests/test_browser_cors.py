"""CORS as a browser enforces it: a headless Chromium page on another origin uploads
through a presigned PUT and reads the object back through a presigned GET.

The page is served by a small loopback HTTP server on its own port, so its origin
(`http://127.0.0.1:<page port>`) differs from Folio's (`http://127.0.0.1:<s3 port>`).
The PUT sends a Content-Type outside the CORS-safelisted ones, so Chromium must
preflight it; the GET reads the ETag, which only an ExposeHeaders rule lets a page see.
Pages on origins the rules do not name must fail the way browsers fail: `fetch()`
rejects with a TypeError.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest

from tests.browser import Browser, Page, open_page, running_chromium
from tests.web_client import page_server

PAGE_HTML = b"""<!doctype html>
<html><head><meta charset="utf-8"><title>folio cors page</title></head>
<body><p>A page on another origin than Folio's S3 port.</p></body></html>
"""

# Not CORS-safelisted (text/plain would be), so the browser must preflight the PUT.
CONTENT_TYPE = "application/octet-stream"
BODY = "hello from the browser, é ✓\n".encode() + bytes(range(256))

# Runs in the page: PUT then GET, reporting statuses, headers the page may read and the bytes.
UPLOAD_AND_READ_JS = """
(async () => {
  const out = {};
  try {
    const body = Uint8Array.from(atob(%(body_b64)s), c => c.charCodeAt(0));
    const put = await fetch(%(put_url)s, {method: 'PUT', body, headers: {'Content-Type': %(content_type)s}});
    out.putStatus = put.status;
    out.putEtag = put.headers.get('ETag');
    await put.text();
  } catch (e) {
    out.putError = e.name + ': ' + e.message;
  }
  try {
    const get = await fetch(%(get_url)s);
    out.getStatus = get.status;
    out.getEtag = get.headers.get('ETag');
    out.getBytes = Array.from(new Uint8Array(await get.arrayBuffer()));
  } catch (e) {
    out.getError = e.name + ': ' + e.message;
  }
  return out;
})()
"""


@pytest.fixture(scope="module")
def page_origins() -> Iterator[tuple[str, str]]:
    """Two page servers on loopback: (origin the rules allow, origin they do not)."""
    pages = {"/": PAGE_HTML}  # the one page, at `/`
    with page_server(pages) as allowed, page_server(pages) as other:
        yield allowed, other


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    with running_chromium() as browser:
        yield browser


@pytest.fixture
def page(chromium: Browser) -> Iterator[Page]:
    """A fresh tab (its own context); each test loads its page with `page.goto`."""
    with open_page(chromium) as page:
        yield page


def allow(s3, bucket: str, origin: str, allowed_headers: list[str]) -> None:
    s3.put_bucket_cors(
        Bucket=bucket,
        CORSConfiguration={
            "CORSRules": [
                {
                    "AllowedOrigins": [origin],
                    "AllowedMethods": ["PUT", "GET"],
                    "AllowedHeaders": allowed_headers,
                    "ExposeHeaders": ["ETag"],
                    "MaxAgeSeconds": 60,
                }
            ]
        },
    )


def presigned_pair(s3, bucket: str, key: str) -> tuple[str, str]:
    """A presigned PUT (Content-Type signed in, as SigV2 requires) and a presigned GET."""
    put_url = s3.generate_presigned_url(
        "put_object", Params={"Bucket": bucket, "Key": key, "ContentType": CONTENT_TYPE}, ExpiresIn=300
    )
    get_url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=300)
    return put_url, get_url


def upload_and_read(page: Page, put_url: str, get_url: str) -> dict:
    script = UPLOAD_AND_READ_JS % {
        "body_b64": json.dumps(base64.b64encode(BODY).decode()),
        "put_url": json.dumps(put_url),
        "get_url": json.dumps(get_url),
        "content_type": json.dumps(CONTENT_TYPE),
    }
    return page.evaluate(script)


def stored_keys(s3, bucket: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


def test_page_on_an_allowed_origin_uploads_through_presigned_put_and_reads_it_back(
    page: Page, page_origins: tuple[str, str], s3, bucket: str
) -> None:
    allowed, _ = page_origins
    allow(s3, bucket, allowed, ["*"])
    put_url, get_url = presigned_pair(s3, bucket, "from-browser/upload é.bin")
    page.goto(f"{allowed}/")
    assert page.evaluate("location.origin") == allowed

    result = upload_and_read(page, put_url, get_url)

    assert "putError" not in result and "getError" not in result, result
    assert result["putStatus"] == 200, result
    assert result["getStatus"] == 200, result
    # The stored object holds exactly the page's bytes, under the right type.
    stored = s3.get_object(Bucket=bucket, Key="from-browser/upload é.bin")
    assert stored["Body"].read() == BODY
    assert stored["ContentType"] == CONTENT_TYPE
    # The page could read ETag only because the rule exposes it.
    assert result["putEtag"] == stored["ETag"]
    assert result["getEtag"] == stored["ETag"]
    assert bytes(result["getBytes"]) == BODY


def test_page_on_an_origin_not_in_the_rules_can_neither_read_nor_upload(
    page: Page, page_origins: tuple[str, str], s3, bucket: str
) -> None:
    allowed, other = page_origins
    allow(s3, bucket, allowed, ["*"])
    s3.put_object(Bucket=bucket, Key="existing.bin", Body=BODY)
    _, existing_get_url = presigned_pair(s3, bucket, "existing.bin")
    put_url, _ = presigned_pair(s3, bucket, "intruder.bin")
    page.goto(f"{other}/")
    assert page.evaluate("location.origin") == other

    result = upload_and_read(page, put_url, existing_get_url)

    # Valid presigned URLs, but the browser refuses both: the preflight is 403 and the
    # GET's answer carries no Access-Control-Allow-Origin for this origin.
    assert result.get("putError", "").startswith("TypeError"), result
    assert result.get("getError", "").startswith("TypeError"), result
    assert "getBytes" not in result and "getStatus" not in result, result
    # The refused preflight kept the PUT from ever being sent.
    assert stored_keys(s3, bucket) == ["existing.bin"]


def test_preflight_refused_for_a_header_the_rule_does_not_allow_blocks_the_upload(
    page: Page, page_origins: tuple[str, str], s3, bucket: str
) -> None:
    """Proves the browser really preflights the PUT and obeys Folio's answer: the origin is
    allowed, but the rule's AllowedHeaders leave out the Content-Type the page sends."""
    allowed, _ = page_origins
    allow(s3, bucket, allowed, ["x-amz-meta-*"])
    put_url, get_url = presigned_pair(s3, bucket, "blocked.bin")
    page.goto(f"{allowed}/")

    result = upload_and_read(page, put_url, get_url)

    assert result.get("putError", "").startswith("TypeError"), result
    # The GET is a simple request (no preflight) from an allowed origin: the page sees
    # the 404 itself, because Folio puts the CORS headers on error answers too.
    assert result.get("getStatus") == 404, result
    assert stored_keys(s3, bucket) == []
