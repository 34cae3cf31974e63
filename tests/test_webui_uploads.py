"""The dashboard's upload manager (issue 15, "Uploads") in a real browser: a folder of 30
files dropped on the page (a real drag through Chromium's input pipeline, folders read
with webkitGetAsEntry) and chosen with the folder picker, both keeping relative paths; a
300 MiB file in parts with the progress bars reaching 100% and the server's memory
bounded; an upload interrupted by a reload and resumed without sending its finished parts
again; cancel aborting the multipart upload; quota refusals and rate limits shown as
messages. Every object is read back through boto3 and compared by SHA-256.

Debian's Chromium through Playwright (tests/browser.py) against a real server of this
module's own, whose config adds a plan with a tiny quota and one with a write rate of 1/s
(and no waiting for a token, so that the browser sees 429s). Accounts sign up through
the JSON API or `folio admin create-account` and log in through /login in the browser."""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import httpx
import pytest
from playwright.sync_api import Browser, Page, Route, expect

from tests.a11y import accessibility_problems
from tests.browser import open_page, page_log, screenshot
from tests.conftest import SCREENSHOTS, TEST_CONFIG
from tests.folio_process import FolioProcess, running_server

PASSWORD = "correct horse battery"
MIB = 1024 * 1024
PART = 8 * MIB  # the part size the server hands out (restapi.multipart_web.PART_SIZE)
CONFIG = (
    TEST_CONFIG
    + """
[plans.slow]
write_per_second = 1
read_per_second = 0
list_per_second = 0
dashboard_per_minute = 0

[limits]
max_rate_wait_seconds = 0

[accounts]
login_attempts_per_minute = 1000
"""
)
FINISHED = ("done", "failed", "canceled", "skipped")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FolioProcess]:
    yield from running_server(tmp_path_factory, "webui-uploads", CONFIG)


class Account:
    def __init__(self, server: FolioProcess, email: str, access_key: str, secret_key: str) -> None:
        self.email = email
        self.s3 = boto3.client(
            "s3",
            endpoint_url=server.s3_url,
            region_name="us-east-1",
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
        )


def signed_up(server: FolioProcess) -> tuple[Account, str]:
    """A new account through the JSON sign-up, and its default bucket."""
    email = f"up-{uuid.uuid4().hex[:10]}@example.com"
    answer = httpx.post(f"{server.web_url}/api/auth/signup", json={"email": email, "password": PASSWORD})
    assert answer.status_code == 201, answer.text
    body = answer.json()
    return Account(server, email, body["accessKey"], body["secretKey"]), body["defaultBucket"]


def on_plan(server: FolioProcess, plan: str) -> tuple[Account, str]:
    """A new account on `plan` (`folio admin create-account`) with a bucket of its own."""
    email = f"up-{plan}-{uuid.uuid4().hex[:8]}@example.com"
    created = server.create_account(email, PASSWORD, plan=plan)
    account = Account(server, email, created["accessKey"], created["secretKey"])
    bucket = f"up-{plan}-{uuid.uuid4().hex[:8]}"
    account.s3.create_bucket(Bucket=bucket)
    return account, bucket


def log_in(page: Page, server: FolioProcess, account: Account) -> None:
    page.goto(f"{server.web_url}/login")
    page.get_by_label("Email").fill(account.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/buckets")


def open_uploader(page: Page, server: FolioProcess, bucket: str, prefix: str = "") -> None:
    page.goto(f"{server.web_url}/buckets/{bucket}/upload?prefix={prefix}")
    expect(page.locator("#uploader")).to_have_attribute("data-ready", "true")


def wait_until_finished(page: Page, count: int, timeout_s: float = 120) -> dict[str, str]:
    """Wait for `count` rows to reach a final state; their states by key."""
    page.wait_for_function(
        """([count, finished]) => {
            const rows = document.querySelectorAll('.upload-item');
            return rows.length >= count && [...rows].every((r) => finished.includes(r.dataset.state));
        }""",
        arg=[count, list(FINISHED)],
        timeout=timeout_s * 1000,
    )
    return page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('.upload-item')].map(
            (r) => [r.querySelector('.upload-key').textContent, r.dataset.state]))"""
    )


def make_folder(root: Path, name: str, count: int) -> dict[str, bytes]:
    """`count` files of assorted sizes (empty to 300 KiB) in nested folders under
    `root/name`; their contents by path relative to `root`."""
    files: dict[str, bytes] = {}
    for i in range(count):
        sub = ("", "raw/", "raw/deep/", "notes/")[i % 4]
        stem = "día 1 & más #?" if i == 7 else f"file-{i:02d}"  # a key that needs encoding
        relative = f"{name}/{sub}{stem}.{('bin', 'txt', 'jpg')[i % 3]}"
        data = os.urandom((0, 1, 1000, 65_537, 300 * 1024)[i % 5] + i)
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        files[relative] = data
    return files


def sha256_of_object(account: Account, bucket: str, key: str) -> str:
    digest = hashlib.sha256()
    body = account.s3.get_object(Bucket=bucket, Key=key)["Body"]
    for chunk in iter(lambda: body.read(MIB), b""):
        digest.update(chunk)
    return digest.hexdigest()


def sha256_of_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(MIB), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_random_file(path: Path, size: int) -> Path:
    with path.open("wb") as handle:
        left = size
        while left:
            piece = min(left, 4 * MIB)
            handle.write(os.urandom(piece))
            left -= piece
    return path


def keys_under(account: Account, bucket: str, prefix: str) -> set[str]:
    pages = account.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return {item["Key"] for page in pages for item in page.get("Contents", [])}


def drop_on_page(page: Page, paths: list[Path]) -> None:
    """A real drag and drop of files or folders from outside the browser onto the drop zone:
    Chromium's own drag pipeline (DevTools Input.dispatchDragEvent), so the page gets a
    DataTransfer whose items are file system entries, as from a file manager."""
    cdp = page.context.new_cdp_session(page)
    box = page.locator("[data-dropzone]").bounding_box()
    assert box is not None
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    data = {"items": [], "files": [str(p) for p in paths], "dragOperationsMask": 1}
    for kind in ("dragEnter", "dragOver", "drop"):
        cdp.send("Input.dispatchDragEvent", {"type": kind, "x": x, "y": y, "data": data})
    cdp.detach()


def part_numbers_sent(page: Page, start: int = 0, *, status: int | None = None) -> list[int]:
    """Part numbers of the part PUTs in the page's network log from exchange `start` on."""
    numbers = []
    for exchange in page_log(page).exchanges[start:]:
        found = re.search(r"/multipart/[^/?]+/(\d+)\?", exchange.url)
        if exchange.method == "PUT" and found and (status is None or exchange.status == status):
            numbers.append(int(found.group(1)))
    return numbers


PART_URL = re.compile(r"/uploads/[^/]+/multipart/[^/?]+/\d+\?")


class PartGate:
    """Lets the page's first `allow` part uploads through and holds back the others
    (never answered: they hang as on a stalled line), so that an upload is reliably
    caught mid-way. DevTools' upload throttling would do it too, but it stalls the page's
    scripts for seconds at a time."""

    def __init__(self, page: Page, allow: int) -> None:
        self.page = page
        self.allow = allow
        self.passed = 0
        self.held: list[Route] = []
        page.route(PART_URL, self._handle)

    def _handle(self, route: Route) -> None:
        if self.passed < self.allow:
            self.passed += 1
            route.continue_()
        else:
            self.held.append(route)

    def wait_for_stored_parts(self) -> set[int]:
        """Wait until the allowed parts were answered 200, and parts beyond them are held."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            stored = set(part_numbers_sent(self.page, status=200))
            if len(stored) >= self.allow and self.held:
                return stored
            self.page.wait_for_timeout(50)
        raise AssertionError(f"{self.allow} parts were not stored: {part_numbers_sent(self.page)}")

    def open(self) -> None:
        self.page.unroute(PART_URL, self._handle)


def peak_rss_mib(server: FolioProcess) -> float:
    assert server.proc is not None
    status = Path(f"/proc/{server.proc.pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024  # type: ignore[union-attr]


def check_look(page: Page, name: str) -> None:
    """Screenshots in both themes, and the accessibility check of labels and contrast."""
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        screenshot(page, SCREENSHOTS, f"{name}-{scheme}", full_page=True)
        assert accessibility_problems(page) == [], (name, scheme)


# ---------------------------------------------------------------- folders


def test_a_dropped_folder_of_30_files_keeps_its_relative_paths(
    server: FolioProcess, browser: Browser, tmp_path: Path
) -> None:
    account, bucket = signed_up(server)
    files = make_folder(tmp_path, "album", 30)
    with open_page(browser) as page:
        log_in(page, server, account)
        open_uploader(page, server, bucket, "dropped/")
        drop_on_page(page, [tmp_path / "album"])
        states = wait_until_finished(page, 30)
        assert set(states.values()) == {"done"}, states
        expect(page.locator("[data-overall]")).to_have_js_property("value", 100)
        check_look(page, "upload-dropped-folder")
        assert page_log(page).errors == []
    expected = {f"dropped/{relative}" for relative in files}
    assert set(states) == expected
    assert keys_under(account, bucket, "dropped/") == expected
    for relative, data in files.items():
        assert sha256_of_object(account, bucket, f"dropped/{relative}") == hashlib.sha256(data).hexdigest(), (
            relative
        )


def test_the_folder_picker_keeps_relative_paths(
    server: FolioProcess, browser: Browser, tmp_path: Path
) -> None:
    account, bucket = signed_up(server)
    files = make_folder(tmp_path, "picked", 30)
    with open_page(browser) as page:
        log_in(page, server, account)
        open_uploader(page, server, bucket, "")
        # Playwright hands a directory to an <input webkitdirectory> as the browser's own picker does.
        page.set_input_files("#upload-folder", tmp_path / "picked")
        states = wait_until_finished(page, 30)
        assert set(states.values()) == {"done"}, states
    assert keys_under(account, bucket, "picked/") == set(files)
    for relative, data in files.items():
        assert sha256_of_object(account, bucket, relative) == hashlib.sha256(data).hexdigest(), relative


# ---------------------------------------------------------------- large files


def test_a_300_mib_file_goes_in_parts_to_100_percent_with_bounded_server_memory(
    server: FolioProcess, browser: Browser, tmp_path: Path
) -> None:
    account, bucket = signed_up(server)
    path = write_random_file(tmp_path / "video.bin", 300 * MIB)
    with open_page(browser) as page:
        log_in(page, server, account)
        open_uploader(page, server, bucket, "big/")
        started = time.monotonic()
        page.set_input_files("#upload-files", path)
        seen: list[int] = []
        deadline = started + 300
        while time.monotonic() < deadline:
            value, state = page.evaluate(
                "() => [document.querySelector('[data-overall]').value,"
                " document.querySelector('.upload-item')?.dataset.state]"
            )
            seen.append(value)
            if state in FINISHED:
                break
            time.sleep(0.1)
        states = wait_until_finished(page, 1)
        took = time.monotonic() - started
        assert states == {"big/video.bin": "done"}
        page.wait_for_function("() => document.querySelector('[data-overall]').value === 100")
        assert page.locator(".upload-item progress").evaluate("p => p.value") == 100
        sent = sorted(part_numbers_sent(page, status=200))
        check_look(page, "upload-large-file")
    parts = -(-300 * MIB // PART)
    assert sent == list(range(1, parts + 1)), "each part sent once"
    assert any(0 < v < 100 for v in seen), f"the bar moved through the upload: {seen[:50]}"
    assert seen == sorted(seen), "the overall bar never goes back"
    head = account.s3.head_object(Bucket=bucket, Key="big/video.bin")
    assert head["ContentLength"] == 300 * MIB and head["ETag"].endswith(f'-{parts}"')
    assert sha256_of_object(account, bucket, "big/video.bin") == sha256_of_file(path)
    # Parts stream to disk: the server never holds a file (or a part in several copies).
    peak = peak_rss_mib(server)
    print(
        f"300 MiB through the browser in {took:.1f} s ({300 / took:.0f} MiB/s); server peak RSS {peak:.0f} MiB"
    )
    assert peak < 200


def test_a_reload_mid_upload_resumes_without_sending_finished_parts_again(
    server: FolioProcess, browser: Browser, tmp_path: Path
) -> None:
    account, bucket = signed_up(server)
    size = 96 * MIB + 12345
    path = write_random_file(tmp_path / "backup.tar", size)
    count = -(-size // PART)
    with open_page(browser) as page:
        log_in(page, server, account)
        open_uploader(page, server, bucket, "")
        gate = PartGate(page, allow=3)
        page.set_input_files("#upload-files", path)
        before_reload = gate.wait_for_stored_parts()
        saved = json.loads(page.evaluate("() => localStorage.getItem('folio.uploads.v1')"))
        (record,) = saved["uploads"].values()
        assert (record["key"], record["size"], record["partSize"]) == ("backup.tar", size, PART)

        page.reload()  # the held parts die with the page
        expect(page.locator("#uploader")).to_have_attribute("data-ready", "true")
        gate.open()
        stored = {
            p["PartNumber"]
            for p in account.s3.list_parts(Bucket=bucket, Key="backup.tar", UploadId=record["uploadId"])[
                "Parts"
            ]
        }
        assert before_reload <= stored < set(range(1, count + 1))
        # The page offers the unfinished upload...
        expect(page.locator("[data-resumable]")).to_be_visible()
        expect(page.locator("[data-resumable-list]")).to_contain_text("backup.tar")
        mark = len(page_log(page).exchanges)
        # ...and resumes it when the same file is chosen again.
        page.set_input_files("#upload-files", path)
        states = wait_until_finished(page, 1, timeout_s=180)
        assert states == {"backup.tar": "done"}
        after = part_numbers_sent(page, mark)
        expect(page.locator("[data-resumable]")).to_be_hidden()
        assert json.loads(page.evaluate("() => localStorage.getItem('folio.uploads.v1')"))["uploads"] == {}
    assert not set(after) & stored, (
        f"parts stored before the reload were sent again: {sorted(set(after) & stored)}"
    )
    assert sorted(after) == sorted(set(after)), "no part sent twice"
    assert set(after) | stored == set(range(1, count + 1))
    assert sha256_of_object(account, bucket, "backup.tar") == sha256_of_file(path)
    assert account.s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_cancel_aborts_the_multipart_upload_on_the_server(
    server: FolioProcess, browser: Browser, tmp_path: Path
) -> None:
    account, bucket = signed_up(server)
    path = write_random_file(tmp_path / "huge.iso", 64 * MIB)
    with open_page(browser) as page:
        log_in(page, server, account)
        open_uploader(page, server, bucket, "")
        gate = PartGate(page, allow=1)
        page.set_input_files("#upload-files", path)
        gate.wait_for_stored_parts()
        assert account.s3.list_multipart_uploads(Bucket=bucket)["Uploads"]
        page.get_by_role("button", name="Cancel upload of huge.iso").click()
        expect(page.locator(".upload-item")).to_have_attribute("data-state", "canceled")
        deadline = time.monotonic() + 10
        while account.s3.list_multipart_uploads(Bucket=bucket).get("Uploads") and time.monotonic() < deadline:
            time.sleep(0.2)
    assert account.s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert keys_under(account, bucket, "") == set()


def test_a_failed_part_is_retried_and_retry_resumes_a_failed_file(
    server: FolioProcess, browser: Browser, tmp_path: Path
) -> None:
    account, bucket = signed_up(server)
    size = 5 * PART - 1000
    flaky = write_random_file(tmp_path / "flaky.zip", size)  # part 2's connection drops once
    refused = write_random_file(tmp_path / "refused.zip", size)  # part 4 is refused once
    attempts: dict[tuple[str, int], int] = {}

    def interfere(route: Route) -> None:
        found = re.search(r"/(\d+)\?key=([^&]+)", route.request.url)
        assert found is not None
        attempt = (found.group(2), int(found.group(1)))
        attempts[attempt] = attempts.get(attempt, 0) + 1
        if attempt == ("flaky.zip", 2) and attempts[attempt] == 1:
            route.abort("connectionreset")  # a network error: the part is sent again after a second
        elif attempt == ("refused.zip", 4) and attempts[attempt] == 1:
            # A refusal that no retry cures: the file fails and waits for the user.
            route.fulfill(
                status=400, json={"error": {"code": "BadDigest", "message": "Part 4 arrived damaged."}}
            )
        else:
            route.continue_()

    with open_page(browser) as page:
        log_in(page, server, account)
        open_uploader(page, server, bucket, "")
        page.route(PART_URL, interfere)
        page.set_input_files("#upload-files", [flaky, refused])
        assert wait_until_finished(page, 2) == {"flaky.zip": "done", "refused.zip": "failed"}
        assert attempts[("flaky.zip", 2)] == 2, "the part whose connection dropped was sent again, once"
        row = page.locator(".upload-item", has_text="refused.zip")
        expect(row.locator(".upload-status")).to_contain_text("Part 4 arrived damaged.")
        expect(page.locator("[data-messages]")).to_contain_text("refused.zip: Part 4 arrived damaged.")
        records = json.loads(page.evaluate("() => localStorage.getItem('folio.uploads.v1')"))["uploads"]
        (upload_id,) = [r["uploadId"] for r in records.values()]
        listed = account.s3.list_parts(Bucket=bucket, Key="refused.zip", UploadId=upload_id)
        stored = {part["PartNumber"] for part in listed.get("Parts", [])}
        mark = len(page_log(page).exchanges)
        page.get_by_role("button", name="Retry upload of refused.zip").click()
        assert wait_until_finished(page, 2) == {"flaky.zip": "done", "refused.zip": "done"}
        resent = part_numbers_sent(page, mark)
    assert 4 in resent and not set(resent) & stored, "Retry sent only the parts the server did not have"
    assert set(resent) | stored == {1, 2, 3, 4, 5}
    for path in (flaky, refused):
        assert sha256_of_object(account, bucket, path.name) == sha256_of_file(path)


# ---------------------------------------------------------------- refusals


def test_quota_exceeded_is_shown_and_cancel_cleans_up(
    server: FolioProcess, browser: Browser, tmp_path: Path
) -> None:
    account, bucket = on_plan(server, "tiny")  # 1,000,000 bytes
    small = write_random_file(tmp_path / "photo.raw", 2 * MIB)
    large = write_random_file(tmp_path / "film.mov", 12 * MIB)
    with open_page(browser) as page:
        log_in(page, server, account)
        open_uploader(page, server, bucket, "")
        page.set_input_files("#upload-files", [small, large])
        states = wait_until_finished(page, 2)
        assert states == {"photo.raw": "failed", "film.mov": "failed"}
        for key in ("photo.raw", "film.mov"):
            row = page.locator(".upload-item", has_text=key)
            expect(row.locator(".upload-status")).to_contain_text("Quota exceeded")
        expect(page.locator("[data-messages]")).to_contain_text("Quota exceeded")
        check_look(page, "upload-quota-exceeded")
        # The large file's multipart upload exists (its first part was refused): cancel aborts it.
        assert len(account.s3.list_multipart_uploads(Bucket=bucket)["Uploads"]) == 1
        page.get_by_role("button", name="Cancel upload of film.mov").click()
        deadline = time.monotonic() + 10
        while account.s3.list_multipart_uploads(Bucket=bucket).get("Uploads") and time.monotonic() < deadline:
            time.sleep(0.2)
    assert account.s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert keys_under(account, bucket, "") == set()


def test_rate_limited_uploads_wait_for_retry_after_and_all_arrive(
    server: FolioProcess, browser: Browser, tmp_path: Path
) -> None:
    account, bucket = on_plan(server, "slow")  # 1 write a second, no waiting on the server
    files = {f"note-{i}.txt": os.urandom(2000 + i) for i in range(6)}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    with open_page(browser) as page:
        log_in(page, server, account)
        open_uploader(page, server, bucket, "")
        page.set_input_files("#upload-files", [tmp_path / name for name in files])
        states = wait_until_finished(page, len(files), timeout_s=60)
        assert set(states.values()) == {"done"}, states
        refused = [e for e in page_log(page).requests_to("/uploads/") if e.status == 429]
        assert refused, "the plan's rate refused some uploads"
        expect(page.locator("[data-messages]")).to_contain_text("Rate limit reached")
    for name, data in files.items():
        assert sha256_of_object(account, bucket, name) == hashlib.sha256(data).hexdigest()


def test_the_upload_page_fits_a_375_pixel_screen(
    server: FolioProcess, browser: Browser, tmp_path: Path
) -> None:
    account, bucket = signed_up(server)
    (tmp_path / "a-file-with-a-rather-long-name-for-a-narrow-screen.txt").write_bytes(b"hello")
    with open_page(browser, viewport=(375, 740)) as page:
        log_in(page, server, account)
        open_uploader(page, server, bucket, "phone/")
        page.set_input_files(
            "#upload-files", tmp_path / "a-file-with-a-rather-long-name-for-a-narrow-screen.txt"
        )
        wait_until_finished(page, 1)
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 375
        # Keyboard: both pickers are reachable with Tab (their inputs hold the focus).
        focused = set()
        for _ in range(30):
            page.keyboard.press("Tab")
            focused.add(page.evaluate("() => document.activeElement.id"))
        assert {"upload-files", "upload-folder"} <= focused
        check_look(page, "upload-375px")


# ---------------------------------------------------------------- the endpoints


def session_of(server: FolioProcess, bucket: str, client: httpx.Client) -> str:
    """The CSRF token of the client's session, from the upload page."""
    page = client.get(f"/buckets/{bucket}/upload")
    assert page.status_code == 200
    return re.search(r'data-csrf="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]


def test_endpoints_need_the_session_the_csrf_header_and_an_own_bucket(server: FolioProcess) -> None:
    account, bucket = signed_up(server)
    other, other_bucket = signed_up(server)
    with httpx.Client(base_url=server.web_url) as client:
        login = client.post("/api/auth/login", json={"email": account.email, "password": PASSWORD})
        assert login.status_code == 200
        token = session_of(server, bucket, client)
        start = f"/uploads/{bucket}/multipart"
        body = {"size": 20 * MIB}
        assert client.post(start, params={"key": "k"}, json=body).status_code == 403  # no CSRF header
        wrong = {"x-csrf-token": token, "origin": "http://evil.example"}
        assert client.post(start, params={"key": "k"}, json=body, headers=wrong).status_code == 403
        headers = {"x-csrf-token": token}
        theirs = client.post(
            f"/uploads/{other_bucket}/multipart", params={"key": "k"}, json=body, headers=headers
        )
        assert theirs.status_code == 404 and theirs.json()["error"]["code"] == "NoSuchBucket"
        created = client.post(start, params={"key": "k"}, json=body, headers=headers)
        assert created.status_code == 201 and created.json()["partSize"] == PART
        upload_id = created.json()["uploadId"]
        # A part whose bytes do not match its Content-MD5 is not stored.
        data = os.urandom(PART)
        bad = {**headers, "content-md5": "1B2M2Y8AsgTpgAmY7PhCfg=="}
        refused = client.put(f"{start}/{upload_id}/1", params={"key": "k"}, content=data, headers=bad)
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "BadDigest"
        assert account.s3.list_parts(Bucket=bucket, Key="k", UploadId=upload_id).get("Parts", []) == []
    with httpx.Client(base_url=server.web_url) as anonymous:
        gone = anonymous.get(f"/uploads/{bucket}/multipart/{upload_id}", params={"key": "k"})
        assert gone.status_code == 401
    assert other.s3.list_buckets()["Buckets"][0]["Name"] == other_bucket
