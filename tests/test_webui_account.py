"""Account settings in a real browser (issue 16): sessions listed and ended, a password
change that ends every other session, and deleting the account, after which nothing of
it remains, neither in the database (read directly) nor in the blob directory on disk.
The same operations through the JSON API (docs/dashboard-api.md), and the first-start
admin that may not delete itself."""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError
from playwright.sync_api import Browser, Page, expect

from tests.browser import open_page, screenshot
from tests.conftest import SCREENSHOTS, TEST_CONFIG
from tests.docgen_helpers import HELLO_B64, b64, wait_job
from tests.folio_process import FolioProcess, running_server
from tests.server_db import server_db
from tests.test_webui_pages import PASSWORD, check_page, log_in, new_email, s3_client, sign_up

ADMIN_EMAIL = "root@example.com"
ADMIN_PASSWORD = "the operator's password"
NEW_PASSWORD = "a brand new passphrase"
INLINE_LIMIT = 64 * 1024  # docs/storage.md: larger objects get a blob file


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FolioProcess]:
    config = (
        TEST_CONFIG
        + "\n[accounts]\nlogin_attempts_per_minute = 1000\n"
        + "\n[webhooks]\nallow_loopback_targets = true\nallow_http = true\n"
        + "\n[docgen]\nallow_loopback_targets = true\n"
    )
    env = {"FOLIO_ROOT_EMAIL": ADMIN_EMAIL, "FOLIO_ROOT_PASSWORD": ADMIN_PASSWORD}
    yield from running_server(tmp_path_factory, "webui-account", config, env=env)


def database(server: FolioProcess) -> AbstractContextManager[Any]:
    """The server's database on either engine, read-only (it keeps running)."""
    return server_db(server)


def session_id_of(page: Page, server: FolioProcess) -> str:
    """The id of the page's own session, as the JSON API lists it."""
    listed = page.request.get(f"{server.web_url}/api/sessions").json()["sessions"]
    return next(s["id"] for s in listed if s["current"])


def expect_logged_out(page: Page, server: FolioProcess) -> None:
    page.goto(f"{server.web_url}/buckets")
    expect(page).to_have_url(f"{server.web_url}/login?next=/buckets")


def expect_logged_in(page: Page, server: FolioProcess) -> None:
    page.goto(f"{server.web_url}/buckets")
    expect(page.get_by_role("heading", name="Buckets")).to_be_visible()


def change_password(page: Page, current: str, new: str, repeat: str | None = None) -> None:
    page.get_by_label("Current password").fill(current)
    page.get_by_label("New password", exact=True).fill(new)
    page.get_by_label("Repeat the new password").fill(new if repeat is None else repeat)
    page.get_by_role("button", name="Change password").click()


def test_sessions_are_listed_and_ended_and_a_new_password_ends_the_others(
    server: FolioProcess, browser: Browser
) -> None:
    email = new_email()
    with open_page(browser) as mine, open_page(browser) as laptop, open_page(browser) as phone:
        sign_up(mine, server, email)
        for other in (laptop, phone):
            log_in(other, server, email)
            expect(other).to_have_url(f"{server.web_url}/buckets")

        mine.goto(f"{server.web_url}/settings")
        rows = mine.locator("#sessions tbody tr")
        expect(rows).to_have_count(3)
        expect(rows.first).not_to_contain_text("This session")  # newest first: mine is the oldest
        expect(rows.last).to_contain_text("This session")
        expect(rows.last.get_by_role("button")).to_have_count(0)  # this one is ended by logging out
        check_page(mine, "settings-sessions")
        mine.set_viewport_size({"width": 375, "height": 800})  # a phone: nothing wider than the screen
        assert mine.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        screenshot(mine, SCREENSHOTS, "settings-sessions-375", full_page=True)
        mine.set_viewport_size({"width": 1280, "height": 720})

        # End the phone's session from here: the phone is logged out, the laptop is not.
        phone_session = session_id_of(phone, server)
        mine.locator(f"#session-{phone_session}").get_by_role("button", name="End").click()
        expect(rows).to_have_count(2)
        expect(mine.locator(f"#session-{phone_session}")).to_have_count(0)
        expect_logged_out(phone, server)
        expect_logged_in(laptop, server)

        # A wrong current password and a mistyped repeat change nothing.
        mine.goto(f"{server.web_url}/settings")
        change_password(mine, "not my password", NEW_PASSWORD)
        expect(mine.get_by_role("alert")).to_have_text("The current password is not right.")
        check_page(mine, "settings-password-error")
        change_password(mine, PASSWORD, NEW_PASSWORD, NEW_PASSWORD + "!")
        expect(mine.get_by_role("alert")).to_have_text("The two new passwords are not the same.")
        expect_logged_in(laptop, server)

        mine.goto(f"{server.web_url}/settings")
        change_password(mine, PASSWORD, NEW_PASSWORD)
        expect(mine.get_by_role("status")).to_have_text("Your password was changed; 1 other session ended.")
        expect(mine.locator("#sessions tbody tr")).to_have_count(1)
        expect_logged_out(laptop, server)  # the other browser context
        expect_logged_in(mine, server)  # this one stays

    with open_page(browser) as fresh:
        log_in(fresh, server, email, PASSWORD)
        expect(fresh.get_by_role("alert")).to_have_text("Wrong email or password.")
        log_in(fresh, server, email, NEW_PASSWORD)
        expect(fresh).to_have_url(f"{server.web_url}/buckets")


# -- deleting the account ------------------------------------------------------------------


def _count(db: sqlite3.Connection, sql: str, args: tuple = ()) -> int:
    return db.execute(sql, args).fetchone()[0]


def _count_in(db: sqlite3.Connection, table: str, column: str, values: list | set) -> int:
    """Rows of `table` whose `column` is one of `values`."""
    values = list(values)
    marks = ",".join("?" * len(values))
    return _count(db, f"SELECT count(*) FROM {table} WHERE {column} IN ({marks})", tuple(values))


def _blob_ids(db: sqlite3.Connection, bucket_ids: list[int]) -> set[str]:
    marks = ",".join("?" * len(bucket_ids))
    texts = [
        row[0] for row in db.execute(f"SELECT segments FROM objects WHERE bucket_id IN ({marks})", bucket_ids)
    ]
    texts += [
        row[0]
        for row in db.execute(
            "SELECT p.segments FROM upload_parts p JOIN uploads u ON u.id = p.upload_id"
            f" WHERE u.bucket_id IN ({marks})",
            bucket_ids,
        )
    ]
    return {segment[0] for text in texts if text for segment in json.loads(text)}


def _blob_path(server: FolioProcess, blob_id: str) -> Path:
    # docs/storage.md: blobs/ab/cd/<blob-id>
    return server.data_dir / "blobs" / blob_id[:2] / blob_id[2:4] / blob_id


def _columns(db: Any) -> dict[str, set[str]]:
    if not isinstance(db, sqlite3.Connection):  # PostgreSQL
        found: dict[str, set[str]] = {}
        for table, column in db.execute(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema()"
        ):
            found.setdefault(table, set()).add(column)
        return found
    tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    return {table: {row[1] for row in db.execute(f"PRAGMA table_info({table})")} for table in tables}


def _fill_the_account(server: FolioProcess, access_key: str, secret_key: str) -> dict[str, Any]:
    """Something of every kind an account can own; returns what the checks need."""
    s3 = s3_client(server, access_key, secret_key)
    bucket = f"doomed-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)  # versioned (Time Machine) by default
    big = b"v1" * (INLINE_LIMIT // 2 + 1000)
    s3.put_object(Bucket=bucket, Key="big.bin", Body=big)
    s3.put_object(Bucket=bucket, Key="big.bin", Body=big[::-1])  # a second version, a second blob
    s3.put_object(Bucket=bucket, Key="small.txt", Body=b"small")
    s3.delete_object(Bucket=bucket, Key="small.txt")  # a delete marker
    part = b"p" * (5 * 1024 * 1024)
    unfinished = s3.create_multipart_upload(Bucket=bucket, Key="unfinished.bin")["UploadId"]
    s3.upload_part(Bucket=bucket, Key="unfinished.bin", UploadId=unfinished, PartNumber=1, Body=part)
    done = s3.create_multipart_upload(Bucket=bucket, Key="assembled.bin")["UploadId"]
    etag = s3.upload_part(Bucket=bucket, Key="assembled.bin", UploadId=done, PartNumber=1, Body=part)["ETag"]
    s3.complete_multipart_upload(
        Bucket=bucket, Key="assembled.bin", UploadId=done,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]},
    )  # fmt: skip

    pair = {"X-API-Key": f"{access_key}:{secret_key}"}
    with httpx.Client(base_url=server.web_url, headers=pair, timeout=60) as api:
        account_id = api.get("/api/account").json()["id"]
        assert api.post("/api/keys", json={"name": "second"}).status_code == 201
        doc_key = api.post("/api/keys", json={"name": "docs", "type": "docgen"}).json()["apiKey"]
        hook = api.post(
            "/api/webhooks", json={"url": "http://127.0.0.1:9/hook", "events": ["object.created"]}
        )
        assert hook.status_code == 201, hook.text
        s3.put_object(Bucket=bucket, Key="after-hook.txt", Body=b"makes a delivery")
        share = api.post("/api/shares", json={"bucket": bucket, "key": "big.bin"})
        assert share.status_code == 201, share.text
    with httpx.Client(base_url=server.web_url, headers={"X-API-Key": doc_key}, timeout=60) as docs:
        saved = docs.post("/v2/templates", json={"name": "hello", "template": b64("<p>{{ name }}</p>")})
        assert saved.status_code in (200, 201), saved.text
        job = docs.post("/v2/html/pdf", json={"html": HELLO_B64, "webhook": "http://127.0.0.1:9/job"})
        assert job.status_code in (200, 201, 202), job.text
        assert wait_job(docs, job.json()["id"])["status"] == "success"
        storage = {
            "bucket": "elsewhere",
            "region": "us-east-1",
            "accessKeyId": "AKIA",
            "secretAccessKey": "s",
        }
        assert docs.post("/v2/storage", json=storage).status_code == 201
    return {"id": account_id, "bucket": bucket, "doc_key": doc_key, "s3": s3}


def test_deleting_the_account_removes_everything_from_the_database_and_the_disk(
    server: FolioProcess, browser: Browser
) -> None:
    # A neighbour whose data must survive.
    with httpx.Client(base_url=server.web_url, timeout=60) as web:
        other = web.post("/api/auth/signup", json={"email": new_email(), "password": PASSWORD}).json()
    other_s3 = s3_client(server, other["accessKey"], other["secretKey"])
    other_s3.put_object(Bucket=other["defaultBucket"], Key="keep.bin", Body=b"k" * (INLINE_LIMIT * 2))

    email = new_email()
    with open_page(browser) as page:
        access_key, secret_key = sign_up(page, server, email)
        owned = _fill_the_account(server, access_key, secret_key)
        account_id = owned["id"]

        with database(server) as db:
            columns = _columns(db)
            bucket_ids = [
                row[0] for row in db.execute("SELECT id FROM buckets WHERE account_id = ?", (account_id,))
            ]
            assert len(bucket_ids) == 3  # the default bucket, ours, the document files'
            blob_ids = _blob_ids(db, bucket_ids)
            hook_ids = [
                row[0] for row in db.execute("SELECT id FROM webhooks WHERE account_id = ?", (account_id,))
            ]
            marks = ",".join("?" * len(bucket_ids))
            upload_ids = [
                row[0]
                for row in db.execute(f"SELECT id FROM uploads WHERE bucket_id IN ({marks})", bucket_ids)
            ]
            neighbour = db.execute(
                "SELECT id FROM buckets WHERE name = ?", (other["defaultBucket"],)
            ).fetchone()[0]
            other_blobs = _blob_ids(db, [neighbour])
            # The account really owns something of every kind before it goes.
            for table in ("access_keys", "doc_keys", "webhooks", "shares", "sessions", "events", "docgen_jobs",
                          "docgen_assets", "docgen_templates", "docgen_storage", "buckets"):  # fmt: skip
                assert _count(db, f"SELECT count(*) FROM {table} WHERE account_id = ?", (account_id,)), table
            # The webhook's delivery and the job's own (its `webhook`) are written by the worker.
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not (
                _count_in(db, "deliveries", "account_id", [account_id])
                and _count_in(db, "deliveries", "webhook_id", hook_ids)
            ):
                time.sleep(0.1)
            assert _count_in(db, "deliveries", "account_id", [account_id])
            assert _count_in(db, "deliveries", "webhook_id", hook_ids)
            for table in ("objects", "uploads", "completed_uploads"):
                assert _count_in(db, table, "bucket_id", bucket_ids), table
        assert len(blob_ids) >= 4  # two versions of big.bin, the unfinished part, the assembled object
        assert all(_blob_path(server, blob).exists() for blob in blob_ids | other_blobs)

        page.goto(f"{server.web_url}/settings")
        confirm = page.get_by_label("Type your email address")
        confirm.fill("someone.else@example.com")
        page.get_by_role("button", name="Delete account").click()
        expect(page.get_by_role("alert")).to_have_text("Type your account's email address to confirm.")
        check_page(page, "settings-delete-error")
        with database(server) as db:
            assert _count(db, "SELECT count(*) FROM accounts WHERE id = ?", (account_id,)) == 1

        page.get_by_label("Type your email address").fill(email.upper())
        page.get_by_role("button", name="Delete account").click()
        expect(page.get_by_role("heading", name="Account deleted")).to_be_visible()
        check_page(page, "account-deleted")
        expect_logged_out(page, server)
        log_in(page, server, email)
        expect(page.get_by_role("alert")).to_have_text("Wrong email or password.")

    # Its keys are dead everywhere.
    with pytest.raises(ClientError) as refused:
        owned["s3"].list_buckets()
    assert refused.value.response["Error"]["Code"] == "InvalidAccessKeyId"
    assert httpx.get(f"{server.web_url}/v2/jobs", headers={"X-API-Key": owned["doc_key"]}).status_code in (
        401,
        403,
    )

    # The database: no table holds a row of the account or of its buckets.
    with database(server) as db:
        left: dict[str, int] = {}
        for table, names in columns.items():
            if "account_id" in names:
                left[f"{table}.account_id"] = _count_in(db, table, "account_id", [account_id])
            if "bucket_id" in names:
                left[f"{table}.bucket_id"] = _count_in(db, table, "bucket_id", bucket_ids)
        left["accounts"] = _count(
            db, "SELECT count(*) FROM accounts WHERE id = ? OR email = ?", (account_id, email)
        )
        left["deliveries.webhook_id"] = _count_in(db, "deliveries", "webhook_id", hook_ids)
        left["upload_parts.upload_id"] = _count_in(db, "upload_parts", "upload_id", upload_ids)
        left["blobs.id"] = _count_in(db, "blobs", "id", blob_ids)
        assert {name for name in left if name.endswith(".account_id")} >= {
            "access_keys.account_id", "sessions.account_id", "events.account_id", "webhooks.account_id",
            "deliveries.account_id", "doc_keys.account_id", "shares.account_id", "docgen_jobs.account_id",
            "docgen_assets.account_id", "docgen_templates.account_id", "docgen_storage.account_id",
            "buckets.account_id", "quota_levels.account_id",
        }  # fmt: skip
        assert {name: count for name, count in left.items() if count} == {}

    # The disk: every blob of its objects and parts is gone (freed after the commit), the
    # neighbour's are still there.
    deadline = time.monotonic() + 10
    while any(_blob_path(server, blob).exists() for blob in blob_ids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [blob for blob in blob_ids if _blob_path(server, blob).exists()] == []
    assert all(_blob_path(server, blob).exists() for blob in other_blobs)
    kept = other_s3.get_object(Bucket=other["defaultBucket"], Key="keep.bin")["Body"].read()
    assert kept == b"k" * (INLINE_LIMIT * 2)


def test_the_first_start_admin_may_not_delete_itself(server: FolioProcess, browser: Browser) -> None:
    with open_page(browser) as page:
        log_in(page, server, ADMIN_EMAIL, ADMIN_PASSWORD)
        expect(page).to_have_url(f"{server.web_url}/buckets")
        page.goto(f"{server.web_url}/settings")
        expect(page.get_by_text("The first-start admin account cannot be deleted")).to_be_visible()
        expect(page.get_by_role("button", name="Delete account")).to_have_count(0)
        check_page(page, "settings-admin")
    pair = {"X-API-Key": f"{server.access_key}:{server.secret_key}"}
    refused = httpx.request(
        "DELETE", f"{server.web_url}/api/account", headers=pair, json={"confirm": ADMIN_EMAIL}
    )
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["code"] == "AdminAccount"
    assert httpx.get(f"{server.web_url}/api/account", headers=pair).status_code == 200


def test_the_json_api_changes_the_password_lists_and_ends_sessions_and_deletes(server: FolioProcess) -> None:
    email = new_email()
    with (
        httpx.Client(base_url=server.web_url, timeout=30) as first,
        httpx.Client(base_url=server.web_url, timeout=30) as second,
        httpx.Client(base_url=server.web_url, timeout=30) as third,
    ):
        assert first.post("/api/auth/signup", json={"email": email, "password": PASSWORD}).status_code == 201
        for other in (second, third):
            assert (
                other.post("/api/auth/login", json={"email": email, "password": PASSWORD}).status_code == 200
            )
        listed = first.get("/api/sessions").json()["sessions"]
        assert len(listed) == 3 and [s["current"] for s in listed] == [False, False, True]
        assert set(listed[0]) == {"id", "createdAt", "expiresAt", "current"}

        third_id = next(s["id"] for s in third.get("/api/sessions").json()["sessions"] if s["current"])
        assert first.delete("/api/sessions", params={"id": third_id}).json() == {"success": True}
        assert third.get("/api/account").status_code == 401
        assert first.delete("/api/sessions", params={"id": third_id}).status_code == 404

        wrong = first.post(
            "/api/account/password", json={"currentPassword": "nope", "newPassword": NEW_PASSWORD}
        )
        assert wrong.status_code == 403 and wrong.json()["error"]["details"]["field"] == "currentPassword"
        short = first.post(
            "/api/account/password", json={"currentPassword": PASSWORD, "newPassword": "short"}
        )
        assert short.status_code == 400 and short.json()["error"]["details"]["field"] == "newPassword"
        changed = first.post(
            "/api/account/password", json={"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD}
        )
        assert changed.json() == {"success": True, "sessionsEnded": 1}
        assert second.get("/api/account").status_code == 401
        assert first.get("/api/account").status_code == 200
        assert (
            second.post("/api/auth/login", json={"email": email, "password": NEW_PASSWORD}).status_code == 200
        )

        mismatch = first.request("DELETE", "/api/account", json={"confirm": "other@example.com"})
        assert mismatch.status_code == 400 and mismatch.json()["error"]["details"]["field"] == "confirm"
        deleted = first.request("DELETE", "/api/account", json={"confirm": email})
        assert deleted.json() == {"success": True}
        assert first.get("/api/account").status_code == 401
        assert second.get("/api/account").status_code == 401
        assert (
            second.post("/api/auth/login", json={"email": email, "password": NEW_PASSWORD}).status_code == 401
        )
