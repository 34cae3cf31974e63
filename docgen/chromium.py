"""The Chromium engine, for pages that need JavaScript: Debian's `chromium` driven by
Playwright with the system executable (never a downloaded browser). One warm browser,
a fresh context per job, at most `concurrency` jobs at once, a restart after
`restart_after` jobs or when the browser dies. Every request the page makes (the
page itself, scripts, styles, images, XHR) passes the outbound guard and is fetched
by Folio's pinned client (`core/pinned_http.py`), connected to the address checked."""

from __future__ import annotations

import asyncio
import base64
import io
import logging
import shutil
import time
from typing import Any

import httpx
import pypdfium2 as pdfium
from PIL import Image

from core.netguard import BlockedTarget, check_url_syntax
from core.pinned_http import pinned_async_client
from docgen.options import IMAGE_TYPES, HeaderFooter, PdfOptions, RenderJob
from docgen.output import Rendered, RenderError, encode_image, lift_extracted, preview_of, trimmed

log = logging.getLogger("folio.docgen")

# The browser itself reaches nothing: its proxy is a closed port and loopback is not
# exempt from it. Every request is fetched for it by the route handler (through the
# pinned client, not Playwright's route.fetch, which would resolve the name again),
# one redirect hop at a time; what bypasses routing (WebSockets, prefetch, beacons,
# service workers) goes to the dead proxy and fails.
DEAD_PROXY = "http://127.0.0.1:9"
LAUNCH_ARGS = [
    f"--proxy-server={DEAD_PROXY}",
    "--proxy-bypass-list=<-loopback>",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
_AUTO_SCROLL = """async () => {
  await new Promise((resolve) => {
    let total = 0;
    const step = 400;
    const timer = setInterval(() => {
      window.scrollBy(0, step);
      total += step;
      if (total >= document.body.scrollHeight || total > 200000) { clearInterval(timer); window.scrollTo(0, 0); resolve(); }
    }, 50);
  });
}"""


# Request headers the fetch sets itself, and response headers that no longer describe
# the body handed to the browser (httpx has decoded it and knows its length).
_NOT_FORWARDED = {"host", "content-length", "connection", "keep-alive", "transfer-encoding", "accept-encoding",
                  "proxy-authorization", "proxy-connection", "te", "upgrade"}
_NOT_RETURNED = {"content-encoding", "content-length", "transfer-encoding", "connection", "keep-alive"}
FETCH_SECONDS = 15.0


class _TooLarge(Exception):
    pass


def _fulfil_headers(headers: httpx.Headers) -> dict[str, str]:
    merged: dict[str, list[str]] = {}
    for name, value in headers.multi_items():
        if name.lower() not in _NOT_RETURNED:
            merged.setdefault(name.lower(), []).append(value)
    # Playwright splits set-cookie on newlines, as its own APIResponse.headers joins them.
    return {name: ("\n" if name == "set-cookie" else ", ").join(values) for name, values in merged.items()}


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _ranges_text(ranges: list[tuple[int, int]] | None) -> str:
    return ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in ranges or [])


def _chromium_template(box: HeaderFooter | None, lifted: str | None) -> str:
    if box is None:
        return "<span></span>"
    source = lifted if lifted is not None else box.template
    # Chromium renders header templates at a tiny default size: give them a readable one.
    return f'<div style="width: 100%; font-size: 10px; {box.style}">{source}</div>'


class ChromiumEngine:
    def __init__(
        self,
        executable: str | None,
        concurrency: int,
        restart_after: int,
        allow_private: bool,
        allow_loopback: bool,
        max_fetch_bytes: int = 20 * 1000 * 1000,
    ) -> None:
        self.executable = executable
        self.max_fetch_bytes = max_fetch_bytes
        self.restart_after = restart_after
        self.allow_private = allow_private
        self.allow_loopback = allow_loopback
        self._slots = asyncio.Semaphore(concurrency)
        self._lock = asyncio.Lock()
        self._playwright: Any = None
        self._browser: Any = None
        self._active = 0
        self._client: httpx.AsyncClient | None = None
        self.jobs = 0  # jobs since the browser (re)started
        self.launches = 0
        self.crashes = 0

    @property
    def available(self) -> bool:
        if self.executable is None:
            return False
        try:
            import playwright  # noqa: F401
        except ImportError:
            return False
        return True

    def health(self) -> dict[str, Any]:
        return {
            "available": self.available,
            "running": self._browser is not None and self._browser.is_connected(),
            "launches": self.launches,
            "crashes": self.crashes,
            "activeJobs": self._active,
        }

    async def _ensure_browser(self) -> Any:
        async with self._lock:
            if self._browser is not None and self._browser.is_connected():
                # Recycled only when this job is the only one using it.
                if self.jobs < self.restart_after or self._active > 1:
                    return self._browser
                await self._stop_browser()  # recycle: memory stays flat
            if self._playwright is None:
                from playwright.async_api import async_playwright

                self._playwright = await async_playwright().start()
            self._browser = await self._playwright.chromium.launch(executable_path=self.executable, args=LAUNCH_ARGS)
            self._browser.on("disconnected", self._on_disconnect)
            self.launches += 1
            self.jobs = 0
            return self._browser

    def _on_disconnect(self, _browser: Any) -> None:
        if self._browser is _browser:
            self.crashes += 1
            self._browser = None

    async def _stop_browser(self) -> None:
        browser, self._browser = self._browser, None
        if browser is not None:
            try:
                await browser.close()
            except Exception:  # noqa: BLE001 - already gone
                pass

    async def close(self) -> None:
        await self._stop_browser()
        if self._playwright is not None:
            await self._playwright.stop()
            self._playwright = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _guard(self, route: Any, context: Any, credentials: tuple[str, str] | None) -> None:
        """Fetch the request for the browser, if the guard allows its address. A redirect
        is handed back as it is: the browser's next request comes here again."""
        url = route.request.url
        if url.startswith(("data:", "blob:", "about:")):
            await route.continue_()
            return
        try:
            check_url_syntax(url, allow_http=True)
            async with asyncio.timeout(FETCH_SECONDS):
                status, headers, body = await self._fetch(route.request, context, credentials)
        except BlockedTarget:
            await route.abort("blockedbyclient")
            return
        except Exception:  # noqa: BLE001 - unreachable, reset, timed out, too large: as the browser would see it
            await route.abort("failed")
            return
        await route.fulfill(status=status, headers=headers, body=body)

    async def _fetch(
        self, request: Any, context: Any, credentials: tuple[str, str] | None
    ) -> tuple[int, dict[str, str], bytes]:
        """What Playwright's route.fetch did, through the pinned client: the request's
        headers with the context's cookies, Basic credentials sent after a 401 asks for
        them, no redirect followed, the body bounded."""
        if self._client is None:
            self._client = pinned_async_client(
                allow_private=self.allow_private, allow_loopback=self.allow_loopback, timeout=FETCH_SECONDS
            )
        headers = {
            name: value
            for name, value in request.headers.items()
            if not name.startswith(":") and name.lower() not in _NOT_FORWARDED
        }
        cookies = await context.cookies(request.url)
        if cookies:
            headers["cookie"] = "; ".join(f"{c['name']}={c['value']}" for c in cookies)
        status, answer, body = await self._send(self._client, request, headers)
        challenged = "basic" in answer.get("www-authenticate", "").lower()
        if status == 401 and challenged and credentials:
            pair = f"{credentials[0]}:{credentials[1]}".encode()
            headers["authorization"] = "Basic " + base64.b64encode(pair).decode()
            status, answer, body = await self._send(self._client, request, headers)
        return status, answer, body

    async def _send(
        self, client: httpx.AsyncClient, request: Any, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        async with client.stream(request.method, request.url, headers=headers, content=request.post_data_buffer) as response:
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > self.max_fetch_bytes:
                    raise _TooLarge(request.url)
            return response.status_code, _fulfil_headers(response.headers), bytes(body)

    async def render(self, job: RenderJob, timeout: float) -> Rendered:
        if not self.available:
            raise RenderError("The Chromium engine is not installed on this server.")
        async with self._slots:
            self._active += 1
            try:
                return await asyncio.wait_for(self._render(job, timeout), timeout)
            except TimeoutError as exc:
                raise RenderError(f"The document took longer than its timeout of {timeout:g} s.") from exc
            finally:
                self._active -= 1
                self.jobs += 1

    async def _render(self, job: RenderJob, timeout: float) -> Rendered:
        browser = await self._ensure_browser()
        image = job.image
        viewport = {"width": image.width, "height": image.height} if image else {"width": 1280, "height": 1024}
        context_args: dict[str, Any] = {
            "service_workers": "block",
            "viewport": viewport,
            "device_scale_factor": image.device_scale_factor if image else 1.0,
            "java_script_enabled": job.javascript,
        }
        if job.authentication:
            context_args["http_credentials"] = {"username": job.authentication[0], "password": job.authentication[1]}
        try:
            context = await browser.new_context(**context_args)
        except Exception as exc:  # noqa: BLE001 - the browser died: the next job relaunches it
            self._browser = None
            raise RenderError(f"The browser could not start a page: {exc}") from exc
        try:

            async def guard(route: Any) -> None:
                await self._guard(route, context, job.authentication)

            await context.route("**/*", guard)
            if job.cookies:
                await context.add_cookies(list(job.cookies))
            page = await context.new_page()
            page.set_default_timeout(timeout * 1000)
            lifted: dict[str, str] = {}
            try:
                if job.url is not None:
                    await page.goto(job.url, wait_until=job.wait_until)
                else:
                    html = job.html or ""
                    if job.pdf is not None:
                        html, lifted = lift_extracted(html, job.pdf)
                    await page.set_content(html, wait_until=job.wait_until)
                if job.wait_for_selector:
                    await page.wait_for_selector(job.wait_for_selector)
                if job.auto_scroll:
                    await page.evaluate(_AUTO_SCROLL)
                if job.delay_ms:
                    await asyncio.sleep(job.delay_ms / 1000)
                if job.kind == "pdf":
                    assert job.pdf is not None
                    data = await self._pdf(page, job.pdf, lifted)
                    pages = _count_pages(data)
                    preview = preview_of(data) if job.generate_preview else None
                    return Rendered(data, "application/pdf", "pdf", pages, preview)
                assert image is not None
                shot = await page.screenshot(type="png", omit_background=image.transparent)
            except RenderError:
                raise
            except Exception as exc:  # noqa: BLE001 - Playwright's errors are the page's
                raise RenderError(f"The page could not be rendered: {str(exc).splitlines()[0][:300]}") from exc
        finally:
            try:
                await context.close()
            except Exception:  # noqa: BLE001 - the browser may be gone
                pass
        picture = Image.open(io.BytesIO(shot))
        picture = picture.convert("RGBA" if image.transparent else "RGB")
        if image.trim:
            picture = trimmed(picture)
        data = encode_image(picture, image.image_type, image.quality)
        preview = None
        if job.generate_preview:
            small = picture.copy()
            small.thumbnail((400, 400))
            preview = encode_image(small, "png", 80)
        return Rendered(data, IMAGE_TYPES[image.image_type], image.image_type, 1, preview)

    async def _pdf(self, page: Any, pdf: PdfOptions, lifted: dict[str, str]) -> bytes:
        headed = pdf.header is not None or pdf.footer is not None
        started = time.monotonic()
        data = await page.pdf(
            width=pdf.width,
            height=pdf.height,
            margin=pdf.margin or None,
            print_background=pdf.print_background,
            scale=pdf.scale,
            page_ranges=_ranges_text(pdf.page_ranges),
            prefer_css_page_size=pdf.prefer_css_page_size,
            display_header_footer=headed,
            header_template=_chromium_template(pdf.header, lifted.get("folioHeader")) if headed else None,
            footer_template=_chromium_template(pdf.footer, lifted.get("folioFooter")) if headed else None,
        )
        log.debug("chromium pdf in %.0f ms", (time.monotonic() - started) * 1000)
        return data


def _count_pages(data: bytes) -> int:
    document = pdfium.PdfDocument(data)
    try:
        return len(document)
    finally:
        document.close()
