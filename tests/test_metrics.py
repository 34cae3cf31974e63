"""/metrics and the JSON access log (issue 17, "Metrics and logs"), against a real server:
the exposition parses with prometheus_client's own parser, its counters move with a
scripted load of boto3 and httpx requests, the bearer token protects it, and the access
log has exactly one line per request, with the request's own id, operation, bucket,
key, account, status and byte counts."""

from __future__ import annotations

import io
import json
import os
import re
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import botocore.config
import httpx
import pytest
from botocore.exceptions import ClientError, IncompleteReadError, ResponseStreamingError
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import make_objects_public, make_s3_client
from tests.folio_process import FolioProcess, running_server
from tests.test_integrity import blob_path, blobs_of, flip_byte, folio_check

TOKEN = "metrics-test-token-0123456789"
# The SQLite file's own figures: a server on PostgreSQL has no database file to measure.
SQLITE_FILE_METRICS = {"folio_database_file_bytes"}
CONFIG = """
[plans.default]
storage_bytes = 1099511627776
max_buckets = 1000
write_per_second = 0
read_per_second = 0
list_per_second = 0
dashboard_per_minute = 0
docgen_per_minute = 0

[plans.tiny]
storage_bytes = 3000
max_buckets = 10

[plans.slow]
storage_bytes = 1099511627776
max_buckets = 10
write_per_second = 2

[limits]
max_rate_wait_seconds = 0.6
"""

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture(scope="module")
def access_log_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("metrics-log") / "access.jsonl"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, access_log_path: Path) -> Iterator[FolioProcess]:
    config = f'[server]\naccess_log = "{access_log_path}"\nmetrics_token = "{TOKEN}"\n' + CONFIG
    yield from running_server(tmp_path_factory, "metrics", config)


@pytest.fixture(scope="module")
def s3(server: FolioProcess):
    return make_s3_client(server)


@pytest.fixture
def bucket(s3) -> str:
    name = f"metrics-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


def scrape(server: FolioProcess) -> str:
    response = httpx.get(
        f"{server.web_url}/metrics", headers={"authorization": f"Bearer {TOKEN}"}, timeout=30
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return response.text


def samples(server: FolioProcess) -> Samples:
    """Every sample of a scrape, parsed by prometheus_client's parser."""
    found: Samples = {}
    for family in text_string_to_metric_families(scrape(server)):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found: Samples, name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def requests(found: Samples, listener: str, operation: str, status_class: str) -> float:
    return value(
        found, "folio_http_requests_total", listener=listener, operation=operation, status_class=status_class
    )


def test_metrics_parse_and_cover_every_area(server: FolioProcess) -> None:
    families = {family.name: family for family in text_string_to_metric_families(scrape(server))}
    # The parser strips _total from counter family names.
    expected = {
        "folio_http_requests": "counter",
        "folio_http_request_duration_seconds": "histogram",
        "folio_http_received_bytes": "counter",
        "folio_http_sent_bytes": "counter",
        "folio_http_requests_in_flight": "gauge",
        "folio_http_max_concurrent_requests": "gauge",
        "folio_http_overload_refusals": "counter",
        "folio_ratelimit_waits": "counter",
        "folio_ratelimit_wait_seconds": "counter",
        "folio_ratelimit_refusals": "counter",
        "folio_ratelimit_waiting": "gauge",
        "folio_quota_refusals": "counter",
        "folio_db_commit_group_writes": "histogram",
        "folio_db_fsync_seconds": "histogram",
        "folio_database_file_bytes": "gauge",
        "folio_blobs": "gauge",
        "folio_blob_bytes": "gauge",
        "folio_buckets": "gauge",
        "folio_objects": "gauge",
        "folio_stored_bytes": "gauge",
        "folio_disk_free_bytes": "gauge",
        "folio_disk_size_bytes": "gauge",
        "folio_webhook_queue_depth": "gauge",
        "folio_webhook_deliveries": "gauge",
        "folio_webhook_failed_attempts": "gauge",
        "folio_webhooks": "gauge",
        "folio_document_jobs": "gauge",
        "folio_image_cache_hits": "counter",
        "folio_image_cache_misses": "counter",
        "folio_image_cache_bytes": "gauge",
        "folio_integrity_corrupt_reads": "counter",
        "folio_integrity_damaged": "gauge",
        "folio_scrub_running": "gauge",
        "folio_scrub_last_end_timestamp_seconds": "gauge",
        "folio_scrub_last_duration_seconds": "gauge",
        "folio_scrub_last_checked": "gauge",
        "folio_scrub_last_checked_bytes": "gauge",
        "folio_scrub_last_problems": "gauge",
        "folio_scrub_last_damaged": "gauge",
        "folio_scrub_last_complete": "gauge",
        "process_resident_memory_bytes": "gauge",
    }
    if server.database_url:
        for name in SQLITE_FILE_METRICS:
            del expected[name]
            assert name not in families, f"{name} on a server without a database file"
    for name, kind in expected.items():
        assert name in families, f"{name} missing from /metrics"
        assert families[name].type == kind, (name, families[name].type)
    found = samples(server)
    assert value(found, "folio_http_max_concurrent_requests", listener="s3") == 256  # the default bound
    if not server.database_url:
        assert value(found, "folio_database_file_bytes", file="main") > 0
    assert value(found, "folio_disk_size_bytes") >= value(found, "folio_disk_free_bytes") > 0
    # This very scrape is a web request in flight.
    assert value(found, "folio_http_requests_in_flight", listener="web") >= 1
    queues = {labels for name, labels in found if name == "folio_webhook_queue_depth"}
    assert queues == {(("queue", "events"),), (("queue", "deliveries"),)}


def test_counters_move_with_a_scripted_load(server: FolioProcess, s3, bucket: str) -> None:
    n = 12
    small, large = b"s" * 3000, b"L" * 100_000  # inline in the row / a blob file
    before = samples(server)
    for i in range(n):
        s3.put_object(Bucket=bucket, Key=f"obj-{i}", Body=large if i == 0 else small)
    for i in range(n):
        assert s3.get_object(Bucket=bucket, Key=f"obj-{i}")["Body"].read() == (large if i == 0 else small)
    with pytest.raises(ClientError) as missing:
        s3.get_object(Bucket=bucket, Key="no-such-key")
    assert missing.value.response["Error"]["Code"] == "NoSuchKey"
    after = samples(server)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("folio_http_requests_total", listener="s3", operation="PutObject", status_class="2xx") == n
    assert delta("folio_http_requests_total", listener="s3", operation="GetObject", status_class="2xx") == n
    assert delta("folio_http_requests_total", listener="s3", operation="GetObject", status_class="4xx") == 1
    assert delta("folio_http_request_duration_seconds_count", listener="s3", operation="PutObject") == n
    assert delta("folio_http_request_duration_seconds_sum", listener="s3", operation="PutObject") > 0
    # Every PUT fast enough for the last bucket, none below zero: the histogram is cumulative.
    assert (
        delta("folio_http_request_duration_seconds_bucket", listener="s3", operation="PutObject", le="+Inf")
        == n
    )
    body_bytes = len(large) + (n - 1) * len(small)
    assert delta("folio_http_received_bytes_total", listener="s3", operation="PutObject") >= body_bytes
    assert delta("folio_http_sent_bytes_total", listener="s3", operation="GetObject") >= body_bytes
    # Each acknowledged write was in a durable group: on SQLite, fsynced by Folio (on
    # PostgreSQL, durability is the server's own commit: no fsync of Folio's to time).
    assert delta("folio_db_commit_group_writes_sum") >= n
    if not server.database_url:
        assert delta("folio_db_fsync_seconds_count") >= 1
        assert value(after, "folio_db_fsync_seconds_sum") > 0
    assert delta("folio_objects") == n
    assert delta("folio_blobs") == 1 and delta("folio_blob_bytes") == len(large)
    assert delta("folio_stored_bytes") == body_bytes


def test_web_requests_are_counted_by_route_template(server: FolioProcess, bucket: str) -> None:
    key = f"{server.access_key}:{server.secret_key}"
    before = samples(server)
    with httpx.Client(base_url=server.web_url, headers={"x-api-key": key}, timeout=30) as client:
        for i in range(3):
            uploaded = client.post(f"/api/v1/files?bucket={bucket}&key=web-{i}.txt", content=b"hello")
            assert uploaded.status_code == 201, uploaded.text
        assert client.get("/api/v1/files/definitely-not-an-id").status_code in (400, 404)
        assert client.get("/no/such/endpoint/anywhere").status_code == 404
    after = samples(server)
    operation = "POST /api/v1/files"
    assert requests(after, "web", operation, "2xx") - requests(before, "web", operation, "2xx") == 3
    assert (
        value(after, "folio_http_received_bytes_total", listener="web", operation=operation)
        - value(before, "folio_http_received_bytes_total", listener="web", operation=operation)
        >= 15
    )
    one = "GET /api/v1/files/{file_id}"
    assert requests(after, "web", one, "4xx") - requests(before, "web", one, "4xx") == 1
    # No route matched: one series for all of them, whatever the path.
    series = {labels for name, labels in after if name == "folio_http_requests_total"}
    assert not any("/no/such" in label_value for labels in series for _name, label_value in labels)


def test_the_token_protects_metrics(server: FolioProcess) -> None:
    url = f"{server.web_url}/metrics"
    for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": f"Basic {TOKEN}"}):
        refused = httpx.get(url, headers=headers, timeout=10)
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Bearer")
        error = refused.json()["error"]
        assert error["code"] == "Unauthorized" and error["message"]
        assert "folio_http" not in refused.text
    assert httpx.post(url, headers={"authorization": f"Bearer {TOKEN}"}, timeout=10).status_code == 405
    # gzip when asked (Prometheus asks): httpx decodes it back to the same text format.
    zipped = httpx.get(
        url, headers={"authorization": f"Bearer {TOKEN}", "accept-encoding": "gzip"}, timeout=10
    )
    assert zipped.status_code == 200 and zipped.headers["content-encoding"] == "gzip"
    assert any(f.name == "folio_http_requests" for f in text_string_to_metric_families(zipped.text))


def test_quota_and_rate_limit_refusals_are_counted(server: FolioProcess) -> None:
    tiny = server.create_account(f"tiny-{uuid.uuid4().hex[:8]}@example.com", plan="tiny")
    slow = server.create_account(f"slow-{uuid.uuid4().hex[:8]}@example.com", plan="slow")
    no_retries = botocore.config.Config(retries={"total_max_attempts": 1, "mode": "standard"})
    tiny_s3 = make_s3_client(server, tiny["accessKey"], tiny["secretKey"], config=no_retries)
    slow_s3 = make_s3_client(server, slow["accessKey"], slow["secretKey"], config=no_retries)
    tiny_bucket, slow_bucket = f"tiny-{uuid.uuid4().hex[:8]}", f"slow-{uuid.uuid4().hex[:8]}"
    tiny_s3.create_bucket(Bucket=tiny_bucket)
    slow_s3.create_bucket(Bucket=slow_bucket)
    time.sleep(1.1)  # the slow plan's write bucket is full again after the CreateBucket

    before = samples(server)
    with pytest.raises(ClientError) as over_quota:
        tiny_s3.put_object(Bucket=tiny_bucket, Key="big", Body=b"x" * 5000)
    assert over_quota.value.response["Error"]["Code"] == "QuotaExceeded"

    # 2 writes/s with a burst of 2 and waits of up to 0.6 s: of 6 at once, two pass, one
    # waits 0.5 s for its turn, the rest are refused.
    def put(i: int) -> str:
        try:
            slow_s3.put_object(Bucket=slow_bucket, Key=f"k{i}", Body=b"x")
        except ClientError as exc:
            return exc.response["Error"]["Code"]
        return "ok"

    with ThreadPoolExecutor(6) as pool:
        outcomes = list(pool.map(put, range(6)))
    after = samples(server)
    refused = outcomes.count("TooManyRequests")
    assert refused >= 1 and outcomes.count("ok") >= 2, outcomes
    assert value(after, "folio_quota_refusals_total") - value(before, "folio_quota_refusals_total") == 1
    assert (
        value(after, "folio_ratelimit_refusals_total") - value(before, "folio_ratelimit_refusals_total")
        == refused
    )
    assert value(after, "folio_ratelimit_waits_total") - value(before, "folio_ratelimit_waits_total") >= 1
    assert value(after, "folio_ratelimit_wait_seconds_total") > value(
        before, "folio_ratelimit_wait_seconds_total"
    )


def test_image_cache_hits_and_misses(server: FolioProcess, s3, bucket: str) -> None:
    make_objects_public(s3, bucket)
    picture = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(picture, "PNG")
    s3.put_object(Bucket=bucket, Key="red.png", Body=picture.getvalue(), ContentType="image/png")
    before = samples(server)
    url = f"{server.web_url}/api/img/{bucket}/red.png?w=32"
    first, second = httpx.get(url, timeout=30), httpx.get(url, timeout=30)
    assert first.status_code == second.status_code == 200
    assert (first.headers["x-folio-cache"], second.headers["x-folio-cache"]) == ("miss", "hit")
    after = samples(server)
    assert (
        value(after, "folio_image_cache_misses_total") - value(before, "folio_image_cache_misses_total") == 1
    )
    assert value(after, "folio_image_cache_hits_total") - value(before, "folio_image_cache_hits_total") == 1
    assert value(after, "folio_image_cache_bytes") > 0
    template = "GET /api/img/{bucket}/{path:path}"
    assert requests(after, "web", template, "2xx") - requests(before, "web", template, "2xx") == 2


def _log_lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _settled_lines(path: Path, at_least: int, timeout: float = 10.0) -> list[str]:
    """The log's lines once it holds `at_least` and nothing more arrives for a moment
    (the log is written by a thread of its own, a moment after each response)."""
    deadline = time.monotonic() + timeout
    lines = _log_lines(path)
    while len(lines) < at_least and time.monotonic() < deadline:
        time.sleep(0.05)
        lines = _log_lines(path)
    time.sleep(0.5)
    return _log_lines(path)


def test_access_log_has_one_line_per_request(
    server: FolioProcess, s3, bucket: str, access_log_path: Path
) -> None:
    start = len(_settled_lines(access_log_path, 0))
    account_id = json.loads(server.admin("usage", "--email", "admin@localhost"))["accountId"]
    sent: dict[str, dict] = {}  # request id -> what the line must say

    put = s3.put_object(Bucket=bucket, Key="dir/é file.txt", Body=b"z" * 1234)
    sent[put["ResponseMetadata"]["RequestId"]] = {
        "listener": "s3", "method": "PUT", "operation": "PutObject", "bucket": bucket,
        "key": "dir/é file.txt", "status": 200, "bytesIn": 1234,
    }  # fmt: skip
    got = s3.get_object(Bucket=bucket, Key="dir/é file.txt")
    assert got["Body"].read() == b"z" * 1234
    sent[got["ResponseMetadata"]["RequestId"]] = {
        "listener": "s3", "method": "GET", "operation": "GetObject", "bucket": bucket,
        "key": "dir/é file.txt", "status": 200, "bytesOut": 1234,
    }  # fmt: skip
    with pytest.raises(ClientError) as missing:
        s3.head_object(Bucket=bucket, Key="missing")
    sent[missing.value.response["ResponseMetadata"]["RequestId"]] = {
        "operation": "HeadObject", "key": "missing", "status": 404, "bytesOut": 0,
    }  # fmt: skip
    listed = s3.list_objects_v2(Bucket=bucket)
    sent[listed["ResponseMetadata"]["RequestId"]] = {"operation": "ListObjectsV2", "key": None, "status": 200}
    anonymous = httpx.get(f"{server.s3_url}/{bucket}/dir/x", timeout=10)
    assert anonymous.status_code == 403
    sent[anonymous.headers["x-amz-request-id"]] = {
        "operation": "GetObject", "account": None, "principal": "anonymous", "status": 403,
    }  # fmt: skip
    with httpx.Client(base_url=server.web_url, timeout=10) as web:
        health = web.get("/healthz")
        sent[health.headers["x-request-id"]] = {
            "listener": "web", "operation": "GET /healthz", "status": 200, "account": None,
            "bytesOut": len(health.content),
        }  # fmt: skip
        listing = web.get(
            "/api/v1/files",
            params={"bucket": bucket},
            headers={"x-api-key": f"{server.access_key}:{server.secret_key}"},
        )
        assert listing.status_code == 200
        sent[listing.headers["x-request-id"]] = {
            "listener": "web", "operation": "GET /api/v1/files", "status": 200, "account": account_id,
            "principal": server.access_key,
        }  # fmt: skip
        image = web.get(f"/api/img/{bucket}/dir/é file.txt?w=10")
        sent[image.headers["x-request-id"]] = {
            "operation": "GET /api/img/{bucket}/{path:path}", "bucket": bucket, "key": "dir/é file.txt",
            "status": image.status_code,
        }  # fmt: skip

    lines = _settled_lines(access_log_path, start + len(sent))[start:]
    assert len(lines) == len(sent), lines
    records = [json.loads(line) for line in lines]  # every line parses alone
    by_id = {record["requestId"]: record for record in records}
    assert set(by_id) == set(sent)
    for request_id, expected in sent.items():
        record = by_id[request_id]
        assert set(record) == {
            "time", "requestId", "listener", "method", "operation", "bucket", "key", "account", "principal",
            "status", "bytesIn", "bytesOut", "durationMs", "remote",
        }  # fmt: skip
        for field, wanted in expected.items():
            assert record[field] == wanted, (request_id, field, record)
        assert record["durationMs"] >= 0 and record["remote"] == "127.0.0.1"
        assert record["time"].endswith("Z") and record["time"][:2] == "20"
        if record["listener"] == "s3" and record["principal"] != "anonymous":
            assert record["account"] == account_id and record["principal"] == server.access_key


REPO = Path(__file__).resolve().parent.parent


def test_dashboard_and_docs_name_only_real_metrics(server: FolioProcess) -> None:
    """docs/grafana-folio.json queries only metrics the server exposes, and
    docs/operations.md lists every folio_ metric it exposes."""
    families = {family.name for family in text_string_to_metric_families(scrape(server))}
    # Sample names, and the families with no sample yet (no document job was made here).
    exposed = {sample_name for sample_name, _labels in samples(server)} | families
    dashboard = json.loads((REPO / "docs" / "grafana-folio.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    assert exprs
    used = {name for expr in exprs for name in re.findall(r"\b((?:folio|process)_[a-z_]+)\b", expr)}
    # On PostgreSQL the SQLite file's panel has nothing to show; every other query works.
    missing = used - exposed - (SQLITE_FILE_METRICS if server.database_url else set())
    assert used and not missing, missing
    docs = (REPO / "docs" / "operations.md").read_text()
    for family in families:
        if family.startswith("folio_"):
            documented = family + "_total" if f"{family}_total" in exposed else family
            assert f"`{documented}`" in docs, f"{documented} is not in docs/operations.md"


MIB = 1024 * 1024


@pytest.fixture(scope="module")
def rotting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FolioProcess]:
    """A server of its own for the corrupt blob: its damage marks stay out of the main
    server's figures. Its log is checked like any other (an aborted read is one line)."""
    config = f'[server]\nmetrics_token = "{TOKEN}"\n' + CONFIG
    yield from running_server(tmp_path_factory, "metrics-rot", config)


def test_a_corrupt_blob_shows_in_metrics(rotting: FolioProcess) -> None:
    """One byte flipped on disk: the GET breaks off, and /metrics counts the refused read,
    the damage mark, and what `folio check` found; put back, the next check is clean."""
    server, s3 = rotting, make_s3_client(rotting)
    bucket = f"rot-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    payload = os.urandom(2 * MIB + 100)
    s3.put_object(Bucket=bucket, Key="rot.bin", Body=payload)
    (blob_id,) = blobs_of(server, bucket, "rot.bin")
    path = blob_path(server, blob_id)
    before = samples(server)
    flip_byte(path, MIB + 10)  # in piece 1
    try:
        with pytest.raises((ResponseStreamingError, IncompleteReadError)):
            s3.get_object(Bucket=bucket, Key="rot.bin")["Body"].read()
        after = samples(server)
        corrupt = "folio_integrity_corrupt_reads_total"
        assert value(after, corrupt) - value(before, corrupt) == 1
        assert value(after, "folio_integrity_damaged", kind="blobs") >= 1
        assert folio_check(server).returncode == 1
        checked = samples(server)
        assert value(checked, "folio_scrub_last_damaged") == 1
        assert value(checked, "folio_scrub_last_problems", problem="corrupt_blobs") == 1
        assert value(checked, "folio_scrub_last_problems", problem="missing_blobs") == 0
        assert value(checked, "folio_scrub_last_checked", what="blobs") >= 1
        assert value(checked, "folio_scrub_last_checked_bytes") >= len(payload)
        assert value(checked, "folio_scrub_last_complete") == 1
        assert value(checked, "folio_scrub_last_end_timestamp_seconds", kind="check") > time.time() - 300
    finally:
        flip_byte(path, MIB + 10)  # put back: the rest of the module's store is sound
    assert folio_check(server).returncode == 0
    clean = samples(server)
    assert value(clean, "folio_scrub_last_damaged") == 0
    assert value(clean, "folio_scrub_last_problems", problem="corrupt_blobs") == 0
    assert value(clean, "folio_integrity_damaged", kind="blobs") == 0
    assert s3.get_object(Bucket=bucket, Key="rot.bin")["Body"].read() == payload
