"""`folio serve --workers 2` (issue 18, "Workers on one machine"): a supervising parent and two
worker processes sharing both listeners, the SQLite database and the blob directory.

Every request here goes over a new connection (`Connection: close`), so the kernel hands
each one to either worker; an S3 answer says which process served it by the first eight
characters of its request id (a random prefix per process), /healthz by its `pid`."""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError

from tests.conftest import TEST_CONFIG, make_s3_client
from tests.docgen_helpers import b64, read_pdf, wait_job
from tests.docgen_helpers import client as docgen_client
from tests.docgen_helpers import signup as docgen_signup
from tests.folio_process import FolioProcess, running_server
from tests.test_webhooks import Receiver, signup, wait_for

CONFIG = (
    TEST_CONFIG
    + """
[limits]
# A few seconds: the multipart sweep runs every second or so (a quarter of this).
multipart_expiry_days = 0.00003

[webhooks]
allow_loopback_targets = true
allow_http = true
"""
)
SWEEPS = ("multipart-sweep", "version-pruning", "scrub", "housekeeping")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FolioProcess]:
    yield from running_server(tmp_path_factory, "folio-workers", CONFIG, workers=2)


def running(pid: int) -> bool:
    """The process exists and is not a zombie (a zombie holds no socket and serves nothing)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def worker_pids(server: FolioProcess) -> set[int]:
    """The supervisor's children that run: its workers."""
    assert server.proc is not None
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == server.proc.pid and fields[0] not in ("Z", "X"):
            found.add(int(entry.name))
    return found


def closing_s3(server: FolioProcess, access_key: str | None = None, secret_key: str | None = None, **kwargs):
    """boto3 sending every request on a new connection (either worker may take it), with no
    retries (each attempt is one the test counts)."""
    client = make_s3_client(
        server,
        access_key,
        secret_key,
        config=BotoConfig(retries={"max_attempts": 1, "mode": "standard"}, max_pool_connections=64),
        **kwargs,
    )

    def close_after(request: Any, **_: Any) -> None:
        request.headers["Connection"] = "close"

    client.meta.events.register("before-send.s3.*", close_after)
    return client


def served_by(response: dict[str, Any]) -> str:
    """Which process answered: its request ids' random prefix."""
    return response["ResponseMetadata"]["RequestId"][:8]


def healthz_pid(server: FolioProcess) -> int:
    got = httpx.get(f"{server.web_url}/healthz", headers={"Connection": "close"}, timeout=10)
    assert got.status_code == 200, got.text
    return got.json()["pid"]


def new_bucket(s3) -> str:
    name = f"workers-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


def admin_nodes(server: FolioProcess) -> list[dict[str, Any]]:
    return json.loads(server.admin("nodes", "--json"))["nodes"]


# ---------------------------------------------------------------- two workers serving


def test_both_workers_serve_and_each_reads_the_others_writes_at_once(server: FolioProcess) -> None:
    workers = worker_pids(server)
    assert len(workers) == 2, workers
    assert server.proc is not None and server.proc.pid not in workers
    seen: set[int] = set()
    wait_for(lambda: seen.add(healthz_pid(server)) or seen == workers, "/healthz from both workers")

    s3 = closing_s3(server)
    bucket = new_bucket(s3)
    crossed = 0
    for i in range(10):
        key, body = f"k{i}", os.urandom(3000 + i)
        writer = served_by(s3.put_object(Bucket=bucket, Key=key, Body=body))
        # Read back at once, until the other worker is the one answering.
        for _attempt in range(100):
            got = s3.get_object(Bucket=bucket, Key=key)
            assert got["Body"].read() == body
            if served_by(got) != writer:
                crossed += 1
                break
        for _attempt in range(100):
            listed = s3.list_objects_v2(Bucket=bucket)
            assert f"k{i}" in [o["Key"] for o in listed.get("Contents", [])]
            if served_by(listed) != writer:
                break
    assert crossed == 10


def test_a_bucket_policy_change_is_seen_by_both_workers(server: FolioProcess) -> None:
    s3 = closing_s3(server)
    bucket = new_bucket(s3)
    s3.put_object(Bucket=bucket, Key="doc.txt", Body=b"public soon")
    url = f"{server.s3_url}/{bucket}/doc.txt"

    def anonymous_by_worker() -> dict[str, set[int]]:
        """Anonymous GETs until both workers have answered: the statuses each gave."""
        answers: dict[str, set[int]] = {}
        deadline = time.monotonic() + 15
        while len(answers) < 2 and time.monotonic() < deadline:
            got = httpx.get(url, headers={"Connection": "close"}, timeout=10)
            answers.setdefault(got.headers["x-amz-request-id"][:8], set()).add(got.status_code)
        assert len(answers) == 2, answers
        return answers

    assert list(anonymous_by_worker().values()) == [{403}, {403}]
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{bucket}/*",
            }
        ],
    }
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    assert list(anonymous_by_worker().values()) == [{200}, {200}]
    s3.delete_bucket_policy(Bucket=bucket)
    assert list(anonymous_by_worker().values()) == [{403}, {403}]


def test_200_concurrent_4k_puts_are_all_acknowledged_listed_and_read_back(server: FolioProcess) -> None:
    s3 = closing_s3(server)
    bucket = new_bucket(s3)
    bodies = {f"c/{i:03d}": os.urandom(4096) for i in range(200)}

    def put(key: str) -> str:
        response = s3.put_object(Bucket=bucket, Key=key, Body=bodies[key])
        assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
        return served_by(response)

    with ThreadPoolExecutor(max_workers=32) as pool:
        writers = list(pool.map(put, bodies))
    assert len(set(writers)) == 2, "both workers took some of the PUTs"
    listed = [
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for o in page["Contents"]
    ]
    assert listed == sorted(bodies)

    def read(key: str) -> bool:
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read() == bodies[key]

    with ThreadPoolExecutor(max_workers=16) as pool:
        assert all(pool.map(read, bodies))


def test_each_webhook_event_is_delivered_once_with_two_workers(server: FolioProcess) -> None:
    receiver = Receiver()
    try:
        account = signup(server)
        account.create_webhook(receiver.url, ["object.created"])
        s3 = closing_s3(server, account.access_key, account.secret_key)
        bucket = new_bucket(s3)
        keys = [f"e{i:02d}" for i in range(40)]
        with ThreadPoolExecutor(max_workers=8) as pool:
            writers = set(pool.map(lambda k: served_by(s3.put_object(Bucket=bucket, Key=k, Body=b"x")), keys))
        assert len(writers) == 2
        wait_for(lambda: len(receiver.ok()) >= len(keys), "a delivery per PUT", timeout=30)
        time.sleep(2)  # a second delivery of any event would have come by now (both workers send)
        got = receiver.ok()
        assert sorted(r.json["data"]["key"] for r in got) == keys
        assert len({r.delivery_id for r in got}) == len(keys)
    finally:
        receiver.close()


def test_sweeps_run_on_one_worker_and_admin_nodes_lists_both(server: FolioProcess) -> None:
    workers = worker_pids(server)
    nodes = wait_for(lambda: (found := admin_nodes(server)) and len(found) == 2 and found, "two live nodes")
    assert {node["pid"] for node in nodes} == workers
    holders = {name: [node["pid"] for node in nodes if name in node["leases"]] for name in SWEEPS}
    assert all(len(pids) == 1 for pids in holders.values()), holders

    # The log names the one process that took each lease, once (no second taker).
    log = server.log()
    for name in SWEEPS:
        taken = re.findall(rf"lease {name} taken: it runs on this node \(\S+, pid (\d+)\)", log)
        assert [int(pid) for pid in taken] == holders[name], (name, taken)

    table = server.admin("nodes")
    assert "2 live nodes" in table
    for pid in workers:
        assert re.search(rf"\b{pid}\b", table), table

    # And the sweep does its work: an upload past its expiry (a few seconds) is aborted.
    s3 = closing_s3(server)
    bucket = new_bucket(s3)
    s3.create_multipart_upload(Bucket=bucket, Key="left.bin")
    wait_for(
        lambda: not s3.list_multipart_uploads(Bucket=bucket).get("Uploads"),
        "the multipart sweep to abort the upload",
        timeout=30,
    )


# ---------------------------------------------------------------- crashes and signals


def test_a_killed_worker_is_restarted_and_every_acknowledged_put_reads_back(tmp_path: Path) -> None:
    server = FolioProcess(data_dir=tmp_path / "data", config_text=TEST_CONFIG, workers=2).start()
    try:
        s3 = closing_s3(server)
        bucket = new_bucket(s3)
        acknowledged: dict[str, bytes] = {}
        failed = 0
        stop = threading.Event()
        lock = threading.Lock()

        def writer(n: int) -> None:
            nonlocal failed
            i = 0
            while not stop.is_set():
                key, body = f"w{n}/{i:05d}", os.urandom(4096)
                i += 1
                try:
                    s3.put_object(Bucket=bucket, Key=key, Body=body)
                except (BotoCoreError, ClientError):
                    with lock:
                        failed += 1
                    continue
                with lock:
                    acknowledged[key] = body

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        try:
            wait_for(lambda: len(acknowledged) >= 100, "PUTs under way")
            victim = min(worker_pids(server))
            os.kill(victim, signal.SIGKILL)
            before = len(acknowledged)
            replaced = wait_for(
                lambda: (pids := worker_pids(server)) and len(pids) == 2 and victim not in pids and pids,
                "the supervisor to start a new worker",
            )
            wait_for(lambda: len(acknowledged) >= before + 100, "PUTs after the restart")
        finally:
            stop.set()
            for thread in threads:
                thread.join(30)
        assert re.search(rf"worker \d \(pid {victim}\) exited \(signal SIGKILL\)", server.log())
        # Both workers serve again, the new one included.
        seen: set[int] = set()
        wait_for(lambda: seen.add(healthz_pid(server)) or seen == replaced, "/healthz from both workers")

        def intact(key: str) -> bool:
            return s3.get_object(Bucket=bucket, Key=key)["Body"].read() == acknowledged[key]

        with ThreadPoolExecutor(max_workers=16) as pool:
            assert all(pool.map(intact, acknowledged)), "an acknowledged PUT did not read back"
        listed = {
            o["Key"]
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for o in page["Contents"]
        }
        assert set(acknowledged) <= listed
        # The dead worker's node is gone at once (its process is), and its leases with it.
        nodes = wait_for(
            lambda: (found := admin_nodes(server)) and len(found) == 2 and found, "two live nodes"
        )
        assert {node["pid"] for node in nodes} == replaced
        held = [name for node in nodes for name in node["leases"]]
        wait_for(
            lambda: sorted(n for node in admin_nodes(server) for n in node["leases"]) == sorted(SWEEPS),
            "leases",
        )
        assert len(held) == len(set(held))
    finally:
        server.stop()


def test_the_document_jobs_of_a_killed_worker_are_finished_by_another(tmp_path: Path) -> None:
    server = FolioProcess(data_dir=tmp_path / "data", config_text=TEST_CONFIG, workers=2).start()
    acct = docgen_signup(server, "workers")
    try:
        jobs = []
        for n in range(3):
            response = acct.http.post(
                "/v2/html/pdf", json={"html": b64(f"<p>survivor {n}</p>"), "delay": 4000}
            )
            assert response.status_code == 202, response.text
            jobs.append(response.json()["id"])
        # The worker that took them holds their claims (one connection: one worker).
        nodes = wait_for(lambda: [n for n in admin_nodes(server) if n["jobs"]], "a worker running the jobs")
        assert [node["jobs"] for node in nodes] == [3], nodes
        victim = nodes[0]["pid"]
        os.kill(victim, signal.SIGKILL)
        acct.http.close()  # its connection went to the killed worker
        acct.http = docgen_client(server, acct.key)
        for n, job_id in enumerate(jobs):
            done = wait_job(acct.http, job_id, timeout=60)
            assert done["status"] == "success", done
            assert f"survivor {n}" in read_pdf(httpx.get(done["assetUrl"], timeout=30).content)[0].text
        assets = acct.http.get("/v2/assets").json()
        assert sorted(a["jobId"] for a in assets) == sorted(jobs)  # each made once
        assert victim not in worker_pids(server)
    finally:
        acct.close()
        server.stop()


def test_sigterm_stops_every_worker_within_the_grace_period(tmp_path: Path) -> None:
    grace = 3.0
    config = TEST_CONFIG + f"\n[server]\nshutdown_grace_seconds = {grace}\n"
    server = FolioProcess(data_dir=tmp_path / "data", config_text=config, workers=2).start()
    assert server.proc is not None
    workers = worker_pids(server)
    assert len(workers) == 2
    s3 = closing_s3(server)
    s3.put_object(Bucket=new_bucket(s3), Key="k", Body=b"v")
    started = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(grace + 10) == 0
    assert time.monotonic() - started < grace + 5
    assert not [pid for pid in workers if running(pid)]
    assert "all workers stopped" in server.log()


def test_workers_stop_when_the_supervisor_is_killed(tmp_path: Path) -> None:
    server = FolioProcess(data_dir=tmp_path / "data", config_text=TEST_CONFIG, workers=2).start()
    assert server.proc is not None
    workers = worker_pids(server)
    s3 = closing_s3(server)
    bucket = new_bucket(s3)
    s3.put_object(Bucket=bucket, Key="k", Body=b"before")
    os.kill(server.proc.pid, signal.SIGKILL)  # the supervisor alone
    server.proc.wait(10)
    wait_for(lambda: not [pid for pid in workers if running(pid)], "the workers to stop", timeout=8)
    # Nothing holds the ports or the data: a new server starts there and has the object.
    server.start()
    try:
        assert closing_s3(server).get_object(Bucket=bucket, Key="k")["Body"].read() == b"before"
    finally:
        server.stop()


def test_one_worker_is_one_process(tmp_path: Path) -> None:
    """`--workers 1` (the default): no supervisor, the server process serves itself."""
    server = FolioProcess(data_dir=tmp_path / "data", config_text=TEST_CONFIG, workers=1).start()
    try:
        assert server.proc is not None
        assert healthz_pid(server) == server.proc.pid
        assert not worker_pids(server)
        nodes = admin_nodes(server)
        assert [node["pid"] for node in nodes] == [server.proc.pid]
        assert sorted(nodes[0]["leases"]) == sorted(SWEEPS)
    finally:
        server.stop()
