"""Rate limits that slow clients down before they refuse them (issue 14): a request over
its plan's rate waits for its token, asleep on the server, while that wait stays within
[limits] max_rate_wait_seconds (2 s by default); past it, 429 TooManyRequests with
Retry-After. The first-start admin is on a plan of its own without rate limits.

The server here has the seed plan's rates on its default plan (100 writes a second) and
the default wait bound; the `ten` plan writes ten times a second. Tests/test_rate_limits.py
covers the refusal itself (with no waiting allowed)."""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from core.ratelimit import RateLimiter
from tests.conftest import make_s3_client
from tests.folio_process import FolioProcess, running_server
from tests.server_db import server_db
from tests.web_client import fresh_address

SHAPING_CONFIG = """
# Bursts of 500 requests at once, most of them asleep waiting for their turn: more than
# the default concurrency bound (256) lets in. The bound has its own tests (test_overload.py).
[server]
max_concurrent_requests = 1024

[plans.default]
max_buckets = 1000
write_per_second = 100
read_per_second = 300
list_per_second = 50

[plans.ten]
max_buckets = 1000
write_per_second = 10
read_per_second = 0
list_per_second = 0
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FolioProcess]:
    yield from running_server(tmp_path_factory, "rate-shaping", SHAPING_CONFIG)


def signed_put(
    server: FolioProcess, access_key: str, secret_key: str, path: str, body: bytes
) -> httpx.Request:
    url = f"{server.s3_url}{path}"
    request = AWSRequest(
        method="PUT", url=url, data=body, headers={"x-amz-content-sha256": hashlib.sha256(body).hexdigest()}
    )
    S3SigV4Auth(Credentials(access_key, secret_key), "s3", "us-east-1").add_auth(request)
    return httpx.Request("PUT", url, content=body, headers=dict(request.headers.items()))


def burst(requests: list[httpx.Request]) -> list[tuple[httpx.Response, float, float]]:
    """Send every request at once (one connection each); (answer, seconds it took, when it
    came back on time.monotonic())."""

    async def run() -> list[tuple[httpx.Response, float, float]]:
        limits = httpx.Limits(max_connections=len(requests), max_keepalive_connections=0)
        async with httpx.AsyncClient(limits=limits, timeout=60, trust_env=False) as client:

            async def one(request: httpx.Request) -> tuple[httpx.Response, float, float]:
                started = time.monotonic()
                response = await client.send(request)
                finished = time.monotonic()
                return response, finished - started, finished

            return await asyncio.gather(*(one(r) for r in requests))

    return asyncio.run(run())


def assert_admitted_at_the_rate(
    answers: list[tuple[httpx.Response, float, float]], sent: float, full: int, rate: float
) -> None:
    """From a full bucket of `full` tokens at `sent` (before the first request went out),
    the k-th request admitted cannot be answered before its token was due, `(k - full) /
    rate` seconds later: however slowly a loaded machine delivers the burst, no more get
    in by any moment than the plan allows."""
    answered = sorted(finished for response, _took, finished in answers if response.status_code == 200)
    for k, finished in enumerate(answered, start=1):
        due = sent + (k - full) / rate
        assert finished >= due - 0.005, (
            f"admission {k} answered {due - finished:.3f} s before its token was due"
        )


# ---------------------------------------------------------------- the limiter itself


def test_waiting_requests_reserve_their_turns_in_order_up_to_the_bound() -> None:
    now = [100.0]
    limiter = RateLimiter(clock=lambda: now[0])
    decisions = [limiter.reserve("k", 10, max_wait=2.0) for _ in range(40)]
    allowed = [d.wait for d in decisions if d.allowed]
    # A burst of one second's worth at once, then a turn every 0.1 s up to the 2 s bound:
    # each waiting request has its own slot, in the order it came.
    assert allowed[:10] == [0.0] * 10
    assert allowed[10:] == pytest.approx([0.1 * n for n in range(1, 21)])
    assert [d.allowed for d in decisions] == [True] * 30 + [False] * 10
    # Refused: nothing reserved, and a retry is admitted once its wait is within the bound.
    assert all(d.wait == pytest.approx(0.1) for d in decisions[30:])
    now[0] += 0.1
    retried = limiter.reserve("k", 10, max_wait=2.0)
    assert retried.allowed and retried.wait == pytest.approx(2.0)
    # Without a bound (the login limits, `acquire`) an empty bucket refuses at once.
    assert limiter.acquire("other", 1) == 0.0
    assert limiter.acquire("other", 1) == pytest.approx(1.0)


def test_a_key_idle_long_enough_gets_one_full_burst_not_more() -> None:
    now = [100.0]
    limiter = RateLimiter(clock=lambda: now[0])
    assert limiter.acquire("k", 10) == 0.0  # the key is known: its bucket refills while idle
    now[0] += 5.0
    # Full again: ten at once (one second's worth), and the eleventh waits its 0.1 s.
    assert [limiter.acquire("k", 10) for _ in range(10)] == [0.0] * 10
    assert limiter.acquire("k", 10) == pytest.approx(0.1)
    # Half a second later, five tokens came back: no more.
    now[0] += 0.5
    assert [limiter.acquire("k", 10) for _ in range(5)] == [0.0] * 5
    assert limiter.acquire("k", 10) > 0


def test_waiting_requests_over_all_keys_are_capped() -> None:
    limiter = RateLimiter(clock=lambda: 0.0, max_waiting=3)
    limiter.waiting = 3  # three requests asleep already
    assert limiter.reserve("fresh", 10, max_wait=2.0).allowed  # its burst needs no wait
    for _ in range(9):
        limiter.reserve("fresh", 10, max_wait=2.0)
    assert not limiter.reserve("fresh", 10, max_wait=2.0).allowed  # it would have to wait


# ---------------------------------------------------------------- against the server


def test_default_boto3_puts_1200_objects_from_16_threads_at_the_plan_rate(server: FolioProcess) -> None:
    account = server.create_account(f"shaped-{uuid.uuid4().hex[:8]}@example.com")
    # Default retry configuration; only the pool is as large as the thread count.
    client = make_s3_client(
        server, account["accessKey"], account["secretKey"], config=Config(max_pool_connections=16)
    )
    bucket = f"shaped-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    time.sleep(1.1)  # the bucket's create spent a write token: start from a full burst

    def put(n: int) -> int:
        answer = client.put_object(Bucket=bucket, Key=f"k/{n:05d}", Body=b"x" * 64)
        return answer["ResponseMetadata"]["RetryAttempts"]

    started = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        retries = list(pool.map(put, range(1200)))
    elapsed = time.monotonic() - started

    # All succeed, and none needed a retry: nothing was refused.
    assert sum(retries) == 0
    # A burst of 100 at once, then 100 a second: 1,100 PUTs take 11 s (within 10%).
    rate = 1100 / elapsed
    assert 90 <= rate <= 110, (elapsed, rate)
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    assert sum(page.get("KeyCount", 0) for page in pages) == 1200


def test_requests_past_the_wait_bound_get_429_with_retry_after(server: FolioProcess) -> None:
    account = server.create_account(f"ten-{uuid.uuid4().hex[:8]}@example.com", plan="ten")
    keys = account["accessKey"], account["secretKey"]
    bucket = f"ten-{uuid.uuid4().hex[:12]}"
    make_s3_client(server, *keys).create_bucket(Bucket=bucket)
    time.sleep(1.1)

    sent = time.monotonic()
    answers = burst([signed_put(server, *keys, f"/{bucket}/b-{n:03d}", b"burst") for n in range(200)])
    ok = [(r, took) for r, took, _at in answers if r.status_code == 200]
    refused = [r for r, _took, _at in answers if r.status_code != 200]
    # 10 at once plus 20 waiting (one every 0.1 s up to the 2 s bound), and more whose
    # turn came within the bound while the 200 were still arriving: never faster than the
    # plan's rate, and none waiting past the bound (the rest refused).
    assert len(ok) >= 29, len(ok)
    assert_admitted_at_the_rate(answers, sent, full=10, rate=10)
    assert max(took for _r, took in ok) <= 2.0 + 1.5
    assert refused, "200 PUTs at once at ten a second: all admitted within a 2 s wait"
    for response in refused:
        assert response.status_code == 429, response.text
        assert b"<Code>TooManyRequests</Code>" in response.content
        assert int(response.headers["retry-after"]) >= 1
        assert int(response.headers["x-amz-retry-after"]) >= 1
    listed = make_s3_client(server, *keys).list_objects_v2(Bucket=bucket)
    assert listed["KeyCount"] == len(ok)

    # After the Retry-After it named, a request of the same key is admitted again.
    time.sleep(int(refused[-1].headers["retry-after"]))
    again = burst([signed_put(server, *keys, f"/{bucket}/after", b"after")])
    assert again[0][0].status_code == 200


def test_admin_is_unlimited_and_a_signed_up_account_is_not(server: FolioProcess) -> None:
    with httpx.Client(base_url=server.web_url, trust_env=False, timeout=30) as web:
        admin = web.get("/api/account", headers={"X-API-Key": f"{server.access_key}:{server.secret_key}"})
        assert admin.status_code == 200, admin.text
        assert admin.json()["plan"]["name"] == "admin"
        assert admin.json()["plan"]["writePerSecond"] == 0
        signup_web = httpx.Client(
            base_url=server.web_url, transport=httpx.HTTPTransport(local_address=fresh_address()), timeout=30
        )
        with signup_web:
            email = f"shaped-user-{uuid.uuid4().hex[:8]}@example.com"
            created = signup_web.post(
                "/api/auth/signup", json={"email": email, "password": "a long password 123"}
            )
        assert created.status_code == 201, created.text
        user = created.json()
        mine = web.get("/api/account", headers={"X-API-Key": f"{user['accessKey']}:{user['secretKey']}"})
        assert mine.json()["plan"]["name"] == "default"

    admin_bucket, user_bucket = f"adm-{uuid.uuid4().hex[:12]}", f"usr-{uuid.uuid4().hex[:12]}"
    make_s3_client(server).create_bucket(Bucket=admin_bucket)
    make_s3_client(server, user["accessKey"], user["secretKey"]).create_bucket(Bucket=user_bucket)
    time.sleep(1.1)

    admin_answers = burst(
        [
            signed_put(server, server.access_key, server.secret_key, f"/{admin_bucket}/a{n}", b"a")
            for n in range(500)
        ]
    )
    assert [r.status_code for r, _took, _at in admin_answers] == [200] * 500
    # The same burst from a default-plan account: 100 at once, 200 waiting, the rest 429
    # (but for the turns that fall within the bound while the 500 are still arriving).
    sent = time.monotonic()
    user_answers = burst(
        [
            signed_put(server, user["accessKey"], user["secretKey"], f"/{user_bucket}/u{n}", b"u")
            for n in range(500)
        ]
    )
    statuses = [r.status_code for r, _took, _at in user_answers]
    assert set(statuses) <= {200, 429}
    assert statuses.count(200) >= 290, statuses.count(200)
    # Shaped at 100 a second whatever the machine's load: the 500th admission, if all got
    # in, was answered 4 s after the burst began at the earliest.
    assert_admitted_at_the_rate(user_answers, sent, full=100, rate=100)


def test_an_existing_admin_on_the_default_plan_moves_to_the_admin_plan(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """A data directory from before the admin plan: its admin is on "default" (the schema
    had no migration 3 of core.accounts); after the upgrade it is on "admin"."""
    data = tmp_path_factory.mktemp("admin-upgrade") / "data"
    old = FolioProcess(data_dir=data, config_text=SHAPING_CONFIG)
    old.start()
    old.stop()
    with server_db(old, write=True) as db:
        moved = db.execute("UPDATE accounts SET plan = 'default' WHERE is_admin = 1").rowcount
        forgotten = db.execute(
            "DELETE FROM schema_migrations WHERE package = 'core.accounts' AND version = 3"
        )
        assert (moved, forgotten.rowcount) == (1, 1)
    upgraded = FolioProcess(data_dir=data, config_text=SHAPING_CONFIG, database_url=old.database_url)
    upgraded.start()
    try:
        answer = httpx.get(
            f"{upgraded.web_url}/api/account",
            headers={"X-API-Key": f"{upgraded.access_key}:{upgraded.secret_key}"},
            trust_env=False,
        )
        assert answer.json()["plan"]["name"] == "admin"
    finally:
        upgraded.stop()
