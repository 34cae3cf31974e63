"""Webhooks (seed 004, "Webhooks"; DESIGN.md "Events and webhooks") against the real server.

A webhook receiver runs in the test: `http.server` in a thread on 127.0.0.1 that records
every raw body and its headers and answers with a status the test sets. Folio runs as a
real process on loopback (`FolioProcess`) with loopback and plain-http targets allowed
and a short retry backoff, and is driven with real clients: curl exactly as the seed
writes its example, httpx for the JSON APIs, boto3 (default configuration) for S3.

Every signature is checked twice: in Python (HMAC-SHA256 of the raw body) and with the
seed's own Node `verifyWebhook` snippet, fed `JSON.stringify(JSON.parse(body))` as the
seed's Express handler would (`JSON.stringify(req.body)`).

Each test uses fresh accounts, so no test sees another's events; the crash test and the
https-only check start servers of their own and stop them by their own handles.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from botocore.exceptions import ClientError

from tests.conftest import make_s3_client
from tests.folio_process import FolioProcess, running_server
from tests.web_client import serve_in_thread

T = TypeVar("T")

WEBHOOKS_CONFIG = """
[webhooks]
allow_loopback_targets = true
allow_http = true
backoff_seconds = {backoff}
"""

SMALL_QUOTA = 10_000
# No rate limits: the tests poll /api/webhooks and send requests as fast as they can.
PLANS = f"""
[plans.default]
max_buckets = 100
write_per_second = 0
read_per_second = 0
list_per_second = 0
dashboard_per_minute = 0

[plans.small]
storage_bytes = {SMALL_QUOTA}
max_buckets = 10
write_per_second = 0
read_per_second = 0
list_per_second = 0
dashboard_per_minute = 0
"""

CONFIG = WEBHOOKS_CONFIG.format(backoff=0.2) + PLANS
ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
ALL_EVENTS = [
    "object.created",
    "object.updated",
    "object.deleted",
    "bucket.created",
    "bucket.deleted",
    "key.created",
    "key.revoked",
]

# The seed's snippet verbatim (import and function), then a driver that feeds it what the
# seed's Express handler would: JSON.stringify of the parsed body.
NODE_VERIFY = r"""
import crypto from "crypto";

function verifyWebhook(payload, signature, secret) {
  const expected = crypto
    .createHmac("sha256", secret)
    .update(payload)
    .digest("hex");
  return crypto.timingSafeEqual(
    Buffer.from(signature),
    Buffer.from(expected)
  );
}

let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", () => {
  const out = JSON.parse(input).map(({ body, signature, secret }) => {
    const reserialized = JSON.stringify(JSON.parse(body));
    return { valid: verifyWebhook(reserialized, signature, secret), sameBytes: reserialized === body };
  });
  process.stdout.write(JSON.stringify(out));
});
"""


# ---------------------------------------------------------------- the receiver


@dataclass
class Received:
    """One POST the receiver got, exactly as it arrived, and the status it answered."""

    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    at: float

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body)

    @property
    def delivery_id(self) -> str:
        return self.headers.get("x-cloudstorage-delivery", "")

    @property
    def event(self) -> str:
        return self.headers.get("x-cloudstorage-event", "")


@dataclass
class Receiver:
    """A local webhook endpoint answering `status` (the test changes it at will)."""

    status: int = 200
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                if len(body) < length:
                    return  # the sender died mid-request (kill -9): no delivery happened
                with receiver.lock:
                    status = receiver.status
                    receiver.received.append(
                        Received(
                            self.path,
                            {k.lower(): v for k, v in self.headers.items()},
                            body,
                            status,
                            time.monotonic(),
                        )
                    )
                self.send_response(status)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base signature
                pass  # keep pytest's output for failures

        self.server, self.thread = serve_in_thread(Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/webhooks/cloudstorage"

    def all(self) -> list[Received]:
        with self.lock:
            return list(self.received)

    def ok(self) -> list[Received]:
        """The deliveries this receiver accepted (answered 2xx)."""
        return [r for r in self.all() if 200 <= r.status < 300]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    endpoint = Receiver()
    yield endpoint
    endpoint.close()


@pytest.fixture
def receiver2() -> Iterator[Receiver]:
    endpoint = Receiver()
    yield endpoint
    endpoint.close()


# ---------------------------------------------------------------- server and accounts


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FolioProcess]:
    yield from running_server(tmp_path_factory, "folio-webhooks", CONFIG)


@dataclass
class Account:
    server: FolioProcess
    email: str
    access_key: str
    secret_key: str
    session: str | None  # the `session` cookie; None for accounts made with `folio admin`

    @property
    def auth(self) -> dict[str, str]:
        # The dashboard's cookie when there is one, else the API key (both are accepted).
        if self.session:
            return {"Cookie": f"session={self.session}"}
        return self.api_key

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {**self.auth, **kwargs.pop("headers", {})}
        response = httpx.request(
            method, f"{self.server.web_url}{path}", headers=headers, timeout=30, **kwargs
        )
        # Whatever we send, the API must answer deliberately: a 5xx is always a bug.
        assert response.status_code < 500, f"{method} {path} -> {response.status_code}: {response.text}"
        return response

    @property
    def api_key(self) -> dict[str, str]:
        # The REST file API takes only the key pair, never the dashboard's cookie.
        return {"X-API-Key": f"{self.access_key}:{self.secret_key}"}

    @property
    def s3(self):
        return make_s3_client(self.server, self.access_key, self.secret_key)

    def create_webhook(self, url: str, events: list[str]) -> dict[str, Any]:
        response = self.api("POST", "/api/webhooks", json={"url": url, "events": events})
        assert response.status_code == 201, response.text
        return response.json()

    def webhooks(self) -> list[dict[str, Any]]:
        response = self.api("GET", "/api/webhooks")
        assert response.status_code == 200, response.text
        return response.json()["webhooks"]

    def webhook(self, webhook_id: str) -> dict[str, Any]:
        (hook,) = [h for h in self.webhooks() if h["id"] == webhook_id]
        return hook


def signup(server: FolioProcess) -> Account:
    email = f"wh-{uuid.uuid4().hex[:12]}@example.com"
    response = httpx.post(
        f"{server.web_url}/api/auth/signup",
        json={"email": email, "password": "correct horse battery"},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    session = response.cookies.get("session")
    assert session, response.headers
    return Account(server, email, body["accessKey"], body["secretKey"], session)


def wait_for(condition: Callable[[], T], what: str, timeout: float = 15.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def new_bucket_name() -> str:
    return f"wh-{uuid.uuid4().hex[:16]}"


# ---------------------------------------------------------------- signature checks


def python_valid(received: Received, secret: str) -> bool:
    expected = hmac.new(secret.encode(), received.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, received.headers.get("x-cloudstorage-signature", ""))


def node_verify(items: list[tuple[bytes, str, str]]) -> list[dict[str, bool]]:
    """Run the seed's verifyWebhook on (raw body, signature, secret) triples."""
    payload = json.dumps([{"body": b.decode("utf-8"), "signature": s, "secret": k} for b, s, k in items])
    out = subprocess.run(
        ["node", "--input-type=module", "-e", NODE_VERIFY],
        input=payload,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def assert_well_formed(deliveries: list[Received], secret: str) -> None:
    """Headers, body shape and signature of each delivery, in Python and with the seed's Node code."""
    for got in deliveries:
        body = got.json
        assert set(body) == {"id", "event", "timestamp", "data"}, body
        assert body["id"].startswith("dlv_") and got.delivery_id == body["id"]
        assert got.event == body["event"]
        assert ISO_UTC.match(body["timestamp"]), body["timestamp"]
        assert got.headers["content-type"].startswith("application/json")
        # The raw body is compact JSON with non-ASCII kept as is (what JSON.stringify writes).
        assert got.body == json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        assert python_valid(got, secret), got
    results = node_verify([(g.body, g.headers["x-cloudstorage-signature"], secret) for g in deliveries])
    for got, result in zip(deliveries, results, strict=True):
        assert result == {"valid": True, "sameBytes": True}, (result, got.body)
    # A control: the same snippet refuses a tampered signature, so `valid` above means something.
    first = deliveries[0]
    signature = first.headers["x-cloudstorage-signature"]
    tampered = ("0" if signature[0] != "0" else "1") + signature[1:]
    assert node_verify([(first.body, tampered, secret)]) == [{"valid": False, "sameBytes": True}]


def by_event(deliveries: list[Received], event: str) -> list[dict[str, Any]]:
    return [d.json["data"] for d in deliveries if d.event == event]


# ---------------------------------------------------------------- 1. the seed's curl example


def test_seed_curl_example_creates_a_webhook_that_delivers(server: FolioProcess, receiver: Receiver) -> None:
    account = signup(server)
    # The seed's example as written, with a real session cookie and our receiver's URL.
    data = (
        f'{{\n"url": "{receiver.url}",\n"events": ["object.created", "object.deleted", "quota.warning"]\n}}'
    )
    out = subprocess.run(
        [
            "curl", "-sS", "-X", "POST", f"{server.web_url}/api/webhooks",
            "-H", "Content-Type: application/json",
            "-H", f"Cookie: session={account.session}",
            "-d", data,
            "-w", "\n%{http_code}",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    text, status = out.stdout.rsplit("\n", 1)
    assert status == "201", out.stdout
    created = json.loads(text)
    # Every field of the seed's sample response, with the values it describes.
    assert {"id", "url", "events", "secret", "active", "createdAt"} <= set(created)
    assert created["id"].startswith("wh_")
    assert created["url"] == receiver.url
    assert created["events"] == ["object.created", "object.deleted", "quota.warning"]
    assert created["secret"].startswith("whsec_") and len(created["secret"]) > len("whsec_") + 16
    assert created["active"] is True
    assert ISO_UTC.match(created["createdAt"])

    # The secret is shown once: the listing never repeats it.
    listed = account.webhooks()
    assert [h["id"] for h in listed] == [created["id"]]
    assert "secret" not in listed[0] and created["secret"] not in json.dumps(listed)

    # And the webhook works: an upload reaches the receiver, signed with that secret.
    bucket = new_bucket_name()
    s3 = account.s3
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="hello.txt", Body=b"hello", ContentType="text/plain")
    (got,) = wait_for(receiver.ok, "the object.created delivery")
    assert got.path == "/webhooks/cloudstorage"
    assert got.event == "object.created"
    assert got.json["data"]["bucket"] == bucket and got.json["data"]["key"] == "hello.txt"
    assert_well_formed([got], created["secret"])


# ---------------------------------------------------------------- 2. every event type, signed


def test_every_event_type_is_delivered_with_a_valid_signature(
    server: FolioProcess, receiver: Receiver
) -> None:
    account = signup(server)
    hook = account.create_webhook(receiver.url, ALL_EVENTS)
    secret = hook["secret"]
    s3 = account.s3
    bucket = new_bucket_name()
    # A key with non-ASCII, quotes and a slash: JSON.stringify must give back the same bytes.
    odd_key = 'naïve/"quoted" ✓.txt'

    s3.create_bucket(Bucket=bucket)
    put = s3.put_object(Bucket=bucket, Key=odd_key, Body=b"hello", ContentType="text/plain")
    s3.put_object(Bucket=bucket, Key=odd_key, Body=b"hello, again", ContentType="text/plain")
    s3.copy_object(Bucket=bucket, Key="copy.txt", CopySource={"Bucket": bucket, "Key": odd_key})
    upload = s3.create_multipart_upload(
        Bucket=bucket, Key="multi.bin", ContentType="application/octet-stream"
    )
    part = s3.upload_part(
        Bucket=bucket, Key="multi.bin", UploadId=upload["UploadId"], PartNumber=1, Body=b"m" * 100
    )
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="multi.bin",
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    # The REST file API: an upload and a delete are object events too.
    rest = account.api(
        "POST",
        "/api/v1/files",
        params={"bucket": bucket, "key": "rest.txt"},
        content=b"rest body",
        headers={**account.api_key, "Content-Type": "text/plain"},
    )
    assert rest.status_code == 201, rest.text
    removed = account.api("DELETE", f"/api/v1/files/{rest.json()['id']}", headers=account.api_key)
    assert removed.status_code == 200, removed.text
    s3.delete_object(Bucket=bucket, Key=odd_key)
    s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "copy.txt"}, {"Key": "multi.bin"}]})
    # Empty the (versioned) bucket entirely so that it can be deleted.
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for v in page.get("Versions", []) + page.get("DeleteMarkers", []):
            s3.delete_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])
    s3.delete_bucket(Bucket=bucket)
    key = account.api("POST", "/api/keys", json={"name": "ci"})
    assert key.status_code == 201, key.text
    new_key = key.json()["accessKey"]
    assert account.api("DELETE", "/api/keys", params={"id": new_key}).status_code == 200

    wait_for(
        lambda: {"bucket.deleted", "key.revoked"} <= {r.event for r in receiver.ok()},
        "the last events of the sequence",
    )
    time.sleep(0.6)  # one more poll round, so that any straggler would have arrived
    got = receiver.ok()
    assert {r.event for r in got} == set(ALL_EVENTS)
    # With a receiver that always accepts, each event arrives exactly once.
    assert len({r.delivery_id for r in got}) == len(got)

    assert by_event(got, "bucket.created") == [{"bucket": bucket, "region": "us-east-1"}]
    assert by_event(got, "bucket.deleted") == [{"bucket": bucket}]
    created = {d["key"]: d for d in by_event(got, "object.created")}
    assert set(created) == {odd_key, "copy.txt", "multi.bin", "rest.txt"}
    first = created[odd_key]
    assert first["bucket"] == bucket and first["size"] == 5 and first["contentType"] == "text/plain"
    assert first["etag"].strip('"') == put["ETag"].strip('"')
    assert first["versionId"] == put["VersionId"]
    assert created["multi.bin"]["size"] == 100 and created["copy.txt"]["size"] == len(b"hello, again")
    assert created["rest.txt"]["size"] == len(b"rest body")
    (updated,) = by_event(got, "object.updated")
    assert updated["key"] == odd_key and updated["size"] == len(b"hello, again")
    deleted_keys = [d["key"] for d in by_event(got, "object.deleted")]
    # The deletes of current objects, then one per version removed while emptying the bucket.
    assert {odd_key, "copy.txt", "multi.bin", "rest.txt"} <= set(deleted_keys)
    assert all(d["bucket"] == bucket for d in by_event(got, "object.deleted"))
    assert by_event(got, "key.created") == [{"accessKey": new_key, "name": "ci"}]
    assert by_event(got, "key.revoked") == [{"accessKey": new_key}]

    assert_well_formed(got, secret)

    # The listing shows what was delivered.
    listed = account.webhook(hook["id"])
    assert listed["active"] is True and listed["failures"] == 0
    assert listed["recentDeliveries"], listed
    for delivery in listed["recentDeliveries"]:
        assert delivery["status"] == "delivered" and delivery["attempts"] == 1
        assert delivery["responseStatus"] == 200 and delivery["error"] is None
        assert delivery["id"] in {r.delivery_id for r in got}


def test_quota_events_are_delivered_with_a_valid_signature(server: FolioProcess, receiver: Receiver) -> None:
    # Made on the small plan from the start: the server has never cached another plan for it.
    email = f"wh-quota-{uuid.uuid4().hex[:10]}@example.com"
    made = server.create_account(email, plan="small")
    account = Account(server, email, made["accessKey"], made["secretKey"], None)
    # With the API key instead of a session cookie (both are accepted).
    hook = account.create_webhook(receiver.url, ["quota.warning", "quota.exceeded"])
    s3 = account.s3
    bucket = new_bucket_name()
    s3.create_bucket(Bucket=bucket)

    s3.put_object(Bucket=bucket, Key="most", Body=b"w" * 8_500)  # 85%: past the 80% warning
    wait_for(lambda: by_event(receiver.ok(), "quota.warning"), "quota.warning")
    s3.put_object(Bucket=bucket, Key="rest", Body=b"x" * 1_500)  # exactly 100%
    wait_for(lambda: by_event(receiver.ok(), "quota.exceeded"), "quota.exceeded")
    with pytest.raises(ClientError) as refused:
        s3.put_object(Bucket=bucket, Key="over", Body=b"y")
    assert refused.value.response["Error"]["Code"] == "QuotaExceeded"
    wait_for(lambda: len(by_event(receiver.ok(), "quota.exceeded")) == 2, "quota.exceeded for the refusal")
    time.sleep(0.6)

    got = receiver.ok()
    assert by_event(got, "quota.warning") == [
        {"bytesUsed": 8_500, "quotaBytes": SMALL_QUOTA, "percentUsed": 85}
    ]
    reached, refusal = by_event(got, "quota.exceeded")
    assert reached == {"bytesUsed": SMALL_QUOTA, "quotaBytes": SMALL_QUOTA, "percentUsed": 100}
    assert refusal["refused"] is True and refusal["quotaBytes"] == SMALL_QUOTA
    assert {r.event for r in got} == {"quota.warning", "quota.exceeded"}
    assert_well_formed(got, hook["secret"])


# ---------------------------------------------------------------- 3. retries, disable, re-enable


def test_failed_delivery_is_retried_three_times_with_backoff(
    server: FolioProcess, receiver: Receiver
) -> None:
    account = signup(server)
    hook = account.create_webhook(receiver.url, ["object.created"])
    receiver.status = 500
    bucket = new_bucket_name()
    s3 = account.s3
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="a", Body=b"a")

    def settled() -> dict[str, Any] | None:
        recent = account.webhook(hook["id"])["recentDeliveries"]
        return recent[0] if recent and recent[0]["status"] == "failed" else None

    failed = wait_for(settled, "the delivery to give up")
    attempts = receiver.all()
    # One attempt and three retries, every one the same delivery with the same signed bytes.
    assert len(attempts) == 4
    assert {a.delivery_id for a in attempts} == {failed["id"]}
    assert len({(a.body, a.headers["x-cloudstorage-signature"]) for a in attempts}) == 1
    assert_well_formed(attempts[:1], hook["secret"])
    # Exponential backoff: 0.2 s, then 0.4 s, then 0.8 s (a little slack for clocks).
    gaps = [b.at - a.at for a, b in zip(attempts, attempts[1:], strict=False)]
    for gap, backoff in zip(gaps, [0.2, 0.4, 0.8], strict=True):
        assert gap >= backoff * 0.9, gaps
    assert failed["attempts"] == 4 and failed["responseStatus"] == 500 and "500" in failed["error"]
    assert failed["finishedAt"] is not None
    listed = account.webhook(hook["id"])
    assert listed["failures"] == 4 and listed["active"] is True

    # A success resets the consecutive failure count.
    receiver.status = 200
    s3.put_object(Bucket=bucket, Key="b", Body=b"b")
    wait_for(receiver.ok, "the next delivery")
    wait_for(lambda: account.webhook(hook["id"])["failures"] == 0, "failures reset to 0")
    time.sleep(0.6)
    assert [r.json["data"]["key"] for r in receiver.all()].count("a") == 4  # no fifth attempt


def test_ten_failures_disable_the_webhook_and_reenabling_resumes(
    server: FolioProcess, receiver: Receiver
) -> None:
    account = signup(server)
    hook = account.create_webhook(receiver.url, ["object.created"])
    receiver.status = 500
    bucket = new_bucket_name()
    s3 = account.s3
    s3.create_bucket(Bucket=bucket)
    keys = [f"k{i}" for i in range(5)]
    # Five deliveries can take 20 attempts: the 10th failure comes while some still wait.
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())

    disabled = wait_for(
        lambda: (h := account.webhook(hook["id"]))["active"] is False and h, "the webhook to disable"
    )
    assert disabled["failures"] >= 10
    # Attempts of the same round may still be landing; after that, nothing more may come.
    time.sleep(0.5)
    failed_attempts = len(receiver.all())
    assert failed_attempts >= 10 and all(r.status == 500 for r in receiver.all())
    pending = {d["id"] for d in disabled["recentDeliveries"] if d["status"] == "pending"}
    gave_up = {d["id"] for d in disabled["recentDeliveries"] if d["status"] == "failed"}
    assert pending, disabled
    assert len(pending | gave_up) == len(keys)
    # A disabled webhook is left alone: no more attempts.
    time.sleep(1.2)
    assert len(receiver.all()) == failed_attempts

    receiver.status = 200
    patched = account.api("PATCH", "/api/webhooks", json={"id": hook["id"], "active": True})
    assert patched.status_code == 200, patched.text
    assert patched.json()["active"] is True and patched.json()["failures"] == 0

    wait_for(
        lambda: pending <= {r.delivery_id for r in receiver.ok()}, "the pending deliveries after re-enabling"
    )
    time.sleep(0.6)
    delivered = receiver.ok()
    assert {r.delivery_id for r in delivered} == pending  # nothing that had given up
    assert len(delivered) == len(pending)
    # The same delivery ids as the failed attempts: receivers can de-duplicate.
    assert pending <= {r.delivery_id for r in receiver.all() if r.status == 500}
    assert_well_formed(delivered, hook["secret"])
    listed = account.webhook(hook["id"])
    assert listed["active"] is True and listed["failures"] == 0
    assert {d["id"] for d in listed["recentDeliveries"] if d["status"] == "delivered"} == pending


# ---------------------------------------------------------------- 4. SIGKILL with deliveries pending


def test_pending_deliveries_survive_sigkill(tmp_path: Path, receiver: Receiver) -> None:
    # A longer backoff than the module's server: deliveries that failed once must still be
    # waiting for their retry when the server is killed.
    process = FolioProcess(
        data_dir=tmp_path / "data", config_text=WEBHOOKS_CONFIG.format(backoff=2.0) + PLANS
    )
    process.start()
    try:
        account = signup(process)
        hook = account.create_webhook(receiver.url, ["object.created", "bucket.created"])
        receiver.status = 500
        bucket = new_bucket_name()
        s3 = account.s3
        s3.create_bucket(Bucket=bucket)
        retried = [f"retried-{i}" for i in range(3)]
        for key in retried:
            s3.put_object(Bucket=bucket, Key=key, Body=b"r")
        first_ids = wait_for(
            lambda: (ids := {r.delivery_id for r in receiver.all()}) and len(ids) == 4 and ids,
            "a first (failed) attempt of each delivery",
        )
        # These may not even be dispatched when the server dies.
        unsent = [f"unsent-{i}" for i in range(2)]
        for key in unsent:
            s3.put_object(Bucket=bucket, Key=key, Body=b"u")
        process.kill()

        receiver.status = 200
        process.start()
        expected = {*retried, *unsent}

        def delivered_keys() -> set[str]:
            return {r.json["data"].get("key") for r in receiver.ok()} - {None}

        wait_for(lambda: expected <= delivered_keys(), "every pending event after the restart", timeout=20)
        assert wait_for(lambda: by_event(receiver.ok(), "bucket.created"), "bucket.created after restart")
        time.sleep(0.6)

        attempts: dict[str, list[Received]] = {}
        for r in receiver.all():
            attempts.setdefault(r.json["data"].get("key") or "bucket", []).append(r)
        for name, tries in attempts.items():
            # The same delivery id and the same signed bytes for one event, however often it is tried.
            assert len({t.delivery_id for t in tries}) == 1, (name, [t.delivery_id for t in tries])
            assert len({t.body for t in tries}) == 1, name
        # The deliveries seen failing before the kill are the ones delivered after it
        # (an "unsent" one may also have had a failed first attempt in the moment before).
        assert first_ids <= {t[0].delivery_id for t in attempts.values() if t[0].status == 500}
        assert {t[0].delivery_id for name, t in attempts.items() if name in {*retried, "bucket"}} == first_ids
        assert set(attempts) == {*expected, "bucket"}
        assert_well_formed(receiver.ok(), hook["secret"])
        listed = account.webhook(hook["id"])
        assert all(d["status"] == "delivered" for d in listed["recentDeliveries"]), listed
    finally:
        process.kill()


# ---------------------------------------------------------------- 5. bad input


def assert_refused(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code and error["message"], error
    return error


def test_bad_webhook_input_is_refused_clearly(server: FolioProcess, receiver: Receiver) -> None:
    account = signup(server)
    other = signup(server)

    blocked_urls = [
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata
        "http://10.0.0.1/hook",  # private
        "http://192.168.1.20/hook",
        "http://[fd00::1]/hook",
        "http://[::ffff:169.254.169.254]/hook",  # metadata hidden in an IPv4-mapped address
        "http://0.0.0.0/hook",
        f"http://user:pw@127.0.0.1:{receiver.server.server_address[1]}/",  # credentials in the URL
        "ftp://127.0.0.1/hook",
        "not a url",
        "http://127.0.0.1:99999/hook",
    ]
    for url in blocked_urls:
        error = assert_refused(
            account.api("POST", "/api/webhooks", json={"url": url, "events": ["object.created"]}),
            400,
            "InvalidWebhookURL",
        )
        assert error["details"].get("field") == "url", (url, error)

    unknown = assert_refused(
        account.api(
            "POST",
            "/api/webhooks",
            json={"url": receiver.url, "events": ["object.created", "object.exploded"]},
        ),
        400,
        "BadRequest",
    )
    assert unknown["details"]["unknown"] == ["object.exploded"]
    bad_bodies: list[dict[str, Any]] = [
        {"url": receiver.url, "events": []},
        {"url": receiver.url, "events": "object.created"},
        {"url": receiver.url, "events": [1]},
        {"url": receiver.url},
        {"events": ["object.created"]},
        {"url": 123, "events": ["object.created"]},
        {"url": "", "events": ["object.created"]},
        {},
    ]
    for body in bad_bodies:
        assert_refused(account.api("POST", "/api/webhooks", json=body), 400, "BadRequest")
    for raw in [b'{"url": ', b"[1, 2]", b"\xff\xfe", b'"just a string"']:
        assert_refused(
            account.api("POST", "/api/webhooks", content=raw, headers={"Content-Type": "application/json"}),
            400,
            "BadRequest",
        )
    no_auth = httpx.post(
        f"{server.web_url}/api/webhooks", json={"url": receiver.url, "events": ["object.created"]}, timeout=30
    )
    assert_refused(no_auth, 401, "Unauthorized")
    assert account.webhooks() == []  # nothing was created

    # Another account's webhook cannot be seen, changed or deleted.
    theirs = other.create_webhook(receiver.url, ["object.created"])
    assert account.webhooks() == []
    assert_refused(
        account.api("PATCH", "/api/webhooks", json={"id": theirs["id"], "active": False}), 404, "NotFound"
    )
    assert_refused(
        account.api("PATCH", "/api/webhooks", json={"id": theirs["id"], "url": receiver.url + "/stolen"}),
        404,
        "NotFound",
    )
    assert_refused(account.api("DELETE", "/api/webhooks", params={"id": theirs["id"]}), 404, "NotFound")
    assert_refused(
        account.api("PATCH", "/api/webhooks", json={"id": "wh_nosuchwebhook", "active": True}),
        404,
        "NotFound",
    )
    still = other.webhook(theirs["id"])
    assert still["active"] is True and still["url"] == receiver.url and still["events"] == ["object.created"]

    # Bad PATCHes of one's own webhook change nothing.
    mine = account.create_webhook(receiver.url, ["object.created"])
    assert_refused(
        account.api("PATCH", "/api/webhooks", json={"id": mine["id"], "active": "no"}), 400, "BadRequest"
    )
    assert_refused(
        account.api("PATCH", "/api/webhooks", json={"id": mine["id"], "events": ["nope"]}), 400, "BadRequest"
    )
    assert_refused(
        account.api("PATCH", "/api/webhooks", json={"id": mine["id"], "url": "http://169.254.169.254/"}),
        400,
        "InvalidWebhookURL",
    )
    assert_refused(account.api("PATCH", "/api/webhooks", json={"active": False}), 400, "BadRequest")
    assert_refused(
        account.api("PATCH", "/api/webhooks", content=b"{oops", headers={"Content-Type": "application/json"}),
        400,
        "BadRequest",
    )
    assert_refused(account.api("DELETE", "/api/webhooks"), 400, "BadRequest")
    (unchanged,) = account.webhooks()
    assert (
        unchanged["url"] == receiver.url and unchanged["events"] == ["object.created"] and unchanged["active"]
    )

    # A good PATCH and DELETE work, for contrast.
    changed = account.api("PATCH", "/api/webhooks", json={"id": mine["id"], "events": ["object.deleted"]})
    assert changed.status_code == 200 and changed.json()["events"] == ["object.deleted"]
    gone = account.api("DELETE", "/api/webhooks", params={"id": mine["id"]})
    assert gone.status_code == 200 and gone.json() == {"success": True}
    assert account.webhooks() == []


def test_plain_http_is_refused_unless_allowed(tmp_path: Path, receiver: Receiver) -> None:
    # Loopback allowed (our receiver is on it) but not plain http: only the scheme decides.
    config = "[webhooks]\nallow_loopback_targets = true\n" + PLANS
    process = FolioProcess(data_dir=tmp_path / "data", config_text=config)
    process.start()
    try:
        account = signup(process)
        error = assert_refused(
            account.api("POST", "/api/webhooks", json={"url": receiver.url, "events": ["object.created"]}),
            400,
            "InvalidWebhookURL",
        )
        assert "https" in error["message"]
        assert account.webhooks() == []
        https_url = receiver.url.replace("http://", "https://")
        created = account.create_webhook(https_url, ["object.created"])
        assert created["url"] == https_url
        assert_refused(
            account.api("PATCH", "/api/webhooks", json={"id": created["id"], "url": receiver.url}),
            400,
            "InvalidWebhookURL",
        )
        assert account.webhook(created["id"])["url"] == https_url
    finally:
        process.stop()


# ---------------------------------------------------------------- 6. whose events, which events


def test_only_the_accounts_subscribed_events_after_creation_are_delivered(
    server: FolioProcess, receiver: Receiver, receiver2: Receiver
) -> None:
    alice, bob = signup(server), signup(server)
    a_bucket, b_bucket = new_bucket_name(), new_bucket_name()
    a_s3, b_s3 = alice.s3, bob.s3
    # Before the webhook exists: none of this may be delivered later.
    a_s3.create_bucket(Bucket=a_bucket)
    a_s3.put_object(Bucket=a_bucket, Key="before.txt", Body=b"early")
    assert alice.api("POST", "/api/keys", json={"name": "early"}).status_code == 201

    hook = alice.create_webhook(receiver.url, ["object.created", "bucket.created", "key.created"])
    bob_hook = bob.create_webhook(receiver2.url, ["object.created"])
    b_s3.create_bucket(Bucket=b_bucket)
    b_s3.put_object(Bucket=b_bucket, Key="bob.txt", Body=b"bob")
    a_s3.put_object(Bucket=a_bucket, Key="after.txt", Body=b"late")
    a_s3.delete_object(Bucket=a_bucket, Key="after.txt")  # object.deleted: not subscribed
    a_s3.put_object(Bucket=a_bucket, Key="after.txt", Body=b"again")  # created again (after a delete)
    a_s3.put_object(Bucket=a_bucket, Key="after.txt", Body=b"third")  # object.updated: not subscribed
    a_s3.put_object(Bucket=a_bucket, Key="sentinel.txt", Body=b"last")

    wait_for(lambda: "sentinel.txt" in {r.json["data"].get("key") for r in receiver.ok()}, "alice's sentinel")
    wait_for(receiver2.ok, "bob's delivery")
    time.sleep(1.2)  # a couple more poll rounds: anything wrongly queued would arrive now

    got = receiver.ok()
    assert [(r.event, r.json["data"]["key"]) for r in sorted(got, key=lambda r: r.json["data"]["key"])] == [
        ("object.created", "after.txt"),
        ("object.created", "after.txt"),
        ("object.created", "sentinel.txt"),
    ]
    assert all(r.json["data"]["bucket"] == a_bucket for r in got)
    assert_well_formed(got, hook["secret"])
    (bobs,) = receiver2.ok()
    assert bobs.event == "object.created" and bobs.json["data"] == {**bobs.json["data"], "bucket": b_bucket}
    assert bobs.json["data"]["key"] == "bob.txt"
    assert_well_formed([bobs], bob_hook["secret"])
    # Alice's listing shows only her own deliveries.
    recent = alice.webhook(hook["id"])["recentDeliveries"]
    assert sorted(d["id"] for d in recent) == sorted(r.delivery_id for r in got)

    # A deleted webhook gets nothing more.
    assert alice.api("DELETE", "/api/webhooks", params={"id": hook["id"]}).status_code == 200
    a_s3.put_object(Bucket=a_bucket, Key="after-delete.txt", Body=b"x")
    time.sleep(1.2)
    assert len(receiver.all()) == len(got)
