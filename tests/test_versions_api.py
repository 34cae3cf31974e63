"""The Time Machine API (`/api/versions`, seed 004 "File Versioning") and the dashboard's
bucket API (`/api/buckets`) against the real server.

Done-when of the issue: version upload, list and restore through `/api/versions` agree
with S3's ListObjectVersions, and the seed's curl examples work as written. So every
answer of the versions API is checked against what boto3 (default configuration) sees
over S3 for the same key: the same version ids in the same order, sizes, ETags and
which one is latest; a restore only ever adds a version and never rewrites one.

Real clients only: curl exactly as the seed types it, httpx for the other calls (each
client bound to its own loopback address, since sign-up is rate limited per address),
boto3 on the S3 listener. Every test signs up its own accounts, and every httpx answer
is checked for a 5xx.
"""

from __future__ import annotations

import base64
import json
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import empty_bucket, make_s3_client
from tests.folio_process import FolioProcess
from tests.web_client import Web as SharedWeb

PASSWORD = "correct horse battery staple"


# ---------------------------------------------------------------- helpers


@dataclass(frozen=True)
class User:
    email: str
    account: dict[str, Any]  # the sign-up answer
    cookie: str  # the session token

    @property
    def api_key(self) -> str:
        return f"{self.account['accessKey']}:{self.account['secretKey']}"

    @property
    def bucket(self) -> str:
        return self.account["defaultBucket"]


class Web(SharedWeb):
    """The shared web client, plus sign-up into a `User`."""

    def signup(self, tag: str) -> User:
        email = f"{tag}-{uuid.uuid4().hex[:12]}@example.com"
        response = self.request("POST", "/api/auth/signup", body={"email": email, "password": PASSWORD})
        assert response.status_code == 201, response.text
        cookie = response.cookies.get("session")
        assert cookie, response.headers.get_list("set-cookie")
        return User(email, response.json(), cookie)


@pytest.fixture
def web(folio: FolioProcess) -> Iterator[Web]:
    client = Web(folio)
    yield client
    client.close()


@pytest.fixture
def other_web(folio: FolioProcess) -> Iterator[Web]:
    """A second client (own address) for a second account."""
    client = Web(folio)
    yield client
    client.close()


def _s3(folio: FolioProcess, user: User) -> Any:
    return make_s3_client(folio, user.account["accessKey"], user.account["secretKey"])


def _assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The JSON APIs' error format: {"error": {"code", "message", "details"}}."""
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"], error
    return error


def _curl(*args: str, cwd: Path | None = None) -> tuple[int, str]:
    """curl with the caller's arguments as the seed writes them; -sS and -w only make its
    output parseable (no progress meter, the status on the last line)."""
    out = subprocess.run(
        ["curl", "-sS", "-w", "\n%{http_code}", *args], capture_output=True, text=True, timeout=30, cwd=cwd
    )
    assert out.returncode == 0, out.stderr
    body, _, status = out.stdout.rpartition("\n")
    return int(status), body


def _upload(web: Web, user: User, bucket: str, key: str, data: bytes) -> dict[str, Any]:
    response = web.request(
        "POST",
        "/api/versions",
        api_key=user.api_key,
        files={"file": ("upload.bin", data, "application/octet-stream")},
        data={"bucket": bucket, "key": key},
    )
    assert response.status_code == 201, response.text
    return response.json()


def _versions(web: Web, user: User, bucket: str, key: str) -> list[dict[str, Any]]:
    response = web.request(
        "GET", "/api/versions", api_key=user.api_key, params={"bucket": bucket, "key": key}
    )
    assert response.status_code == 200, response.text
    got = response.json()
    assert got["bucket"] == bucket and got["key"] == key, got
    return got["versions"]


def _files(web: Web, user: User, bucket: str) -> dict[str, dict[str, Any]]:
    response = web.request("GET", "/api/versions", api_key=user.api_key, params={"bucket": bucket})
    assert response.status_code == 200, response.text
    assert response.json()["bucket"] == bucket
    return {f["key"]: f for f in response.json()["files"]}


def _restore(web: Web, user: User, version_id: str) -> dict[str, Any]:
    response = web.request("PATCH", "/api/versions", api_key=user.api_key, body={"versionId": version_id})
    assert response.status_code == 200, response.text
    return response.json()


def _s3_versions(s3: Any, bucket: str, key: str) -> list[dict[str, Any]]:
    """S3's versions of exactly this key (not of keys it prefixes), newest first."""
    listed = s3.list_object_versions(Bucket=bucket, Prefix=key)
    return [v for v in listed.get("Versions", []) if v["Key"] == key]


def _s3_state(s3: Any, bucket: str) -> list[tuple[str, str, bool]]:
    """Everything ListObjectVersions shows of a bucket: to prove a refused call changed nothing."""
    listed = s3.list_object_versions(Bucket=bucket)
    return [
        (v["Key"], v["VersionId"], v["IsLatest"])
        for v in listed.get("Versions", []) + listed.get("DeleteMarkers", [])
    ]


def _parse_iso(text: str) -> datetime:
    assert text.endswith("Z"), text
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def _assert_agrees_with_s3(api: list[dict[str, Any]], s3_listed: list[dict[str, Any]]) -> None:
    """The versions API and ListObjectVersions describe the same history of one key."""
    assert [v["s3VersionId"] for v in api] == [v["VersionId"] for v in s3_listed]
    assert [v["size"] for v in api] == [v["Size"] for v in s3_listed]
    assert [v["isCurrent"] for v in api] == [v["IsLatest"] for v in s3_listed]
    assert [v["etag"].strip('"') for v in api] == [v["ETag"].strip('"') for v in s3_listed]
    # Numbered oldest first, from 1; listed newest first.
    assert [v["versionNumber"] for v in api] == list(range(len(api), 0, -1))
    for mine, theirs in zip(api, s3_listed, strict=True):
        # Same instant; the API shows whole seconds.
        assert _parse_iso(mine["createdAt"]) == theirs["LastModified"].replace(microsecond=0), (mine, theirs)
        assert mine["versionId"].startswith("ver_"), mine


def _get(s3: Any, bucket: str, key: str, version: str | None = None) -> bytes:
    extra = {"VersionId": version} if version else {}
    return s3.get_object(Bucket=bucket, Key=key, **extra)["Body"].read()


def _forged_version_id(bucket: str, key: str, s3_version: str) -> str:
    """A well-formed "ver_" id for any (bucket, key, S3 version): what a client could
    make up, so the server must check ownership and existence, not just the format."""
    raw = f"{bucket}/{s3_version}/{key}".encode()
    return "ver_" + base64.urlsafe_b64encode(raw).decode().rstrip("=")


# ---------------------------------------------------------------- the seed's curl examples


def test_seed_curl_examples_upload_list_and_restore(folio: FolioProcess, web: Web, tmp_path: Path) -> None:
    user = web.signup("curl")
    bucket, key = user.bucket, "docs/report.pdf"
    s3 = _s3(folio, user)
    first, second = b"%PDF-1.7 first draft\n" * 50, b"%PDF-1.7 second draft, longer\n" * 70
    uploaded: list[dict[str, Any]] = []
    for content in (first, second):
        (tmp_path / "report.pdf").write_bytes(content)
        # The seed's upload, word for word, against our host with a real session cookie.
        status, body = _curl(
            "-X", "POST", f"{folio.web_url}/api/versions",
            "-H", f"Cookie: session={user.cookie}",
            "-F", "file=@report.pdf",
            "-F", f"bucket={bucket}",
            "-F", f"key={key}",
            cwd=tmp_path,
        )  # fmt: skip
        assert status == 201, body
        uploaded.append(json.loads(body))
    for number, (answer, content) in enumerate(zip(uploaded, (first, second), strict=True), start=1):
        assert answer["versionId"].startswith("ver_"), answer
        assert answer["key"] == key and answer["bucket"] == bucket
        assert answer["size"] == len(content)
        assert answer["versionNumber"] == number
        assert answer["isCurrent"] is True
        _parse_iso(answer["createdAt"])
        assert _get(s3, bucket, key, answer["s3VersionId"]) == content

    # The seed's listing of one file.
    status, body = _curl(
        f"{folio.web_url}/api/versions?bucket={bucket}&key={key}",
        "-H", f"Cookie: session={user.cookie}",
    )  # fmt: skip
    assert status == 200, body
    listed = json.loads(body)["versions"]
    assert [v["versionId"] for v in listed] == [uploaded[1]["versionId"], uploaded[0]["versionId"]]
    assert [(v["versionNumber"], v["isCurrent"]) for v in listed] == [(2, True), (1, False)]
    assert [v["size"] for v in listed] == [len(second), len(first)]
    _assert_agrees_with_s3(listed, _s3_versions(s3, bucket, key))

    # The seed's restore, with the id the listing gave.
    status, body = _curl(
        "-X", "PATCH", f"{folio.web_url}/api/versions",
        "-H", "Content-Type: application/json",
        "-H", f"Cookie: session={user.cookie}",
        "-d", f'{{ "versionId": "{uploaded[0]["versionId"]}" }}',
    )  # fmt: skip
    assert status == 200, body
    restored = json.loads(body)
    assert restored["success"] is True
    assert restored["restoredVersion"] == uploaded[0]["versionId"]
    assert restored["newVersionNumber"] == 3
    assert _get(s3, bucket, key) == first


# ---------------------------------------------------------------- agreement with ListObjectVersions


def test_upload_list_and_restore_agree_with_list_object_versions(folio: FolioProcess, web: Web) -> None:
    user = web.signup("agree")
    s3 = _s3(folio, user)
    bucket, key = user.bucket, "notes/plan.txt"
    contents = [b"v1 " * 10, b"version two " * 40, b"three" * 3]
    uploads: list[dict[str, Any]] = []
    for number, content in enumerate(contents, start=1):
        answer = _upload(web, user, bucket, key, content)
        assert answer["versionNumber"] == number and answer["isCurrent"] is True, answer
        assert answer["size"] == len(content) and answer["key"] == key and answer["bucket"] == bucket
        uploads.append(answer)

    listed = _versions(web, user, bucket, key)
    s3_listed = _s3_versions(s3, bucket, key)
    _assert_agrees_with_s3(listed, s3_listed)
    assert [v["s3VersionId"] for v in listed] == [u["s3VersionId"] for u in reversed(uploads)]
    assert [v["versionId"] for v in listed] == [u["versionId"] for u in reversed(uploads)]
    assert [v["etag"] for v in listed] == [u["etag"] for u in reversed(uploads)]
    assert _files(web, user, bucket)[key]["versionCount"] == 3

    restored = _restore(web, user, uploads[0]["versionId"])
    assert restored["success"] is True and restored["restoredVersion"] == uploads[0]["versionId"]

    after = _versions(web, user, bucket, key)
    s3_after = _s3_versions(s3, bucket, key)
    _assert_agrees_with_s3(after, s3_after)
    # History grew by exactly one version, on top: the restored copy, current.
    assert len(after) == 4, after
    # The old versions are kept as they were (same ids, numbers, sizes, times); only
    # the one that was current is no longer.
    assert after[1:] == [{**v, "isCurrent": False} for v in listed]
    newest = after[0]
    assert newest["versionId"] == restored["newVersionId"]
    assert newest["versionNumber"] == restored["newVersionNumber"] == 4
    assert newest["isCurrent"] is True and newest["size"] == len(contents[0])
    assert newest["etag"] == uploads[0]["etag"]
    assert newest["s3VersionId"] not in {u["s3VersionId"] for u in uploads}
    # The bytes: current is v1's, and every old version still reads as written.
    assert _get(s3, bucket, key) == contents[0]
    assert _get(s3, bucket, key, newest["s3VersionId"]) == contents[0]
    for upload, content in zip(uploads, contents, strict=True):
        assert _get(s3, bucket, key, upload["s3VersionId"]) == content

    summary = _files(web, user, bucket)[key]
    assert summary["versionCount"] == 4
    assert summary["current"]["s3VersionId"] == newest["s3VersionId"]
    assert summary["current"]["size"] == len(contents[0])

    # Restoring another old version adds one more on top again: v3, no longer
    # current, comes back as number 5.
    again = _restore(web, user, uploads[2]["versionId"])
    assert again["newVersionNumber"] == 5
    assert _get(s3, bucket, key) == contents[2]
    _assert_agrees_with_s3(_versions(web, user, bucket, key), _s3_versions(s3, bucket, key))


def test_versions_written_over_s3_appear_and_restore(folio: FolioProcess, web: Web) -> None:
    user = web.signup("s3side")
    s3 = _s3(folio, user)
    bucket = user.bucket
    # A key with spaces, a plus, an ampersand and non-ASCII, next to a key it prefixes:
    # the listing is of this key exactly.
    key = "reports/Q1 & Q2+final (ü).txt"
    s3_ids = [s3.put_object(Bucket=bucket, Key=key, Body=body)["VersionId"] for body in (b"one", b"two two")]
    s3.put_object(Bucket=bucket, Key=key + ".bak", Body=b"backup")

    listed = _versions(web, user, bucket, key)
    _assert_agrees_with_s3(listed, _s3_versions(s3, bucket, key))
    assert [v["s3VersionId"] for v in listed] == list(reversed(s3_ids))

    files = _files(web, user, bucket)
    assert files[key]["versionCount"] == 2 and files[key]["current"]["s3VersionId"] == s3_ids[1]
    assert files[key + ".bak"]["versionCount"] == 1

    # An upload through the API continues the same history.
    third = _upload(web, user, bucket, key, b"three three three")
    assert third["versionNumber"] == 3
    assert _s3_versions(s3, bucket, key)[0]["VersionId"] == third["s3VersionId"]

    # A version boto3 wrote restores like any other, and boto3 sees the result.
    oldest = _versions(web, user, bucket, key)[-1]
    assert oldest["s3VersionId"] == s3_ids[0]
    restored = _restore(web, user, oldest["versionId"])
    assert restored["newVersionNumber"] == 4
    assert _get(s3, bucket, key) == b"one"
    _assert_agrees_with_s3(_versions(web, user, bucket, key), _s3_versions(s3, bucket, key))


def test_restore_brings_back_a_deleted_file(folio: FolioProcess, web: Web) -> None:
    user = web.signup("undelete")
    s3 = _s3(folio, user)
    bucket, key = user.bucket, "gone.txt"
    first = _upload(web, user, bucket, key, b"keep me")
    s3.delete_object(Bucket=bucket, Key=key)  # a delete marker is now current
    # The history still lists the version (delete markers are not versions of the file).
    listed = _versions(web, user, bucket, key)
    assert [v["s3VersionId"] for v in listed] == [first["s3VersionId"]]
    assert listed[0]["isCurrent"] is False

    restored = _restore(web, user, first["versionId"])
    assert _get(s3, bucket, key) == b"keep me"
    after = _versions(web, user, bucket, key)
    assert after[0]["versionId"] == restored["newVersionId"] and after[0]["isCurrent"] is True
    _assert_agrees_with_s3(after, _s3_versions(s3, bucket, key))


def test_retention_prunes_the_oldest_and_numbers_from_the_oldest_kept(folio: FolioProcess, web: Web) -> None:
    user = web.signup("retention")
    s3 = _s3(folio, user)
    bucket, key = user.bucket, "busy.txt"
    answers = [_upload(web, user, bucket, key, f"edit {n}".encode()) for n in range(1, 14)]
    # The default plan keeps 10 noncurrent versions besides the current one
    # (docs/versioning-and-quotas.md): 13 uploads leave 11, the two oldest pruned, and
    # numbering starts from the oldest one kept, so the last uploads are all number 11.
    assert [a["versionNumber"] for a in answers] == list(range(1, 12)) + [11, 11]
    listed = _versions(web, user, bucket, key)
    _assert_agrees_with_s3(listed, _s3_versions(s3, bucket, key))
    assert [v["s3VersionId"] for v in listed] == [a["s3VersionId"] for a in reversed(answers[2:])]
    # A pruned version is gone for the versions API too.
    _assert_error(
        web.request(
            "PATCH", "/api/versions", api_key=user.api_key, body={"versionId": answers[0]["versionId"]}
        ),
        404,
        "NotFound",
    )
    restored = _restore(web, user, answers[2]["versionId"])
    assert restored["newVersionNumber"] == 11
    assert _get(s3, bucket, key) == b"edit 3"
    _assert_agrees_with_s3(_versions(web, user, bucket, key), _s3_versions(s3, bucket, key))


def test_restore_in_a_suspended_bucket_agrees_with_s3(folio: FolioProcess, web: Web) -> None:
    user = web.signup("suspended")
    s3 = _s3(folio, user)
    bucket, key = user.bucket, "doc.txt"
    v1 = _upload(web, user, bucket, key, b"one")
    v2 = _upload(web, user, bucket, key, b"two")
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    # With versioning suspended a write is the "null" version (replacing any earlier one).
    restored = _restore(web, user, v1["versionId"])
    assert _get(s3, bucket, key) == b"one"
    listed = _versions(web, user, bucket, key)
    _assert_agrees_with_s3(listed, _s3_versions(s3, bucket, key))
    assert listed[0]["s3VersionId"] == "null" and listed[0]["versionId"] == restored["newVersionId"]
    assert restored["newVersionNumber"] == listed[0]["versionNumber"] == 3
    _restore(web, user, v2["versionId"])
    assert _get(s3, bucket, key) == b"two"
    _assert_agrees_with_s3(_versions(web, user, bucket, key), _s3_versions(s3, bucket, key))
    assert _get(s3, bucket, key, v1["s3VersionId"]) == b"one"


# ---------------------------------------------------------------- errors change nothing


def test_a_delete_marker_is_not_a_version_to_restore(folio: FolioProcess, web: Web) -> None:
    user = web.signup("marker")
    s3 = _s3(folio, user)
    bucket, key = user.bucket, "m.txt"
    _upload(web, user, bucket, key, b"before")
    marker = s3.delete_object(Bucket=bucket, Key=key)["VersionId"]
    _upload(web, user, bucket, key, b"after")
    before = _s3_state(s3, bucket)
    # The API never lists delete markers, so an id naming one names no version: 404,
    # like any other id the API never gave out (not "already the current one").
    refused = web.request(
        "PATCH",
        "/api/versions",
        api_key=user.api_key,
        body={"versionId": _forged_version_id(bucket, key, marker)},
    )
    _assert_error(refused, 404, "NotFound")
    assert _s3_state(s3, bucket) == before


def test_version_errors_are_clean_and_change_nothing(folio: FolioProcess, web: Web, other_web: Web) -> None:
    user = web.signup("errors")
    other = other_web.signup("errors-other")
    s3, other_s3 = _s3(folio, user), _s3(folio, other)
    bucket, key = user.bucket, "a.txt"
    first = _upload(web, user, bucket, key, b"first")
    second = _upload(web, user, bucket, key, b"second")
    theirs = _upload(other_web, other, other.bucket, "secret.txt", b"theirs 1")
    _upload(other_web, other, other.bucket, "secret.txt", b"theirs 2")
    before, other_before = _s3_state(s3, bucket), _s3_state(other_s3, other.bucket)

    def patch(body: Any = None, content: bytes | None = None) -> httpx.Response:
        return web.request("PATCH", "/api/versions", api_key=user.api_key, body=body, content=content)

    # Restoring the current version: nothing to restore.
    _assert_error(patch({"versionId": second["versionId"]}), 400, "BadRequest")
    # Bad requests: no id, not a string, not JSON, not an object.
    _assert_error(patch({}), 400, "BadRequest")
    _assert_error(patch({"versionId": 7}), 400, "BadRequest")
    _assert_error(patch({"versionId": ""}), 400, "BadRequest")
    _assert_error(patch(content=b"{not json"), 400, "BadRequest")
    _assert_error(patch(content=b'["ver_x"]'), 400, "BadRequest")
    # Ids that name nothing of this account: all the same 404, so nothing leaks.
    for bogus in (
        "ver_",
        "ver_!!!!",
        "ver_" + "A" * 7,
        "nonsense",
        first["s3VersionId"],  # the S3 id is not the API's id
        _forged_version_id(bucket, key, "no-such-version"),
        _forged_version_id(bucket, "other-key.txt", first["s3VersionId"]),
        _forged_version_id("no-such-bucket-" + uuid.uuid4().hex[:8], key, first["s3VersionId"]),
        theirs["versionId"],  # another account's real, non-current version
    ):
        _assert_error(patch({"versionId": bogus}), 404, "NotFound")

    def get(params: dict[str, str], api_key: str = user.api_key) -> httpx.Response:
        return web.request("GET", "/api/versions", api_key=api_key, params=params)

    _assert_error(get({}), 400, "BadRequest")
    _assert_error(get({"key": key}), 400, "BadRequest")
    _assert_error(get({"bucket": other.bucket}), 404, "NoSuchBucket")
    _assert_error(get({"bucket": other.bucket, "key": "secret.txt"}), 404, "NoSuchBucket")
    _assert_error(get({"bucket": "no-such-bucket-" + uuid.uuid4().hex[:8]}), 404, "NoSuchBucket")
    _assert_error(get({"bucket": bucket, "key": "never-written.txt"}), 404, "NotFound")

    # Uploads: into another account's bucket, without a file, without credentials.
    into_theirs = web.request(
        "POST", "/api/versions", api_key=user.api_key,
        files={"file": ("x.txt", b"intruder")}, data={"bucket": other.bucket, "key": "secret.txt"},
    )  # fmt: skip
    _assert_error(into_theirs, 404, "NoSuchBucket")
    no_file = web.request(
        "POST", "/api/versions", api_key=user.api_key,
        files={"note": ("x.txt", b"not the file field")}, data={"bucket": bucket, "key": key},
    )  # fmt: skip
    _assert_error(no_file, 400, "BadRequest")
    anonymous = web.request(
        "POST", "/api/versions", files={"file": ("x.txt", b"who?")}, data={"bucket": bucket, "key": key}
    )
    _assert_error(anonymous, 401, "Unauthorized")
    _assert_error(web.request("GET", "/api/versions", params={"bucket": bucket}), 401, "Unauthorized")
    _assert_error(
        web.request("PATCH", "/api/versions", body={"versionId": first["versionId"]}), 401, "Unauthorized"
    )
    _assert_error(
        web.request("PATCH", "/api/versions", cookie="not-a-session", body={"versionId": first["versionId"]}),
        401,
        "Unauthorized",
    )

    # A cookie-carrying write from another site's page is refused (the session is a cookie).
    cross_site = web.request(
        "PATCH", "/api/versions", cookie=user.cookie, origin="http://evil.example",
        body={"versionId": first["versionId"]},
    )  # fmt: skip
    _assert_error(cross_site, 403, "Forbidden")

    # Nothing above touched either account's versions.
    assert _s3_state(s3, bucket) == before
    assert _s3_state(other_s3, other.bucket) == other_before
    assert _get(s3, bucket, key) == b"second"
    assert _get(other_s3, other.bucket, "secret.txt") == b"theirs 2"


# ---------------------------------------------------------------- /api/buckets


def _buckets(web: Web, user: User) -> dict[str, dict[str, Any]]:
    response = web.request("GET", "/api/buckets", cookie=user.cookie)
    assert response.status_code == 200, response.text
    return {b["name"]: b for b in response.json()["buckets"]}


def _anonymous_get(folio: FolioProcess, bucket: str, key: str) -> httpx.Response:
    # No credentials at all: what a browser or a stranger's curl would send.
    return httpx.get(f"{folio.s3_url}/{bucket}/{key}", timeout=30)


def test_bucket_public_read_and_versioning_through_the_dashboard(folio: FolioProcess, web: Web) -> None:
    user = web.signup("buckets")
    s3 = _s3(folio, user)
    name = f"pub-{uuid.uuid4().hex[:12]}"

    created = web.request("POST", "/api/buckets", cookie=user.cookie, body={"name": name, "publicRead": True})
    assert created.status_code == 201, created.text
    shown = created.json()
    assert shown["name"] == name and shown["publicRead"] is True
    assert shown["versioning"] == "Enabled"  # this server's new buckets keep versions
    assert shown["bytesUsed"] == 0 and shown["objects"] == 0
    _parse_iso(shown["createdAt"])
    assert name in {b["Name"] for b in s3.list_buckets()["Buckets"]}

    s3.put_object(Bucket=name, Key="hello.txt", Body=b"hello, world")
    got = _anonymous_get(folio, name, "hello.txt")
    assert got.status_code == 200 and got.content == b"hello, world", got.text

    patched = web.request(
        "PATCH", "/api/buckets", cookie=user.cookie, body={"name": name, "publicRead": False}
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["publicRead"] is False
    assert _anonymous_get(folio, name, "hello.txt").status_code == 403

    assert s3.get_bucket_versioning(Bucket=name)["Status"] == "Enabled"
    patched = web.request(
        "PATCH", "/api/buckets", api_key=user.api_key, body={"name": name, "versioning": "Suspended"}
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["versioning"] == "Suspended"
    assert s3.get_bucket_versioning(Bucket=name)["Status"] == "Suspended"
    # Versioning cannot be turned off once on (as in S3), and bad values are refused.
    for bad in ("Off", "enabled", True):
        refused = web.request(
            "PATCH", "/api/buckets", cookie=user.cookie, body={"name": name, "versioning": bad}
        )
        _assert_error(refused, 400, "BadRequest")
    _assert_error(
        web.request("PATCH", "/api/buckets", cookie=user.cookie, body={"name": name, "publicRead": "yes"}),
        400,
        "BadRequest",
    )
    assert s3.get_bucket_versioning(Bucket=name)["Status"] == "Suspended"
    listed = _buckets(web, user)[name]
    assert listed["versioning"] == "Suspended" and listed["publicRead"] is False
    assert _anonymous_get(folio, name, "hello.txt").status_code == 403

    back = web.request(
        "PATCH", "/api/buckets", cookie=user.cookie, body={"name": name, "versioning": "Enabled"}
    )
    assert back.status_code == 200 and back.json()["versioning"] == "Enabled", back.text
    assert s3.get_bucket_versioning(Bucket=name)["Status"] == "Enabled"


def test_bucket_usage_delete_and_names(folio: FolioProcess, web: Web, other_web: Web) -> None:
    user = web.signup("bucketlife")
    other = other_web.signup("bucketlife-other")
    s3 = _s3(folio, user)
    name = f"life-{uuid.uuid4().hex[:12]}"
    created = web.request("POST", "/api/buckets", api_key=user.api_key, body={"name": name})
    assert created.status_code == 201, created.text
    assert created.json()["publicRead"] is False

    # Versioning can be chosen at creation too.
    paused = f"paused-{uuid.uuid4().hex[:12]}"
    made = web.request(
        "POST", "/api/buckets", cookie=user.cookie, body={"name": paused, "versioning": "Suspended"}
    )
    assert made.status_code == 201 and made.json()["versioning"] == "Suspended", made.text
    assert s3.get_bucket_versioning(Bucket=paused)["Status"] == "Suspended"

    # Usage after an upload through the versions API, and after a second version of it
    # (versions count toward the quota, says the seed).
    _upload(web, user, name, "data.bin", b"x" * 1000)
    listed = _buckets(web, user)
    assert (listed[name]["bytesUsed"], listed[name]["objects"]) == (1000, 1)
    _upload(web, user, name, "data.bin", b"y" * 500)
    assert _buckets(web, user)[name]["bytesUsed"] == 1500
    assert set(listed) == {b["Name"] for b in s3.list_buckets()["Buckets"]}

    # Not empty: refused, and the bucket and its objects stay.
    _assert_error(
        web.request("DELETE", "/api/buckets", cookie=user.cookie, params={"name": name}),
        409,
        "BucketNotEmpty",
    )
    assert name in {b["Name"] for b in s3.list_buckets()["Buckets"]}
    assert _get(s3, name, "data.bin") == b"y" * 500

    # Another account can neither change nor delete it, and learns nothing about it.
    _assert_error(
        other_web.request("DELETE", "/api/buckets", cookie=other.cookie, params={"name": name}),
        404,
        "NoSuchBucket",
    )
    _assert_error(
        other_web.request(
            "PATCH", "/api/buckets", cookie=other.cookie, body={"name": name, "publicRead": True}
        ),
        404,
        "NoSuchBucket",
    )
    assert _anonymous_get(folio, name, "data.bin").status_code == 403

    # Names: invalid, taken by another account, already ours.
    for bad in (
        "ab",
        "UpperCase",
        "under_score",
        "-leading",
        "trailing-",
        "a" * 64,
        "192.168.1.1",
        "dots..x",
    ):
        _assert_error(
            web.request("POST", "/api/buckets", cookie=user.cookie, body={"name": bad}),
            400,
            "InvalidBucketName",
        )
    _assert_error(web.request("POST", "/api/buckets", cookie=user.cookie, body={}), 400, "BadRequest")
    _assert_error(
        other_web.request("POST", "/api/buckets", cookie=other.cookie, body={"name": name}),
        409,
        "BucketAlreadyExists",
    )
    _assert_error(
        web.request("POST", "/api/buckets", cookie=user.cookie, body={"name": name}),
        409,
        "BucketAlreadyOwnedByYou",
    )
    assert name not in _buckets(other_web, other)
    _assert_error(web.request("DELETE", "/api/buckets", cookie=user.cookie), 400, "BadRequest")

    # Emptied, it goes, from the dashboard and from S3.
    empty_bucket(s3, name)
    deleted = web.request("DELETE", "/api/buckets", cookie=user.cookie, params={"name": name})
    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == {"success": True}
    assert name not in {b["Name"] for b in s3.list_buckets()["Buckets"]}
    assert name not in _buckets(web, user)
    _assert_error(
        web.request("DELETE", "/api/buckets", cookie=user.cookie, params={"name": name}), 404, "NoSuchBucket"
    )
