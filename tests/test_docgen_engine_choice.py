"""Which engine renders a request that names none (docgen/engine_choice.py), against a
real server with Debian's chromium: short documents stay with WeasyPrint, long html
and template documents go to Chromium with their scripts unrun, documents using
WeasyPrint-only paged media stay with WeasyPrint, an explicit `engine` always wins,
and `long_document_elements = 0` turns the routing off. The engine is read from the
PDF's Producer (WeasyPrint names itself; Chromium writes Skia/PDF) and agrees with
the X-Folio-Engine header of the sync answer."""

from __future__ import annotations

from collections.abc import Iterator

import pypdfium2 as pdfium
import pytest

from docgen.engine_choice import choose_engine, element_count
from tests.browser import MISSING_MESSAGE, chromium_path
from tests.docgen_helpers import DocAccount, b64, read_pdf, signed_up, signup
from tests.folio_process import FolioProcess, running_server

CONFIG = """
[plans.default]
docgen_per_minute = 0
"""

ROWS = 400  # 400 rows of 3 cells: ~1,600 elements, over the default 1,000


def long_table(extra_head: str = "", extra_body: str = "") -> str:
    rows = "".join(f"<tr><td>Row {n}</td><td>{n * 3}</td><td>{n % 7}%</td></tr>" for n in range(ROWS))
    return (
        f"<html><head><title>Long</title>{extra_head}</head><body><h1>Long table</h1>"
        f'<p id="late">static text</p>{extra_body}<table>{rows}</table></body></html>'
    )


SCRIPT = '<script>document.getElementById("late").textContent = "Written by JavaScript";</script>'


def producer(data: bytes) -> str:
    document = pdfium.PdfDocument(data)
    try:
        return str(document.get_metadata_dict().get("Producer", ""))
    finally:
        document.close()


def engine_of(response) -> str:  # noqa: ANN001 - httpx.Response
    assert response.status_code == 201, response.text
    made_by = producer(response.content)
    engine = "weasyprint" if "WeasyPrint" in made_by else "chromium" if "Skia" in made_by else made_by
    assert response.headers["x-folio-engine"] == engine
    return engine


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FolioProcess]:
    assert chromium_path() is not None, MISSING_MESSAGE
    yield from running_server(tmp_path_factory, "engine-choice", CONFIG)


@pytest.fixture(scope="module")
def account(server: FolioProcess) -> Iterator[DocAccount]:
    yield from signed_up(server, "engines")


def test_a_short_document_renders_with_weasyprint(account: DocAccount) -> None:
    response = account.http.post("/v1/html/pdf", json={"html": b64("<h1>Hello World</h1>")})
    assert engine_of(response) == "weasyprint"


def test_a_long_document_renders_with_chromium_and_runs_no_script(account: DocAccount) -> None:
    html = long_table(extra_body=SCRIPT)
    assert element_count(html) > 1000
    response = account.http.post("/v1/html/pdf", json={"html": b64(html)})
    assert engine_of(response) == "chromium"
    pages = read_pdf(response.content)
    text = "\n".join(page.text for page in pages)
    assert "Row 0" in text and f"Row {ROWS - 1}" in text
    # JavaScript stays off, as in WeasyPrint: the result does not depend on the engine.
    assert "static text" in text and "Written by JavaScript" not in text
    assert len(pages) > 3


def test_the_gallery_report_renders_with_chromium(account: DocAccount) -> None:
    data = {
        "title": "Routing report",
        "sections": [
            {"heading": f"Part {s}", "columns": ["A", "B"], "rows": [[f"a{s}.{r}", str(r)] for r in range(120)]}
            for s in range(3)
        ],
    }
    response = account.http.post("/v1/template/pdf", json={"templateId": "report", "data": data})
    assert engine_of(response) == "chromium"
    pages = read_pdf(response.content)
    # The template's @page margin box (page N of M) is Chromium's too.
    assert f"page 1 of {len(pages)}" in pages[0].text
    assert f"page {len(pages)} of {len(pages)}" in pages[-1].text


def test_an_explicit_engine_wins(account: DocAccount) -> None:
    html = b64(long_table())
    assert engine_of(account.http.post("/v1/html/pdf", json={"html": html, "engine": "weasyprint"})) == "weasyprint"
    short = b64("<p>short</p>")
    assert engine_of(account.http.post("/v1/html/pdf", json={"html": short, "engine": "chromium"})) == "chromium"


def test_weasyprint_only_paged_media_stays_with_weasyprint(account: DocAccount) -> None:
    css = "<style>h1 { string-set: chapter content() } @page { @top-center { content: string(chapter) } }</style>"
    response = account.http.post("/v1/html/pdf", json={"html": b64(long_table(extra_head=css))})
    assert engine_of(response) == "weasyprint"
    # The named string WeasyPrint supports is in every page's header.
    assert all("Long table" in page.text for page in read_pdf(response.content))


def test_long_images_follow_the_same_rule(account: DocAccount) -> None:
    response = account.http.post(
        "/v1/html/image", json={"html": b64(long_table()), "viewPort": {"width": 600, "height": 400}}
    )
    assert response.status_code == 201, response.text
    assert response.headers["x-folio-engine"] == "chromium"
    assert response.headers["content-type"] == "image/png"


def test_routing_can_be_turned_off(tmp_path_factory: pytest.TempPathFactory) -> None:
    folio = FolioProcess(
        data_dir=tmp_path_factory.mktemp("engine-choice-off") / "data",
        config_text=CONFIG + "\n[docgen]\nlong_document_elements = 0\n",
    )
    folio.start()
    try:
        acct = signup(folio, "engines-off")
        try:
            assert engine_of(acct.http.post("/v1/html/pdf", json={"html": b64(long_table())})) == "weasyprint"
        finally:
            acct.close()
    finally:
        folio.stop()


def test_choice_rules_without_a_server() -> None:
    long_html = long_table()
    assert choose_engine(None, "html", long_html, True, 1000).engine == "chromium"
    assert choose_engine(None, "html", long_html, True, 1000).javascript is False
    assert choose_engine(None, "html", long_html, False, 1000).engine == "weasyprint"
    assert choose_engine(None, "html", long_html, True, 0).engine == "weasyprint"
    assert choose_engine(None, "url", None, True, 1000) == choose_engine("chromium", "url", None, True, 1000)
    assert choose_engine(None, "url", None, False, 1000).engine == "weasyprint"
    footnote = long_html.replace("<h1>", '<h1 style="float: footnote">')
    assert choose_engine(None, "html", footnote, True, 1000).engine == "weasyprint"


def test_counting_stops_past_the_limit() -> None:
    html = long_table()
    assert element_count(html) > 1200
    assert element_count(html, stop_after=1000) == 1001
    assert element_count("<p>one</p><p>two</p>", stop_after=1000) == 2
