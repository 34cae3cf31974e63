"""The Chromium engine against a real server: pages written by JavaScript render
their content (WeasyPrint, which runs no script, does not), `url/*` uses Chromium by
default, waitForSelector waits for late content, viewPort sizes screenshots, and the
browser is restarted after `chromium_restart_after` jobs (the make test target
installs Debian's chromium when it is missing)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.browser import MISSING_MESSAGE, chromium_path
from tests.conftest import TEST_CONFIG
from tests.docgen_helpers import DocAccount, Recorder, b64, read_image, read_pdf, signed_up
from tests.folio_process import FolioProcess, running_server

JS_PAGE = """<html><body><h1 id="static">Static heading</h1><p id="late"></p>
<script>document.getElementById("late").textContent = "Written by JavaScript " + (6 * 7);</script>
</body></html>"""

LATE_PAGE = """<html><body><div id="root">waiting</div>
<script>setTimeout(() => { const d = document.createElement("div"); d.id = "ready";
d.textContent = "Arrived after 300 ms"; document.body.appendChild(d); }, 300);</script></body></html>"""

CONFIG = TEST_CONFIG + """
[docgen]
allow_loopback_targets = true
chromium_restart_after = 3
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FolioProcess]:
    # A failure, not a skip: the issue is only done when a real browser rendered these.
    assert chromium_path() is not None, MISSING_MESSAGE
    yield from running_server(tmp_path_factory, "docgen-chromium", CONFIG)


@pytest.fixture(scope="module")
def account(server: FolioProcess) -> Iterator[DocAccount]:
    yield from signed_up(server, "chromium")


def pdf_text(response: httpx.Response) -> str:
    assert response.status_code == 201, response.text
    assert response.headers["content-type"] == "application/pdf"
    return "\n".join(page.text for page in read_pdf(response.content))


def test_a_page_written_by_javascript_renders_its_content(account: DocAccount) -> None:
    text = pdf_text(account.http.post("/v1/html/pdf", json={"html": b64(JS_PAGE), "engine": "chromium"}))
    assert "Static heading" in text
    assert "Written by JavaScript 42" in text
    # WeasyPrint runs no script: the same page without its JavaScript-written part.
    plain = pdf_text(account.http.post("/v1/html/pdf", json={"html": b64(JS_PAGE)}))
    assert "Static heading" in plain and "Written by JavaScript" not in plain


def test_url_rendering_uses_chromium_by_default(account: DocAccount) -> None:
    page = Recorder(body=JS_PAGE.encode(), content_type="text/html")
    try:
        text = pdf_text(account.http.post("/v1/url/pdf", json={"url": page.url + "/page"}))
        assert "Written by JavaScript 42" in text
        assert [hit.path for hit in page.all()] == ["/page"]
    finally:
        page.close()


def test_wait_for_selector_waits_for_late_content(account: DocAccount) -> None:
    body = {"html": b64(LATE_PAGE), "engine": "chromium", "waitForSelector": "#ready"}
    assert "Arrived after 300 ms" in pdf_text(account.http.post("/v1/html/pdf", json=body))
    # A selector that never appears ends at the job's timeout as a clear error.
    late = {**body, "waitForSelector": "#never", "timeout": 1500}
    answer = account.http.post("/v1/html/pdf", json=late)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == "RenderFailed"


def test_screenshots_follow_the_viewport_and_scale(account: DocAccount) -> None:
    body = {
        "html": b64('<body style="margin:0;background:#08f"><p>x</p></body>'),
        "engine": "chromium",
        "imageType": "png",
        "viewPort": {"width": 320, "height": 200, "deviceScaleFactor": 2},
    }
    answer = account.http.post("/v1/html/image", json=body)
    assert answer.status_code == 201, answer.text
    image = read_image(answer.content)
    assert image.format == "PNG" and image.size == (640, 400)
    assert image.convert("RGB").getpixel((600, 380)) == (0, 136, 255)


def test_header_and_footer_templates_number_every_page(account: DocAccount) -> None:
    body = {
        "html": b64("<div style='height: 2400px'>tall</div><p>end</p>"),
        "engine": "chromium",
        "format": "a4",
        "margin": {"top": "25mm", "bottom": "25mm"},
        "headerTemplate": {
            "template": 'Head <span class="pageNumber"></span>/<span class="totalPages"></span>'
        },
        "footerTemplate": {"template": 'Foot <span class="pageNumber"></span>'},
    }
    answer = account.http.post("/v1/html/pdf", json=body)
    assert answer.status_code == 201, answer.text
    pages = read_pdf(answer.content)
    assert len(pages) >= 2
    for number, page in enumerate(pages, start=1):
        assert f"Head {number}/{len(pages)}" in page.text and f"Foot {number}" in page.text
        # A4 is 595.3 x 841.9 pt; Chromium rounds the page to whole CSS pixels.
        assert abs(page.width - 595.3) < 1.5 and abs(page.height - 841.9) < 1.5, (page.width, page.height)


def test_the_browser_is_restarted_after_its_job_budget(server: FolioProcess, account: DocAccount) -> None:
    before = httpx.get(f"{server.web_url}/healthz/documents").json()["chromium"]
    for _ in range(4):
        answer = account.http.post("/v1/html/pdf", json={"html": b64("<p>again</p>"), "engine": "chromium"})
        assert answer.status_code == 201, answer.text
    after = httpx.get(f"{server.web_url}/healthz/documents").json()["chromium"]
    assert after["available"] and after["running"]
    assert after["launches"] > before["launches"], (before, after)
    assert after["crashes"] == 0


def test_health_reports_both_engines(server: FolioProcess) -> None:
    health = httpx.get(f"{server.web_url}/healthz/documents").json()
    assert health["weasyprint"]["workers"] >= 1
    assert health["chromium"]["available"] is True
    assert json.dumps(health)  # plain JSON
    assert Path(chromium_path() or "").exists()
