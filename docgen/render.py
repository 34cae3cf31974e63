"""The rendering itself, run inside a worker process: HTML (or a URL) to PDF with
WeasyPrint, then, for images, the PDF's first page rasterized with pdfium and encoded
with Pillow. Chromium-style header and footer templates become running elements in
the page-margin boxes; every resource the page pulls in goes through the guarded
fetcher."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import httpx
import lxml.html
import weasyprint
from weasyprint.urls import URLFetcher, URLFetcherResponse

from core.netguard import BlockedTarget, check_url_syntax
from core.pinned_http import pinned_client
from docgen.options import IMAGE_TYPES, HeaderFooter, PdfOptions, RenderJob
from docgen.output import (
    Rendered,
    RenderError,
    encode_image,
    lift_extracted,
    preview_of,
    rasterize,
    trimmed,
)

PREVIEW_SIDE = 400
_MAX_REDIRECTS = 5


class GuardedFetcher(URLFetcher):
    """WeasyPrint's fetcher for `data:`, `http:` and `https:` only, each address
    checked by the outbound guard and connected to as checked (redirects too: each
    hop is a new request through the pinned client), bodies bounded in size and time."""

    def __init__(self, allow_private: bool, allow_loopback: bool, max_bytes: int, timeout: float = 10.0) -> None:
        super().__init__(timeout=timeout, allowed_protocols=("data",), allow_redirects=False)
        self.allow_private = allow_private
        self.allow_loopback = allow_loopback
        self.max_bytes = max_bytes
        self.timeout = timeout

    def fetch(self, url: str, headers=None):  # noqa: ANN001 - WeasyPrint's signature
        if url.startswith("data:"):
            return super().fetch(url, headers)
        with pinned_client(
            allow_private=self.allow_private, allow_loopback=self.allow_loopback, timeout=self.timeout
        ) as client:
            for _hop in range(_MAX_REDIRECTS + 1):
                try:
                    check_url_syntax(url, allow_http=True)
                    with client.stream("GET", url, headers={"user-agent": "Folio docgen"}) as response:
                        if response.is_redirect and "location" in response.headers:
                            url = str(response.url.join(response.headers["location"]))
                            continue
                        body = bytearray()
                        for chunk in response.iter_bytes():
                            body += chunk
                            if len(body) > self.max_bytes:
                                raise ValueError(f"{url} is over {self.max_bytes} bytes")
                        return URLFetcherResponse(
                            str(response.url), bytes(body), dict(response.headers), response.status_code
                        )
                except BlockedTarget as exc:
                    raise ValueError(f"blocked: {url}: {exc}") from exc
        raise ValueError(f"too many redirects: {url}")


def _margin_box_css(name: str, box: HeaderFooter, area: str) -> str:
    padding = "".join(f"padding-{side}: {value};" for side, value in box.margin.items())
    return f"@{area} {{ content: element({name}); width: 100%; {padding} }}"


def _template_element(name: str, box: HeaderFooter, source: str, title: str, url: str) -> str:
    """The header or footer as a running element: Chromium's classes pageNumber and
    totalPages become page counters; date, title and url are filled in."""
    fragment = lxml.html.fragment_fromstring(source or "<span></span>", create_parent="div")
    values = {"date": datetime.now(UTC).strftime("%m/%d/%Y"), "title": title, "url": url}
    for cls, text in values.items():
        for element in fragment.find_class(cls):
            element.text = text
    if box.image_style:
        for image in fragment.iter("img"):
            image.set("style", box.image_style)
    fragment.set("style", f"position: running({name}); {box.style}")
    return lxml.html.tostring(fragment, encoding="unicode")


def _page_css(pdf: PdfOptions, with_header: bool, with_footer: bool) -> str:
    important = "" if pdf.prefer_css_page_size else " !important"
    margins = "".join(f"margin-{side}: {value}{important};" for side, value in pdf.margin.items())
    boxes = []
    if with_header and pdf.header is not None:
        boxes.append(_margin_box_css("folioHeader", pdf.header, "top-center"))
    if with_footer and pdf.footer is not None:
        boxes.append(_margin_box_css("folioFooter", pdf.footer, "bottom-center"))
    css = f"@page {{ size: {pdf.width} {pdf.height}{important}; {margins} {' '.join(boxes)} }}"
    css += " .pageNumber::before { content: counter(page) } .totalPages::before { content: counter(pages) }"
    if not pdf.print_background:
        css += " * { background: transparent !important; }"
    return css


def _with_running_elements(page_html: str, pdf: PdfOptions, title: str, url: str) -> str:
    page_html, lifted = lift_extracted(page_html, pdf)
    parts = []
    for name, box in (("folioHeader", pdf.header), ("folioFooter", pdf.footer)):
        if box is not None:
            parts.append(_template_element(name, box, lifted.get(name, box.template), title, url))
    if not parts:
        return page_html
    markup = "".join(parts)
    lower = page_html.lower()
    at = lower.find("<body")
    if at >= 0:
        close = lower.find(">", at)
        return page_html[: close + 1] + markup + page_html[close + 1 :]
    return markup + page_html


def _selected_pages(pages: list, ranges: list[tuple[int, int]] | None) -> list:
    if not ranges:
        return pages
    wanted = sorted({n for first, last in ranges for n in range(first, last + 1) if n <= len(pages)})
    if not wanted:
        raise RenderError("pageRanges selects no page of the document.")
    return [pages[n - 1] for n in wanted]


def _fetch_page(job: RenderJob, fetcher: GuardedFetcher) -> str:
    assert job.url is not None
    try:
        response = fetcher.fetch(job.url)
    except (ValueError, httpx.HTTPError, OSError) as exc:
        raise RenderError(f"Could not fetch {job.url}: {exc}") from exc
    if response.status >= 400:
        raise RenderError(f"Fetching {job.url} answered {response.status}.")
    data = response.read()
    return data.decode(response.charset or "utf-8", errors="replace")


def _title(page_html: str) -> str:
    """The page's <title>, for the `title` class of header and footer templates."""
    try:
        head = lxml.html.document_fromstring(page_html or "<html></html>").find(".//title")
    except (lxml.etree.ParserError, ValueError):
        return ""
    return head.text_content().strip() if head is not None else ""


def render_pdf(job: RenderJob, pdf: PdfOptions) -> tuple[bytes, int]:
    fetcher = GuardedFetcher(job.allow_private, job.allow_loopback, job.max_resource_bytes)
    page_html = job.html if job.html is not None else _fetch_page(job, fetcher)
    base_url = job.url
    title = _title(page_html) if pdf.header is not None or pdf.footer is not None else ""
    source = _with_running_elements(page_html, pdf, title, job.url or "")
    stylesheet = weasyprint.CSS(string=_page_css(pdf, pdf.header is not None, pdf.footer is not None))
    document = weasyprint.HTML(string=source, base_url=base_url, url_fetcher=fetcher).render(stylesheets=[stylesheet])
    pages = _selected_pages(document.pages, pdf.page_ranges)
    data = document.copy(pages).write_pdf(zoom=pdf.scale)
    return data, len(pages)


def render(job: RenderJob) -> Rendered:
    """The whole job; RenderError for a document that cannot be made."""
    if job.delay_ms:
        time.sleep(job.delay_ms / 1000)
    if job.kind == "pdf":
        assert job.pdf is not None
        data, pages = render_pdf(job, job.pdf)
        preview = preview_of(data) if job.generate_preview else None
        return Rendered(data, "application/pdf", "pdf", pages, preview)
    image_options = job.image
    assert image_options is not None
    # The viewport is the page: its width and height in CSS pixels, no margin.
    page = PdfOptions(width=f"{image_options.width}px", height=f"{image_options.height}px", margin={
        "top": "0px", "bottom": "0px", "left": "0px", "right": "0px"})
    pdf_bytes, _pages = render_pdf(job, page)
    image = rasterize(pdf_bytes, image_options.device_scale_factor, image_options.transparent)
    if image_options.trim:
        image = trimmed(image)
    data = encode_image(image, image_options.image_type, image_options.quality)
    preview = preview_of(pdf_bytes) if job.generate_preview else None
    ext = image_options.image_type
    return Rendered(data, IMAGE_TYPES[ext], ext, 1, preview)
