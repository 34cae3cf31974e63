"""The dashboard's object browser in a real browser (issue 15): keyset pages of a
10,000-object prefix, the filter, go to path, the breadcrumb, a ZIP of the selection,
delete, create folder, previews (an image thumbnail and a PDF page through /api/img,
text as text, a video on Range requests) and two accounts that never see each other's
objects. Debian's Chromium through Playwright against the real server, objects made and
checked with boto3 under the account's own keys; screenshots in light and dark go to
tests.conftest.SCREENSHOTS.

The ZIP writer's ZIP64 is proved without a server: a member of 4 GiB + 1 MiB streamed
through it and read back by the stdlib's zipfile (CRC checked)."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import time
import uuid
import zipfile
import zlib
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import boto3
import httpx
import pytest
from botocore.config import Config as BotoConfig
from PIL import Image
from playwright.sync_api import Browser, Page, expect

from restapi.zipstream import ZipMember, safe_name, stream_zip
from tests.a11y import accessibility_problems
from tests.browser import open_page, page_log, screenshot
from tests.conftest import SCREENSHOTS, TEST_CONFIG
from tests.folio_process import FolioProcess, running_server

PASSWORD = "correct horse battery"
BIG_PREFIX = "big/"
BIG_COUNT = 10_000
PAGE_ROWS = 100


# ---------------------------------------------------------------- fixtures


@dataclass(frozen=True)
class User:
    email: str
    access_key: str
    secret_key: str
    bucket: str
    s3: object


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FolioProcess]:
    yield from running_server(tmp_path_factory, "webui-objects", TEST_CONFIG)


def sign_up(server: FolioProcess, tag: str) -> User:
    """An account through the JSON API, with a bucket of its own made through S3."""
    email = f"{tag}-{uuid.uuid4().hex[:10]}@example.com"
    answer = httpx.post(f"{server.web_url}/api/auth/signup", json={"email": email, "password": PASSWORD})
    assert answer.status_code == 201, answer.text
    account = answer.json()
    s3 = boto3.client(
        "s3",
        endpoint_url=server.s3_url,
        region_name="us-east-1",
        aws_access_key_id=account["accessKey"],
        aws_secret_access_key=account["secretKey"],
        config=BotoConfig(max_pool_connections=32),
    )
    bucket = f"{tag}-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    return User(email, account["accessKey"], account["secretKey"], bucket, s3)


@pytest.fixture(scope="module")
def alice(server: FolioProcess) -> User:
    return sign_up(server, "alice")


@pytest.fixture(scope="module")
def bob(server: FolioProcess) -> User:
    user = sign_up(server, "bob")
    user.s3.put_object(Bucket=user.bucket, Key="bob-secret/plans.txt", Body=b"bob's plans")
    return user


def log_in(page: Page, server: FolioProcess, user: User) -> None:
    page.goto(f"{server.web_url}/login")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{server.web_url}/buckets")


@pytest.fixture(scope="module")
def page(server: FolioProcess, browser: Browser, alice: User) -> Iterator[Page]:
    """Alice's logged-in page, shared by the tests (each opens the URL it needs)."""
    with open_page(browser, accept_downloads=True) as opened:
        log_in(opened, server, alice)
        yield opened


def listing(server: FolioProcess, user: User, prefix: str = "", **query: str) -> str:
    params = httpx.QueryParams({"prefix": prefix, **query} if prefix else query)
    return f"{server.web_url}/buckets/{user.bucket}" + (f"?{params}" if params else "")


def rows(page: Page):
    return page.locator("table.objects tbody tr")


def row_names(page: Page) -> list[str]:
    return [name.strip() for name in page.locator("table.objects tbody td.name a").all_inner_texts()]


def check_page(page: Page, name: str) -> None:
    """Screenshots in both themes, the accessibility check (labels, contrast), and no
    script error or CSP refusal on the page so far."""
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        screenshot(page, SCREENSHOTS, f"{name}-{scheme}", full_page=True)
        assert accessibility_problems(page) == [], (name, scheme)
    page.emulate_media(color_scheme="light")
    log = page_log(page)
    assert log.errors == [], name
    assert not [text for kind, text in log.console if "Content Security Policy" in text], name


def put_many(user: User, keys: list[str], threads: int = 24) -> None:
    def put(key: str) -> None:
        user.s3.put_object(Bucket=user.bucket, Key=key, Body=key.encode())

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(put, keys))


def jpeg(size: tuple[int, int], colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "JPEG", quality=95)
    return out.getvalue()


def one_page_pdf() -> bytes:
    """A one-page PDF (a red rectangle on white), written out with its xref table."""
    content = b"1 0 0 rg 20 20 160 80 re f"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 120] /Contents 4 0 R >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content),
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


# Chromium records a second of canvas animation as WebM (VP8): a real video, made
# without ffmpeg or a binary fixture.
RECORD_WEBM = """
async () => {
  const canvas = document.createElement("canvas");
  canvas.width = 160; canvas.height = 120;
  const ctx = canvas.getContext("2d");
  const recorder = new MediaRecorder(canvas.captureStream(25), { mimeType: "video/webm" });
  const chunks = [];
  recorder.ondataavailable = (event) => chunks.push(event.data);
  recorder.start(100);
  for (let i = 0; i < 25; i++) {
    ctx.fillStyle = `rgb(${i * 10}, 80, ${250 - i * 10})`;
    ctx.fillRect(0, 0, 160, 120);
    await new Promise((resolve) => setTimeout(resolve, 40));
  }
  const stopped = new Promise((resolve) => (recorder.onstop = resolve));
  recorder.stop();
  await stopped;
  const bytes = new Uint8Array(await new Blob(chunks).arrayBuffer());
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}
"""


# ---------------------------------------------------------------- listing


def test_a_prefix_of_10000_objects_pages_without_loading_them_all(
    server: FolioProcess, page: Page, alice: User
) -> None:
    started = time.monotonic()
    keys = [f"{BIG_PREFIX}obj-{i:05d}.txt" for i in range(BIG_COUNT)]
    put_many(alice, keys)
    print(f"\nseeded {BIG_COUNT} objects with boto3 in {time.monotonic() - started:.1f} s")

    started = time.monotonic()
    answer = page.goto(listing(server, alice, BIG_PREFIX))
    expect(rows(page)).to_have_count(PAGE_ROWS)
    first_page_ms = (time.monotonic() - started) * 1000
    server_timing = answer.headers.get("server-timing", "")
    print(f"first page of {BIG_COUNT}: {first_page_ms:.0f} ms in the browser (server: {server_timing})")
    assert first_page_ms < 5000
    names = row_names(page)
    assert names == [f"obj-{i:05d}.txt" for i in range(PAGE_ROWS)]
    # Only that page is in the document: the HTML is about 100 rows' worth.
    assert len(page.content()) < 200_000
    expect(page.locator("nav.pager a[rel=next]")).to_have_attribute(
        "href", f"/buckets/{alice.bucket}?prefix=big%2F&after=big%2Fobj-00099.txt"
    )

    # The next page continues after the marker: keyset pagination, each page one query.
    started = time.monotonic()
    page.locator("nav.pager a[rel=next]").click()
    expect(rows(page).first).to_contain_text("obj-00100.txt")
    print(f"second page: {(time.monotonic() - started) * 1000:.0f} ms")
    assert row_names(page) == [f"obj-{i:05d}.txt" for i in range(100, 200)]
    page.get_by_role("link", name="« First page").click()
    expect(rows(page).first).to_contain_text("obj-00000.txt")

    # The last page of the prefix has no next link.
    page.goto(listing(server, alice, BIG_PREFIX, after=f"{BIG_PREFIX}obj-09949.txt"))
    expect(rows(page)).to_have_count(50)
    expect(page.locator("nav.pager a[rel=next]")).to_have_count(0)

    # Size and date sort the page shown (and say so).
    page.goto(listing(server, alice, BIG_PREFIX, sort="size", order="desc"))
    expect(rows(page)).to_have_count(PAGE_ROWS)
    sizes = [
        int(cell)
        for cell in page.locator("table.objects tbody td.num").evaluate_all(
            "cells => cells.map(c => c.dataset.bytes)"
        )
    ]
    assert sizes == sorted(sizes, reverse=True)
    expect(page.locator("#sort-note")).to_contain_text("orders this page only")


def test_the_filter_and_go_to_path(server: FolioProcess, page: Page, alice: User) -> None:
    put_many(
        alice, [f"filter/obj-{i:03d}.txt" for i in range(150)] + ["filter/other.txt", "filter/sub/inner.txt"]
    )
    page.goto(listing(server, alice, "filter/"))
    page.get_by_label("Filter by name").fill("obj-14")
    page.get_by_role("button", name="Filter", exact=True).click()
    expect(rows(page)).to_have_count(10)
    assert row_names(page) == [f"obj-{i:03d}.txt" for i in range(140, 150)]
    page.get_by_label("Filter by name").fill("s")
    page.get_by_role("button", name="Filter", exact=True).click()
    expect(rows(page)).to_have_count(1)
    assert row_names(page) == ["sub/"]
    page.get_by_role("link", name="Clear filter").click()
    expect(rows(page)).to_have_count(PAGE_ROWS)

    # Go to an object: its page; to a folder (with or without "/"): its listing.
    page.get_by_label("Go to path").fill("filter/obj-123.txt")
    page.get_by_role("button", name="Go", exact=True).click()
    expect(page.get_by_role("heading", name="obj-123.txt")).to_be_visible()
    expect(page.locator(".text-preview")).to_have_text("filter/obj-123.txt")
    page.goto(listing(server, alice))
    page.get_by_label("Go to path").fill("/filter/sub")
    page.get_by_role("button", name="Go", exact=True).click()
    expect(page).to_have_url(listing(server, alice, "filter/sub/"))
    assert row_names(page) == ["inner.txt"]
    # Nothing there: the parent folder, filtered by the name, and a message.
    page.get_by_label("Go to path").fill("filter/obj-14")
    page.get_by_role("button", name="Go", exact=True).click()
    expect(page.locator("#objects-message")).to_contain_text("Nothing is at that path")
    assert row_names(page) == [f"obj-{i:03d}.txt" for i in range(140, 150)]


def test_breadcrumb_navigation(server: FolioProcess, page: Page, alice: User) -> None:
    alice.s3.put_object(Bucket=alice.bucket, Key="crumbs/two/three/deep.txt", Body=b"deep")
    page.goto(listing(server, alice, "crumbs/two/three/"))
    crumbs = page.get_by_role("navigation", name="Breadcrumb")
    expect(crumbs).to_contain_text(f"Buckets / {alice.bucket} / crumbs / two / three")
    expect(crumbs.locator("[aria-current=page]")).to_have_text("three")
    assert row_names(page) == ["deep.txt"]
    crumbs.get_by_role("link", name="two").click()
    expect(page).to_have_url(listing(server, alice, "crumbs/two/"))
    assert row_names(page) == ["three/"]
    page.get_by_role("navigation", name="Breadcrumb").get_by_role("link", name=alice.bucket).click()
    expect(page).to_have_url(listing(server, alice))
    expect(page.locator("table.objects")).to_contain_text("crumbs/")
    # Folders open by their links, down again.
    page.get_by_role("link", name="crumbs/").click()
    page.get_by_role("link", name="two/").click()
    expect(page).to_have_url(listing(server, alice, "crumbs/two/"))


def test_keys_with_odd_characters_are_listed_and_opened(
    server: FolioProcess, page: Page, alice: User
) -> None:
    odd = {"odd/a&b #?%20.txt": b"ampersand", "odd/ünï cödé.txt": b"unicode", "/lead/x.txt": b"leading slash"}
    for key, body in odd.items():
        alice.s3.put_object(Bucket=alice.bucket, Key=key, Body=body, ContentType="text/plain")
    page.goto(listing(server, alice, "odd/"))
    assert row_names(page) == ["a&b #?%20.txt", "ünï cödé.txt"]
    for name, body in (("a&b #?%20.txt", "ampersand"), ("ünï cödé.txt", "unicode")):
        page.goto(listing(server, alice, "odd/"))
        page.get_by_role("link", name=name, exact=True).click()
        expect(page.get_by_role("heading", name=name, exact=True)).to_be_visible()
        expect(page.locator("pre.text-preview")).to_have_text(body)
    # A key starting with "/" sits in a folder with an empty name, reachable like any other.
    page.goto(listing(server, alice))
    page.get_by_role("link", name="/", exact=True).click()
    expect(page).to_have_url(listing(server, alice, "/"))
    assert row_names(page) == ["lead/"]
    page.get_by_role("link", name="lead/").click()
    assert row_names(page) == ["x.txt"]
    expect(page.get_by_role("navigation", name="Breadcrumb")).to_contain_text("(empty name) / lead")


# ---------------------------------------------------------------- selection


def test_a_zip_of_the_selection_holds_the_right_bytes(server: FolioProcess, page: Page, alice: User) -> None:
    files = {
        "zip/a.txt": b"alpha\n",
        "zip/b.bin": os.urandom(3 * 1024 * 1024 + 17),  # past the inline threshold: blob-backed
        "zip/sub/c.txt": b"charlie",
        "zip/sub/deeper/d.json": b'{"d": 4}',
        "zip/left-out.txt": b"not selected",
    }
    for key, body in files.items():
        alice.s3.put_object(Bucket=alice.bucket, Key=key, Body=body)
    page.goto(listing(server, alice, "zip/"))
    page.get_by_label("Select a.txt").check()
    page.get_by_label("Select b.bin").check()
    page.get_by_label("Select folder sub").check()
    expect(page.locator("#selected-count")).to_have_text("3 selected")
    with page.expect_download() as waiting:
        page.get_by_role("button", name="Download as ZIP").click()
    download = waiting.value
    assert download.suggested_filename == "zip.zip"
    archive = zipfile.ZipFile(download.path())
    assert archive.testzip() is None
    expected = {name.removeprefix("zip/"): body for name, body in files.items() if "left-out" not in name}
    assert sorted(archive.namelist()) == sorted(expected)
    for name, body in expected.items():
        assert archive.read(name) == body, name


def test_delete_the_selection_after_confirming(server: FolioProcess, page: Page, alice: User) -> None:
    for name in ("x1.txt", "x2.txt", "keep.txt", "folder/inside.txt"):
        alice.s3.put_object(Bucket=alice.bucket, Key=f"del/{name}", Body=name.encode())
    page.goto(listing(server, alice, "del/"))
    page.get_by_label("Select x1.txt").check()
    page.get_by_label("Select x2.txt").check()
    page.get_by_label("Select folder folder").check()
    page.get_by_role("button", name="Delete…").click()
    # A confirmation page names what goes; nothing is deleted yet.
    expect(page.get_by_role("heading")).to_contain_text("Delete 2 files and 1 folder")
    expect(page.locator("ul.doomed")).to_contain_text("x1.txt")
    assert alice.s3.list_objects_v2(Bucket=alice.bucket, Prefix="del/")["KeyCount"] == 4
    check_page(page, "objects-delete")
    page.get_by_role("button", name="Delete", exact=True).click()
    expect(page.locator("#objects-message")).to_have_text("Deleted 3 object(s).")
    assert row_names(page) == ["keep.txt"]
    listed = alice.s3.list_objects_v2(Bucket=alice.bucket, Prefix="del/")
    assert [item["Key"] for item in listed["Contents"]] == ["del/keep.txt"]
    # The bucket keeps versions (Folio's default): each delete left a marker, as S3's does.
    assert alice.s3.get_bucket_versioning(Bucket=alice.bucket).get("Status") == "Enabled"
    versions = alice.s3.list_object_versions(Bucket=alice.bucket, Prefix="del/")
    markers = sorted(marker["Key"] for marker in versions.get("DeleteMarkers", []))
    assert markers == ["del/folder/inside.txt", "del/x1.txt", "del/x2.txt"]
    assert len(versions["Versions"]) == 4  # every version is still there


def test_create_a_folder(server: FolioProcess, page: Page, alice: User) -> None:
    page.goto(listing(server, alice, "made/"))
    expect(page.get_by_text("This folder is empty.")).to_be_visible()
    page.get_by_label("New folder").fill("holiday 2026")
    page.get_by_role("button", name="Create folder").click()
    expect(page).to_have_url(listing(server, alice, "made/holiday 2026/"))
    expect(page.get_by_text("This folder is empty.")).to_be_visible()
    head = alice.s3.head_object(Bucket=alice.bucket, Key="made/holiday 2026/")
    assert head["ContentLength"] == 0  # the empty "name/" object the S3 consoles make
    page.goto(listing(server, alice, "made/"))
    assert row_names(page) == ["holiday 2026/"]
    # A name the server refuses comes back as a message on the page.
    page.get_by_label("New folder").fill("..")
    page.get_by_role("button", name="Create folder").click()
    expect(page.get_by_role("alert")).to_contain_text("folder name")


# ---------------------------------------------------------------- previews


def test_an_image_shows_a_thumbnail_served_by_api_img(server: FolioProcess, page: Page, alice: User) -> None:
    original = jpeg((3000, 2000), (200, 40, 30))
    alice.s3.put_object(Bucket=alice.bucket, Key="img/photo.jpg", Body=original, ContentType="image/jpeg")
    alice.s3.put_object(Bucket=alice.bucket, Key="img/notes.txt", Body=b"words")
    log = page_log(page)
    seen = len(log.exchanges)
    page.goto(listing(server, alice, "img/"))
    thumb = page.locator("img.thumb")
    expect(thumb).to_have_count(1)
    page.wait_for_function(
        "() => { const i = document.querySelector('img.thumb'); return i && i.complete && i.naturalWidth > 0; }"
    )
    assert thumb.evaluate("img => [img.naturalWidth, img.naturalHeight]") == [96, 96]
    fetched = log.exchanges[seen:]
    images = [e for e in fetched if "/api/img/" in e.url]
    assert len(images) == 1 and images[0].status == 200 and images[0].resource_type == "image"
    assert "w=96" in images[0].url and "sig=" in images[0].url
    # The original's bytes were never fetched to draw it.
    assert not [e for e in fetched if "photo.jpg" in e.url and "/api/img/" not in e.url]
    check_page(page, "objects-listing")

    # The details page: a large preview through /api/img, and the URL builder.
    seen = len(log.exchanges)
    page.get_by_role("link", name="photo.jpg").click()
    page.wait_for_function(
        "() => { const i = document.querySelector('img.large'); return i && i.complete && i.naturalWidth > 0; }"
    )
    assert page.locator("img.large").evaluate("img => img.naturalWidth") == 1200
    page.wait_for_function(
        "() => { const i = document.getElementById('built-preview'); return i.complete && i.naturalWidth > 0; }"
    )
    previews = [e for e in log.exchanges[seen:] if "/api/img/" in e.url]
    assert sorted(e.url.split("w=")[1].split("&")[0] for e in previews) == ["1200", "800"]  # large, builder
    assert [e.status for e in previews] == [200, 200]
    details = page.locator("dl.object-details")
    expect(details).to_contain_text("image/jpeg")
    expect(details).to_contain_text(f"{len(original):,} bytes")
    page.get_by_label("Width (px)").fill("300")
    page.get_by_label("Format").select_option("png")
    page.wait_for_function(
        "() => document.getElementById('built-url').value.includes('w=300') && document.getElementById('built-url').value.includes('format=png')"
    )
    page.wait_for_function(
        "() => { const i = document.getElementById('built-preview'); return i.complete && i.naturalWidth === 300; }"
    )
    built = page.locator("#built-url").input_value()
    # The signed URL works for anyone who has it, with no session: it is the URL to share.
    answer = httpx.get(built)
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(answer.content)).size == (300, 200)
    check_page(page, "objects-details-image")


def test_a_pdf_shows_its_first_page(server: FolioProcess, page: Page, alice: User) -> None:
    alice.s3.put_object(
        Bucket=alice.bucket, Key="pdf/report.pdf", Body=one_page_pdf(), ContentType="application/pdf"
    )
    log = page_log(page)
    seen = len(log.exchanges)
    page.goto(listing(server, alice, "pdf/"))
    page.wait_for_function(
        "() => { const i = document.querySelector('img.thumb'); return i && i.complete && i.naturalWidth > 0; }",
        timeout=20_000,
    )
    pdf_images = [e for e in log.exchanges[seen:] if "/api/img/" in e.url]
    assert pdf_images and "page=1" in pdf_images[-1].url and pdf_images[-1].status == 200
    page.get_by_role("link", name="report.pdf").click()
    page.wait_for_function(
        "() => { const i = document.querySelector('img.large'); return i && i.complete && i.naturalWidth > 0; }"
    )
    expect(page.locator("img.large")).to_have_attribute("alt", "First page of report.pdf")


def test_a_text_file_shows_its_content(server: FolioProcess, page: Page, alice: User) -> None:
    text = "# Notes\n\n<script>alert('no')</script> & <b>not bold</b>\nlast line ✓\n"
    alice.s3.put_object(
        Bucket=alice.bucket, Key="text/notes.md", Body=text.encode(), ContentType="text/markdown"
    )
    rows_csv = "name,size\n" + "".join(f"row{i},{i}\n" for i in range(100_000))  # over 1 MiB
    alice.s3.put_object(Bucket=alice.bucket, Key="text/big.csv", Body=rows_csv.encode())
    page.goto(f"{server.web_url}/buckets/{alice.bucket}/object?key=text/notes.md")
    preview = page.locator("pre.text-preview")
    expect(preview).to_have_text(text)
    assert preview.locator("b, script").count() == 0  # shown, escaped, never run
    check_page(page, "objects-details-text")
    page.goto(f"{server.web_url}/buckets/{alice.bucket}/object?key=text/big.csv")
    shown = page.locator("pre.text-preview").inner_text()
    assert shown.startswith("name,size\nrow0,0\n") and len(shown.encode()) <= 1024 * 1024
    expect(page.get_by_text("The first 1 MiB of")).to_be_visible()


def test_a_video_plays_from_range_requests(
    server: FolioProcess, browser: Browser, page: Page, alice: User
) -> None:
    with open_page(browser) as scratch:
        webm = scratch.evaluate(RECORD_WEBM)
    body = base64.b64decode(webm)
    assert body[:4] == b"\x1a\x45\xdf\xa3"  # an EBML (WebM) header
    alice.s3.put_object(Bucket=alice.bucket, Key="media/clip.webm", Body=body, ContentType="video/webm")
    ranges: list[tuple[str | None, int | None]] = []

    def on_response(response) -> None:
        if "/download?" in response.url and response.request.resource_type == "media":
            ranges.append((response.request.headers.get("range"), response.status))

    page.on("response", on_response)
    try:
        page.goto(f"{server.web_url}/buckets/{alice.bucket}/object?key=media/clip.webm")
        video = page.locator("video")
        expect(video).to_have_count(1)
        played = video.evaluate(
            """async (v) => {
                 v.muted = true;
                 await v.play();
                 await new Promise((resolve) => setTimeout(resolve, 400));
                 return v.currentTime;
               }"""
        )
    finally:
        page.remove_listener("response", on_response)
    assert played > 0
    assert ranges, "the video element fetched nothing from the download URL"
    assert all(header and header.startswith("bytes=") for header, _ in ranges), ranges
    assert ranges[0][1] == 206
    check_page(page, "objects-details-video")


# ---------------------------------------------------------------- accounts


def test_an_account_never_sees_another_accounts_objects(
    server: FolioProcess, browser: Browser, page: Page, alice: User, bob: User
) -> None:
    alice.s3.put_object(Bucket=alice.bucket, Key="private/alice.txt", Body=b"alice's diary")
    with open_page(browser) as bobs:
        log_in(bobs, server, bob)
        expect(bobs.locator("main")).to_contain_text(bob.bucket)
        assert alice.bucket not in bobs.content()
        for path in (
            f"/buckets/{alice.bucket}",
            f"/buckets/{alice.bucket}?prefix=private/",
            f"/buckets/{alice.bucket}/object?key=private/alice.txt",
            f"/buckets/{alice.bucket}/download?key=private/alice.txt",
            f"/buckets/{alice.bucket}/image-url?key=private/alice.txt",
        ):
            answer = bobs.goto(f"{server.web_url}{path}")
            assert answer.status == 404, path
            assert "alice.txt" not in bobs.content() and "diary" not in bobs.content(), path
        # Posting a selection of Alice's keys from Bob's session: 404 too, nothing deleted.
        bobs.goto(f"{server.web_url}/buckets/{bob.bucket}")
        token = bobs.locator('input[name="csrf"]').first.input_value()
        for action in ("zip", "delete-objects"):
            answer = bobs.request.post(
                f"{server.web_url}/buckets/{alice.bucket}/{action}",
                form={"csrf": token, "key": "private/alice.txt", "confirm": "yes"},
            )
            assert answer.status == 404, action
        assert (
            alice.s3.get_object(Bucket=alice.bucket, Key="private/alice.txt")["Body"].read()
            == b"alice's diary"
        )
        # Bob's own bucket lists his objects, none of Alice's.
        bobs.goto(f"{server.web_url}/buckets/{bob.bucket}")
        assert row_names(bobs) == ["bob-secret/"]
    # And Alice's pages show none of Bob's.
    page.goto(f"{server.web_url}/buckets")
    assert bob.bucket not in page.content()
    assert page.goto(f"{server.web_url}/buckets/{bob.bucket}?prefix=bob-secret/").status == 404
    assert "plans.txt" not in page.content()


def test_the_listing_fits_a_375_pixel_screen(server: FolioProcess, browser: Browser, alice: User) -> None:
    alice.s3.put_object(
        Bucket=alice.bucket, Key="narrow/a-long-file-name-that-has-to-wrap-somewhere.txt", Body=b"x"
    )
    alice.s3.put_object(Bucket=alice.bucket, Key="narrow/photo.jpg", Body=jpeg((400, 300), (30, 90, 200)))
    with open_page(browser, viewport=(375, 740)) as narrow:
        log_in(narrow, server, alice)
        narrow.goto(listing(server, alice, "narrow/"))
        expect(rows(narrow)).to_have_count(2)
        overflow = narrow.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"the page is {overflow} px wider than the screen"
        check_page(narrow, "objects-listing-375")
        narrow.get_by_role("link", name="photo.jpg").click()
        overflow = narrow.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"the details page is {overflow} px wider than the screen"
        check_page(narrow, "objects-details-375")


# ---------------------------------------------------------------- the ZIP writer


class _SparseZip(io.RawIOBase):
    """A file of `size` bytes that holds only its head and tail; zeros between (the
    member's bytes, all zeros), so a 4 GiB archive is read back without 4 GiB anywhere."""

    def __init__(self, head: bytes, tail: bytes, size: int) -> None:
        self.head, self.tail, self.size, self.pos = head, tail, size, 0

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = offset if whence == 0 else (self.pos + offset if whence == 1 else self.size + offset)
        return self.pos

    def tell(self) -> int:
        return self.pos

    def read(self, n: int = -1) -> bytes:
        end = self.size if n is None or n < 0 else min(self.size, self.pos + n)
        out = bytearray(end - self.pos)
        tail_at = self.size - len(self.tail)
        for source, start in ((self.head, 0), (self.tail, tail_at)):
            lo, hi = max(self.pos, start), min(end, start + len(source))
            if lo < hi:
                out[lo - self.pos : hi - self.pos] = source[lo - start : hi - start]
        self.pos = end
        return bytes(out)


def test_the_zip_writer_uses_zip64_past_4_gib() -> None:
    size = (4 << 30) + (1 << 20)
    zero = bytes(1 << 20)

    async def zeros() -> AsyncIterator[bytes]:
        for _ in range(size // len(zero)):
            yield zero

    async def tiny() -> AsyncIterator[bytes]:
        yield b"after the big one"

    async def members() -> AsyncIterator[ZipMember]:
        yield ZipMember("big.bin", size, 1_700_000_000, zeros)
        yield ZipMember("../after.txt", 17, 1_700_000_000, tiny)  # made safe: "__/after.txt"

    async def collect() -> tuple[bytes, bytes, int, int]:
        head, tail, total, largest = b"", b"", 0, 0
        async for piece in stream_zip(members()):
            if len(head) < 65536:
                head += piece[: 65536 - len(head)]
            tail = (tail + piece)[-65536:]
            total += len(piece)
            largest = max(largest, len(piece))
        return head, tail, total, largest

    started = time.monotonic()
    # In a thread of its own: Playwright's sync API keeps an event loop running in this one.
    with ThreadPoolExecutor(1) as pool:
        head, tail, total, largest = pool.submit(asyncio.run, collect()).result()
    print(f"\nZIP of {size:,} bytes streamed in {time.monotonic() - started:.1f} s")
    assert largest <= (1 << 20) + 1024  # one source chunk at a time
    archive = zipfile.ZipFile(_SparseZip(head, tail, total))
    big, after = archive.infolist()
    assert (big.filename, big.file_size) == ("big.bin", size)
    assert after.filename == "__/after.txt" and after.header_offset > 0xFFFFFFFF
    assert archive.read("__/after.txt") == b"after the big one"
    crc = 0
    for _ in range(size // len(zero)):
        crc = zlib.crc32(zero, crc)
    assert crc == big.CRC  # what the data descriptor and central directory recorded
    with archive.open("big.bin") as member:  # its local header is ZIP64 as well
        assert member.read(16) == bytes(16)


def test_zip_member_names_stay_inside_the_target_folder() -> None:
    assert safe_name("a/../../etc/passwd") == "a/__/__/etc/passwd"
    assert safe_name("/abs/./x") == "abs/x"
    assert safe_name("dir//") == "dir/"
    assert safe_name("..") == "__"
    assert safe_name("/") == ""
    assert json.dumps(safe_name("été/ü.txt"), ensure_ascii=False) == '"été/ü.txt"'
