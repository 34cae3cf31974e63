"""The document workspace's remaining pieces (issue 16), in Chromium against the real
server: a job's own page refreshes itself while the job runs (htmx polling of its card,
which stops once the job is done); the editor's previews spend the account's per-minute
document budget, the one the API spends (past it the preview says when to retry, and
the API answers 429 in the same minute); saving a template opened from the saved ones
replaces it under the same templateId (a failed save leaves it intact), and "Save as
new" makes a copy with an id of its own."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser import Exchange, open_page, page_log
from tests.conftest import TEST_CONFIG
from tests.docgen_helpers import (
    HELLO_B64,
    PASSWORD,
    DocAccount,
    assert_error,
    b64,
    client,
    dashboard,
    read_pdf,
    signed_up,
)
from tests.folio_process import FolioProcess, running_server
from tests.test_webui_documents import check_page, editor_preview, log_in, no_page_errors

# Previews and API requests together, per account and calendar minute, on the limited plan.
PER_MINUTE = 3
LIMITED_PLAN = f"""
[plans.docslimited]
storage_bytes = 1099511627776
max_buckets = 100
write_per_second = 0
read_per_second = 0
list_per_second = 0
dashboard_per_minute = 0
docgen_per_minute = {PER_MINUTE}
"""
LETTER = """{# Data: {"title": "Dear reader"} -#}
<h1>{{ title }}</h1>
<p>Version one of the letter.</p>
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FolioProcess]:
    # The default plan is unlimited (TEST_CONFIG); one account is moved to the limited plan.
    config = TEST_CONFIG + LIMITED_PLAN + "\n[accounts]\nlogin_attempts_per_minute = 1000\n"
    yield from running_server(tmp_path_factory, "webui-documents-more", config)


@pytest.fixture(scope="module")
def account(server: FolioProcess) -> Iterator[DocAccount]:
    yield from signed_up(server, "webdocs2")


@pytest.fixture(scope="module")
def limited(server: FolioProcess) -> Iterator[DocAccount]:
    """An account on the plan of PER_MINUTE document requests a minute, with a cl- key."""
    email = f"limited-{uuid.uuid4().hex[:12]}@example.com"
    made = server.create_account(email, PASSWORD, plan="docslimited")
    pair = f"{made['accessKey']}:{made['secretKey']}"
    key = dashboard(server, "POST", "/api/keys", pair, {"name": "tests", "type": "docgen"})
    assert key.status_code == 201, key.text
    found = DocAccount(
        server,
        email,
        made["accountId"],
        made["accessKey"],
        made["secretKey"],
        key.json()["apiKey"],
        key.json()["id"],
        client(server, key.json()["apiKey"]),
    )
    try:
        yield found
    finally:
        found.close()


def requests_to(page: Page, path: str) -> list[Exchange]:
    """The page's finished requests whose URL ends with `path`."""
    return [x for x in page_log(page).exchanges if x.url.endswith(path) and x.status is not None]


def wait_until(condition: Callable[[], bool], page: Page, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        page.wait_for_timeout(100)


def test_a_job_page_refreshes_itself_until_the_job_is_done(
    server: FolioProcess, browser: Browser, account: DocAccount
) -> None:
    # Eight seconds of delay: the page is seen (and screenshotted) while the job is pending.
    made = account.http.post(
        "/v2/html/pdf",
        json={"html": b64("<h1>Watched job</h1><p>Seen pending, then done.</p>"), "delay": 8000},
    )
    assert made.status_code == 202, made.text
    job_id = made.json()["id"]
    card_path = f"/documents/jobs/{job_id}/card"
    with open_page(browser) as page:
        log_in(page, server, account.email)
        page.goto(f"{server.web_url}/documents/jobs/{job_id}")
        page.evaluate("window.sameDocument = true")  # gone if the page were reloaded
        expect(page.locator("#job-status")).to_have_text("pending")
        expect(page.locator("#job-card")).to_have_attribute("hx-trigger", "every 2s")
        expect(page.locator("#asset-link")).to_have_count(0)
        check_page(page, "documents-job-pending")

        # Success and the asset link appear by themselves.
        expect(page.locator("#job-status")).to_have_text("success", timeout=30000)
        expect(page.locator("#asset-link")).to_be_visible()
        assert page.evaluate("window.sameDocument") is True
        assert page.locator("#job-card").get_attribute("hx-trigger") is None
        expect(page.locator("#job-polling")).to_have_count(0)
        assert re.fullmatch(r"\d+ ms", page.locator("#job-card dd").nth(4).inner_text())

        # The card was polled while pending, and the polling stopped after: nothing more
        # in the next 5 s (2.5 intervals).
        polls = requests_to(page, card_path)
        assert len(polls) >= 2 and all(x.status == 200 for x in polls), polls
        page.wait_for_timeout(5000)
        assert len(requests_to(page, card_path)) == len(polls)

        href = page.locator("#asset-link").get_attribute("href") or ""
        pdf = httpx.get(href, timeout=30)
        assert pdf.status_code == 200 and "Watched job" in read_pdf(pdf.content)[0].text
        check_page(page, "documents-job-finished")
        no_page_errors(page)


def _same_minute(margin: float) -> None:
    """Start with at least `margin` seconds of the calendar minute left: the budget's window."""
    left = 60 - time.time() % 60
    if left < margin:
        time.sleep(left + 0.2)


def test_editor_previews_spend_the_per_minute_document_budget(
    server: FolioProcess, browser: Browser, limited: DocAccount
) -> None:
    preview_path = "/documents/templates/preview"
    with open_page(browser) as page:
        log_in(page, server, limited.email)
        _same_minute(margin=40)
        page.goto(f"{server.web_url}/documents/templates/edit?gallery=receipt")
        editor_preview(page)
        assert len(requests_to(page, preview_path)) == 1

        # The API sees the preview's spending: one preview and this request.
        status = limited.http.get("/v2/getStatus")
        assert status.status_code == 200, status.text
        assert status.headers["x-ratelimit-limit"] == str(PER_MINUTE)
        assert status.headers["x-ratelimit-remaining"] == str(PER_MINUTE - 2)

        # Edit until a preview is refused: the message in place, no image, never an error status.
        template = page.get_by_label("Template (Nunjucks)")
        original = template.input_value()
        for n in range(PER_MINUTE + 2):
            if page.locator("#preview-limited").count():
                break
            before = len(requests_to(page, preview_path))
            template.fill(original + f"<p>edit {n}</p>")
            wait_until(lambda before=before: len(requests_to(page, preview_path)) > before, page)
            expect(page.locator("#preview-image, #preview-limited")).to_be_visible(timeout=30000)
        message = page.locator("#preview-limited")
        expect(message).to_be_visible()
        expect(message).to_contain_text("Rate limit reached")
        expect(message).to_contain_text(re.compile(r"Retry in \d+ s"))
        expect(page.locator("#preview-image")).to_have_count(0)
        previews = requests_to(page, preview_path)
        assert [x.status for x in previews] == [200] * len(previews)
        assert len(previews) == PER_MINUTE  # the budget less the API's request, plus the refused one
        shown = int(message.locator(".retry-seconds").inner_text())

        # The API in the same minute: refused, the budget spent.
        refused = limited.http.post("/v1/html/pdf", json={"html": HELLO_B64})
        assert_error(refused, 429)
        assert refused.headers["x-ratelimit-remaining"] == "0"
        retry = int(refused.headers["retry-after"])
        assert 1 <= retry <= 60 and abs(retry - shown) <= 3, (retry, shown)
        check_page(page, "documents-editor-rate-limited")

        # The message counts down, and once the minute is over the preview comes back by itself.
        page.wait_for_timeout(2100)
        assert int(message.locator(".retry-seconds").inner_text()) < shown
        expect(page.locator("#preview-image")).to_be_visible(timeout=(shown + 15) * 1000)
        assert len(requests_to(page, preview_path)) == len(previews) + 1
        no_page_errors(page)


def test_saving_a_saved_template_replaces_it_and_save_as_new_copies_it(
    server: FolioProcess, browser: Browser, account: DocAccount
) -> None:
    made = account.http.post("/v2/templates", json={"name": "Letter", "template": b64(LETTER)})
    assert made.status_code == 201, made.text
    template_id = made.json()["id"]
    data = {"title": "Dear reader"}

    def rendered_text(which: str) -> str:
        answer = account.http.post("/v1/template/pdf", json={"templateId": which, "data": data})
        assert answer.status_code == 201, answer.text
        return read_pdf(answer.content)[0].text

    def saved_ids() -> list[str]:
        return [t["id"] for t in account.http.get("/v2/templates").json()]

    assert "Version one" in rendered_text(template_id)
    count = len(saved_ids())
    with open_page(browser) as page:
        log_in(page, server, account.email)
        page.goto(f"{server.web_url}/documents/templates")
        page.locator(f'tr[data-template="{template_id}"]').get_by_role("link", name="Letter").click()
        expect(page.locator("#editing-saved")).to_contain_text(template_id)
        editor_preview(page)
        template = page.get_by_label("Template (Nunjucks)")
        assert "Version one" in template.input_value()
        check_page(page, "documents-editor-saved-template")

        # Save: the same id renders the edited template.
        template.fill(LETTER.replace("Version one", "Version two"))
        page.get_by_role("button", name="Save", exact=True).click()
        expect(page.locator("#saved-message")).to_contain_text(
            f'"templateId": "{template_id}" renders this version'
        )
        assert f"id={template_id}" in page.url
        assert "Version two" in page.get_by_label("Template (Nunjucks)").input_value()
        text = rendered_text(template_id)
        assert "Version two" in text and "Version one" not in text
        assert len(saved_ids()) == count

        # An invalid save changes nothing: the error in place, the edits kept, the saved
        # template as it was.
        broken = LETTER.replace("Version one", "Version three {% if %}")
        page.get_by_label("Template (Nunjucks)").fill(broken)
        page.get_by_role("button", name="Save", exact=True).click()
        expect(page.locator("#save-error")).to_contain_text("does not parse")
        assert page.get_by_label("Template (Nunjucks)").input_value().strip() == broken.strip()
        text = rendered_text(template_id)
        assert "Version two" in text and "Version three" not in text
        assert len(saved_ids()) == count

        # Save as new: a second id with the new text; the first keeps its own.
        page.get_by_label("Template (Nunjucks)").fill(LETTER.replace("Version one", "Version four"))
        page.get_by_label("Name").fill("Letter copy")
        page.get_by_role("button", name="Save as new").click()
        expect(page.locator("#saved-message")).to_be_visible()
        copy_id = re.search(r"tpl_[0-9a-f]+", page.locator("#saved-message").inner_text()).group(0)
        assert copy_id != template_id
        assert "Version four" in rendered_text(copy_id)
        assert "Version two" in rendered_text(template_id)
        assert set(saved_ids()) >= {template_id, copy_id} and len(saved_ids()) == count + 1
        listed = {t["id"]: t["name"] for t in account.http.get("/v2/templates").json()}
        assert listed[template_id] == "Letter" and listed[copy_id] == "Letter copy"

        # Saving over a template deleted meanwhile: a clear error, nothing re-created.
        page.goto(f"{server.web_url}/documents/templates/edit?id={copy_id}")
        assert account.http.delete(f"/v2/templates/{copy_id}").status_code == 200
        page.get_by_role("button", name="Save", exact=True).click()
        expect(page.locator("#save-error")).to_contain_text("no longer exists")
        assert copy_id not in saved_ids()
        no_page_errors_but_the_refused_saves(page)


def no_page_errors_but_the_refused_saves(page: Page) -> None:
    """No script errors; the only answers >= 400 are the two refused saves (400, 404)."""
    log = page_log(page)
    assert log.errors == [], log.errors
    failed = [(x.url, x.status) for x in log.exchanges if x.status and x.status >= 400]
    assert [status for url, status in failed if url.endswith("/documents/templates/save")] == [400, 404]
    assert all(url.endswith(("/documents/templates/save", "/favicon.ico")) for url, _status in failed), failed
