"""Housekeeping (issue 17, "Bounded growth"; docs/operations.md, "Housekeeping"): the tables
that would only grow keep what retention keeps, counted row by row in the database
of a real server (its SQLite file, or PostgreSQL: tests/server_db.py).

The big test makes 100,000 writes for an account with two webhooks: one answering 200 for
`object.created`, one answering 503 for `object.deleted` (its deliveries wait an hour for
their retry: pending). The writes go in through the store's own API while the server is
stopped (tests/housekeeping_seed.py: 100,000 S3 PUTs over HTTP would take minutes here),
each recording its event as an upload does; the restarted server dispatches them, delivers
and prunes on its own schedule (every 0.5 s, events and deliveries kept 20 s). Only 2,000
of the writes create a key (the rest overwrite one: `object.updated`, dispatched to no
webhook), so that the deliveries fit in the test's time: 2,000 deliveries, 100,000 events.

The second test runs `folio admin housekeeping --now T` on a stopped server with the
default retention: sessions, share links (expired, revoked, used up), document assets (and
their stored files) and finished jobs go when retention says, the live ones and a pending
job stay, and the server started again shows it through its APIs.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any, TypeVar

import httpx
import pytest
from botocore.exceptions import ClientError

from tests.conftest import make_s3_client
from tests.docgen_helpers import HELLO_B64, b64, signup, wait_job
from tests.folio_process import REPO_ROOT, FolioProcess
from tests.server_db import server_db
from tests.test_webhooks import wait_for

T = TypeVar("T")
DAY = 86400.0

WRITES = 100_000
KEYS = 2_000  # writes that create a key (and a delivery); the others overwrite one
RETENTION_S = 20.0
BIG_CONFIG = f"""
[storage]
sync = "normal"

[webhooks]
allow_loopback_targets = true
allow_http = true
backoff_seconds = 3600.0
disable_after_failures = 1000

[housekeeping]
interval_seconds = 0.5
events_days = {RETENTION_S / DAY!r}
deliveries_days = {RETENTION_S / DAY!r}
"""

# Default retention; no pass but the one at start-up (the test runs them with --now).
SMALL_CONFIG = """
[storage]
sync = "normal"

[housekeeping]
interval_seconds = 3600.0
"""

_LENGTH = re.compile(rb"^content-length:[ \t]*(\d+)", re.M | re.I)


class Receiver:
    """A webhook endpoint on loopback, an asyncio server in a thread of its own (fast
    enough for thousands of deliveries): POST /ok answers 200, POST /fail answers 503.
    Counts the delivery ids it saw per path."""

    def __init__(self) -> None:
        self.seen: dict[str, Counter[str]] = {"/ok": Counter(), "/fail": Counter()}
        self.lock = threading.Lock()
        self.loop = asyncio.new_event_loop()
        started = threading.Event()
        self.port = 0

        async def serve() -> None:
            server = await self.loop.create_server(lambda: _ReceiverProtocol(self), "127.0.0.1", 0)
            self.port = server.sockets[0].getsockname()[1]
            started.set()

        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(serve(), self.loop)
        assert started.wait(10)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def count(self, path: str) -> int:
        """Distinct deliveries received on `path`."""
        with self.lock:
            return len(self.seen[path])

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class _ReceiverProtocol(asyncio.Protocol):
    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = bytes(self.buffer[:end])
            match = _LENGTH.search(head)
            length = int(match.group(1)) if match else 0
            if len(self.buffer) < end + 4 + length:
                return
            body = bytes(self.buffer[end + 4 : end + 4 + length])
            del self.buffer[: end + 4 + length]
            path = head.split(b" ", 2)[1].decode()
            delivery = json.loads(body)["id"]
            with self.receiver.lock:
                self.receiver.seen.setdefault(path, Counter())[delivery] += 1
            status = b"200 OK" if path == "/ok" else b"503 Service Unavailable"
            assert self.transport is not None
            self.transport.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: 0\r\n\r\n")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.close()


class Rows:
    """Counts in the server's database (tests/server_db.py: either engine; the server may be
    running)."""

    def __init__(self, server: FolioProcess) -> None:
        self.server = server

    def count(self, sql: str, *args: Any) -> int:
        with server_db(self.server) as conn:
            return conn.execute(sql, args).fetchone()[0]


def housekeeping(server: FolioProcess, now: float) -> dict[str, Any]:
    """`folio admin housekeeping --now T` on the server's data directory: its JSON."""
    return json.loads(server.admin("housekeeping", "--now", repr(now)).strip().splitlines()[-1])


# ------------------------------------------------------------------ 100,000 writes


def test_100000_writes_with_a_webhook_leave_only_what_retention_keeps(
    tmp_path_factory: pytest.TempPathFactory, receiver: Receiver
) -> None:
    server = FolioProcess(tmp_path_factory.mktemp("housekeeping-big") / "data", BIG_CONFIG)
    server.start()
    rows = Rows(server)
    try:
        account = signup(server, "hk")
        pair = {"X-API-Key": account.s3_pair}
        web = httpx.Client(base_url=server.web_url, headers=pair, timeout=30)
        created = web.post("/api/webhooks", json={"url": receiver.url("/ok"), "events": ["object.created"]})
        failing = web.post("/api/webhooks", json={"url": receiver.url("/fail"), "events": ["object.deleted"]})
        assert created.status_code == failing.status_code == 201, (created.text, failing.text)
        ok_hook, fail_hook = created.json()["id"], failing.json()["id"]
        s3 = make_s3_client(server, account.access_key, account.secret_key)
        s3.create_bucket(Bucket="housekeeping")
        server.stop()

        # 100,000 writes with the webhooks attached: each records its event, not yet dispatched.
        seeded = subprocess.run(
            [
                sys.executable, "-m", "tests.housekeeping_seed", "--config", str(server.config_path),
                "--data-dir", str(server.data_dir), "--bucket", "housekeeping",
                "--count", str(WRITES), "--keys", str(KEYS),
            ],
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert seeded.returncode == 0, seeded.stderr[-3000:]
        object_events = "SELECT count(*) FROM events WHERE type LIKE 'object.%'"
        assert rows.count(object_events + " AND delivered_at IS NULL") == WRITES
        assert rows.count(object_events + " AND type = 'object.created'") == KEYS

        # However old, an event not yet dispatched to its webhooks is never pruned.
        far_future = housekeeping(server, time.time() + 365 * DAY)
        assert rows.count(object_events + " AND delivered_at IS NULL") == WRITES, far_future

        # The server dispatches all of them and delivers the creations, pruning as it goes.
        server.start()
        wait_for(
            lambda: (
                rows.count("SELECT count(*) FROM events WHERE delivered_at IS NULL") == 0
                and rows.count("SELECT count(*) FROM deliveries WHERE status = 'pending'") == 0
            ),
            "every event dispatched and every delivery made",
            timeout=240,
        )
        assert receiver.count("/ok") == KEYS
        # Deleting 20 objects: 20 deliveries to the failing webhook, each waiting an hour for its retry.
        deleted = s3.delete_objects(
            Bucket="housekeeping", Delete={"Objects": [{"Key": f"obj-{n:07d}"} for n in range(20)]}
        )
        assert len(deleted["Deleted"]) == 20
        pending = (
            "SELECT count(*) FROM deliveries WHERE status = 'pending' AND webhook_id = ? AND attempts = 1"
        )
        wait_for(lambda: rows.count(pending, fail_hook) == 20, "20 failed first attempts", timeout=60)

        # Retention passes: every dispatched event and every finished delivery goes; the 20
        # pending deliveries, older than retention by then, stay.
        wait_for(
            lambda: (
                rows.count("SELECT count(*) FROM events") == 0
                and rows.count("SELECT count(*) FROM deliveries WHERE status != 'pending'") == 0
            ),
            "the old events and deliveries pruned",
            timeout=RETENTION_S + 60,
        )
        # Young writes: their events and deliveries are within retention.
        for n in range(30):
            s3.put_object(Bucket="housekeeping", Key=f"young-{n}", Body=b"young")
        wait_for(lambda: receiver.count("/ok") == KEYS + 30, "the 30 young deliveries", timeout=60)
        wait_for(
            lambda: rows.count("SELECT count(*) FROM deliveries WHERE status = 'delivered'") == 30,
            "the young deliveries recorded",
            timeout=30,
        )
        # The dashboard's delivery log shows what retention keeps.
        log_ok = web.get("/api/webhooks/deliveries", params={"id": ok_hook, "limit": 500}).json()[
            "deliveries"
        ]
        log_fail = web.get("/api/webhooks/deliveries", params={"id": fail_hook, "limit": 500}).json()[
            "deliveries"
        ]
        assert len(log_ok) == 30 and {d["status"] for d in log_ok} == {"delivered"}, log_ok[:3]
        assert len(log_fail) == 20 and {d["status"] for d in log_fail} == {"pending"}, log_fail[:3]
        # Housekeeping prunes rows about writes, never the objects written.
        assert s3.get_object(Bucket="housekeeping", Key=f"obj-{KEYS - 1:07d}")["Body"].read() == b"x"
        web.close()
    finally:
        server.stop()

    # The row counts, with the server stopped: only what retention keeps.
    assert rows.count("SELECT count(*) FROM events") == 30
    assert (
        rows.count(
            "SELECT count(*) FROM events WHERE type = 'object.created' AND json_extract(payload, '$.key') LIKE 'young-%'"
        )
        == 30
    )
    assert rows.count("SELECT count(*) FROM deliveries") == 50
    assert (
        rows.count("SELECT count(*) FROM deliveries WHERE status = 'pending' AND webhook_id = ?", fail_hook)
        == 20
    )
    assert (
        rows.count("SELECT count(*) FROM deliveries WHERE status = 'delivered' AND webhook_id = ?", ok_hook)
        == 30
    )
    assert "housekeeping pruned" in server.log()


# ------------------------------------------------------------------ sessions, shares, assets, jobs


def test_sessions_shares_assets_and_jobs_go_after_their_retention(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    server = FolioProcess(tmp_path_factory.mktemp("housekeeping-small") / "data", SMALL_CONFIG)
    server.start()
    rows = Rows(server)
    try:
        account = signup(server, "hk-small")  # one session (sign-up), a cl- key
        login = httpx.post(
            f"{server.web_url}/api/auth/login",
            json={"email": account.email, "password": "correct horse battery staple"},
        )
        assert login.status_code == 200, login.text
        session = login.cookies["session"]
        sessions = "SELECT count(*) FROM sessions WHERE account_id = ?"
        assert rows.count(sessions, account.id) == 2

        pair = {"X-API-Key": account.s3_pair}
        web = httpx.Client(base_url=server.web_url, headers=pair, timeout=30)
        s3 = make_s3_client(server, account.access_key, account.secret_key)
        s3.create_bucket(Bucket="shared")
        s3.put_object(Bucket="shared", Key="file.txt", Body=b"shared bytes")

        def share(**body: Any) -> dict[str, Any]:
            made = web.post("/api/shares", json={"bucket": "shared", "key": "file.txt", **body})
            assert made.status_code == 201, made.text
            return made.json()

        expiring = share(expiresIn=60)
        used_up = share(maxDownloads=1)
        assert httpx.get(used_up["url"]).status_code == 200
        assert httpx.get(used_up["url"]).status_code == 404  # used up
        revoked = share()
        assert web.delete("/api/shares", params={"id": revoked["id"]}).status_code == 200
        week = share(maxDownloads=2)  # the default 7 days, one download of two left
        assert httpx.get(week["url"]).status_code == 200
        month = share(expiresIn=30 * 86400)

        # A finished document job with its asset, and one left pending by a crash.
        done = account.http.post("/v2/html/pdf", json={"html": HELLO_B64})
        assert done.status_code == 202, done.text
        finished = wait_job(account.http, done.json()["id"])
        assert finished["status"] == "success", finished
        asset_id = finished["assetId"]
        listing = s3.list_objects_v2(Bucket=account.bucket)["Contents"]
        stored = [row["Key"] for row in listing if row["Key"].startswith(asset_id)]
        assert stored, listing
        slow = account.http.post("/v2/html/pdf", json={"html": b64("<p>pending</p>"), "delay": 5000})
        assert slow.status_code == 202, slow.text
        pending_job = slow.json()["id"]
        server.kill()  # the slow job stays pending in the database
        web.close()
        assert (
            rows.count("SELECT count(*) FROM docgen_jobs WHERE id = ? AND status = 'pending'", pending_job)
            == 1
        )

        t0 = time.time()
        # Two days on: the links that stopped working over a day ago go; nothing else.
        first = housekeeping(server, t0 + 2 * DAY)["pruned"]
        assert (first["shares"], first["sessions"], first["assets"], first["jobs"]) == (3, 0, 0, 0), first
        left = set(_ids(rows, "SELECT id FROM shares WHERE account_id = ?", account.id))
        assert left == {week["id"], month["id"]}
        assert expiring["id"] not in left and used_up["id"] not in left and revoked["id"] not in left

        # 16 days on: the sessions (14 days, +1 of grace), the asset (its 7-day link, +1) and
        # the 7-day link; the jobs are younger than 30 days.
        second = housekeeping(server, t0 + 16 * DAY)["pruned"]
        assert (second["shares"], second["sessions"], second["assets"], second["jobs"]) == (1, 2, 1, 0), (
            second
        )
        assert rows.count(sessions, account.id) == 0
        assert rows.count("SELECT count(*) FROM docgen_assets WHERE id = ?", asset_id) == 0

        # 62 days on: the 30-day link and the finished job; never the pending job.
        third = housekeeping(server, t0 + 62 * DAY)["pruned"]
        assert (third["shares"], third["sessions"], third["assets"], third["jobs"]) == (1, 0, 0, 1), third
        assert rows.count("SELECT count(*) FROM shares WHERE account_id = ?", account.id) == 0
        assert rows.count("SELECT count(*) FROM docgen_jobs WHERE id = ?", finished["id"]) == 0
        assert rows.count("SELECT count(*) FROM docgen_jobs WHERE id = ?", pending_job) == 1

        # The server started again shows the same through its APIs.
        server.start()
        assert account.http.get(f"/v2/jobs/{finished['id']}").status_code == 404
        assert account.http.get(f"/v2/assets/{asset_id}").status_code == 404
        # The asset's stored files were deleted through the store, not just forgotten.
        for key in stored:
            with pytest.raises(ClientError) as gone:
                s3.head_object(Bucket=account.bucket, Key=key)
            assert gone.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
        assert httpx.get(f"{server.web_url}/api/sessions", cookies={"session": session}).status_code == 401
        listed = httpx.get(f"{server.web_url}/api/shares", headers=pair).json()["shares"]
        assert listed == []
        resumed = wait_job(account.http, pending_job, timeout=60)
        assert resumed["status"] == "success", resumed
        account.close()
    finally:
        server.stop()


def _ids(rows: Rows, sql: str, *args: Any) -> list[str]:
    with server_db(rows.server) as conn:
        return [row[0] for row in conn.execute(sql, args)]
