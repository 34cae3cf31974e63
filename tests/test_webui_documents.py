"""The dashboard's document workspace (issue 16) in a real browser against the real
server: an async job made through the API with a `cl-` key goes from pending to success
on the jobs page by itself (htmx polling, which stops after); the template editor
re-renders its preview on an edit, shows a template error in place, saves a template
usable as `templateId`, and its "copy as curl" text, run by curl, makes the same PDF;
assets show a first-page thumbnail through /api/img, download and delete; the month's
usage. Every page is screenshotted light and dark and checked for labels and contrast."""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.a11y import accessibility_problems
from tests.browser import open_page, page_log, screenshot
from tests.conftest import SCREENSHOTS, TEST_CONFIG
from tests.docgen_helpers import PASSWORD, DocAccount, b64, read_pdf, signed_up, wait_job
from tests.folio_process import FolioProcess, running_server

SLOW_HTML = "<h1>Quarterly numbers</h1><p>Made slowly, to be seen pending.</p>"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FolioProcess]:
    # Loopback targets: the user-storage test points at this server's own S3 port.
    config = (
        TEST_CONFIG
        + "\n[accounts]\nlogin_attempts_per_minute = 1000\n[docgen]\nallow_loopback_targets = true\n"
    )
    yield from running_server(tmp_path_factory, "webui-documents", config)


@pytest.fixture(scope="module")
def account(server: FolioProcess) -> Iterator[DocAccount]:
    # Signed up over the dashboard API, its cl- key made by POST /api/keys.
    yield from signed_up(server, "webdocs")


def log_in(page: Page, server: FolioProcess, email: str) -> None:
    page.goto(f"{server.web_url}/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()


def check_page(page: Page, name: str) -> None:
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        screenshot(page, SCREENSHOTS, f"{name}-{scheme}", full_page=True)
        assert accessibility_problems(page) == [], (name, scheme)
    page.emulate_media(color_scheme="light")


def no_page_errors(page: Page) -> None:
    log = page_log(page)
    assert log.errors == [], log.errors
    failed = [
        x.url for x in log.exchanges if x.status and x.status >= 400 and not x.url.endswith("/favicon.ico")
    ]
    assert failed == []


def test_an_async_job_goes_from_pending_to_success_without_a_reload(
    server: FolioProcess, browser: Browser, account: DocAccount
) -> None:
    # Six seconds of delay keep the job pending long enough for the page to show it so.
    made = account.http.post(
        "/v2/html/pdf", json={"html": b64(SLOW_HTML), "delay": 6000, "filename": "q.pdf"}
    )
    assert made.status_code == 202, made.text
    job_id = made.json()["id"]
    with open_page(browser) as page:
        log_in(page, server, account.email)
        page.get_by_role("link", name="Documents", exact=True).click()
        expect(page).to_have_url(re.compile(r"/documents/jobs$"))
        row = page.locator(f'tr[data-job="{job_id}"]')
        expect(row.locator(".status")).to_have_text("pending")
        expect(page.locator("#jobs-list")).to_have_attribute("hx-trigger", "every 2s")
        page.evaluate("window.sameDocument = true")  # gone if the page were reloaded
        expect(row.locator(".status")).to_have_text("success", timeout=30000)
        assert page.evaluate("window.sameDocument") is True
        # Nothing runs any more: the list stops polling.
        expect(page.locator("#jobs-list")).to_have_attribute("data-running", "no")
        assert page.locator("#jobs-list").get_attribute("hx-trigger") is None
        cells = row.locator("td")
        assert cells.nth(2).inner_text() == "html-pdf"
        assert cells.nth(3).inner_text() == "weasyprint"
        assert re.fullmatch(r"\d+ ms", cells.nth(4).inner_text()), cells.nth(4).inner_text()
        assert "tests" in cells.nth(6).inner_text() and account.key[-4:] in cells.nth(6).inner_text()
        check_page(page, "documents-jobs")

        # Filters: by status and by date.
        page.get_by_label("Status").select_option("error")
        page.get_by_role("button", name="Filter").click()
        expect(page.locator(f'tr[data-job="{job_id}"]')).to_have_count(0)
        page.goto(f"{server.web_url}/documents/jobs?status=success&from=2000-01-01&to=2000-01-02")
        expect(page.locator(f'tr[data-job="{job_id}"]')).to_have_count(0)
        page.goto(f"{server.web_url}/documents/jobs?status=success")
        page.locator(f'tr[data-job="{job_id}"] a').click()

        # The job's page: parameters, and its asset.
        expect(page.get_by_role("heading", name=f"Job {job_id}")).to_be_visible()
        assert '"delay": 6000' in page.locator("#job-params").inner_text()
        assert "html" not in page.locator("#job-params").inner_text().replace("html-pdf", "")
        href = page.locator("#asset-link").get_attribute("href")
        assert href
        pdf = httpx.get(href, timeout=30)
        assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF-")
        assert "Quarterly numbers" in read_pdf(pdf.content)[0].text
        check_page(page, "documents-job")
        no_page_errors(page)


def test_a_failed_job_shows_its_error(server: FolioProcess, browser: Browser, account: DocAccount) -> None:
    # A page range past the document's one page fails the render, after the job was accepted.
    made = account.http.post("/v2/html/pdf", json={"html": b64("<p>one page</p>"), "pageRanges": "9"})
    assert made.status_code == 202, made.text
    job = wait_job(account.http, made.json()["id"])
    assert job["status"] == "error" and job["error"], job
    with open_page(browser) as page:
        log_in(page, server, account.email)
        page.goto(f"{server.web_url}/documents/jobs/{job['id']}")
        expect(page.locator("#job-error")).to_have_text(job["error"])
        page.goto(f"{server.web_url}/documents/jobs?status=error")
        expect(page.locator(f'tr[data-job="{job["id"]}"] .status')).to_have_text("error")

        # One job a page: the newest (the failed one) first, the older one a page on.
        page.goto(f"{server.web_url}/documents/jobs?limit=1")
        expect(page.locator("tr[data-job]")).to_have_count(1)
        expect(page.locator(f'tr[data-job="{job["id"]}"]')).to_have_count(1)
        page.locator("#jobs-older").click()
        expect(page.locator("tr[data-job]")).to_have_count(1)
        expect(page.locator(f'tr[data-job="{job["id"]}"]')).to_have_count(0)
        expect(page.locator("#jobs-newer")).to_be_visible()
        page.goto(f"{server.web_url}/documents/jobs?limit=x&offset=%C2%B2")  # odd numbers: the first page
        expect(page.locator(f'tr[data-job="{job["id"]}"]')).to_have_count(1)


def editor_preview(page: Page) -> str:
    image = page.locator("#preview-image")
    expect(image).to_be_visible(timeout=30000)
    return image.get_attribute("src") or ""


def test_template_editor_previews_saves_and_copies_as_curl(
    server: FolioProcess, browser: Browser, account: DocAccount, tmp_path: Path
) -> None:
    with open_page(browser, permissions=["clipboard-read", "clipboard-write"]) as page:
        log_in(page, server, account.email)
        page.goto(f"{server.web_url}/documents/templates")
        check_page(page, "documents-templates")
        page.get_by_role("link", name="Invoice", exact=True).click()
        first = editor_preview(page)
        assert first.startswith("data:image/png;base64,")
        assert page.locator("#preview-image").get_attribute("data-engine") == "weasyprint"

        # An edit re-renders the preview (debounced).
        template = page.get_by_label("Template (Nunjucks)")
        original = template.input_value()
        assert "INVOICE" in original
        edited = original.replace("<h1>INVOICE</h1>", "<h1>FACTURE</h1>")
        template.fill(edited)
        expect(page.locator("#preview-image")).not_to_have_attribute("src", first, timeout=30000)
        check_page(page, "documents-editor")

        # Invalid syntax: the error in place of the preview.
        template.fill(edited + "{% if %}")
        expect(page.locator("#preview-error")).to_be_visible(timeout=30000)
        assert page.locator("#preview-error").inner_text().strip()
        template.fill(edited)
        editor_preview(page)

        # Save: usable as templateId through the API.
        page.get_by_label("Name").fill("Facture")
        page.get_by_role("button", name="Save as template").click()
        expect(page.locator("#saved-message")).to_be_visible()
        template_id = re.search(r"tpl_[0-9a-f]+", page.locator("#saved-message").inner_text()).group(0)
        data = page.get_by_label("Sample data (JSON)").input_value()
        by_id = account.http.post(
            "/v1/template/pdf", json={"templateId": template_id, "data": json.loads(data)}
        )
        assert by_id.status_code == 201, by_id.text
        expected = read_pdf(by_id.content)
        assert "FACTURE" in expected[0].text

        # Copy as curl, run with a real key: the same document.
        page.get_by_role("button", name="Copy as curl").click()
        expect(page.locator("#copy-status")).to_have_text("Copied as curl.")
        curl = page.evaluate("navigator.clipboard.readText()")
        assert curl == page.get_by_label(re.compile("The request that renders")).input_value()
        assert curl.startswith("curl ") and "YOUR_API_KEY" in curl
        run = subprocess.run(
            ["sh", "-c", curl.replace("YOUR_API_KEY", account.key)],
            cwd=tmp_path,
            capture_output=True,
            timeout=60,
        )
        assert run.returncode == 0, run.stderr
        made = read_pdf((tmp_path / "document.pdf").read_bytes())
        assert len(made) == len(expected)
        assert [p.text for p in made] == [p.text for p in expected]

        page.get_by_role("button", name="Copy as JavaScript fetch").click()
        snippet = page.get_by_label(re.compile("The request that renders")).input_value()
        assert (
            snippet.startswith("const response = await fetch(") and '"X-API-Key": "YOUR_API_KEY"' in snippet
        )
        no_page_errors(page)

        # The saved template is listed.
        page.goto(f"{server.web_url}/documents/templates")
        expect(page.locator(f'tr[data-template="{template_id}"]')).to_contain_text("Facture")


def test_assets_thumbnail_download_delete_and_usage(
    server: FolioProcess, browser: Browser, account: DocAccount
) -> None:
    made = account.http.post(
        "/v2/html/pdf", json={"html": b64("<h1>Asset page</h1>"), "filename": "asset.pdf"}
    )
    assert made.status_code == 202, made.text
    job = wait_job(account.http, made.json()["id"])
    asset_id = job["assetId"]
    with open_page(browser) as page:
        log_in(page, server, account.email)
        page.goto(f"{server.web_url}/documents/assets")
        row = page.locator(f'tr[data-asset="{asset_id}"]')
        thumb = row.locator("img.thumb")
        assert (thumb.get_attribute("src") or "").startswith("/api/img/")
        expect(thumb).to_have_js_property("complete", True)
        page.wait_for_function(
            "(id) => document.querySelector(`tr[data-asset='${id}'] img.thumb`).naturalWidth > 0",
            arg=asset_id,
        )
        assert any("/api/img/" in x.url and x.status == 200 for x in page_log(page).exchanges)
        href = row.get_by_role("link", name="asset.pdf").get_attribute("href")
        pdf = httpx.get(href or "", timeout=30)
        assert pdf.status_code == 200 and "Asset page" in read_pdf(pdf.content)[0].text
        assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", row.locator("td").nth(4).inner_text())
        check_page(page, "documents-assets")
        row.get_by_role("button", name="Delete asset.pdf").click()
        expect(page.locator(f'tr[data-asset="{asset_id}"]')).to_have_count(0)
        assert account.http.get(f"/v2/assets/{asset_id}").status_code == 404
        assert httpx.get(href or "", timeout=30).status_code == 404

        page.goto(f"{server.web_url}/documents/usage")
        calls = account.http.get("/v1/account").json()["calls"]
        assert int(page.locator("#doc-calls").inner_text()) == calls >= 1
        check_page(page, "documents-usage")
        no_page_errors(page)


def test_user_storage_configure_test_and_remove(
    server: FolioProcess, browser: Browser, account: DocAccount
) -> None:
    s3 = boto3.client(
        "s3",
        endpoint_url=server.s3_url,
        aws_access_key_id=account.access_key,
        aws_secret_access_key=account.secret_key,
        region_name="us-east-1",
    )
    bucket = f"own-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)

    def configure(page: Page, secret: str) -> None:
        page.get_by_label("Bucket").fill(bucket)
        page.get_by_label("Region").fill("us-east-1")
        page.get_by_label("Endpoint (empty for AWS S3)").fill(server.s3_url)
        page.get_by_label("Key prefix").fill("dash/")
        page.get_by_label("Access key ID").fill(account.access_key)
        page.get_by_label("Secret access key").fill(secret)
        page.get_by_role("button", name="Save storage").click()
        expect(page.get_by_text("Storage saved.")).to_be_visible()
        assert secret not in page.content()

    with open_page(browser) as page:
        log_in(page, server, account.email)
        page.goto(f"{server.web_url}/documents/storage")
        configure(page, account.secret_key)
        saved = account.http.get("/v2/storage").json()
        assert saved["bucket"] == bucket and saved["secretAccessKey"] == "****"
        page.get_by_role("button", name="Test the connection").click()
        expect(page.locator("#storage-test")).to_have_text(re.compile("^Connection works"))
        assert s3.list_objects_v2(Bucket=bucket, Prefix="dash/")["KeyCount"] == 0  # put, then deleted
        assert account.secret_key not in page.content()
        check_page(page, "documents-storage")

        configure(page, "not-the-secret")
        page.get_by_role("button", name="Test the connection").click()
        expect(page.locator("#storage-test")).to_contain_text("The test failed")
        assert "SignatureDoesNotMatch" in page.locator("#storage-test").inner_text()

        page.get_by_role("button", name="Remove").click()
        expect(page.get_by_text("Storage removed.")).to_be_visible()
        assert account.http.get("/v2/storage").status_code == 404
        no_page_errors(page)


def test_pages_fit_a_narrow_screen(server: FolioProcess, browser: Browser, account: DocAccount) -> None:
    with open_page(browser, viewport=(375, 800)) as page:
        log_in(page, server, account.email)
        for path in (
            "/documents/jobs",
            "/documents/templates",
            "/documents/templates/edit?gallery=receipt",
            "/documents/assets",
            "/documents/storage",
            "/documents/usage",
        ):
            page.goto(f"{server.web_url}{path}")
            if "edit" in path:
                editor_preview(page)  # the preview image is scaled to the screen too
            assert page.evaluate("document.documentElement.scrollWidth") <= 375, path
        no_page_errors(page)
