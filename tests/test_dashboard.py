"""The dashboard API (seed 004, "Obtaining credentials" and "Managing keys") against the
real server: sign-up, login/logout with the session cookie, the account with its plan
and usage, and access keys (`/api/keys`) with their revocation across every API.

Real clients only: curl exactly as the seed types it, httpx for the other JSON calls,
boto3 with its default configuration (and its presigned URLs) on the S3 listener, and
the REST file API with `X-API-Key`. Every test signs up its own accounts (unique
emails), so usage and key counts start from a known state.

Login and sign-up are rate limited per client address, and every test process talks
from loopback: each httpx client here binds its own address in 127/8 (all of it is
loopback on Linux), so one test's attempts never spend another's budget, and the
limit tests can act as many clients. Every httpx answer is checked for a 5xx.
"""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from tests.conftest import make_s3_client
from tests.folio_process import FolioProcess
from tests.server_db import server_db
from tests.web_client import Web

PASSWORD = "correct horse battery staple"
MAX_KEYS = 5
# TEST_CONFIG's default plan (conftest): the quota the account JSON must report.
TEST_QUOTA = 1099511627776


# ---------------------------------------------------------------- helpers


def _unique_email(tag: str) -> str:
    return f"{tag}-{uuid.uuid4().hex[:12]}@example.com"


@pytest.fixture
def web(folio: FolioProcess) -> Iterator[Web]:
    client = Web(folio)
    yield client
    client.close()


@dataclass(frozen=True)
class User:
    email: str
    password: str
    account: dict[str, Any]  # the sign-up answer
    cookie: str  # the session token
    set_cookie: str  # the raw Set-Cookie header of the session

    @property
    def id(self) -> str:
        return self.account["id"]

    @property
    def access_key(self) -> str:
        return self.account["accessKey"]

    @property
    def secret_key(self) -> str:
        return self.account["secretKey"]

    @property
    def api_key(self) -> str:
        return f"{self.access_key}:{self.secret_key}"


def _session_cookie(response: httpx.Response) -> str:
    """The raw `Set-Cookie: session=...` header of a response."""
    found = [h for h in response.headers.get_list("set-cookie") if h.startswith("session=")]
    assert len(found) == 1, response.headers.get_list("set-cookie")
    return found[0]


def _cookie_value(set_cookie: str) -> str:
    return set_cookie.split(";", 1)[0].split("=", 1)[1]


def _signup(web: Web, tag: str, password: str = PASSWORD) -> User:
    email = _unique_email(tag)
    response = web.request("POST", "/api/auth/signup", body={"email": email, "password": password})
    assert response.status_code == 201, response.text
    set_cookie = _session_cookie(response)
    return User(email, password, response.json(), _cookie_value(set_cookie), set_cookie)


def _assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The JSON APIs' error format: {"error": {"code", "message", "details"}}."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    error = response.json()["error"]
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"], error
    assert isinstance(error["details"], dict), error
    return error


def _keys(web: Web, user: User) -> list[dict[str, Any]]:
    response = web.request("GET", "/api/keys", cookie=user.cookie)
    assert response.status_code == 200, response.text
    return response.json()["keys"]


def _create_key(web: Web, user: User, name: str) -> dict[str, Any]:
    response = web.request("POST", "/api/keys", cookie=user.cookie, body={"name": name})
    assert response.status_code == 201, response.text
    return response.json()


def _account(web: Web, user: User) -> dict[str, Any]:
    response = web.request("GET", "/api/account", cookie=user.cookie)
    assert response.status_code == 200, response.text
    return response.json()


def _curl(*args: str) -> tuple[int, str]:
    """curl with the caller's arguments as the seed writes them; -sS and -w only make
    its output parseable (no progress meter, the status on the last line)."""
    out = subprocess.run(
        ["curl", "-sS", "-w", "\n%{http_code}", *args], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    body, _, status = out.stdout.rpartition("\n")
    return int(status), body


def _s3_refuses(client: Any) -> None:
    """A signed S3 request with this client's key is refused as an unknown key."""
    with pytest.raises(ClientError) as caught:
        client.list_buckets()
    assert caught.value.response["Error"]["Code"] == "InvalidAccessKeyId", caught.value.response
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def _key_events(server: FolioProcess, account_id: str) -> list[tuple[str, dict[str, Any]]]:
    with server_db(server) as db:
        rows = db.execute(
            "SELECT type, payload FROM events WHERE account_id = ? AND type LIKE 'key.%' ORDER BY id",
            (account_id,),
        ).fetchall()
    return [(kind, json.loads(payload)) for kind, payload in rows]


def _key_events_after_signup(server: FolioProcess, account_id: str) -> list[tuple[str, dict[str, Any]]]:
    """The key events after sign-up's own `key.created` (for its first key pair)."""
    events = _key_events(server, account_id)
    assert events[:1] and events[0][0] == "key.created" and events[0][1]["name"] == "default", events
    return events[1:]


def _active_keys_in_db(server: FolioProcess, account_id: str) -> int:
    with server_db(server) as db:
        return db.execute(
            "SELECT count(*) FROM access_keys WHERE account_id = ? AND revoked_at IS NULL", (account_id,)
        ).fetchone()[0]


# ---------------------------------------------------------------- the seed's curl example


def test_seed_curl_example_creates_lists_and_deletes_a_key(folio: FolioProcess, web: Web) -> None:
    user = _signup(web, "curl")
    # The seed's example, word for word, with a real cookie.
    status, body = _curl(
        "-X", "POST", f"{folio.web_url}/api/keys",
        "-H", "Content-Type: application/json",
        "-H", f"Cookie: session={user.cookie}",
        "-d", '{"name": "production-key"}',
    )  # fmt: skip
    assert status == 201, body
    created = json.loads(body)
    assert created["name"] == "production-key"
    assert created["id"] == created["accessKey"]
    assert len(created["accessKey"]) == 20 and created["accessKey"].isalnum()
    assert len(created["secretKey"]) >= 32
    assert created["createdAt"].endswith("Z")

    # The new pair signs S3 requests at once, as the seed promises.
    s3 = make_s3_client(folio, created["accessKey"], created["secretKey"])
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == [user.account["defaultBucket"]]

    status, body = _curl(f"{folio.web_url}/api/keys", "-H", f"Cookie: session={user.cookie}")
    assert status == 200, body
    listed = json.loads(body)["keys"]
    assert {k["accessKey"] for k in listed} == {user.access_key, created["accessKey"]}
    assert {k["name"] for k in listed} == {"default", "production-key"}
    assert all(set(k) == {"id", "accessKey", "name", "createdAt"} for k in listed), listed
    # Secrets are shown once: the listing carries none of them.
    assert created["secretKey"] not in body and user.secret_key not in body

    status, body = _curl(
        "-X", "DELETE", f"{folio.web_url}/api/keys?id={created['accessKey']}",
        "-H", f"Cookie: session={user.cookie}",
    )  # fmt: skip
    assert status == 200, body
    assert json.loads(body) == {"success": True}
    assert [k["accessKey"] for k in _keys(web, user)] == [user.access_key]
    _s3_refuses(s3)


# ---------------------------------------------------------------- sign-up to first upload


def test_signup_gives_keys_and_a_default_bucket_that_boto3_uses_and_usage_counts(
    folio: FolioProcess, web: Web, tmp_path: Path
) -> None:
    user = _signup(web, "signup")
    account = user.account
    assert account["email"] == user.email
    assert account["displayName"] == user.email.split("@")[0]
    assert account["defaultBucket"] == f"files-{account['id'][:12]}"
    assert len(account["accessKey"]) == 20 and len(account["secretKey"]) >= 32
    assert not any("password" in field.lower() for field in account), account
    assert account["plan"]["name"] == "default"
    assert account["plan"]["maxAccessKeys"] == MAX_KEYS
    assert account["plan"]["storageBytes"] == TEST_QUOTA
    assert account["usage"] == {
        "bytesUsed": 0, "objects": 0, "buckets": 1, "quotaBytes": TEST_QUOTA, "percentUsed": 0.0,
    }  # fmt: skip

    s3 = make_s3_client(folio, user.access_key, user.secret_key)
    listed = s3.list_buckets()
    bucket = account["defaultBucket"]
    assert [b["Name"] for b in listed["Buckets"]] == [bucket]
    # The account's S3 identity is the one the dashboard shows.
    assert listed["Owner"]["ID"] == account["canonicalId"]

    s3.put_object(Bucket=bucket, Key="hello.txt", Body=b"hello, folio\n")
    local = tmp_path / "report.bin"
    local.write_bytes(random.randbytes(5000))
    s3.upload_file(str(local), bucket, "reports/2026.bin")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == ["hello.txt", "reports/2026.bin"]

    usage = _account(web, user)["usage"]
    assert usage["bytesUsed"] == 13 + 5000
    assert usage["objects"] == 2
    assert usage["buckets"] == 1
    assert usage["percentUsed"] == round(100 * 5013 / TEST_QUOTA, 2)

    # A bucket of its own counts too, and the API key sees the same account as the cookie.
    s3.create_bucket(Bucket=f"extra-{uuid.uuid4().hex[:12]}")
    by_key = web.request("GET", "/api/account", api_key=user.api_key)
    assert by_key.status_code == 200, by_key.text
    assert by_key.json()["id"] == account["id"]
    assert by_key.json()["usage"]["buckets"] == 2
    assert by_key.json()["usage"]["bytesUsed"] == 5013


# ---------------------------------------------------------------- revocation


def test_revoked_key_is_refused_at_once_on_s3_presigned_urls_and_rest(folio: FolioProcess, web: Web) -> None:
    user = _signup(web, "revoke")
    bucket = user.account["defaultBucket"]
    spare = _create_key(web, user, "spare")
    doomed = make_s3_client(folio, user.access_key, user.secret_key)
    kept = make_s3_client(folio, spare["accessKey"], spare["secretKey"])

    doomed.put_object(Bucket=bucket, Key="doc.txt", Body=b"still mine")
    presigned = doomed.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "doc.txt"}, ExpiresIn=3600
    )
    # Each door has seen the key before revocation, so a cached lookup would show here.
    assert httpx.get(presigned).content == b"still mine"
    assert doomed.list_objects_v2(Bucket=bucket)["KeyCount"] == 1
    assert web.request("GET", "/api/v1/files", api_key=user.api_key).status_code == 200

    deleted = web.request("DELETE", f"/api/keys?id={user.access_key}", cookie=user.cookie)
    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == {"success": True}

    _s3_refuses(doomed)
    with pytest.raises(ClientError) as caught:
        doomed.put_object(Bucket=bucket, Key="after.txt", Body=b"x")
    assert caught.value.response["Error"]["Code"] == "InvalidAccessKeyId"
    stale = httpx.get(presigned)
    assert stale.status_code == 403, stale.text
    assert "<Code>InvalidAccessKeyId</Code>" in stale.text
    for auth in ({"X-API-Key": user.api_key}, {"Authorization": f"Bearer {user.api_key}"}):
        refused = httpx.get(f"{folio.web_url}/api/v1/files", headers=auth)
        _assert_error(refused, 401, "Unauthorized")
    _assert_error(web.request("GET", "/api/keys", api_key=user.api_key), 401, "Unauthorized")

    # The account's other key and its session are untouched.
    assert kept.get_object(Bucket=bucket, Key="doc.txt")["Body"].read() == b"still mine"
    assert kept.list_objects_v2(Bucket=bucket)["KeyCount"] == 1
    fresh = kept.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "doc.txt"})
    assert httpx.get(fresh).content == b"still mine"
    rest = web.request("GET", "/api/v1/files", api_key=f"{spare['accessKey']}:{spare['secretKey']}")
    assert rest.status_code == 200, rest.text
    assert [k["accessKey"] for k in _keys(web, user)] == [spare["accessKey"]]
    # Revoking twice finds nothing to revoke.
    _assert_error(
        web.request("DELETE", f"/api/keys?id={user.access_key}", cookie=user.cookie), 404, "NotFound"
    )


# ---------------------------------------------------------------- the key limit


def test_at_most_five_active_keys_and_revoking_one_makes_room(folio: FolioProcess, web: Web) -> None:
    user = _signup(web, "limit")
    names = ["default"]
    for n in range(1, MAX_KEYS):
        names.append(_create_key(web, user, f"key-{n}")["name"])
    assert [k["name"] for k in _keys(web, user)] == names

    refused = web.request("POST", "/api/keys", cookie=user.cookie, body={"name": "one-too-many"})
    error = _assert_error(refused, 403, "TooManyKeys")
    assert error["details"] == {"limit": MAX_KEYS}
    # The API-key door to /api/keys counts the same keys.
    refused = web.request("POST", "/api/keys", api_key=user.api_key, body={"name": "one-too-many"})
    _assert_error(refused, 403, "TooManyKeys")
    assert len(_keys(web, user)) == MAX_KEYS
    assert _active_keys_in_db(folio, user.id) == MAX_KEYS

    victim = _keys(web, user)[2]["accessKey"]
    assert web.request("DELETE", f"/api/keys?id={victim}", cookie=user.cookie).status_code == 200
    replacement = web.request("POST", "/api/keys", api_key=user.api_key, body={"name": "replacement"})
    assert replacement.status_code == 201, replacement.text
    listed = _keys(web, user)
    assert len(listed) == MAX_KEYS
    assert victim not in {k["accessKey"] for k in listed}
    assert listed[-1]["name"] == "replacement"
    _assert_error(
        web.request("POST", "/api/keys", cookie=user.cookie, body={"name": "x"}), 403, "TooManyKeys"
    )


def test_concurrent_key_creation_never_exceeds_the_limit(folio: FolioProcess, web: Web) -> None:
    user = _signup(web, "race")

    def create(n: int) -> int:
        return web.request("POST", "/api/keys", cookie=user.cookie, body={"name": f"race-{n}"}).status_code

    # Ten requests at once for four free places: the count and the insert are one transaction.
    with ThreadPoolExecutor(max_workers=10) as pool:
        statuses = sorted(pool.map(create, range(10)))
    assert statuses == [201] * (MAX_KEYS - 1) + [403] * (11 - MAX_KEYS), statuses
    assert len(_keys(web, user)) == MAX_KEYS
    assert _active_keys_in_db(folio, user.id) == MAX_KEYS
    assert [kind for kind, _ in _key_events_after_signup(folio, user.id)] == ["key.created"] * (MAX_KEYS - 1)


# ---------------------------------------------------------------- sessions


def test_session_cookie_is_httponly_samesite_lax_and_stored_hashed(folio: FolioProcess, web: Web) -> None:
    user = _signup(web, "cookie")
    login = web.request("POST", "/api/auth/login", body={"email": user.email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    for header in (user.set_cookie, _session_cookie(login)):
        attributes = {part.strip().lower() for part in header.split(";")[1:]}
        assert "httponly" in attributes, header
        assert "samesite=lax" in attributes, header
        assert "path=/" in attributes, header
        # Plain http on loopback: a Secure cookie would never be sent back.
        assert "secure" not in attributes, header
        assert len(_cookie_value(header)) >= 32, header
    assert _cookie_value(_session_cookie(login)) != user.cookie

    # The database holds only a digest of the token: a copy of it opens no session.
    with server_db(folio) as db:
        rows = db.execute("SELECT token_hash FROM sessions WHERE account_id = ?", (user.id,)).fetchall()
    assert hashlib.sha256(user.cookie.encode()).hexdigest() in {r[0] for r in rows}
    assert user.cookie not in {r[0] for r in rows}


def test_logout_invalidates_the_cookie_and_login_opens_a_new_session(web: Web) -> None:
    user = _signup(web, "logout")
    assert _account(web, user)["id"] == user.id
    login = web.request("POST", "/api/auth/login", body={"email": user.email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    assert login.json()["id"] == user.id and "secretKey" not in login.json()
    second = _cookie_value(_session_cookie(login))

    out = web.request("POST", "/api/auth/logout", cookie=user.cookie)
    assert out.status_code == 200, out.text
    assert out.json() == {"success": True}
    assert "max-age=0" in _session_cookie(out).lower()

    # The old token is dead everywhere, even if a client keeps sending it.
    _assert_error(web.request("GET", "/api/account", cookie=user.cookie), 401, "Unauthorized")
    _assert_error(web.request("GET", "/api/keys", cookie=user.cookie), 401, "Unauthorized")
    refused = web.request("POST", "/api/keys", cookie=user.cookie, body={"name": "zombie"})
    _assert_error(refused, 401, "Unauthorized")
    # Logging out one session leaves the account's other session alone.
    assert web.request("GET", "/api/account", cookie=second).json()["id"] == user.id
    assert len(web.request("GET", "/api/keys", cookie=second).json()["keys"]) == 1


def test_login_with_wrong_password_or_unknown_email_is_401_without_a_cookie(web: Web) -> None:
    user = _signup(web, "wrongpw")
    for body in (
        {"email": user.email, "password": PASSWORD + "!"},
        {"email": _unique_email("nobody"), "password": PASSWORD},
    ):
        response = web.request("POST", "/api/auth/login", body=body)
        error = _assert_error(response, 401, "Unauthorized")
        assert "session=" not in response.headers.get("set-cookie", "")
        # Both answers are the same: a guess learns nothing about which emails exist.
        assert error["message"] == "Wrong email or password."
    # Emails are not case-sensitive.
    ok = web.request("POST", "/api/auth/login", body={"email": user.email.upper(), "password": PASSWORD})
    assert ok.status_code == 200, ok.text
    assert ok.json()["id"] == user.id


def _retry_after(response: httpx.Response) -> int:
    _assert_error(response, 429, "TooManyRequests")
    value = int(response.headers["retry-after"])
    # 10 a minute: the next attempt is at most 6 seconds away.
    assert 1 <= value <= 6, value
    return value


def test_login_burst_from_one_address_is_429_with_retry_after(folio: FolioProcess) -> None:
    owner = Web(folio)
    attacker = Web(folio)
    try:
        user = _signup(owner, "burst-ip")
        statuses = []
        for _ in range(10):
            guess = {"email": _unique_email("guess"), "password": "not-the-password"}
            statuses.append(attacker.request("POST", "/api/auth/login", body=guess).status_code)
        assert statuses == [401] * 10
        _retry_after(
            attacker.request("POST", "/api/auth/login", body={"email": "x@example.com", "password": "y"})
        )
        # Even the right password waits from that address; another address is unaffected.
        right = {"email": user.email, "password": PASSWORD}
        _retry_after(attacker.request("POST", "/api/auth/login", body=right))
        assert owner.request("POST", "/api/auth/login", body=right).status_code == 200
    finally:
        owner.close()
        attacker.close()


def test_login_burst_on_one_email_from_many_addresses_is_429(folio: FolioProcess) -> None:
    owner = Web(folio)
    try:
        user = _signup(owner, "burst-email")  # sign-up spends one of the email's 10
        wrong = {"email": user.email, "password": "not-the-password"}
        statuses: list[int] = []
        while 429 not in statuses and len(statuses) < 14:
            guesser = Web(folio)  # a new address each time: only the email's budget runs out
            try:
                response = guesser.request("POST", "/api/auth/login", body=wrong)
            finally:
                guesser.close()
            statuses.append(response.status_code)
        # 9 guesses left after sign-up (one more may refill while scrypt runs).
        assert statuses[:9] == [401] * 9 and statuses[-1] == 429 and len(statuses) <= 11, statuses
        _retry_after(response)
        right = {"email": user.email, "password": PASSWORD}
        _retry_after(owner.request("POST", "/api/auth/login", body=right))
    finally:
        owner.close()


# ---------------------------------------------------------------- CSRF


def test_cross_origin_cookie_writes_are_refused_and_same_origin_ones_allowed(
    folio: FolioProcess, web: Web
) -> None:
    user = _signup(web, "csrf")
    for origin in ("https://evil.example", "http://127.0.0.1.evil.example", "null"):
        posted = web.request("POST", "/api/keys", cookie=user.cookie, origin=origin, body={"name": "stolen"})
        _assert_error(posted, 403, "Forbidden")
        deleted = web.request("DELETE", f"/api/keys?id={user.access_key}", cookie=user.cookie, origin=origin)
        _assert_error(deleted, 403, "Forbidden")
        _assert_error(
            web.request("POST", "/api/auth/logout", cookie=user.cookie, origin=origin), 403, "Forbidden"
        )
    # Nothing happened: one key, still working, and the session is still open.
    assert [k["accessKey"] for k in _keys(web, user)] == [user.access_key]
    assert _key_events_after_signup(folio, user.id) == []
    make_s3_client(folio, user.access_key, user.secret_key).list_buckets()

    same = folio.web_url
    created = web.request("POST", "/api/keys", cookie=user.cookie, origin=same, body={"name": "mine"})
    assert created.status_code == 201, created.text
    gone = web.request(
        "DELETE", f"/api/keys?id={created.json()['accessKey']}", cookie=user.cookie, origin=same
    )
    assert gone.status_code == 200, gone.text
    assert web.request("POST", "/api/auth/logout", cookie=user.cookie, origin=same).status_code == 200
    _assert_error(web.request("GET", "/api/account", cookie=user.cookie), 401, "Unauthorized")


# ---------------------------------------------------------------- bad input


def _accounts_count(server: FolioProcess) -> int:
    with server_db(server) as db:
        return db.execute("SELECT count(*) FROM accounts").fetchone()[0]


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        pytest.param(b'{"email": "a@example.com", "password": ', None, id="malformed-json"),
        pytest.param(b"\xff\xfe{}", None, id="not-utf8"),
        pytest.param(b'["a@example.com", "long-enough-pw"]', None, id="array-body"),
        pytest.param(b"", "email", id="empty-body"),
        pytest.param(b'{"password": "long-enough-pw"}', "email", id="missing-email"),
        pytest.param(b'{"email": "EMAIL"}', "password", id="missing-password"),
        pytest.param(b'{"email": 42, "password": "long-enough-pw"}', "email", id="email-number"),
        pytest.param(b'{"email": "EMAIL", "password": ["long-enough-pw"]}', "password", id="password-list"),
        pytest.param(b'{"email": "EMAIL", "password": null}', "password", id="password-null"),
        pytest.param(b'{"email": "not-an-email", "password": "long-enough-pw"}', "email", id="bad-email"),
        pytest.param(b'{"email": "EMAIL", "password": "7-chars"}', "password", id="short-password"),
        pytest.param(b'{"email": "EMAIL", "password": "        "}', "password", id="blank-password"),
        pytest.param(
            b'{"email": "' + b"a" * 250 + b'@example.com", "password": "long-enough-pw"}',
            "email",
            id="long-email",
        ),
    ],
)
def test_bad_signup_input_is_400_and_creates_nothing(
    folio: FolioProcess, web: Web, raw: bytes, field: str | None
) -> None:
    email = _unique_email("bad")
    before = _accounts_count(folio)
    response = web.request("POST", "/api/auth/signup", content=raw.replace(b"EMAIL", email.encode()))
    error = _assert_error(response, 400, "BadRequest")
    if field is not None:
        assert error["details"].get("field") == field, error
    assert "set-cookie" not in response.headers
    assert _accounts_count(folio) == before


def test_eight_character_password_is_enough(web: Web) -> None:
    # The boundary of the 400 above: exactly eight characters sign up and log in.
    user = _signup(web, "eight", password="8-chars!")
    login = web.request("POST", "/api/auth/login", body={"email": user.email, "password": "8-chars!"})
    assert login.status_code == 200, login.text


def test_oversized_signup_body_is_413(folio: FolioProcess, web: Web) -> None:
    before = _accounts_count(folio)
    body = {"email": _unique_email("big"), "password": "p" * (70 * 1024)}
    _assert_error(web.request("POST", "/api/auth/signup", body=body), 413, "PayloadTooLarge")
    assert _accounts_count(folio) == before


def test_duplicate_email_is_409_and_leaves_the_account_alone(folio: FolioProcess, web: Web) -> None:
    user = _signup(web, "dup")
    for email in (user.email, user.email.upper()):
        again = web.request("POST", "/api/auth/signup", body={"email": email, "password": "another-password"})
        _assert_error(again, 409, "AccountExists")
        assert "set-cookie" not in again.headers
    # The first owner's password, key and bucket are as they were.
    assert (
        web.request(
            "POST", "/api/auth/login", body={"email": user.email, "password": "another-password"}
        ).status_code
        == 401
    )
    assert (
        web.request("POST", "/api/auth/login", body={"email": user.email, "password": PASSWORD}).status_code
        == 200
    )
    assert [k["accessKey"] for k in _keys(web, user)] == [user.access_key]
    assert _account(web, user)["usage"]["buckets"] == 1
    make_s3_client(folio, user.access_key, user.secret_key).list_buckets()


def test_bad_login_input_is_400(web: Web) -> None:
    for raw in (b"{not json", b"[]", b'{"email": "a@example.com"}', b'{"email": 1, "password": "x"}'):
        _assert_error(web.request("POST", "/api/auth/login", content=raw), 400, "BadRequest")


def test_bad_key_requests_get_json_errors_and_change_nothing(folio: FolioProcess, web: Web) -> None:
    user = _signup(web, "badkeys")
    other = _signup(web, "otherkeys")

    for raw in (
        b'{"name": ',
        b"[]",
        b'{"name": 5}',
        b'{"name": ["x"]}',
        b"\xff",
        json.dumps({"name": "n" * 101}).encode(),
    ):
        posted = web.request("POST", "/api/keys", cookie=user.cookie, content=raw)
        _assert_error(posted, 400, "BadRequest")
    huge = web.request("POST", "/api/keys", cookie=user.cookie, body={"name": "x", "pad": "p" * 70000})
    _assert_error(huge, 413, "PayloadTooLarge")

    _assert_error(web.request("DELETE", "/api/keys", cookie=user.cookie), 400, "BadRequest")
    _assert_error(web.request("DELETE", "/api/keys?id=", cookie=user.cookie), 400, "BadRequest")
    # Another account's key is not ours to see or revoke: the same 404 as a key that never existed.
    for key_id in (other.access_key, "FKNOSUCHKEY000000000"):
        _assert_error(web.request("DELETE", f"/api/keys?id={key_id}", cookie=user.cookie), 404, "NotFound")
    _assert_error(
        web.request("DELETE", f"/api/keys?id={other.access_key}", api_key=user.api_key), 404, "NotFound"
    )

    _assert_error(
        web.request("PUT", "/api/keys", cookie=user.cookie, body={"name": "x"}), 405, "MethodNotAllowed"
    )
    for credentials in (
        {},
        {"api_key": "garbage"},
        {"api_key": f"{user.access_key}:wrong-secret"},
        {"cookie": "not-a-session"},
    ):
        _assert_error(web.request("GET", "/api/keys", **credentials), 401, "Unauthorized")
        _assert_error(web.request("GET", "/api/account", **credentials), 401, "Unauthorized")
        _assert_error(
            web.request("POST", "/api/keys", body={"name": "x"}, **credentials), 401, "Unauthorized"
        )

    # Nothing changed for either account.
    assert [k["accessKey"] for k in _keys(web, user)] == [user.access_key]
    assert [k["accessKey"] for k in _keys(web, other)] == [other.access_key]
    assert _key_events_after_signup(folio, user.id) == [] and _key_events_after_signup(folio, other.id) == []
    make_s3_client(folio, other.access_key, other.secret_key).list_buckets()


# ---------------------------------------------------------------- events


def test_key_created_and_revoked_events_are_recorded_for_the_right_account(
    folio: FolioProcess, web: Web
) -> None:
    alice = _signup(web, "events-a")
    bob = _signup(web, "events-b")
    started = time.time()
    ci = _create_key(web, alice, "ci")
    assert web.request("DELETE", f"/api/keys?id={ci['accessKey']}", cookie=alice.cookie).status_code == 200
    # Revoking the sign-up key counts as well.
    assert web.request("DELETE", f"/api/keys?id={alice.access_key}", cookie=alice.cookie).status_code == 200
    bobs = _create_key(web, bob, "bob-laptop")
    # Refused requests record nothing.
    _assert_error(
        web.request("DELETE", f"/api/keys?id={bobs['accessKey']}", cookie=alice.cookie), 404, "NotFound"
    )
    _assert_error(
        web.request(
            "POST", "/api/keys", cookie=alice.cookie, origin="https://evil.example", body={"name": "x"}
        ),
        403,
        "Forbidden",
    )

    assert _key_events(folio, alice.id) == [
        ("key.created", {"accessKey": alice.access_key, "name": "default"}),  # sign-up's key pair
        ("key.created", {"accessKey": ci["accessKey"], "name": "ci"}),
        ("key.revoked", {"accessKey": ci["accessKey"]}),
        ("key.revoked", {"accessKey": alice.access_key}),
    ]
    assert _key_events(folio, bob.id) == [
        ("key.created", {"accessKey": bob.access_key, "name": "default"}),
        ("key.created", {"accessKey": bobs["accessKey"], "name": "bob-laptop"}),
    ]
    with server_db(folio) as db:
        rows = db.execute(
            "SELECT account_id, created_at FROM events WHERE type LIKE 'key.%' AND payload LIKE ?",
            (f"%{ci['accessKey']}%",),
        ).fetchall()
    assert {r[0] for r in rows} == {alice.id}
    assert all(started - 1 <= r[1] <= time.time() + 1 for r in rows), rows
