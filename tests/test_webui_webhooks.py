"""The dashboard's webhook pages (issue 16) in Debian's Chromium against the real server,
with a webhook receiver on loopback in a thread (tests/test_webhooks.py's `Receiver`,
answering the status the test sets; the server allows loopback and plain-http targets,
as tests/test_webhooks.py configures it).

Covered: create with the secret shown once, edit URL and events, delete after a
confirmation; a receiver failing 10 times shows the webhook disabled with the failure and
its last error, and "Re-enable" sends the deliveries that were pending (seen going out in
the polled delivery log); "Send test event" arrives signed, verified by the snippet the
page shows (run with node as shown, header name included); "Redeliver" resends one
delivery with the same id and bytes; the JSON endpoints under it (deliveries, test,
redeliver) with their refusals. Every page is screenshotted light and dark and checked
for labels and contrast."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config as BotoConfig
from playwright.sync_api import Browser, Page, expect

from tests.browser import open_page
from tests.conftest import TEST_CONFIG
from tests.folio_process import FolioProcess, running_server
from tests.test_webhooks import Receiver, wait_for
from tests.test_webui_pages import check_page, sign_up

CONFIG = (
    TEST_CONFIG
    + """
[accounts]
login_attempts_per_minute = 1000

[webhooks]
allow_loopback_targets = true
allow_http = true
backoff_seconds = 0.05
"""
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FolioProcess]:
    yield from running_server(tmp_path_factory, "webui-webhooks", CONFIG)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    endpoint = Receiver()
    yield endpoint
    endpoint.close()


class Session:
    """A signed-up account in a browser page, with its S3 keys and the page's cookie for
    the JSON API."""

    def __init__(self, server: FolioProcess, page: Page) -> None:
        self.server, self.page = server, page
        self.access_key, self.secret_key = sign_up(page, server, f"hook-{uuid.uuid4().hex[:10]}@example.com")
        cookies = {c["name"]: c["value"] for c in page.context.cookies()}
        self.cookie = f"session={cookies['session']}"

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = httpx.request(
            method, f"{self.server.web_url}{path}", headers={"Cookie": self.cookie}, timeout=30, **kwargs
        )
        assert response.status_code < 500, response.text
        return response

    def webhook(self, webhook_id: str) -> dict[str, Any]:
        (hook,) = [h for h in self.api("GET", "/api/webhooks").json()["webhooks"] if h["id"] == webhook_id]
        return hook

    def s3(self):
        return boto3.client(
            "s3",
            endpoint_url=self.server.s3_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
            config=BotoConfig(),
        )

    def create_in_page(self, url: str, events: list[str]) -> tuple[str, str]:
        """Create a webhook with the form: its id and the secret the page shows once."""
        page = self.page
        page.goto(f"{self.server.web_url}/webhooks")
        page.get_by_label("Endpoint URL").fill(url)
        for event in events:
            page.get_by_label(event, exact=True).check()
        page.get_by_role("button", name="Create webhook").click()
        expect(page.get_by_role("heading", name="Webhook created")).to_be_visible()
        secret = page.locator("#webhook-secret").inner_text().strip()
        href = page.get_by_role("link", name="Open the webhook").get_attribute("href") or ""
        return href.rsplit("/", 1)[1], secret


def signed_by(body: bytes, signature: str, secret: str) -> bool:
    return hmac.compare_digest(hmac.new(secret.encode(), body, hashlib.sha256).hexdigest(), signature)


def run_page_snippet(snippet: str, items: list[dict[str, str]]) -> list[bool]:
    """The verification code exactly as the page shows it, run with node: everything up
    to the Express handler (import and verifyWebhook), then a driver that feeds it what
    that handler would (JSON.stringify of the parsed body)."""
    code = snippet.split("// In your webhook handler:")[0]
    assert "function verifyWebhook(payload, signature, secret)" in code
    driver = """
let input = "";
process.stdin.on("data", (c) => (input += c));
process.stdin.on("end", () => {
  const out = JSON.parse(input).map(({ body, signature, secret }) =>
    verifyWebhook(JSON.stringify(JSON.parse(body)), signature, secret));
  process.stdout.write(JSON.stringify(out));
});
"""
    done = subprocess.run(
        ["node", "--input-type=module", "-e", code + driver],
        input=json.dumps(items),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def log_row(page: Page, delivery_id: str):
    return page.locator(f'tr[data-delivery="{delivery_id}"]')


# ---------------------------------------------------------------- create, edit, delete


def test_create_shows_the_secret_once_then_edit_and_delete(
    server: FolioProcess, browser: Browser, receiver: Receiver
) -> None:
    with open_page(browser, permissions=["clipboard-read", "clipboard-write"]) as page:
        me = Session(server, page)
        page.goto(f"{server.web_url}/webhooks")
        expect(page.get_by_text("No webhooks yet.")).to_be_visible()
        webhook_id, secret = me.create_in_page(receiver.url, ["object.created", "object.deleted"])
        assert secret.startswith("whsec_")
        assert page.get_by_role("alert").first.inner_text().startswith("Copy the signing secret now.")
        page.locator('button[data-copy="webhook-secret"]').click()
        assert page.evaluate("navigator.clipboard.readText()") == secret
        row = page.locator(f"#webhook-{webhook_id}")
        expect(row).to_contain_text("Active")
        expect(row).to_contain_text("object.created")
        check_page(page, "webhooks-created")
        # Shown once: the list never shows it again, nor does the API.
        page.goto(f"{server.web_url}/webhooks")
        assert secret not in page.content()
        assert secret not in me.api("GET", "/api/webhooks").text

        # Edit: another path and other events; the API sees the change.
        page.get_by_role("link", name=receiver.url).click()
        page.get_by_label("Endpoint URL").fill(receiver.url + "/v2")
        page.get_by_label("object.deleted", exact=True).uncheck()
        page.get_by_label("bucket.created", exact=True).check()
        page.get_by_role("button", name="Save").click()
        expect(page.get_by_role("status")).to_have_text("Saved.")
        hook = me.webhook(webhook_id)
        assert hook["url"] == receiver.url + "/v2"
        assert hook["events"] == ["object.created", "bucket.created"]
        # A refused change (no events) is said in place and changes nothing.
        for event in ("object.created", "bucket.created"):
            page.get_by_label(event, exact=True).uncheck()
        page.get_by_role("button", name="Save").click()
        expect(page.get_by_role("alert")).to_contain_text("events")
        assert me.webhook(webhook_id)["events"] == ["object.created", "bucket.created"]
        # A private address is refused by the outbound rules (only loopback is allowed here).
        page.goto(f"{server.web_url}/webhooks/{webhook_id}")
        page.get_by_label("Endpoint URL").fill("http://10.1.2.3/hook")
        page.get_by_role("button", name="Save").click()
        expect(page.get_by_role("alert")).to_contain_text("refused")
        assert me.webhook(webhook_id)["url"] == receiver.url + "/v2"

        # Delete asks first: dismissing keeps it, accepting deletes it.
        page.goto(f"{server.web_url}/webhooks/{webhook_id}")
        page.once("dialog", lambda dialog: dialog.dismiss())
        page.get_by_role("button", name="Delete webhook").click()
        expect(page.get_by_role("heading", name="Delete")).to_be_visible()
        assert me.webhook(webhook_id)
        page.once("dialog", lambda dialog: dialog.accept())
        page.get_by_role("button", name="Delete webhook").click()
        expect(page).to_have_url(f"{server.web_url}/webhooks")
        expect(page.get_by_text("No webhooks yet.")).to_be_visible()
        assert me.api("GET", "/api/webhooks").json()["webhooks"] == []


# ---------------------------------------------------------------- disabled, re-enabled


def test_ten_failures_show_disabled_with_the_last_error_and_reenable_sends_pending(
    server: FolioProcess, browser: Browser, receiver: Receiver
) -> None:
    receiver.status = 500
    with open_page(browser) as page:
        me = Session(server, page)
        webhook_id, _ = me.create_in_page(receiver.url, ["object.created"])
        s3 = me.s3()
        bucket = f"hook-{uuid.uuid4().hex[:12]}"
        s3.create_bucket(Bucket=bucket)
        for i in range(5):
            s3.put_object(Bucket=bucket, Key=f"k{i}", Body=b"x")
        disabled = wait_for(
            lambda: (h := me.webhook(webhook_id))["active"] is False and h, "the webhook to disable"
        )
        assert disabled["disabledAfterFailures"] == 10 and disabled["lastError"] == "HTTP 500"
        failed_attempts = len(receiver.all())
        assert failed_attempts >= 10

        page.goto(f"{server.web_url}/webhooks")
        row = page.locator(f"#webhook-{webhook_id}")
        expect(row).to_contain_text("Disabled after failure 10 in a row")
        expect(row.locator("code.last-error")).to_have_text("HTTP 500")
        check_page(page, "webhooks-list")

        page.goto(f"{server.web_url}/webhooks/{webhook_id}")
        expect(page.locator("#webhook-state")).to_contain_text("Disabled after failure 10 in a row")
        expect(page.locator("#webhook-state")).to_contain_text("Last error: HTTP 500")
        log = me.api("GET", f"/api/webhooks/deliveries?id={webhook_id}").json()["deliveries"]
        pending = {d["id"] for d in log if d["status"] == "pending"}
        assert pending and len(log) == 5
        for delivery_id in pending:
            expect(log_row(page, delivery_id).locator(".status")).to_contain_text("pending")
        failed_row = next(d for d in log if d["status"] != "pending" or d["attempts"])
        expect(log_row(page, failed_row["id"]).locator(".http")).to_have_text("500")
        # No test event or redelivery while disabled: only re-enabling.
        expect(page.get_by_role("button", name="Send test event")).to_have_count(0)
        expect(page.get_by_role("button", name=re.compile("^Redeliver"))).to_have_count(0)
        check_page(page, "webhook-disabled")

        receiver.status = 200
        page.get_by_role("button", name="Re-enable").click()
        expect(page.get_by_role("status")).to_contain_text("Re-enabled")
        # The polled log shows them go out, without a reload.
        for delivery_id in pending:
            expect(log_row(page, delivery_id).locator(".status")).to_contain_text("delivered", timeout=15_000)
        assert {r.delivery_id for r in receiver.ok()} == pending
        expect(page.locator("#webhook-state")).to_contain_text("Active")
        check_page(page, "webhook-reenabled")


# ---------------------------------------------------------------- test event and redelivery


def test_test_event_verifies_with_the_shown_snippet_and_redeliver_keeps_the_id(
    server: FolioProcess, browser: Browser, receiver: Receiver
) -> None:
    with open_page(browser) as page:
        me = Session(server, page)
        webhook_id, secret = me.create_in_page(receiver.url, ["quota.warning"])
        page.goto(f"{server.web_url}/webhooks/{webhook_id}")
        expect(page.get_by_text("No deliveries yet.")).to_be_visible()
        page.get_by_role("button", name="Send test event").click()
        expect(page.get_by_role("status")).to_contain_text("Test event queued")
        (got,) = wait_for(receiver.ok, "the test event")
        assert got.event == "webhook.test" and got.json["data"]["webhookId"] == webhook_id
        # The snippet names this webhook's header and handler path, and verifies the delivery.
        snippet = page.locator("#verify-snippet").inner_text()
        header = re.search(r'req\.headers\["([^"]+)"\]', snippet)
        assert header and header.group(1) == "x-cloudstorage-signature"
        assert 'app.post("/webhooks/cloudstorage"' in snippet
        signature = got.headers[header.group(1)]
        assert signed_by(got.body, signature, secret)
        tampered = ("0" if signature[0] != "0" else "1") + signature[1:]
        checks = [
            {"body": got.body.decode(), "signature": signature, "secret": secret},
            {"body": got.body.decode(), "signature": tampered, "secret": secret},
        ]
        assert run_page_snippet(snippet, checks) == [True, False]

        # The log: event, attempts, status code, latency, the answer's first bytes.
        row = log_row(page, got.delivery_id)
        expect(row.locator(".status")).to_contain_text("delivered", timeout=15_000)
        expect(row.locator(".http")).to_have_text("200")
        expect(row.locator(".attempts")).to_have_text("1")
        expect(row.locator(".response")).to_have_text("ok")
        expect(row).to_contain_text(" ms")
        check_page(page, "webhook-detail")

        # Redeliver: the same delivery id, the same signed bytes, a second attempt.
        row.get_by_role("button", name=re.compile("^Redeliver")).click()
        expect(page.get_by_role("status")).to_contain_text("Redelivery queued")
        wait_for(lambda: len(receiver.ok()) == 2, "the redelivery")
        first, again = receiver.ok()
        assert again.delivery_id == first.delivery_id
        assert (again.body, again.headers["x-cloudstorage-signature"]) == (first.body, signature)
        expect(log_row(page, got.delivery_id).locator(".attempts")).to_have_text("2", timeout=15_000)
        assert len(me.api("GET", f"/api/webhooks/deliveries?id={webhook_id}").json()["deliveries"]) == 1

    # 375 px wide: the actions are reachable, nothing wider than the screen.
    with open_page(browser, viewport=(375, 800)) as narrow:
        narrow.context.add_cookies(
            [{"name": "session", "value": me.cookie.split("=", 1)[1], "url": server.web_url}]
        )
        narrow.goto(f"{server.web_url}/webhooks/{webhook_id}")
        expect(narrow.get_by_role("button", name="Send test event")).to_be_visible()
        assert narrow.evaluate("document.documentElement.scrollWidth") <= 375
        check_page(narrow, "webhook-detail-375")


# ---------------------------------------------------------------- the JSON endpoints under the pages


def test_json_endpoints_for_test_events_redelivery_and_the_log(
    server: FolioProcess, browser: Browser, receiver: Receiver
) -> None:
    with open_page(browser) as page, open_page(browser) as other_page:
        me = Session(server, page)
        other = Session(server, other_page)  # a second account
    created = me.api("POST", "/api/webhooks", json={"url": receiver.url, "events": ["key.created"]})
    assert created.status_code == 201
    hook = created.json()
    assert hook["disabledAt"] is None and hook["lastError"] is None and hook["disabledAfterFailures"] is None

    sent = me.api("POST", "/api/webhooks/test", json={"id": hook["id"]})
    assert sent.status_code == 202 and sent.json()["status"] == "pending"
    delivery_id = sent.json()["deliveryId"]
    (got,) = wait_for(receiver.ok, "the test event")
    assert got.delivery_id == delivery_id and signed_by(
        got.body, got.headers["x-cloudstorage-signature"], hook["secret"]
    )
    body = got.json
    assert body["event"] == "webhook.test" and body["id"] == delivery_id
    assert got.body == json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()

    def delivered() -> dict[str, Any] | None:
        (entry,) = me.api("GET", f"/api/webhooks/deliveries?id={hook['id']}").json()["deliveries"]
        return entry if entry["status"] == "delivered" else None

    entry = wait_for(delivered, "the log entry")
    assert entry["responseStatus"] == 200 and entry["responseBody"] == "ok" and entry["latencyMs"] >= 0
    assert me.webhook(hook["id"])["recentDeliveries"][0]["responseBody"] == "ok"

    again = me.api("POST", "/api/webhooks/redeliver", json={"deliveryId": delivery_id})
    assert again.status_code == 202
    wait_for(lambda: len(receiver.ok()) == 2, "the redelivery")
    assert receiver.ok()[1].body == got.body

    # Another account sees none of it.
    for method, path, payload in [
        ("POST", "/api/webhooks/test", {"id": hook["id"]}),
        ("POST", "/api/webhooks/redeliver", {"deliveryId": delivery_id}),
    ]:
        refused = other.api(method, path, json=payload)
        assert refused.status_code == 404, refused.text
    assert other.api("GET", f"/api/webhooks/deliveries?id={hook['id']}").status_code == 404
    assert me.api("GET", f"/api/webhooks/deliveries?id={hook['id']}&limit=0").status_code == 400
    assert me.api("POST", "/api/webhooks/test", json={}).status_code == 400

    # Disabled by hand: test events and redeliveries are refused until it is re-enabled.
    assert me.api("PATCH", "/api/webhooks", json={"id": hook["id"], "active": False}).json()["disabledAt"]
    for path, payload in [
        ("/api/webhooks/test", {"id": hook["id"]}),
        ("/api/webhooks/redeliver", {"deliveryId": delivery_id}),
    ]:
        refused = me.api("POST", path, json=payload)
        assert refused.status_code == 409 and refused.json()["error"]["code"] == "WebhookDisabled", (
            refused.text
        )
    enabled = me.api("PATCH", "/api/webhooks", json={"id": hook["id"], "active": True}).json()
    assert enabled["active"] is True and enabled["disabledAt"] is None
    assert me.api("POST", "/api/webhooks/test", json={"id": hook["id"]}).status_code == 202
    wait_for(lambda: len(receiver.ok()) == 3, "a test event after re-enabling")
