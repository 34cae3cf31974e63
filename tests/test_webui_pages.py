"""The dashboard's frame in a real browser (issue 15): sign-up with the secret shown once,
login and logout, buckets and their settings, access keys, usage, CSRF, and two accounts
that never see each other's buckets. Debian's Chromium through Playwright against the
real server; every page is screenshotted in light and dark (into tests.conftest.SCREENSHOTS)
and checked for labels and contrast."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import boto3
import httpx
import pytest
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError
from playwright.sync_api import Browser, Page, expect

from tests.a11y import accessibility_problems
from tests.browser import open_page, screenshot
from tests.conftest import SCREENSHOTS, TEST_CONFIG
from tests.folio_process import FolioProcess, running_server
from tests.web_client import page_server

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FolioProcess]:
    # Every test signs up or logs in from 127.0.0.1: more attempts than the default 10 a
    # minute (that throttling has its own test below).
    config = TEST_CONFIG + "\n[accounts]\nlogin_attempts_per_minute = 1000\n"
    yield from running_server(tmp_path_factory, "webui-pages", config)


def s3_client(server: FolioProcess, access_key: str, secret_key: str):
    # Default configuration, as a user would copy the keys into their client.
    return boto3.client(
        "s3",
        endpoint_url=server.s3_url,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name="us-east-1",
        config=BotoConfig(),
    )


def new_email() -> str:
    return f"web-{uuid.uuid4().hex[:10]}@example.com"


def sign_up(page: Page, server: FolioProcess, email: str) -> tuple[str, str]:
    """Sign up through the form: the key pair the welcome page shows."""
    page.goto(f"{server.web_url}/signup")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_role("heading", name="Welcome to Folio")).to_be_visible()
    return page.locator("#access-key").inner_text().strip(), page.locator("#secret-key").inner_text().strip()


def log_in(page: Page, server: FolioProcess, email: str, password: str = PASSWORD) -> None:
    page.goto(f"{server.web_url}/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    # Wait for the answer to the POST (a page, right or wrong): a goto right after the click
    # would cancel the login, and the same message on the old page would pass an expect.
    with page.expect_navigation():
        page.get_by_role("button", name="Log in").click()


def check_page(page: Page, name: str) -> None:
    """Screenshots in both themes and the accessibility check, for one page."""
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        screenshot(page, SCREENSHOTS, f"{name}-{scheme}", full_page=True)
        assert accessibility_problems(page) == [], (name, scheme)


def test_sign_up_shows_the_secret_once_and_the_key_works(server: FolioProcess, browser: Browser) -> None:
    email = new_email()
    with open_page(browser, permissions=["clipboard-read", "clipboard-write"]) as page:
        access_key, secret_key = sign_up(page, server, email)
        assert page.get_by_role("alert").first.inner_text().startswith("Copy the secret now.")
        check_page(page, "welcome")
        page.locator('button[data-copy="secret-key"]').click()
        expect(page.locator('button[data-copy="secret-key"]')).to_have_text("Copied")
        assert page.evaluate("navigator.clipboard.readText()") == secret_key

        s3 = s3_client(server, access_key, secret_key)
        buckets = [b["Name"] for b in s3.list_buckets()["Buckets"]]
        assert len(buckets) == 1  # the default bucket sign-up made
        s3.put_object(Bucket=buckets[0], Key="hello.txt", Body=b"hi")

        # Never again: not on the keys page, not on any other page.
        for path in ("/keys", "/buckets", "/usage", "/settings"):
            page.goto(f"{server.web_url}{path}")
            assert secret_key not in page.content(), path
        assert access_key in page.goto(f"{server.web_url}/keys").text()


def test_log_out_log_in_and_a_wrong_password(server: FolioProcess, browser: Browser) -> None:
    email = new_email()
    with open_page(browser) as page:
        sign_up(page, server, email)
        page.get_by_role("button", name="Log out").click()
        expect(page).to_have_url(f"{server.web_url}/login")
        page.goto(f"{server.web_url}/buckets")
        expect(page).to_have_url(f"{server.web_url}/login?next=/buckets")  # no session: to the login page

        log_in(page, server, email, "not the password")
        expect(page.get_by_role("alert")).to_have_text("Wrong email or password.")
        check_page(page, "login-error")

        log_in(page, server, email)
        expect(page).to_have_url(f"{server.web_url}/buckets")
        expect(page.get_by_role("heading", name="Buckets")).to_be_visible()
        check_page(page, "buckets")


def test_signup_errors_are_shown_on_the_form(server: FolioProcess, browser: Browser) -> None:
    email = new_email()
    with open_page(browser) as page:
        sign_up(page, server, email)
    with open_page(browser, f"{server.web_url}/signup") as page:
        page.get_by_label("Email").fill(email)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign up").click()
        expect(page.get_by_role("alert")).to_have_text("An account with this email already exists.")
        check_page(page, "signup-error")


def test_buckets_create_settings_and_typed_delete(server: FolioProcess, browser: Browser) -> None:
    email = new_email()
    with open_page(browser) as page:
        access_key, secret_key = sign_up(page, server, email)
        s3 = s3_client(server, access_key, secret_key)
        page.goto(f"{server.web_url}/buckets")

        # A bad name: the rules, and the name kept in the field to fix it.
        page.get_by_label("New bucket").fill("Bad_Name")
        page.evaluate("document.querySelector('#bucket-name').removeAttribute('pattern')")  # the server decides
        page.get_by_role("button", name="Create bucket").click()
        expect(page.locator("p.error")).to_be_visible()
        expect(page.get_by_label("New bucket")).to_have_value("Bad_Name")
        assert "lowercase letters" in page.locator("#name-rules").inner_text()

        name = f"web-{uuid.uuid4().hex[:12]}"
        page.goto(f"{server.web_url}/buckets")
        page.get_by_label("New bucket").fill(name)
        page.get_by_role("button", name="Create bucket").click()
        expect(page).to_have_url(f"{server.web_url}/buckets/{name}")  # created: its object browser
        page.goto(f"{server.web_url}/buckets")
        expect(page.get_by_role("link", name=name, exact=True)).to_be_visible()
        assert s3.get_bucket_versioning(Bucket=name)["Status"] == "Enabled"

        # Public read is the bucket policy.
        s3.put_object(Bucket=name, Key="page.html", Body=b"<p>public</p>")
        page.goto(f"{server.web_url}/buckets/{name}/settings")
        check_page(page, "bucket-settings")
        page.get_by_label("Anyone may read every object").check()
        page.get_by_role("button", name="Save").click()
        expect(page.get_by_role("status")).to_have_text("Saved.")
        assert "FolioPublicRead" in s3.get_bucket_policy(Bucket=name)["Policy"]
        assert httpx.get(f"{server.s3_url}/{name}/page.html", trust_env=False).content == b"<p>public</p>"
        page.get_by_label("Anyone may read every object").uncheck()
        page.get_by_role("button", name="Save").click()
        expect(page.get_by_role("status")).to_have_text("Saved.")
        assert httpx.get(f"{server.s3_url}/{name}/page.html", trust_env=False).status_code == 403

        # Not empty: deleting needs the name typed; a wrong name deletes nothing.
        page.goto(f"{server.web_url}/buckets")
        page.get_by_role("button", name=f"Delete bucket {name}").click()
        expect(page.locator("p.error")).to_contain_text("is not empty")
        page.get_by_label(f"Type {name} to delete it").fill("something else")
        with page.expect_navigation():
            page.get_by_role("button", name="Delete bucket", exact=True).click()
        assert s3.head_bucket(Bucket=name)["ResponseMetadata"]["HTTPStatusCode"] == 200
        page.get_by_label(f"Type {name} to delete it").fill(name)
        page.get_by_role("button", name="Delete bucket", exact=True).click()
        expect(page.get_by_role("link", name=name, exact=True)).to_have_count(0)
        with pytest.raises(ClientError):
            s3.head_bucket(Bucket=name)


def test_access_keys_created_once_and_revoked(server: FolioProcess, browser: Browser) -> None:
    with open_page(browser) as page:
        sign_up(page, server, new_email())
        page.goto(f"{server.web_url}/keys")
        page.get_by_label("Name").fill("laptop")
        page.get_by_role("button", name="Create key").click()
        access_key = page.locator("#access-key").inner_text().strip()
        secret_key = page.locator("#secret-key").inner_text().strip()
        check_page(page, "keys-created")
        s3 = s3_client(server, access_key, secret_key)
        assert s3.list_buckets()["ResponseMetadata"]["HTTPStatusCode"] == 200

        page.goto(f"{server.web_url}/keys")
        assert secret_key not in page.content()
        check_page(page, "keys")
        page.once("dialog", lambda dialog: dialog.accept())  # "Revoke laptop? ..."
        page.get_by_role("button", name="Revoke key laptop").click()
        expect(page.get_by_role("button", name="Revoke key laptop")).to_have_count(0)  # htmx removed the row
        with pytest.raises(ClientError) as refused:
            s3.list_buckets()
        assert refused.value.response["Error"]["Code"] == "InvalidAccessKeyId"

        page.get_by_label("Kind").select_option("docgen")
        page.get_by_role("button", name="Create key").click()
        assert page.locator("#api-key").inner_text().startswith("cl-")


def test_usage_warns_from_80_percent_of_the_quota(server: FolioProcess, browser: Browser) -> None:
    email = new_email()
    created = server.create_account(email, PASSWORD, plan="tiny")  # 1,000,000 bytes
    s3 = s3_client(server, created["accessKey"], created["secretKey"])
    bucket = f"usage-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="big.bin", Body=b"x" * 650_000)
    s3.put_object(Bucket=bucket, Key="big.bin", Body=b"y" * 200_000)  # the first is now a previous version
    with open_page(browser) as page:
        log_in(page, server, email)
        page.goto(f"{server.web_url}/usage")
        assert "85.0%" in page.locator("main").inner_text()
        expect(page.get_by_role("alert")).to_contain_text("over 80%")
        expect(page.locator("#versions-share")).to_contain_text("in 1 version (76.5% of the storage used)")
        expect(page.get_by_role("link", name=bucket)).to_be_visible()
        check_page(page, "usage")
        page.goto(f"{server.web_url}/settings")
        assert created["accountId"] in page.locator("main").inner_text()
        check_page(page, "settings")


def test_a_form_posted_from_another_origin_is_refused(server: FolioProcess, browser: Browser) -> None:
    email = new_email()
    name = f"csrf-{uuid.uuid4().hex[:12]}"
    attack = (
        f'<form id="f" method="post" action="{server.web_url}/buckets">'
        f'<input name="name" value="{name}"></form><script>document.getElementById("f").submit()</script>'
    ).encode()
    with page_server({"/attack.html": attack}) as origin, open_page(browser) as page:
        access_key, secret_key = sign_up(page, server, email)
        page.goto(f"{origin}/attack.html")
        expect(page.get_by_role("heading", name="Request refused")).to_be_visible()
        assert page.evaluate("document.title").startswith("Request refused")
    assert name not in [b["Name"] for b in s3_client(server, access_key, secret_key).list_buckets()["Buckets"]]

    # And without the page's token (same origin, no token): refused too.
    with open_page(browser) as page:
        sign_up(page, server, new_email())
        status = page.evaluate(
            """async (name) => (await fetch('/buckets', {method: 'POST', body: new URLSearchParams({name})})).status""",
            name,
        )
        assert status == 403


def test_two_accounts_never_see_each_others_buckets(server: FolioProcess, browser: Browser) -> None:
    with open_page(browser) as page_a, open_page(browser) as page_b:
        key_a, secret_a = sign_up(page_a, server, new_email())
        key_b, secret_b = sign_up(page_b, server, new_email())
        bucket_a = f"only-a-{uuid.uuid4().hex[:10]}"
        s3_client(server, key_a, secret_a).create_bucket(Bucket=bucket_a)
        s3_client(server, key_a, secret_a).put_object(Bucket=bucket_a, Key="secret-of-a.txt", Body=b"a")
        bucket_b = s3_client(server, key_b, secret_b).list_buckets()["Buckets"][0]["Name"]

        page_b.goto(f"{server.web_url}/buckets")
        assert bucket_a not in page_b.content()
        assert bucket_b in page_b.content()
        for path in (f"/buckets/{bucket_a}/settings", f"/buckets/{bucket_a}"):
            response = page_b.goto(f"{server.web_url}{path}")
            assert response is not None and response.status == 404, path
            assert "secret-of-a" not in page_b.content(), path
        page_a.goto(f"{server.web_url}/usage")
        assert bucket_b not in page_a.content()


def test_pages_fit_a_375_pixel_screen(server: FolioProcess, browser: Browser) -> None:
    with open_page(browser, viewport=(375, 800)) as page:
        sign_up(page, server, new_email())
        for path, name in (("/buckets", "buckets-narrow"), ("/keys", "keys-narrow"), ("/usage", "usage-narrow")):
            page.goto(f"{server.web_url}{path}")
            # Nothing wider than the screen: no sideways scrolling.
            assert page.evaluate("document.documentElement.scrollWidth") <= 375, path
            check_page(page, name)


def test_login_throttling_is_shown_as_a_message(tmp_path_factory: pytest.TempPathFactory, browser: Browser) -> None:
    config = TEST_CONFIG + "\n[accounts]\nlogin_attempts_per_minute = 3\n"
    for throttled in running_server(tmp_path_factory, "webui-throttle", config):
        with open_page(browser) as page:
            for _attempt in range(3):
                log_in(page, throttled, "nobody@example.com", "wrong password")
                expect(page.get_by_role("alert")).to_have_text("Wrong email or password.")
            log_in(page, throttled, "nobody@example.com", "wrong password")
            expect(page.get_by_role("alert")).to_have_text("Too many login attempts; wait before trying again.")
            check_page(page, "login-throttled")


def test_a_30_day_share_link_downloads_counts_and_dies_on_revoke(server: FolioProcess, browser: Browser) -> None:
    with open_page(browser) as page:
        access_key, secret_key = sign_up(page, server, new_email())
        s3 = s3_client(server, access_key, secret_key)
        bucket = s3.list_buckets()["Buckets"][0]["Name"]
        s3.put_object(Bucket=bucket, Key="report.pdf", Body=b"%PDF-1.4 shared")
        page.goto(f"{server.web_url}/buckets/{bucket}/object?key=report.pdf")
        page.get_by_role("link", name="Share a link").click()
        expect(page.get_by_label("File (key)")).to_have_value("report.pdf")
        page.get_by_label("Expires after").select_option("30")
        page.get_by_role("button", name="Create link").click()
        url = page.locator("#share-url").inner_text().strip()
        check_page(page, "shares-created")

        got = httpx.get(url, trust_env=False)  # no credentials
        assert (got.status_code, got.content) == (200, b"%PDF-1.4 shared")
        listed = httpx.get(f"{server.web_url}/api/shares", headers={"X-API-Key": f"{access_key}:{secret_key}"})
        (share,) = listed.json()["shares"]
        expires_in_days = (
            datetime.fromisoformat(share["expiresAt"].replace("Z", "+00:00")) - datetime.now(UTC)
        ).total_seconds() / 86400
        assert 29.9 < expires_in_days <= 30

        page.goto(f"{server.web_url}/shares")
        row = page.get_by_role("row").filter(has_text="report.pdf")
        expect(row).to_contain_text("active")
        expect(row.get_by_role("cell").nth(2)).to_have_text("1")
        assert url not in page.content()  # the link is shown once
        check_page(page, "shares")
        page.get_by_role("button", name="Revoke the link to report.pdf").click()
        expect(page.get_by_role("row").filter(has_text="report.pdf")).to_contain_text("revoked")
        assert httpx.get(url, trust_env=False).status_code == 404


def test_cors_rules_and_retention_edited_as_a_table(server: FolioProcess, browser: Browser) -> None:
    with open_page(browser) as page:
        access_key, secret_key = sign_up(page, server, new_email())
        s3 = s3_client(server, access_key, secret_key)
        bucket = s3.list_buckets()["Buckets"][0]["Name"]
        page.goto(f"{server.web_url}/buckets/{bucket}/settings")
        page.get_by_label("Rule 1 allowed origins").fill("https://app.example, https://admin.example")
        page.locator("#cors-0-PUT").check()
        page.get_by_label("Rule 1 allowed headers").fill("content-type x-amz-*")
        page.get_by_label("Rule 1 exposed headers").fill("etag")
        page.get_by_label("Rule 1 cache seconds").fill("600")
        page.get_by_label("This bucket's own").check()
        page.get_by_label("Versions kept per key").fill("3")
        page.get_by_label("Days kept").fill("7")
        page.get_by_role("button", name="Save").click()
        expect(page.get_by_role("status")).to_have_text("Saved.")
        (rule,) = s3.get_bucket_cors(Bucket=bucket)["CORSRules"]
        assert rule["AllowedOrigins"] == ["https://app.example", "https://admin.example"]
        assert rule["AllowedMethods"] == ["GET", "PUT"]
        assert rule["AllowedHeaders"] == ["content-type", "x-amz-*"]
        assert (rule["ExposeHeaders"], rule["MaxAgeSeconds"]) == (["etag"], 600)
        expect(page.get_by_label("This bucket's own")).to_be_checked()
        expect(page.get_by_label("Versions kept per key")).to_have_value("3")
        check_page(page, "bucket-settings-cors")

        # A rule S3 refuses: its message, and nothing saved (public read stays off too).
        page.get_by_label("Rule 2 allowed origins").fill("https://*.*.example")
        page.get_by_label("Anyone may read every object").check()
        page.get_by_role("button", name="Save").click()
        expect(page.locator("p.error")).to_contain_text("can not have more than one wildcard")
        assert len(s3.get_bucket_cors(Bucket=bucket)["CORSRules"]) == 1
        with pytest.raises(ClientError):
            s3.get_bucket_policy(Bucket=bucket)

        # Clearing the origins removes the rule: no CORS configuration left.
        page.goto(f"{server.web_url}/buckets/{bucket}/settings")
        page.get_by_label("Rule 1 allowed origins").fill("")
        page.get_by_label("The plan's").check()
        page.get_by_role("button", name="Save").click()
        expect(page.get_by_role("status")).to_have_text("Saved.")
        with pytest.raises(ClientError) as gone:
            s3.get_bucket_cors(Bucket=bucket)
        assert gone.value.response["Error"]["Code"] == "NoSuchCORSConfiguration"
        expect(page.get_by_label("The plan's")).to_be_checked()


def test_a_missing_page_is_a_page_and_a_missing_api_path_stays_json(server: FolioProcess, browser: Browser) -> None:
    with open_page(browser) as page:
        response = page.goto(f"{server.web_url}/no/such/page")
        assert response is not None and response.status == 404
        expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
    api = httpx.get(f"{server.web_url}/api/no-such-thing", headers={"accept": "text/html"}, trust_env=False)
    assert api.status_code == 404 and api.json()["error"]["code"] == "NotFound"


def test_sign_up_and_create_a_bucket_with_the_keyboard_alone(server: FolioProcess, browser: Browser) -> None:
    def tab_to(page: Page, selector: str, limit: int = 30) -> None:
        for _ in range(limit):
            page.keyboard.press("Tab")
            if page.evaluate("(s) => document.activeElement === document.querySelector(s)", selector):
                return
        raise AssertionError(f"{selector} is not reachable with Tab")

    with open_page(browser, f"{server.web_url}/signup") as page:
        tab_to(page, "#email")
        page.keyboard.type(new_email())
        tab_to(page, "#password")
        page.keyboard.type(PASSWORD)
        page.keyboard.press("Enter")
        expect(page.get_by_role("heading", name="Welcome to Folio")).to_be_visible()
        page.goto(f"{server.web_url}/buckets")
        name = f"keys-{uuid.uuid4().hex[:12]}"
        tab_to(page, "#bucket-name")
        page.keyboard.type(name)
        page.keyboard.press("Enter")
        expect(page).to_have_url(f"{server.web_url}/buckets/{name}")  # created: its object browser
        page.goto(f"{server.web_url}/buckets")
        expect(page.get_by_role("link", name=name, exact=True)).to_be_visible()
        # The skip link is the first stop and leads to the content.
        page.evaluate("document.activeElement.blur()")
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.textContent") == "Skip to content"
