"""The dashboard's Time Machine in a real browser (issue 16): an object's history
(versions newest first, retention, restore, undelete, download), and the comparison
of two versions (a line diff of text, images and PDF pages side by side through
/api/img, and a 50 MiB binary compared by its metadata without its bytes reaching the
page). Debian's Chromium through Playwright against the real server; objects written
and read back with boto3 under the account's own keys. Screenshots in light and dark
go to tests.conftest.SCREENSHOTS, with the accessibility check on each page."""

from __future__ import annotations

import io
import json
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, Route, expect

from restapi.version_diff import diff_lines, retention_note
from s3proxy.store.models import Retention
from s3proxy.store.version_listing import VersionEntry
from tests.a11y import accessibility_problems
from tests.browser import open_page, page_log, screenshot
from tests.conftest import SCREENSHOTS, TEST_CONFIG, sign_up_with_versioned_bucket
from tests.folio_process import FolioProcess, running_server

PASSWORD = "correct horse battery"
BIG = 50 * 1024 * 1024


@dataclass(frozen=True)
class User:
    email: str
    bucket: str
    s3: object


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FolioProcess]:
    yield from running_server(tmp_path_factory, "webui-history", TEST_CONFIG)


@pytest.fixture(scope="module")
def alice(server: FolioProcess) -> User:
    return User(*sign_up_with_versioned_bucket(server, "tm", PASSWORD))


@pytest.fixture(scope="module")
def page(server: FolioProcess, browser: Browser, alice: User) -> Iterator[Page]:
    with open_page(browser, accept_downloads=True) as opened:
        opened.goto(f"{server.web_url}/login")
        opened.get_by_label("Email").fill(alice.email)
        opened.get_by_label("Password").fill(PASSWORD)
        opened.get_by_role("button", name="Log in").click()
        expect(opened).to_have_url(f"{server.web_url}/buckets")
        yield opened


def history_url(server: FolioProcess, user: User, key: str) -> str:
    return f"{server.web_url}/buckets/{user.bucket}/history?" + str(httpx.QueryParams({"key": key}))


def versions_of(user: User, key: str) -> list[dict]:
    listed = user.s3.list_object_versions(Bucket=user.bucket, Prefix=key)
    return [v for v in listed.get("Versions", []) if v["Key"] == key]


def check_page(page: Page, name: str) -> None:
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        screenshot(page, SCREENSHOTS, f"{name}-{scheme}", full_page=True)
        assert accessibility_problems(page) == [], (name, scheme)
    page.emulate_media(color_scheme="light")
    log = page_log(page)
    assert log.errors == [], name
    assert not [text for _kind, text in log.console if "Content Security Policy" in text], name


TEXTS = [
    b"# Plan\nalpha\nbravo\ncharlie\ndelta\n",
    b"# Plan\nalpha\nbravo, revised\ncharlie\ndelta\n",
    b"# Plan\nalpha\nbravo, revised twice\ncharlie\ndelta\necho added\n",
]


def test_three_writes_three_versions_and_the_diff_of_1_and_3(
    server: FolioProcess, page: Page, alice: User
) -> None:
    key = "notes/plan.md"
    for body in TEXTS:
        alice.s3.put_object(Bucket=alice.bucket, Key=key, Body=body, ContentType="text/markdown")
    # From the object's page, its History button.
    page.goto(f"{server.web_url}/buckets/{alice.bucket}/object?" + str(httpx.QueryParams({"key": key})))
    page.get_by_role("link", name="History", exact=True).click()
    expect(page.get_by_role("heading", name="History of plan.md")).to_be_visible()
    rows = page.locator("table.history tbody tr.version")
    expect(rows).to_have_count(3)
    assert [t.split("\n")[0].strip() for t in rows.locator("td:first-child").all_inner_texts()] == [
        "Version 3 current",
        "Version 2",
        "Version 1",
    ]
    # Retention as the plan sets it for this bucket is spelled out on each old version.
    expect(rows.nth(0).locator("td.retention")).to_have_text("Current: never pruned.")
    assert rows.nth(1).locator("td.retention").inner_text() not in ("", "Current: never pruned.")
    check_page(page, "history")

    page.get_by_label("Older").select_option(index=2)
    page.get_by_label("Newer").select_option(index=0)
    page.get_by_role("button", name="Compare").click()
    expect(page.get_by_role("heading", name="Version 1 → Version 3 of plan.md")).to_be_visible()
    removed = page.locator("table.diff tr.del td.code")
    added = page.locator("table.diff tr.add td.code")
    assert removed.all_inner_texts() == ["bravo"]
    assert added.all_inner_texts() == ["bravo, revised twice", "echo added"]
    expect(page.locator(".diff-summary")).to_have_text("2 lines added, 1 line removed.")
    # Unchanged lines are context, not changes.
    assert "alpha" in page.locator("table.diff tr.ctx td.code").all_inner_texts()
    check_page(page, "history-compare-text")


def test_restore_version_1_makes_its_bytes_current_as_a_new_version(
    server: FolioProcess, page: Page, alice: User
) -> None:
    key = "restore/me.txt"
    for body in TEXTS:
        alice.s3.put_object(Bucket=alice.bucket, Key=key, Body=body, ContentType="text/plain")
    before = versions_of(alice, key)
    # A restore posted without the page's CSRF token (the session cookie alone) is refused.
    forged = page.request.post(
        f"{server.web_url}/buckets/{alice.bucket}/history/restore",
        form={"key": key, "version": before[-1]["VersionId"]},
    )
    assert forged.status == 403
    assert len(versions_of(alice, key)) == len(before)
    page.goto(history_url(server, alice, key))
    page.get_by_role("button", name="Restore version 1").click()
    expect(page.get_by_role("status")).to_contain_text("Version 1 is current again")
    assert alice.s3.get_object(Bucket=alice.bucket, Key=key)["Body"].read() == TEXTS[0]
    after = versions_of(alice, key)
    assert len(after) == len(before) + 1
    # Nothing was rewritten: the old versions are all still there, unchanged.
    assert {v["VersionId"] for v in before} <= {v["VersionId"] for v in after}
    expect(page.locator("table.history tbody tr.version")).to_have_count(4)
    # And any version downloads as its own bytes.
    with page.expect_download() as download:
        page.get_by_role("link", name="Download version 2").click()
    assert Path(download.value.path()).read_bytes() == TEXTS[1]


def test_a_deleted_file_is_undeleted_from_its_history(server: FolioProcess, page: Page, alice: User) -> None:
    key = "gone/soon.txt"
    alice.s3.put_object(Bucket=alice.bucket, Key=key, Body=b"first")
    alice.s3.put_object(Bucket=alice.bucket, Key=key, Body=b"second")
    alice.s3.delete_object(Bucket=alice.bucket, Key=key)
    with pytest.raises(alice.s3.exceptions.NoSuchKey):
        alice.s3.get_object(Bucket=alice.bucket, Key=key)
    page.goto(history_url(server, alice, key))
    expect(page.get_by_role("heading", name="This file is deleted")).to_be_visible()
    expect(page.locator("table.history tbody tr.marker")).to_have_count(1)
    check_page(page, "history-deleted")
    page.get_by_role("button", name="Undelete").click()
    expect(page.get_by_role("status")).to_contain_text("The file is back")
    assert alice.s3.get_object(Bucket=alice.bucket, Key=key)["Body"].read() == b"second"
    listed = alice.s3.list_object_versions(Bucket=alice.bucket, Prefix=key)
    assert listed.get("DeleteMarkers", []) == []
    expect(page.locator("table.history tbody tr.marker")).to_have_count(0)


def png(colour: tuple[int, int, int], size: tuple[int, int] = (300, 200)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "PNG")
    return out.getvalue()


def test_two_image_versions_side_by_side_through_api_img(
    server: FolioProcess, page: Page, alice: User
) -> None:
    key = "pics/logo.png"
    first = alice.s3.put_object(
        Bucket=alice.bucket, Key=key, Body=png((200, 30, 30)), ContentType="image/png"
    )
    second = alice.s3.put_object(
        Bucket=alice.bucket, Key=key, Body=png((30, 30, 200), (200, 300)), ContentType="image/png"
    )
    page.goto(history_url(server, alice, key))
    log = page_log(page)
    seen = len(log.exchanges)
    page.get_by_role("link", name="Compare version 1 with version 2").click()
    expect(page.get_by_role("heading", name="Side by side")).to_be_visible()
    pictures = page.locator(".side-by-side img")
    expect(pictures).to_have_count(2)
    page.wait_for_function(
        "() => [...document.querySelectorAll('.side-by-side img')].every(i => i.complete && i.naturalWidth > 0)"
    )
    # Both at the same size, whatever their own sizes.
    sizes = pictures.evaluate_all("imgs => imgs.map(i => [i.naturalWidth, i.naturalHeight])")
    assert sizes == [[560, 420], [560, 420]]
    images = [e for e in log.exchanges[seen:] if "/api/img/" in e.url]
    by_version = {httpx.URL(e.url).params.get("versionId"): e.status for e in images}
    assert by_version.get(first["VersionId"]) == 200, images
    assert by_version.get(second["VersionId"]) == 200, images
    # The two pictures differ (red against blue): their centre pixels, read back.
    centres = pictures.evaluate_all(
        """imgs => imgs.map(img => { const c = document.createElement('canvas'); c.width = img.naturalWidth;
             c.height = img.naturalHeight; const x = c.getContext('2d'); x.drawImage(img, 0, 0);
             return Array.from(x.getImageData(280, 210, 1, 1).data.slice(0, 3)); })"""
    )
    assert centres[0][0] > 150 and centres[0][2] < 80, centres
    assert centres[1][2] > 150 and centres[1][0] < 80, centres
    # The overlay's slider uncovers the newer one.
    page.get_by_label("Show Version 2 up to (%)").fill("20")
    clip = page.locator("#overlay-top").evaluate("img => img.style.clipPath")
    assert clip == "inset(0px 80% 0px 0px)", clip
    check_page(page, "history-compare-image")


def pdf(pages: list[tuple[float, float, float]]) -> bytes:
    """A PDF with one filled rectangle per page, in the given colours."""
    count = len(pages)
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>"]
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(count)).encode()
    objects.append(b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, count))
    for i, (r, g, b) in enumerate(pages):
        content = b"%.1f %.1f %.1f rg 10 10 180 100 re f" % (r, g, b)
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 120] /Contents %d 0 R >>" % (4 + 2 * i)
        )
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content))
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


def test_two_pdf_versions_page_by_page(server: FolioProcess, page: Page, alice: User) -> None:
    key = "docs/report.pdf"
    first = alice.s3.put_object(
        Bucket=alice.bucket, Key=key, Body=pdf([(1, 0, 0), (0, 1, 0)]), ContentType="application/pdf"
    )
    second = alice.s3.put_object(
        Bucket=alice.bucket,
        Key=key,
        Body=pdf([(1, 0, 0), (0, 0, 1), (0, 0, 0)]),
        ContentType="application/pdf",
    )
    page.goto(history_url(server, alice, key))
    log = page_log(page)
    seen = len(log.exchanges)
    page.get_by_role("link", name="Compare version 1 with version 2").click()
    expect(page.get_by_role("heading", name="Pages side by side")).to_be_visible()
    # Version 1 has two pages: its third is a note; version 2 shows all three.
    expect(page.get_by_text("No page 3 in this version.")).to_have_count(1)
    expect(page.get_by_role("img", name="Version 2, page 3")).to_be_visible()
    page.wait_for_function(
        "() => [...document.querySelectorAll('.side-by-side img')].every(i => i.complete && i.naturalWidth > 0)"
    )
    asked = [httpx.URL(e.url).params for e in log.exchanges[seen:] if "/api/img/" in e.url]
    pages = {(p.get("versionId"), p.get("page")) for p in asked}
    for n in ("1", "2"):
        assert (first["VersionId"], n) in pages
    for n in ("1", "2", "3"):
        assert (second["VersionId"], n) in pages


def test_a_50_mib_binary_is_compared_by_metadata_without_its_bytes(
    server: FolioProcess, page: Page, alice: User
) -> None:
    key = "blobs/disk.img"
    made = []
    for _ in range(2):
        made.append(
            alice.s3.put_object(
                Bucket=alice.bucket, Key=key, Body=os.urandom(BIG), Metadata={"build": uuid.uuid4().hex[:8]}
            )
        )
    page.goto(history_url(server, alice, key))
    log = page_log(page)
    seen = len(log.exchanges)
    page.get_by_role("link", name="Compare version 1 with version 2").click()
    expect(page.get_by_role("heading", name="Metadata")).to_be_visible()
    expect(page.locator(".notice")).to_contain_text("Over 2 MiB")
    expect(page.locator("table.diff")).to_have_count(0)
    rows = page.locator("table.meta-compare tbody tr")
    assert rows.filter(has_text="Size (bytes)").locator("td").all_inner_texts() == [f"{BIG:,}", f"{BIG:,}"]
    etag = rows.filter(has_text="ETag").locator("td").all_inner_texts()
    assert etag == [made[0]["ETag"], made[1]["ETag"]]
    expect(rows.filter(has_text="x-amz-meta-build")).to_contain_text("differs")
    # Nothing on the page asked for the object's bytes: the page itself and static files only.
    asked = log.exchanges[seen:]
    assert not [
        e for e in asked if "/download" in e.url or "/api/img" in e.url or "/api/v1/files" in e.url
    ], asked
    assert {e.resource_type for e in asked} <= {"document", "stylesheet", "script"}, asked
    assert len(page.content()) < 100_000
    check_page(page, "history-compare-meta")


def test_api_img_serves_an_old_version_to_its_owner_only(server: FolioProcess, alice: User) -> None:
    key = "pics/secret.png"
    old = alice.s3.put_object(Bucket=alice.bucket, Key=key, Body=png((0, 200, 0)), ContentType="image/png")
    alice.s3.put_object(Bucket=alice.bucket, Key=key, Body=png((0, 0, 0)), ContentType="image/png")
    url = f"{server.web_url}/api/img/{alice.bucket}/{key}"
    # Anonymous: refused without saying whether the version exists.
    assert httpx.get(url, params={"versionId": old["VersionId"], "w": "10"}).status_code == 403
    assert httpx.get(url, params={"versionId": "nope", "w": "10"}).status_code == 403
    # Repeated: a 400 before anything is looked up.
    assert httpx.get(url + f"?versionId={old['VersionId']}&versionId=x").status_code == 400


def test_retention_notes_and_the_diff_model() -> None:
    entries = [
        VersionEntry("k", str(i), i == 0, False, 1, "e", 1_000_000.0 - i * 86400, "STANDARD")
        for i in range(4)
    ]
    assert retention_note(entries, 0, Retention(2, 0)) == "Current: never pruned."
    assert retention_note(entries, 1, Retention(2, 0)) == "Pruned after 2 newer versions."
    assert retention_note(entries, 2, Retention(2, 0)) == "Pruned after 1 newer version."
    assert retention_note(entries, 3, Retention(2, 0)) == "Past the version limit: pruned at the next write."
    # Days count from when the version stopped being current: its successor's date.
    assert retention_note(entries, 2, Retention(0, 30)) == "Kept until 1970-02-10 13:46 UTC."
    assert retention_note(entries, 1, Retention(0, 0)) == "Kept for good (no retention limit)."
    both = retention_note(entries, 1, Retention(5, 30))
    assert both.endswith("whichever comes first.") and "newer versions" in both
    rows, added, removed, truncated = diff_lines("a\nb\n", "a\nc\n")
    assert [(r.kind, r.text) for r in rows] == [
        ("hunk", "@@ -1,2 +1,2 @@"),
        ("ctx", "a"),
        ("del", "b"),
        ("add", "c"),
    ]
    assert (added, removed, truncated) == (1, 1, False)


def test_the_bucket_versions_view_lists_every_key_with_history(
    server: FolioProcess, page: Page, alice: User
) -> None:
    key = "listed/twice.txt"
    alice.s3.put_object(Bucket=alice.bucket, Key=key, Body=b"one")
    alice.s3.put_object(Bucket=alice.bucket, Key=key, Body=b"two")
    alice.s3.put_object(Bucket=alice.bucket, Key="listed/once.txt", Body=b"only")
    alice.s3.put_object(Bucket=alice.bucket, Key="listed/deleted.txt", Body=b"bye")
    alice.s3.delete_object(Bucket=alice.bucket, Key="listed/deleted.txt")
    page.goto(f"{server.web_url}/buckets/{alice.bucket}/versions")
    rows = page.locator("table.history tbody tr")
    twice = rows.filter(has=page.get_by_role("link", name=key, exact=True))
    expect(twice.locator("td.num")).to_have_text("2")
    expect(rows.filter(has=page.get_by_role("link", name="listed/deleted.txt", exact=True))).to_contain_text(
        "deleted"
    )
    expect(page.get_by_role("link", name="listed/once.txt", exact=True)).to_have_count(0)
    check_page(page, "history-versions")
    twice.get_by_role("link").click()
    expect(page.get_by_role("heading", name="History of twice.txt")).to_be_visible()


def test_rewind_restores_a_folder_to_a_moment(server: FolioProcess, page: Page, alice: User) -> None:
    folder = "proj/"
    names = [f"{folder}f{i:02}.txt" for i in range(20)]
    then = {name: f"{name} as it was\n".encode() for name in names}
    for name in names:
        alice.s3.put_object(Bucket=alice.bucket, Key=name, Body=then[name], ContentType="text/plain")
    alice.s3.put_object(Bucket=alice.bucket, Key="outside.txt", Body=b"before")
    time.sleep(1.2)
    moment = int(time.time())
    time.sleep(1.2)
    changed, deleted, kept = names[:8], names[8:14], names[14:]
    for name in changed:
        alice.s3.put_object(Bucket=alice.bucket, Key=name, Body=b"changed later\n", ContentType="text/plain")
    for name in deleted:
        alice.s3.delete_object(Bucket=alice.bucket, Key=name)
    created = {f"{folder}new{i}.txt": f"new {i}".encode() for i in range(2)}
    for name, body in created.items():
        alice.s3.put_object(Bucket=alice.bucket, Key=name, Body=body)
    alice.s3.put_object(Bucket=alice.bucket, Key="outside.txt", Body=b"after")
    before = {name: len(versions_of(alice, name)) for name in [*names, *created]}

    page.goto(f"{server.web_url}/buckets/{alice.bucket}/rewind")
    page.get_by_role("textbox", name="Folder (prefix").fill(folder)
    page.get_by_label("Moment (UTC)").fill(datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%S"))
    page.get_by_role("button", name="Show").click()
    expect(
        page.get_by_text("14 file(s) changed or were deleted since, 6 unchanged, 2 created later")
    ).to_be_visible()
    check_page(page, "history-rewind")
    # The page asks for the restores' progress: the answer is read on its way through (the
    # page navigates away once it is done, and takes its body with it).
    bodies: list[str] = []

    def through(route: Route) -> None:
        answer = route.fetch()
        bodies.append(answer.text())
        route.fulfill(response=answer)

    page.route("**/rewind/restore", through)
    page.get_by_role("button", name="Restore 14 file(s) to this moment").click()
    expect(page.get_by_role("status")).to_contain_text("Restored 14 file(s)")
    page.unroute("**/rewind/restore")
    steps = [json.loads(line) for line in bodies[0].splitlines()]
    assert [step["done"] for step in steps[:-1]] == list(range(15)), steps
    assert {step["total"] for step in steps[:-1]} == {14}
    assert steps[-1]["restored"] == 14
    expect(page.get_by_role("status")).to_contain_text("Restored 14 file(s)")

    for name in names:
        assert alice.s3.get_object(Bucket=alice.bucket, Key=name)["Body"].read() == then[name], name
    for name in [*changed, *deleted]:
        assert len(versions_of(alice, name)) == before[name] + 1, name  # a new version each
    for name in kept:
        assert len(versions_of(alice, name)) == before[name], name  # unchanged: not rewritten
    for name, body in created.items():
        assert alice.s3.get_object(Bucket=alice.bucket, Key=name)["Body"].read() == body
        assert len(versions_of(alice, name)) == before[name]
    assert alice.s3.get_object(Bucket=alice.bucket, Key="outside.txt")["Body"].read() == b"after"
    # Rewinding again finds nothing left to do.
    expect(page.get_by_text("0 file(s) changed or were deleted since, 20 unchanged")).to_be_visible()


def test_history_and_compare_fit_a_375_pixel_screen(
    server: FolioProcess, browser: Browser, alice: User
) -> None:
    key = "narrow/a-file-with-a-rather-long-name-that-has-to-wrap.txt"
    for body in TEXTS:
        alice.s3.put_object(Bucket=alice.bucket, Key=key, Body=body, ContentType="text/plain")
    with open_page(browser, viewport=(375, 740)) as narrow:
        narrow.goto(f"{server.web_url}/login")
        narrow.get_by_label("Email").fill(alice.email)
        narrow.get_by_label("Password").fill(PASSWORD)
        narrow.get_by_role("button", name="Log in").click()
        expect(narrow).to_have_url(f"{server.web_url}/buckets")
        narrow.goto(history_url(server, alice, key))
        expect(narrow.locator("table.history tbody tr.version")).to_have_count(3)
        overflow = narrow.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"the history page is {overflow} px wider than the screen"
        check_page(narrow, "history-375")
        narrow.get_by_role("button", name="Compare").click()
        expect(narrow.locator("table.diff tr.add")).to_have_count(2)
        overflow = narrow.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"the compare page is {overflow} px wider than the screen"
        check_page(narrow, "history-compare-375")
