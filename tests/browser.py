"""Drive Debian's headless Chromium through Playwright's sync API, for tests that need a
real browser (CORS is enforced by the browser, so only a browser can prove it; the
dashboard is used in one).

Playwright runs the system binary (`executable_path`), never a browser of its own: no
`playwright install`, no download. It gives us auto-waiting navigation, file inputs,
screenshots and the page's console and network events; it also starts and stops the
browser (its helper processes included) itself.

The API:
- `running_chromium()`: a context manager yielding a launched `Browser`; wrap it in a
  fixture of the scope you want. A missing Chromium fails the test, it is never a skip.
- `open_page(browser, url, viewport=..., color_scheme=...)`: a page in a fresh context
  (its own cookies and storage, so two of them are two users), closed on exit; its
  console and network are recorded from the start, read with `page_log(page)`.
- `screenshot(page, folder, name)`: a PNG written to `folder/name.png`.

The sync API refuses to run inside a running asyncio loop: call it from plain sync tests
and fixtures. And while a browser is open its thread counts as running a loop, so
`asyncio.run()` there fails ("cannot be called from a running event loop"): scope the
browser fixture to the module that needs it, not to the session (a launch costs about
0.6 s), or run such asyncio code in a thread of its own.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from weakref import WeakKeyDictionary

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Request, Response, sync_playwright

__all__ = [
    "Browser",
    "Exchange",
    "MISSING_MESSAGE",
    "Page",
    "PageLog",
    "chromium_path",
    "open_page",
    "page_log",
    "running_chromium",
    "screenshot",
]

DEBIAN_CHROMIUM = "/usr/bin/chromium"
MISSING_MESSAGE = (
    "Chromium is not installed ({path} not found). The browser tests need Debian's `chromium` "
    "package: `make test` installs it (as root: apt-get install -y chromium), or set "
    "FOLIO_TEST_CHROMIUM to a Chromium/Chrome binary."
)

# Flags for a root, headless, offline run (Playwright adds --headless and the DevTools
# pipe itself): without the background-networking ones Chromium keeps dialling Google's
# services, which this closed network refuses.
FLAGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-dev-shm-usage",
)

TIMEOUT_SECONDS = 30.0
DEFAULT_VIEWPORT = (1280, 720)


def chromium_path() -> str | None:
    """The browser binary to use, or None when none is installed."""
    override = os.environ.get("FOLIO_TEST_CHROMIUM")
    if override:
        return override if Path(override).exists() else None
    if Path(DEBIAN_CHROMIUM).exists():
        return DEBIAN_CHROMIUM
    return shutil.which("chromium")


@contextmanager
def running_chromium() -> Iterator[Browser]:
    """Debian's Chromium, headless, for as long as the block runs. Missing is a failure,
    not a skip: a browser test only counts when a real browser ran it."""
    executable = chromium_path()
    if executable is None:
        pytest.fail(
            MISSING_MESSAGE.format(path=os.environ.get("FOLIO_TEST_CHROMIUM") or DEBIAN_CHROMIUM),
            pytrace=False,
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable,
            headless=True,
            args=list(FLAGS),
            timeout=TIMEOUT_SECONDS * 1000,
        )
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Exchange:
    """One request the page made and what became of it (status, or why it failed)."""

    method: str
    url: str
    resource_type: str
    status: int | None = None
    failure: str | None = None


@dataclass
class PageLog:
    """What a page printed and fetched, in order."""

    console: list[tuple[str, str]] = field(default_factory=list)  # (type, text): ("error", "...")
    errors: list[str] = field(default_factory=list)  # exceptions the page did not catch
    exchanges: list[Exchange] = field(default_factory=list)
    _by_request: dict[Request, Exchange] = field(default_factory=dict, repr=False)

    def requests_to(self, url_part: str) -> list[Exchange]:
        """The exchanges whose URL contains `url_part`."""
        return [exchange for exchange in self.exchanges if url_part in exchange.url]

    def _on_request(self, request: Request) -> None:
        exchange = Exchange(request.method, request.url, request.resource_type)
        self._by_request[request] = exchange
        self.exchanges.append(exchange)

    def _on_response(self, response: Response) -> None:
        exchange = self._by_request.get(response.request)
        if exchange is not None:
            exchange.status = response.status

    def _on_failed(self, request: Request) -> None:
        exchange = self._by_request.get(request)
        if exchange is not None:
            exchange.failure = request.failure or "failed"

    def _on_console(self, message: ConsoleMessage) -> None:
        self.console.append((message.type, message.text))


_LOGS: WeakKeyDictionary[Page, PageLog] = WeakKeyDictionary()


def page_log(page: Page) -> PageLog:
    """The page's console and network log; recording starts at the first call (open_page
    makes that call before it loads anything)."""
    log = _LOGS.get(page)
    if log is None:
        log = _LOGS[page] = PageLog()
        page.on("request", log._on_request)
        page.on("response", log._on_response)
        page.on("requestfailed", log._on_failed)
        page.on("console", log._on_console)
        page.on("pageerror", lambda error: log.errors.append(str(error)))
    return log


@contextmanager
def open_page(
    browser: Browser,
    url: str | None = None,
    *,
    viewport: tuple[int, int] = DEFAULT_VIEWPORT,
    color_scheme: Literal["light", "dark", "no-preference"] | None = None,
    **context_options: Any,
) -> Iterator[Page]:
    """A page in a new browser context, showing `url` once it has loaded (Playwright's
    `load` event; a network failure raises). Extra keyword arguments go to
    `Browser.new_context` (e.g. `accept_downloads`, `base_url`)."""
    width, height = viewport
    context = browser.new_context(
        viewport={"width": width, "height": height}, color_scheme=color_scheme, **context_options
    )
    try:
        context.set_default_timeout(TIMEOUT_SECONDS * 1000)
        page = context.new_page()
        page_log(page)
        if url is not None:
            page.goto(url)
        yield page
    finally:
        context.close()


def screenshot(page: Page, folder: Path, name: str, *, full_page: bool = False) -> Path:
    """The page as `folder/name.png` (the viewport, or the whole page); its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=path, type="png", full_page=full_page)
    return path
