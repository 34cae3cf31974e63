"""Share links: anyone with the link downloads the file without credentials until it
expires or is revoked; downloads are counted and recorded as events; links are the
owner's alone to make, list and revoke; bad input gets JSON errors."""

from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.folio_process import FolioProcess
from tests.server_db import server_db


@pytest.fixture
def owner(folio: FolioProcess) -> dict[str, Any]:
    created = folio.create_account(f"share-{uuid.uuid4().hex[:10]}@example.com")
    headers = {"X-API-Key": f"{created['accessKey']}:{created['secretKey']}"}
    upload = httpx.post(
        f"{folio.web_url}/api/v1/files",
        headers=headers,
        files={"file": ("notes ü.txt", b"shared bytes \xc3\xbc", "text/plain")},
    )
    assert upload.status_code == 201, upload.text
    return {**created, "headers": headers, "file": upload.json()}


def _share(folio: FolioProcess, owner: dict[str, Any], **body: Any) -> httpx.Response:
    return httpx.post(f"{folio.web_url}/api/shares", headers=owner["headers"], json=body)


def _share_events(folio: FolioProcess, account_id: str) -> list[tuple[str, dict[str, Any]]]:
    with server_db(folio) as db:
        rows = db.execute(
            "SELECT type, payload FROM events WHERE account_id = ? AND type LIKE 'share.%' ORDER BY id",
            (account_id,),
        ).fetchall()
    return [(kind, json.loads(payload)) for kind, payload in rows]


def test_anyone_with_the_link_downloads_and_downloads_are_counted(folio: FolioProcess, owner: dict) -> None:
    made = _share(folio, owner, fileId=owner["file"]["id"], expiresIn=600)
    assert made.status_code == 201, made.text
    share = made.json()
    assert share["url"].startswith(folio.web_url + "/s/") and share["downloads"] == 0
    for _ in range(2):
        got = httpx.get(share["url"])  # no credentials at all
        assert got.status_code == 200
        assert got.content == b"shared bytes \xc3\xbc"
        assert got.headers["content-type"] == "text/plain"
        assert "filename*=UTF-8''notes%20%C3%BC.txt" in got.headers["content-disposition"]
    listed = httpx.get(f"{folio.web_url}/api/shares", headers=owner["headers"]).json()["shares"]
    assert [(s["id"], s["downloads"], s["revoked"]) for s in listed] == [(share["id"], 2, False)]
    assert "token" not in listed[0] and "url" not in listed[0]  # the link is shown once
    events = _share_events(folio, owner["accountId"])
    assert [kind for kind, _ in events] == ["share.created", "share.downloaded", "share.downloaded"]
    assert [payload.get("downloads") for _, payload in events[1:]] == [1, 2]


def test_revoked_and_expired_links_stop_working_at_once(folio: FolioProcess, owner: dict) -> None:
    revoked = _share(folio, owner, bucket=owner["file"]["bucket"], key=owner["file"]["key"]).json()
    short = _share(folio, owner, fileId=owner["file"]["id"], expiresIn=1).json()
    assert httpx.get(revoked["url"]).status_code == 200
    gone = httpx.delete(f"{folio.web_url}/api/shares", headers=owner["headers"], params={"id": revoked["id"]})
    assert gone.json() == {"success": True}
    dead = httpx.get(revoked["url"])
    assert dead.status_code == 404 and dead.json()["error"]["code"] == "NotFound"
    time.sleep(1.2)  # the shortest expiry the API allows is one second
    assert httpx.get(short["url"]).status_code == 404
    # A made-up token looks exactly like a dead one.
    assert httpx.get(f"{folio.web_url}/s/{'x' * 43}").json() == dead.json()


def test_links_follow_the_file_and_die_with_it(folio: FolioProcess, owner: dict) -> None:
    share = _share(folio, owner, fileId=owner["file"]["id"]).json()
    overwrite = httpx.post(
        f"{folio.web_url}/api/v1/files",
        headers=owner["headers"],
        params={"key": owner["file"]["key"], "bucket": owner["file"]["bucket"]},
        content=b"second version",
    )
    assert overwrite.status_code == 201
    assert httpx.get(share["url"]).content == b"second version"
    deleted = httpx.delete(f"{folio.web_url}/api/v1/files/{owner['file']['id']}", headers=owner["headers"])
    assert deleted.json() == {"success": True}
    assert httpx.get(share["url"]).status_code == 404


def test_shares_are_the_owners_alone(folio: FolioProcess, owner: dict) -> None:
    share = _share(folio, owner, fileId=owner["file"]["id"]).json()
    other = folio.create_account(f"share-other-{uuid.uuid4().hex[:8]}@example.com")
    other_headers = {"X-API-Key": f"{other['accessKey']}:{other['secretKey']}"}
    # Another account can neither share the owner's file nor see or revoke the owner's links.
    refused = httpx.post(
        f"{folio.web_url}/api/shares", headers=other_headers, json={"fileId": owner["file"]["id"]}
    )
    assert refused.status_code == 404
    assert httpx.get(f"{folio.web_url}/api/shares", headers=other_headers).json() == {"shares": []}
    revoke = httpx.delete(f"{folio.web_url}/api/shares", headers=other_headers, params={"id": share["id"]})
    assert revoke.status_code == 404
    assert httpx.get(share["url"]).status_code == 200
    assert httpx.post(f"{folio.web_url}/api/shares", json={"fileId": owner["file"]["id"]}).status_code == 401


def test_a_download_limit_is_kept_even_by_racing_downloads(folio: FolioProcess, owner: dict) -> None:
    share = _share(folio, owner, fileId=owner["file"]["id"], expiresIn=30 * 86400, maxDownloads=3).json()
    assert share["maxDownloads"] == 3
    with ThreadPoolExecutor(8) as pool:
        statuses = sorted(pool.map(lambda _: httpx.get(share["url"]).status_code, range(8)))
    assert statuses == [200, 200, 200, 404, 404, 404, 404, 404]
    refused = httpx.get(share["url"])
    assert refused.status_code == 404 and "download limit" in refused.json()["error"]["message"]
    listed = httpx.get(f"{folio.web_url}/api/shares", headers=owner["headers"]).json()["shares"]
    assert [(s["downloads"], s["maxDownloads"]) for s in listed] == [(3, 3)]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"fileId": 7},
        {"fileId": "f_bm90LWEtZmlsZQ"},
        {"bucket": "no-such-bucket-here", "key": "k"},
        {"fileId": "FILE", "expiresIn": 0},
        {"fileId": "FILE", "expiresIn": 31 * 86400},
        {"fileId": "FILE", "expiresIn": "soon"},
        {"fileId": "FILE", "expiresIn": True},
        {"fileId": "FILE", "maxDownloads": 0},
        {"fileId": "FILE", "maxDownloads": "3"},
        {"fileId": "FILE", "maxDownloads": False},
    ],
)
def test_bad_share_requests_get_json_errors_and_create_nothing(
    folio: FolioProcess, owner: dict, body: dict[str, Any]
) -> None:
    if body.get("fileId") == "FILE":
        body = {**body, "fileId": owner["file"]["id"]}
    answer = _share(folio, owner, **body)
    assert answer.status_code in (400, 404), answer.text
    assert set(answer.json()["error"]) == {"code", "message", "details"}
    assert httpx.get(f"{folio.web_url}/api/shares", headers=owner["headers"]).json() == {"shares": []}
    malformed = httpx.post(
        f"{folio.web_url}/api/shares",
        headers={**owner["headers"], "content-type": "application/json"},
        content=b"{",
    )
    assert malformed.status_code == 400 and malformed.json()["error"]["code"] == "BadRequest"
