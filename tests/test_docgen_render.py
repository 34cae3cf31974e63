"""What the document API makes (docs/document-api.md, "Parameters" and "Templates"),
checked by reading the files: PDFs with pypdfium2 (page count, page size, text and
its position), images with Pillow (size, mode, alpha, pixels). Every document is
made by the real server (the session `folio`) over HTTP, synchronously through v1
(the answer is the file) unless the test is about something else.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.docgen_helpers import (
    HELLO_B64,
    DocAccount,
    PdfPage,
    assert_error,
    b64,
    read_image,
    read_pdf,
    signup,
    wait_job,
)
from tests.folio_process import FolioProcess

PROBE = '<body style="margin:0"><p style="margin:0">Margin probe</p></body>'
LETTER = (612, 792)
A4 = (595.4, 842.4)


@pytest.fixture(scope="module")
def acct(folio: FolioProcess) -> Iterator[DocAccount]:
    account = signup(folio, "render")
    yield account
    account.close()


def pdf(acct: DocAccount, html: str, **options: Any) -> list[PdfPage]:
    response = acct.http.post("/v1/html/pdf", json={"html": b64(html), **options})
    assert response.status_code == 201, response.text
    assert response.headers["content-type"] == "application/pdf"
    return read_pdf(response.content)


def image(acct: DocAccount, html: str, **options: Any):
    response = acct.http.post("/v1/html/image", json={"html": b64(html), **options})
    assert response.status_code == 201, response.text
    return response, read_image(response.content)


def pages_html(count: int, style: str = "") -> str:
    body = "".join(
        f'<p style="{"break-after: page" if n < count else ""}">Page {n} body</p>'
        for n in range(1, count + 1)
    )
    return f"<html><head><style>body {{ margin: 0 }} {style}</style></head><body>{body}</body></html>"


# ------------------------------------------------------------------ PDF geometry


@pytest.mark.parametrize(
    ("options", "size"),
    [
        ({}, LETTER),
        ({"format": "letter"}, LETTER),
        ({"format": "a4"}, A4),
        ({"format": "A4"}, A4),
        ({"format": "letter", "landscape": True}, (792, 612)),
        ({"format": "a4", "landscape": True}, (842.4, 595.4)),
        ({"format": "legal"}, (612, 1008)),
        ({"width": "210mm", "height": "100mm"}, (595.3, 283.5)),
        ({"width": 600, "height": "8.5in"}, (450, 612)),
    ],
)
def test_page_size(acct: DocAccount, options: dict[str, Any], size: tuple[float, float]) -> None:
    pages = pdf(acct, "<p>size</p>", **options)
    assert len(pages) == 1
    assert (pages[0].width, pages[0].height) == (
        pytest.approx(size[0], abs=1.5),
        pytest.approx(size[1], abs=1.5),
    )


def test_page_count(acct: DocAccount) -> None:
    pages = pdf(acct, pages_html(4))
    assert len(pages) == 4
    assert [f"Page {n} body" in page.text for n, page in enumerate(pages, 1)] == [True] * 4


def test_margin_moves_the_text(acct: DocAccount) -> None:
    """The text starts at the margin (the body has no margin of its own here)."""
    narrow = pdf(acct, PROBE, margin={"left": "0.5in", "top": "0.5in"})[0]
    wide = pdf(acct, PROBE, margin={"left": "2in", "top": "2in"})[0]
    left_narrow, _b, _r, top_narrow = narrow.first_box("Margin")
    left_wide, _b, _r, top_wide = wide.first_box("Margin")
    assert left_wide - left_narrow == pytest.approx(108, abs=2)  # 1.5 in
    assert top_narrow - top_wide == pytest.approx(108, abs=2)
    assert left_narrow == pytest.approx(36, abs=3)
    # Other units and plain numbers (px).
    cm = pdf(acct, PROBE, margin={"left": "3cm"})[0]
    px = pdf(acct, PROBE, margin={"left": 96})[0]
    assert cm.first_box("Margin")[0] == pytest.approx(85, abs=3)
    assert px.first_box("Margin")[0] == pytest.approx(72, abs=3)


def test_page_ranges_selects_pages(acct: DocAccount) -> None:
    pages = pdf(acct, pages_html(5), pageRanges="1-2, 4")
    assert len(pages) == 3
    assert [
        "Page 1 body" in pages[0].text,
        "Page 2 body" in pages[1].text,
        "Page 4 body" in pages[2].text,
    ] == [True] * 3
    assert not any("Page 3 body" in p.text or "Page 5 body" in p.text for p in pages)
    assert_error(
        acct.http.post("/v1/html/pdf", json={"html": HELLO_B64, "pageRanges": "2-1"}), 400, "pageRanges"
    )
    assert_error(
        acct.http.post("/v1/html/pdf", json={"html": HELLO_B64, "pageRanges": "one"}), 400, "pageRanges"
    )


def test_header_and_footer_with_page_numbers(acct: DocAccount) -> None:
    pages = pdf(
        acct,
        pages_html(3).replace("<head>", "<head><title>Quarterly</title>"),
        margin={"top": "1in", "bottom": "1in"},
        headerTemplate='<div>Head <span class="pageNumber"></span>/<span class="totalPages"></span></div>',
        footerTemplate={
            "method": "template",
            "template": '<div>Foot <span class="title"></span> p<span class="pageNumber"></span></div>',
        },
    )
    assert len(pages) == 3
    for n, page in enumerate(pages, 1):
        flat = page.text.replace(" ", "")
        assert f"Head{n}/3" in flat, page.text
        assert f"FootQuarterlyp{n}" in flat, page.text
        head_top = page.first_box("Head")[3]
        foot_bottom = page.first_box("Foot")[1]
        body_top = page.first_box(f"Page {n}")[3]
        assert head_top > page.height - 72, "the header is in the top margin"
        assert foot_bottom < 72, "the footer is in the bottom margin"
        assert head_top > body_top > foot_bottom


def test_header_extract_method(acct: DocAccount) -> None:
    html = (
        '<html><body><div id="brand">Extracted Brand <span class="pageNumber"></span></div>'
        + pages_html(2).split("<body>")[1]
    )
    pages = pdf(
        acct,
        html,
        margin={"top": "1in"},
        headerTemplate={"method": "extract", "selector": "#brand", "style": "color: red"},
    )
    assert len(pages) == 2
    for n, page in enumerate(pages, 1):
        assert page.text.count("Extracted Brand") == 1, page.text  # moved, not copied
        assert f"Extracted Brand {n}" in page.text.replace("\r\n", " ")
        assert page.first_box("Extracted")[3] > page.height - 72
    assert_error(
        acct.http.post("/v1/html/pdf", json={"html": HELLO_B64, "headerTemplate": {"method": "extract"}}),
        400,
        "headerTemplate",
    )


def test_prefer_css_page_size(acct: DocAccount) -> None:
    html = "<style>@page { size: A5 }</style><p>css size</p>"
    own = pdf(acct, html, preferCSSPageSize=True, format="letter")[0]
    assert (own.width, own.height) == (pytest.approx(419.5, abs=1.5), pytest.approx(595.3, abs=1.5))
    forced = pdf(acct, html, format="letter")[0]
    assert (forced.width, forced.height) == (pytest.approx(612, abs=1), pytest.approx(792, abs=1))


def test_generate_preview(acct: DocAccount) -> None:
    response = acct.http.post("/v2/html/pdf", json={"html": HELLO_B64, "generatePreview": True})
    job = wait_job(acct.http, response.json()["id"])
    assert job["status"] == "success" and job["previewUrl"], job
    preview = httpx.get(job["previewUrl"], timeout=30)
    assert preview.status_code == 200 and preview.headers["content-type"] == "image/png"
    thumb = read_image(preview.content)
    assert thumb.format == "PNG" and max(thumb.size) <= 400
    assert thumb.size[1] > thumb.size[0]  # a portrait letter page


# ------------------------------------------------------------------ images


def test_image_size_from_viewport(acct: DocAccount) -> None:
    response, img = image(acct, "<p>img</p>", viewPort={"width": 300, "height": 200, "deviceScaleFactor": 2})
    assert response.headers["content-type"] == "image/png"
    assert img.format == "PNG" and img.size == (600, 400)
    _response, img = image(acct, "<p>img</p>", viewPort={"width": 320, "height": 120})
    assert img.size == (320, 120)


def test_transparent_png_has_alpha(acct: DocAccount) -> None:
    html = '<body style="margin:0"><div style="margin:40px;width:60px;height:60px;background:#0000ff"></div></body>'
    _response, img = image(acct, html, transparent=True, viewPort={"width": 200, "height": 150})
    assert img.mode == "RGBA"
    assert img.getpixel((0, 0))[3] == 0, "no background: a transparent corner"
    r, g, b, a = img.getpixel((70, 70))
    assert a == 255 and b > 200 and r < 50 and g < 50
    _response, opaque = image(acct, html, viewPort={"width": 200, "height": 150})
    assert opaque.mode == "RGB" and opaque.getpixel((0, 0)) == (255, 255, 255)


def test_trim_removes_the_border(acct: DocAccount) -> None:
    html = (
        '<body style="margin:0;background:white">'
        '<div style="position:absolute;left:50px;top:30px;width:80px;height:40px;background:#ff0000"></div></body>'
    )
    _response, full = image(acct, html, viewPort={"width": 300, "height": 200})
    assert full.size == (300, 200)
    _response, cut = image(acct, html, trim=True, viewPort={"width": 300, "height": 200})
    assert cut.size[0] == pytest.approx(80, abs=2) and cut.size[1] == pytest.approx(40, abs=2)
    r, g, b = cut.convert("RGB").getpixel((cut.size[0] // 2, cut.size[1] // 2))
    assert r > 200 and g < 50 and b < 50
    corner = cut.convert("RGB").getpixel((1, 1))
    assert corner[0] > 200 and corner[1] < 80  # no white border left


@pytest.mark.parametrize(
    ("image_type", "mime", "pil_format", "ext"),
    [
        ("jpg", "image/jpeg", "JPEG", "jpg"),
        ("webp", "image/webp", "WEBP", "webp"),
        ("png", "image/png", "PNG", "png"),
    ],
)
def test_image_types(acct: DocAccount, image_type: str, mime: str, pil_format: str, ext: str) -> None:
    response, img = image(
        acct, "<h1>typed</h1>", imageType=image_type, quality=60, viewPort={"width": 160, "height": 90}
    )
    assert response.headers["content-type"] == mime
    assert response.headers["content-disposition"].endswith(f".{ext}")
    assert img.format == pil_format and img.size == (160, 90)


def test_image_asset_json(acct: DocAccount) -> None:
    response = acct.http.post(
        "/v2/html/image",
        json={"html": HELLO_B64, "imageType": "webp", "viewPort": {"width": 100, "height": 50}},
    )
    job = wait_job(acct.http, response.json()["id"])
    assert job["status"] == "success" and job["type"] == "html-image"
    asset = acct.http.get(f"/v2/assets/{job['assetId']}").json()
    assert asset["ext"] == "webp" and asset["type"] == "image/webp"
    assert read_image(httpx.get(asset["url"], timeout=30).content).size == (100, 50)


# ------------------------------------------------------------------ templates


def template_pdf_text(acct: DocAccount, template: str, data: Any, path: str = "/v1/template/pdf") -> str:
    response = acct.http.post(path, json={"template": b64(template), "data": data})
    assert response.status_code == 201, response.text
    return "\n".join(page.text for page in read_pdf(response.content))


def test_template_language(acct: DocAccount) -> None:
    template = """
<h1>{{ title | upper }}</h1>
<ul>{% for item in items %}<li>#{{ loop.index }} {{ item.name }} {{ formatCurrency(item.price) }}</li>{% endfor %}</ul>
<p>{% if count > 10 %}many{% elseif count > 1 %}several{% else %}one{% endif %}</p>
<p>{% for key, value in totals %}[{{ key }}={{ value }}]{% endfor %}</p>
<p>avg {{ average | round(1) }} missing={{ missing | default("n/a") }}</p>
<p>when {{ formatDateTime(when) }} / {{ formatDateTime(epoch, "%Y-%m-%d") }} / {{ formatDateTime(ms, "%d.%m.%Y") }}</p>
<p>eur {{ formatCurrency(big, "EUR") }} neg {{ formatCurrency(-5) }} raw {{ formatCurrency(3, "USD", 0) }}</p>
<p>escaped {{ markup }} safe {{ bold | safe }}</p>
<p>dump {{ small | dump }}</p>
"""
    data = {
        "title": "Invoice list",
        "items": [{"name": "Widget", "price": 1234.5}, {"name": "Gadget", "price": 0.99}],
        "count": 3,
        "totals": {"net": 10, "tax": 2},
        "average": 2.345,
        "when": "2024-01-15T10:30:00Z",
        "epoch": 1700000000,
        "ms": 1700000000000,
        "big": 1234567.891,
        "markup": "<i>x</i>",
        "bold": "<b>B</b>",
        "small": {"a": 1},
    }
    text = template_pdf_text(acct, template, data)
    assert "INVOICE LIST" in text
    assert "#1 Widget $1,234.50" in text and "#2 Gadget $0.99" in text
    assert "several" in text and "many" not in text
    assert "[net=10][tax=2]" in text
    assert "avg 2.3 missing=n/a" in text
    assert "when January 15, 2024 / 2023-11-14 / 14.11.2023" in text
    assert "eur €1,234,567.89" in text and "neg -$5.00" in text and "raw $3" in text
    assert "escaped <i>x</i>" in text  # escaped: shown as text, not markup
    assert "safe B" in text
    assert 'dump {"a": 1}' in text

    for count, word in ((20, "many"), (1, "one")):
        assert word in template_pdf_text(acct, template, {**data, "count": count})


def test_template_data_as_json_string_and_image(acct: DocAccount) -> None:
    response = acct.http.post(
        "/v2/template/image",
        json={
            "template": b64('<body style="margin:0;background:{{ color }}"></body>'),
            "data": json.dumps({"color": "#00ff00"}),
            "async": False,
            "viewPort": {"width": 50, "height": 40},
        },
    )
    assert response.status_code == 201, response.text
    img = read_image(response.content)
    assert img.size == (50, 40) and img.convert("RGB").getpixel((25, 20)) == (0, 255, 0)


def test_template_multipart_with_curl(folio: FolioProcess, acct: DocAccount, tmp_path: Path) -> None:
    (tmp_path / "invoice.njk").write_text(
        "<h1>Hi {{ name }}</h1>{% for n in nums %}<p>n{{ n }}</p>{% endfor %}"
    )
    (tmp_path / "data.json").write_text(json.dumps({"name": "Ada", "nums": [1, 2]}))
    out = subprocess.run(
        [
            "curl", "-sS", "-X", "POST", f"{folio.web_url}/v2/template/pdf",
            "-H", f"X-API-Key: {acct.key}",
            "-F", 'options={"async": false, "format": "a4", "filename": "multi.pdf"}',
            "-F", "template=@invoice.njk",
            "-F", "data=@data.json;type=application/json",
            "-o", "multi.pdf", "-w", "%{http_code} %{content_type}",
        ],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0 and out.stdout == "201 application/pdf", (out.stdout, out.stderr)
    pages = read_pdf((tmp_path / "multi.pdf").read_bytes())
    assert (pages[0].width, pages[0].height) == (pytest.approx(A4[0], abs=1.5), pytest.approx(A4[1], abs=1.5))
    assert "Hi Ada" in pages[0].text and "n1" in pages[0].text and "n2" in pages[0].text

    # httpx: async by default in v2; the job then the asset.
    response = acct.http.post(
        "/v2/template/pdf",
        data={"options": json.dumps({"filename": "multi2.pdf"})},
        files={
            "template": ("t.njk", b"<p>{{ who }} via form</p>", "text/plain"),
            "data": ("d.json", json.dumps({"who": "Grace"}).encode(), "application/json"),
        },
    )
    assert response.status_code == 202, response.text
    job = wait_job(acct.http, response.json()["id"])
    assert job["status"] == "success" and job["type"] == "template-pdf"
    asset = acct.http.get(f"/v2/assets/{job['assetId']}").json()
    assert "Grace via form" in read_pdf(httpx.get(asset["url"], timeout=30).content)[0].text
    # A form without its template file names the field.
    no_template = acct.http.post(
        "/v2/template/pdf", data={"options": "{}"}, files={"data": ("d.json", b"{}")}
    )
    assert_error(no_template, 400, "template")


GALLERY = {
    "invoice": (
        {
            "number": "INV-1001",
            "date": "2026-01-15",
            "due": "2026-02-14",
            "currency": "USD",
            "from": {
                "name": "Acme Ltd",
                "address": ["1 Main St", "Springfield"],
                "email": "billing@acme.test",
            },
            "to": {"name": "Globex", "address": ["9 Elm Rd", "Shelbyville"]},
            "items": [{"description": "Design work", "quantity": 10, "price": 120.0}],
            "taxRate": 0.2,
            "notes": "Thank you for your business.",
        },
        ["INV-1001", "Acme Ltd", "Globex", "Design work", "$1,200.00"],
    ),
    "receipt": (
        {
            "store": "Corner Cafe",
            "address": "12 High St",
            "number": "R-5521",
            "date": "2026-01-15T09:41:00Z",
            "currency": "EUR",
            "items": [{"name": "Flat white", "quantity": 2, "price": 3.4}],
            "paid": {"method": "Card", "last4": "4242"},
            "footer": "Thanks, see you soon!",
        },
        ["Corner Cafe", "R-5521", "Flat white", "€6.80", "4242"],
    ),
    "report": (
        {
            "title": "Quarterly report",
            "subtitle": "Q1 2026",
            "author": "Finance",
            "date": "2026-04-02",
            "summary": "Revenue grew.",
            "chart": {
                "label": "Revenue by month",
                "bars": [{"label": "Jan", "value": 120}, {"label": "Feb", "value": 150}],
            },
            "sections": [
                {
                    "heading": "Regional results",
                    "text": "Good.",
                    "columns": ["Region", "Revenue", "Growth"],
                    "rows": [["North", "$1.2M", "4%"]],
                }
            ],
        },
        ["Quarterly report", "Q1 2026", "Regional results", "North", "April 02, 2026"],
    ),
}


@pytest.mark.parametrize("template_id", sorted(GALLERY))
def test_gallery_templates(acct: DocAccount, template_id: str) -> None:
    data, expected = GALLERY[template_id]
    response = acct.http.post("/v1/template/pdf", json={"templateId": template_id, "data": data})
    assert response.status_code == 201, (
        f"templateId {template_id}: {response.status_code} {response.text[:500]}"
    )
    text = " ".join(page.text for page in read_pdf(response.content)).replace("\r\n", " ")
    for needle in expected:
        assert needle in text, (needle, text)


def test_unknown_template_id(acct: DocAccount) -> None:
    for template_id in ("nope", "../api", "INVOICE/.."):
        assert_error(acct.http.post("/v1/template/pdf", json={"templateId": template_id}), 400, "templateId")
