"""Bounded concurrency per listener (issue 17, "Overload"): with `[server]
max_concurrent_requests = 4`, four uploads that hold their slots (their bodies arrive
slowly) leave no room, and the next request is answered at once with 503 and
Retry-After: S3's SlowDown in S3 XML on the S3 listener, the JSON error on the web
listener; health checks and /metrics are still answered. A burst of default boto3
clients (standard retry mode) against a full listener completes all its work through
its retries. The held uploads complete when their bodies do."""

from __future__ import annotations

import http.client
import json
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit
from xml.etree import ElementTree

import botocore.config
import httpx
import pytest
from botocore.exceptions import ClientError
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import make_s3_client
from tests.folio_process import FolioProcess, running_server

BOUND = 4
BODY = b"held upload " * 100


@pytest.fixture(scope="module")
def access_log_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("overload-log") / "access.jsonl"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, access_log_path: Path) -> Iterator[FolioProcess]:
    config = f'[server]\nmax_concurrent_requests = {BOUND}\naccess_log = "{access_log_path}"\n'
    yield from running_server(tmp_path_factory, "overload", config)


@pytest.fixture(scope="module")
def s3(server: FolioProcess):
    return make_s3_client(server)  # boto3's defaults: standard retry mode, 3 attempts


@pytest.fixture
def bucket(s3) -> str:
    name = f"overload-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


class HeldUpload:
    """An upload whose head and first bytes are sent, the rest only on `finish()`:
    the server holds a request slot for it meanwhile."""

    def __init__(self, url: str, method: str = "PUT", headers: dict[str, str] | None = None) -> None:
        parts = urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        self.conn.putrequest(method, parts.path + (f"?{parts.query}" if parts.query else ""))
        for name, value in {**(headers or {}), "content-length": str(len(BODY))}.items():
            self.conn.putheader(name, value)
        self.conn.endheaders()
        self.conn.send(BODY[:10])

    def finish(self) -> tuple[int, bytes]:
        self.conn.send(BODY[10:])
        response = self.conn.getresponse()
        body = response.read()
        self.conn.close()
        return response.status, body


def in_flight(server: FolioProcess, listener: str) -> float:
    scraped = httpx.get(f"{server.web_url}/metrics", timeout=10)
    assert scraped.status_code == 200  # answered whatever the load
    for family in text_string_to_metric_families(scraped.text):
        for sample in family.samples:
            if sample.name == "folio_http_requests_in_flight" and sample.labels["listener"] == listener:
                return sample.value
    raise AssertionError("no folio_http_requests_in_flight")


def metric(server: FolioProcess, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(httpx.get(f"{server.web_url}/metrics", timeout=10).text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


def log_line(path: Path, request_id: str) -> dict:
    """The access-log line of one request (written a moment after its response)."""
    found: list[dict] = []

    def logged() -> bool:
        found[:] = [r for r in map(json.loads, path.read_text().splitlines()) if r["requestId"] == request_id]
        return bool(found)

    wait_for(logged)
    assert len(found) == 1, found
    return found[0]


def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def hold_s3(server: FolioProcess, s3, bucket: str, count: int) -> list[HeldUpload]:
    held = []
    for i in range(count):
        url = s3.generate_presigned_url(
            "put_object", Params={"Bucket": bucket, "Key": f"held-{i}"}, ExpiresIn=600
        )
        held.append(HeldUpload(url))
    wait_for(lambda: in_flight(server, "s3") == count)
    return held


def test_s3_listener_answers_slow_down_past_its_bound(
    server: FolioProcess, s3, bucket: str, access_log_path: Path
) -> None:
    held = hold_s3(server, s3, bucket, BOUND)
    try:
        refused = httpx.get(f"{server.s3_url}/{bucket}?list-type=2", timeout=10)
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        error = ElementTree.fromstring(refused.content)
        assert error.findtext("Code") == "SlowDown"
        assert error.findtext("Message") == "Please reduce your request rate."
        assert error.findtext("Resource") == f"/{bucket}"
        assert error.findtext("RequestId") == refused.headers["x-amz-request-id"]
        line = log_line(access_log_path, refused.headers["x-amz-request-id"])
        assert (line["listener"], line["operation"], line["status"]) == ("s3", "(overloaded)", 503)
        head = httpx.head(f"{server.s3_url}/{bucket}/some-key", timeout=10)
        assert head.status_code == 503 and head.content == b"" and head.headers["retry-after"] == "1"
        # boto3 reads it as the throttling error it is (one attempt: no retries here).
        once = make_s3_client(server, config=botocore.config.Config(retries={"total_max_attempts": 1}))
        with pytest.raises(ClientError) as slow_down:
            once.put_object(Bucket=bucket, Key="refused", Body=b"x" * 100)
        assert slow_down.value.response["Error"]["Code"] == "SlowDown"
        assert slow_down.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
        # The other listener has its own bound: the web listener still serves.
        assert httpx.get(f"{server.web_url}/api/v1/files", timeout=10).status_code == 401
    finally:
        results = [upload.finish() for upload in held]
    assert [status for status, _ in results] == [200] * BOUND
    for i in range(BOUND):
        assert s3.get_object(Bucket=bucket, Key=f"held-{i}")["Body"].read() == BODY
    # Nothing stored for the refused requests.
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert sorted(keys) == [f"held-{i}" for i in range(BOUND)]


def test_web_listener_answers_json_past_its_bound(
    server: FolioProcess, s3, bucket: str, access_log_path: Path
) -> None:
    api_key = {"x-api-key": f"{server.access_key}:{server.secret_key}"}
    held = [
        HeldUpload(
            f"{server.web_url}/api/v1/files?bucket={bucket}&key=web-held-{i}",
            "POST",
            {**api_key, "content-type": "application/octet-stream"},
        )
        for i in range(BOUND)
    ]
    try:
        wait_for(lambda: in_flight(server, "web") == BOUND + 1)  # + the scrape itself
        refused = httpx.get(f"{server.web_url}/api/v1/files", headers=api_key, timeout=10)
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        assert refused.headers["content-type"] == "application/json"
        error = refused.json()["error"]
        assert error["code"] == "SlowDown" and "reduce your request rate" in error["message"]
        assert error["details"] == {"retryAfterSeconds": 1}
        line = log_line(access_log_path, refused.headers["x-request-id"])
        assert (line["listener"], line["operation"], line["status"]) == ("web", "(overloaded)", 503)
        # Health checks and /metrics are served whatever the load.
        assert httpx.get(f"{server.web_url}/healthz", timeout=10).status_code == 200
        assert metric(server, "folio_http_overload_refusals_total", listener="web") >= 1
    finally:
        results = [upload.finish() for upload in held]
    assert [status for status, _ in results] == [201] * BOUND, results
    assert json.loads(results[0][1])["key"] == "web-held-0"


def test_a_boto3_burst_completes_through_its_retries(
    server: FolioProcess, s3, bucket: str, access_log_path: Path
) -> None:
    """Every slot held, a burst of PUTs and GETs from default boto3 clients: all of their
    first attempts are refused (503 SlowDown); the slots are freed once they all were,
    and boto3's standard retries (backoff up to 1 s, then 2 s) finish the work."""
    burst = 8
    for i in range(burst):
        s3.put_object(Bucket=bucket, Key=f"read-{i}", Body=f"read {i}".encode())
    clients = [make_s3_client(server) for _ in range(burst)]  # default config, each its own pool
    refused_first = []  # one entry per first attempt answered 503, counted by boto3's own hook
    lock = threading.Lock()

    def attempted(response, attempts: int, **_kwargs) -> None:
        if attempts == 1 and response is not None and response[0].status_code == 503:
            with lock:
                refused_first.append(response[1]["Error"]["Code"])

    for client in clients:
        client.meta.events.register("needs-retry.s3.PutObject", attempted)
    held = hold_s3(server, s3, bucket, BOUND)

    def work(i: int) -> tuple[int, int]:
        put = clients[i].put_object(Bucket=bucket, Key=f"burst-{i}", Body=f"burst {i}".encode() * 50)
        got = clients[i].get_object(Bucket=bucket, Key=f"read-{i}")
        assert got["Body"].read() == f"read {i}".encode()
        return put["ResponseMetadata"]["RetryAttempts"], got["ResponseMetadata"]["RetryAttempts"]

    try:
        with ThreadPoolExecutor(burst) as pool:
            futures = [pool.submit(work, i) for i in range(burst)]
            # Every first attempt meets a full listener: free the slots once all were refused.
            wait_for(lambda: len(refused_first) == burst)
            results = [upload.finish() for upload in held]
            retries = [future.result() for future in futures]
    finally:
        for upload in held:
            upload.conn.close()
    assert refused_first == ["SlowDown"] * burst
    assert [status for status, _ in results] == [200] * BOUND
    assert all(put_retries >= 1 for put_retries, _ in retries), retries  # each PUT was refused first
    for i in range(burst):
        assert s3.get_object(Bucket=bucket, Key=f"burst-{i}")["Body"].read() == f"burst {i}".encode() * 50
    # Counted as what they were, and nothing answered 500.
    overloaded = metric(
        server, "folio_http_requests_total", listener="s3", operation="(overloaded)", status_class="5xx"
    )
    assert overloaded >= burst
    records = [json.loads(line) for line in access_log_path.read_text().splitlines()]
    assert not [r for r in records if r["status"] and r["status"] >= 500 and r["status"] != 503]
