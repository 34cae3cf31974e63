"""Drive Debian's headless Chromium through the Chrome DevTools Protocol, for tests that
need a real browser (CORS is enforced by the browser, so only a browser can prove it).

No Playwright: Chromium is started with `--remote-debugging-port=0`, the port it picked
is read from `DevToolsActivePort` in its fresh profile directory, and the protocol is
spoken over the `websockets` package's synchronous client. The browser is always
stopped by its own PID (and the process group it leads, for its helper processes).
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

DEBIAN_CHROMIUM = "/usr/bin/chromium"
MISSING_MESSAGE = (
    "Chromium is not installed ({path} not found). The browser tests need Debian's `chromium` "
    "package: `make test` installs it (as root: apt-get install -y chromium), or set "
    "FOLIO_TEST_CHROMIUM to a Chromium/Chrome binary."
)

# Flags for a root, headless, offline run: without the background-networking ones
# Chromium keeps dialling Google's services, which this closed network refuses.
FLAGS = (
    "--headless",
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
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)


class BrowserError(RuntimeError):
    """Chromium did not start, or a DevTools call failed."""


def chromium_path() -> str | None:
    """The browser binary to use, or None when none is installed."""
    override = os.environ.get("FOLIO_TEST_CHROMIUM")
    if override:
        return override if Path(override).exists() else None
    if Path(DEBIAN_CHROMIUM).exists():
        return DEBIAN_CHROMIUM
    return shutil.which("chromium")


class Chromium:
    """One headless Chromium with a throwaway profile; use as a context manager."""

    def __init__(self, executable: str, timeout: float = 30.0) -> None:
        self.executable = executable
        self.timeout = timeout
        self.profile = Path(tempfile.mkdtemp(prefix="folio-chromium-"))
        self.log_path = self.profile.parent / f"{self.profile.name}.log"
        self.proc: subprocess.Popen | None = None
        self.ws: ClientConnection | None = None
        self._connections = ExitStack()
        self._ids = itertools.count(1)

    def __enter__(self) -> Chromium:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        args = [self.executable, *FLAGS, f"--user-data-dir={self.profile}", "about:blank"]
        with open(self.log_path, "wb") as log:
            # Its own session, so the helper processes it forks can be stopped with it.
            self.proc = subprocess.Popen(args, stdout=log, stderr=log, start_new_session=True)
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BrowserError(f"chromium exited with {self.proc.returncode}:\n{self.log()}")
            lines = port_file.read_text().split("\n") if port_file.exists() else []
            if len(lines) >= 2 and lines[0].strip() and lines[1].strip():
                url = f"ws://127.0.0.1:{lines[0].strip()}{lines[1].strip()}"
                # Entered as a context manager: the only form every websockets >= 12 accepts silently.
                self.ws = self._connections.enter_context(connect(url, max_size=None, open_timeout=self.timeout))
                return
            time.sleep(0.05)
        raise BrowserError(f"chromium did not open its DevTools port:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.ws is not None:
            try:
                self.call("Browser.close", timeout=5)
            except Exception:  # noqa: BLE001 - fall back to signals below
                pass
            try:
                self._connections.close()
            except Exception:  # noqa: BLE001 - the browser may have dropped it first
                pass
            self.ws = None
        if self.proc is not None:
            try:
                self.proc.wait(10)  # Browser.close answers before the browser has exited
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(10)
            # Helpers (zygote, renderers) share the group led by the browser's PID.
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc = None
        shutil.rmtree(self.profile, ignore_errors=True)
        self.log_path.unlink(missing_ok=True)

    def call(
        self, method: str, params: dict | None = None, session_id: str | None = None, timeout: float | None = None
    ) -> dict:
        """Send one DevTools command and wait for its result (events in between are dropped)."""
        assert self.ws is not None, "browser not started"
        message_id = next(self._ids)
        message: dict[str, Any] = {"id": message_id, "method": method, "params": params or {}}
        if session_id is not None:
            message["sessionId"] = session_id
        self.ws.send(json.dumps(message))
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BrowserError(f"no answer to {method} in time")
            answer = json.loads(self.ws.recv(timeout=remaining))
            if answer.get("id") != message_id:
                continue
            if "error" in answer:
                raise BrowserError(f"{method} failed: {answer['error']}")
            return answer.get("result", {})

    def open_page(self, url: str) -> Page:
        """A new tab showing `url`, once its document has loaded."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        page = Page(self, session)
        navigated = self.call("Page.navigate", {"url": url}, session)
        if navigated.get("errorText"):
            raise BrowserError(f"could not load {url}: {navigated['errorText']}")
        deadline = time.monotonic() + self.timeout
        while page.evaluate("document.readyState + ' ' + location.href") != f"complete {url}":
            if time.monotonic() > deadline:
                raise BrowserError(f"{url} did not finish loading")
            time.sleep(0.05)
        return page


class Page:
    """One tab, attached in flat mode (commands carry its session id)."""

    def __init__(self, browser: Chromium, session_id: str) -> None:
        self.browser = browser
        self.session_id = session_id

    def evaluate(self, expression: str, timeout: float | None = None) -> Any:
        """Run JavaScript in the page, await it if it is a promise, and return its JSON value."""
        result = self.browser.call(
            "Runtime.evaluate",
            {"expression": expression, "awaitPromise": True, "returnByValue": True},
            self.session_id,
            timeout,
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise BrowserError(f"page script threw: {text}")
        return result["result"].get("value")


def running_chromium() -> Iterator[Chromium]:
    """Debian's Chromium for a module's browser tests (`yield from` it in a fixture). Missing
    is a failure, not a skip: a browser test only counts when a real browser ran it."""
    executable = chromium_path()
    if executable is None:
        pytest.fail(
            MISSING_MESSAGE.format(path=os.environ.get("FOLIO_TEST_CHROMIUM") or DEBIAN_CHROMIUM),
            pytrace=False,
        )
    with Chromium(executable) as browser:
        yield browser
