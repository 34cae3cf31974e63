"""Hostile templates cost a 400, never a 500, a stall or a gigabyte (issue 13,
findings 5 and 6; docs/document-api.md, "Template limits").

Templates are evaluated in separate worker processes, each bounded in time
(`[docgen] template_seconds`) and memory (`template_memory_mb`), and the sizes that
operators, filters and functions accept are capped. These tests drive the real server:
a recursive macro, formatCurrency with a billion decimals, a loop without end, a
string that doubles until memory runs out, on every path a template takes (inline,
multipart, saved, gallery id, async), while `/healthz` and an S3 GET are timed and the
server's own memory is watched.
"""

from __future__ import annotations

import statistics
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import make_s3_client
from tests.docgen_helpers import DocAccount, assert_error, b64, read_pdf, signed_up
from tests.folio_process import FolioProcess, running_server

TEMPLATE_SECONDS = 3
CONFIG = f"""
[docgen]
template_seconds = {TEMPLATE_SECONDS}.0
template_workers = 2
# A quarter of the default 512: DOUBLING reaches it after copying ~256 MiB instead of ~1 GiB,
# well within the time limit even with the suite's other workers on both cores.
template_memory_mb = 128
"""
RECURSIVE = "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}"
HUGE_DECIMALS = "{{ formatCurrency(1, 'USD', 10**9) }}"
# No operator, filter or function here is over its cap: only the worker's limits stop them.
ENDLESS = "{% for i in range(100000) %}{% for j in range(100000) %}{% if i < 0 %}x{% endif %}{% endfor %}{% endfor %}"
DOUBLING = "{% set ns = namespace(s='xy') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}"
MIB = 1024 * 1024
# The server process itself (templates run elsewhere) stays well below this.
RSS_LIMIT = 500 * MIB


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FolioProcess]:
    yield from running_server(tmp_path_factory, "template-limits", CONFIG)


@pytest.fixture(scope="module")
def acct(server: FolioProcess) -> Iterator[DocAccount]:
    yield from signed_up(server, "tpl")


def post_template(http: httpx.Client, source: str, path: str = "/v1/template/pdf", **extra) -> httpx.Response:
    return http.post(path, json={"template": b64(source), "data": {}, **extra})


def template_error(response: httpx.Response) -> str:
    return assert_error(response, 400, "template")["message"]


def renders_normally(acct: DocAccount) -> None:
    response = post_template(acct.http, "<p>Total {{ formatCurrency(1234.5) }}</p>")
    assert response.status_code == 201, response.text
    assert "Total $1,234.50" in read_pdf(response.content)[0].text


def test_recursive_macro_is_a_400_naming_the_error(acct: DocAccount) -> None:
    message = template_error(post_template(acct.http, RECURSIVE))
    assert "recurs" in message.lower(), message
    # The multipart variant takes the same path.
    response = acct.http.post(
        "/v1/template/pdf", data={"options": "{}"}, files={"template": ("t.njk", RECURSIVE.encode())}
    )
    assert "recurs" in template_error(response).lower()
    renders_normally(acct)


def test_template_nested_too_deeply_to_parse_is_a_400(acct: DocAccount) -> None:
    deep = "{{ " + "(" * 3000 + "1" + ")" * 3000 + " }}"
    template_error(post_template(acct.http, deep))
    assert_error(acct.http.post("/v1/templates", json={"name": "deep", "template": b64(deep)}), 400, "template")


@pytest.mark.parametrize(
    ("source", "word"),
    [
        (HUGE_DECIMALS, "decimals"),
        ("{{ 'x'|center(10**9) }}", "width"),
        ("{{ 'x'.ljust(10**9) }}", "width"),
        ("{{ '%0999999999d'|format(1) }}", "width"),
        ("{{ '%0999999999d' % 1 }}", "width"),
        ("{{ '{:>999999999}'.format(1) }}", "width"),
        ("{{ 1.5|round(10**9, 'floor') }}", "precision"),
        ("{{ range(100000)|join('y' * 10**7) }}", "large"),
        ("{{ ('x' * 10**6)|replace('x', 'y' * 10**6) }}", "large"),
        ("{{ [1]|batch(10**9, 0)|list }}", "large"),
        ("{{ 10 ** (10**6) }}", "large"),
        ("{{ (10**900) ** 900 }}", "large"),
        ("{{ 10**9 * 'x' }}", "large"),
        ("{{ lipsum(10**9) }}", "large"),
        ("{{ {'a': 1}|tojson(10**9) }}", "indent"),
    ],
)
def test_oversized_arguments_are_refused_at_once(acct: DocAccount, source: str, word: str) -> None:
    started = time.monotonic()
    message = template_error(post_template(acct.http, source))
    assert time.monotonic() - started < 2, source
    assert word in message.lower(), (source, message)


def test_saved_gallery_and_async_paths_are_limited_too(acct: DocAccount) -> None:
    saved = acct.http.post("/v1/templates", json={"name": "hostile", "template": b64(HUGE_DECIMALS)})
    assert saved.status_code == 201, saved.text  # it parses; rendering it is what is refused
    started = time.monotonic()
    response = acct.http.post("/v1/template/pdf", json={"templateId": saved.json()["id"], "data": {}})
    assert "decimals" in template_error(response)
    response = acct.http.post("/v2/template/image", json={"templateId": saved.json()["id"], "data": {}})
    assert "decimals" in template_error(response)
    assert time.monotonic() - started < 4
    # An async request is evaluated before it is accepted: no job is left to fail later.
    response = post_template(acct.http, RECURSIVE, path="/v2/template/pdf", **{"async": True})
    assert "recurs" in template_error(response).lower()
    jobs = acct.http.get("/v2/jobs").json()
    assert all(job["status"] != "pending" for job in jobs), jobs
    # A gallery template with hostile data is bounded by the same limits.
    response = acct.http.post("/v1/template/pdf", json={"templateId": "invoice", "data": {"items": 5}})
    assert response.status_code in (201, 400), response.text
    renders_normally(acct)


def test_time_and_memory_limits_stop_a_template_and_the_worker_is_replaced(
    server: FolioProcess, acct: DocAccount
) -> None:
    started = time.monotonic()
    message = template_error(post_template(acct.http, ENDLESS))
    elapsed = time.monotonic() - started
    assert f"{TEMPLATE_SECONDS} s" in message, message
    assert TEMPLATE_SECONDS - 0.5 < elapsed < TEMPLATE_SECONDS + 5, elapsed
    message = template_error(post_template(acct.http, DOUBLING))
    assert "memory" in message.lower(), message
    pool = httpx.get(f"{server.web_url}/healthz/documents").json()["templates"]
    assert pool["started"] > pool["workers"], pool  # the killed worker was replaced
    renders_normally(acct)


# ------------------------------------------------------------------ the rest of the server meanwhile


def rss(server: FolioProcess) -> int:
    assert server.proc is not None
    for line in Path(f"/proc/{server.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def hostile_load(server: FolioProcess, key: str, sources: list[str], seconds: float) -> tuple[list, threading.Event]:
    """Each source posted again and again from a thread of its own for `seconds`
    (at least once); the answers' status codes are collected."""
    statuses: list[int] = []
    done = threading.Event()
    stop_at = time.monotonic() + seconds

    def post(source: str) -> None:
        with httpx.Client(base_url=server.web_url, headers={"X-API-Key": key}, timeout=120) as http:
            while True:
                statuses.append(post_template(http, source).status_code)
                if time.monotonic() > stop_at:
                    return

    threads = [threading.Thread(target=post, args=(source,), daemon=True) for source in sources]
    for thread in threads:
        thread.start()

    def wait() -> None:
        for thread in threads:
            thread.join()
        done.set()

    threading.Thread(target=wait, daemon=True).start()
    return statuses, done


def s3_probe(server: FolioProcess):
    """An S3 client and a (bucket, key) to GET, made before any load starts."""
    s3 = make_s3_client(server)
    bucket = f"stall-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="probe", Body=b"still here")
    return s3, bucket


def measure_while(server: FolioProcess, probe, done: threading.Event, limit: float) -> dict[str, list[float]]:
    """/healthz and S3 GET latencies, and the server's RSS, until the load is done."""
    s3, bucket = probe
    found: dict[str, list[float]] = {"healthz": [], "s3": [], "rss": []}
    deadline = time.monotonic() + limit
    with httpx.Client(base_url=server.web_url, timeout=120) as web:
        while not done.is_set() and time.monotonic() < deadline:
            started = time.monotonic()
            assert web.get("/healthz").status_code == 200
            found["healthz"].append(time.monotonic() - started)
            started = time.monotonic()
            assert s3.get_object(Bucket=bucket, Key="probe")["Body"].read() == b"still here"
            found["s3"].append(time.monotonic() - started)
            found["rss"].append(rss(server))
            time.sleep(0.02)
    return found


def assert_served(found: dict[str, list[float]]) -> None:
    for name in ("healthz", "s3"):
        times = found[name]
        assert times, found
        summary = f"{name}: {len(times)} requests, median {statistics.median(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms"
        print(summary)
        assert max(times) < 1.0, summary
        assert statistics.median(times) < 0.1, summary
        assert len(times) >= 10, summary
    assert max(found["rss"]) < RSS_LIMIT, f"server RSS reached {max(found['rss']) // MIB} MiB"


def test_other_requests_are_served_while_ten_hostile_templates_run(server: FolioProcess, acct: DocAccount) -> None:
    probe = s3_probe(server)
    statuses, done = hostile_load(server, acct.key, [HUGE_DECIMALS] * 10, seconds=4)
    found = measure_while(server, probe, done, limit=60)
    assert done.wait(120)
    assert_served(found)
    assert statuses and set(statuses) == {400}, statuses
    renders_normally(acct)


def test_templates_at_the_time_and_memory_limits_stall_nothing(server: FolioProcess, acct: DocAccount) -> None:
    probe = s3_probe(server)
    statuses, done = hostile_load(server, acct.key, [ENDLESS] * 4 + [DOUBLING] * 4 + [RECURSIVE] * 2, seconds=0)
    found = measure_while(server, probe, done, limit=90)
    assert done.wait(120)
    assert_served(found)
    assert statuses and set(statuses) == {400}, statuses
    renders_normally(acct)
