"""Issue 15's listing benchmark: the dashboard's object browser on a prefix of 100,000 objects.

`browse_seed` (the scenario's set-up, once per server) signs up an account on the JSON API
(`POST /api/auth/signup`), creates a bucket with the account's first key pair and PUTs
COUNT empty objects `PREFIX + 000000.jpg ...` into it over S3, at SEED_CONCURRENCY on
keep-alive connections (the load generator's own SigV4 client). The keys are images by name,
so every row of a page also gets its signed `/api/img` thumbnail URL: the heaviest kind of row.

`browse_listing` (the measured job) logs that account in (`POST /api/auth/login`, the
`session` cookie), makes a key pair for the S3 requests (`POST /api/keys`; revoked at the end:
the password account's first secret is not kept anywhere), checks what it is about to time
(the first page has 100 rows and its "Next page" link carries the 100th key as `after`; the
middle page starts at key 50,000; the S3 pages hold the same keys), and then times, after
WARMUP rounds, ROUNDS rounds of four requests, interleaved so that other work on the
machine falls on all four alike:

- `GET /buckets/{bucket}?prefix=PREFIX` on the web listener: the first page, as the browser
  asks for it (the session cookie; the whole HTML page);
- the same with `after=` the marker that "Next page" carries after 500 pages (the 50,000th
  key): page 501 of 1,000, in the middle of the prefix;
- ListObjectsV2 `prefix=PREFIX&delimiter=/&max-keys=100` on the S3 port, and the same with
  `start-after=` that key: the store's listing on its own, for reference.

Each figure is the time from sending the request to the last byte of its answer on a
keep-alive loopback connection (one connection per listener, one request at a time): the
server's time plus loopback and this client's parsing. The pages' `Server-Timing: list;dur=`
(webui/pages_objects.py: the listing and the thumbnails' signatures, without rendering) is
recorded beside it.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
import statistics
import time
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from bench.http_client import HttpConnection, Response, connect
from bench.loadgen import (
    Endpoint,
    Recorder,
    S3Requests,
    _cpu_seconds,
    _drive,
    _percentile,
    _summary,
)

EMAIL, PASSWORD = "bench-browse@example.com", "bench-browse-password"
BUCKET, PREFIX = "bench-browse", "browse100k/"
COUNT, PAGE = 100_000, 100  # PAGE: the object browser's page size (restapi.browse.PAGE_SIZE)
MIDDLE_KEYS = 50_000  # the middle page starts after this many keys: "Next page" 500 times
SEED_CONCURRENCY = 64
WARMUP, ROUNDS = 20, 200

_SERVER_TIMING = re.compile(r"^server-timing:.*?\blist;dur=([\d.]+)", re.M | re.I)
_SET_SESSION = re.compile(r"^set-cookie:\s*session=([^;\s]+)", re.M | re.I)
_NEXT_LINK = re.compile(rb'<a rel="next"[^>]*href="([^"]+)"')


def key_of(index: int) -> str:
    return f"{PREFIX}{index:06d}.jpg"


def _failure(what: str, response: Response | None = None) -> dict[str, Any]:
    rec = Recorder()
    rec.failure(what, response)
    return _summary(rec, 0.0, 0.0) | {"ops": 0}


class WebClient:
    """JSON and page requests on the web listener, with the session cookie once there is one."""

    def __init__(self, ep: Endpoint) -> None:
        self.host, self.port = ep.host, ep.web_port
        self.cookie = ""

    def head(self, method: str, target: str, extra: str = "") -> bytes:
        lines = f"{method} {target} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n{extra}"
        if self.cookie:
            lines += f"Cookie: session={self.cookie}\r\n"
        return (lines + "\r\n").encode()

    async def json(self, conn: HttpConnection, method: str, target: str, body: Any = None) -> Response:
        raw = json.dumps(body).encode() if body is not None else b""
        extra = (
            f"Content-Type: application/json\r\nContent-Length: {len(raw)}\r\n" if body is not None else ""
        )
        if method == "DELETE":
            extra = "Content-Length: 0\r\n"
        return await conn.request(self.head(method, target, extra), raw, keep_body=True)

    async def authenticate(self, conn: HttpConnection, path: str) -> Response:
        """Sign up or log in (`path`); keeps the session cookie. A throttled login (429) waits
        out its Retry-After once: the runs and their retries log in a few times a minute."""
        body = {"email": EMAIL, "password": PASSWORD}
        response = await self.json(conn, "POST", path, body)
        if response.status == 429:
            wait = float(response.headers.get("retry-after", "6"))
            await asyncio.sleep(min(wait, 60.0))
            response = await self.json(conn, "POST", path, body)
        found = _SET_SESSION.search(response.head)
        if response.status in (200, 201) and found:
            self.cookie = found.group(1)
        return response


async def job_browse_seed(ep: Endpoint, job: dict[str, Any]) -> dict[str, Any]:
    """The account, its bucket and COUNT objects under PREFIX (untimed set-up; its time is returned)."""
    if not ep.web_port:
        return _failure("this target has no web listener (no dashboard)") | {"unsupported": True}
    count = int(job.get("count", COUNT))
    web = WebClient(ep)
    conn = await connect(ep.host, ep.web_port)
    try:
        signed = await web.authenticate(conn, "/api/auth/signup")
    finally:
        conn.close()
    if signed.status != 201:
        return _failure("sign-up of the benchmark account", signed)
    account = json.loads(signed.body)
    owner = Endpoint(ep.host, ep.port, account["accessKey"], account["secretKey"], ep.region, ep.web_port)
    s3 = S3Requests(owner)
    conn = await connect(ep.host, ep.port)
    try:
        created = await conn.request(s3.head("PUT", BUCKET), keep_body=True)
    finally:
        conn.close()
    if not 200 <= created.status < 300:
        return _failure(f"CreateBucket {BUCKET}", created)

    async def put(conn: HttpConnection, seq: int) -> tuple[Response, int]:
        return await conn.request(s3.head("PUT", BUCKET, key_of(seq), length=0)), 0

    t0 = time.perf_counter()
    result = await _drive(owner, int(job.get("concurrency", SEED_CONCURRENCY)), 3600.0, count, put)
    seed_s = time.perf_counter() - t0
    if result["ops"] != count or result["errors"]:
        return result | {"ops": 0, "errors": result["errors"] or 1}
    return result | {"seed_s": round(seed_s, 2), "seed_ops_per_s": round(count / seed_s)}


def _page_target(after: str | None = None) -> str:
    query = f"prefix={quote(PREFIX, safe='')}" + (f"&after={quote(after, safe='')}" if after else "")
    return f"/buckets/{BUCKET}?{query}"


def _s3_query(start_after: str | None = None) -> dict[str, str]:
    query = {"list-type": "2", "prefix": PREFIX, "delimiter": "/", "max-keys": str(PAGE)}
    return query | {"start-after": start_after} if start_after else query


def _check_page(response: Response, first: int) -> str | None:
    """What is wrong with a dashboard page that should list keys first..first+PAGE-1, if anything."""
    if response.status != 200:
        return f"answered {response.status}"
    rows = response.body.count(b'<tr class="object"')
    if rows != PAGE:
        return f"{rows} object rows, expected {PAGE}"
    for index in (first, first + PAGE - 1):
        if f'value="{key_of(index)}"'.encode() not in response.body:
            return f"no row for {key_of(index)}"
    found = _NEXT_LINK.search(response.body)
    after = parse_qs(urlsplit(html.unescape(found.group(1).decode())).query).get("after") if found else None
    if after != [key_of(first + PAGE - 1)]:
        return f"the next page's marker is {after}, expected the page's last key {key_of(first + PAGE - 1)}"
    if not _SERVER_TIMING.search(response.head):
        return "no Server-Timing list;dur= header"
    return None


def _check_s3(response: Response, first: int) -> str | None:
    if response.status != 200:
        return f"answered {response.status}"
    keys = response.body.count(b"<Key>")
    if keys != PAGE or f"<Key>{key_of(first)}</Key>".encode() not in response.body:
        return f"{keys} keys, expected {PAGE} from {key_of(first)}"
    if b"<IsTruncated>true</IsTruncated>" not in response.body:
        return "not truncated"
    return None


def _ms(latencies: list[int], fraction: float) -> float:
    return round(_percentile(sorted(latencies), fraction), 3)


async def job_browse_listing(ep: Endpoint, job: dict[str, Any]) -> dict[str, Any]:
    if not ep.web_port:
        return _failure("this target has no web listener (no dashboard)") | {"unsupported": True}
    rounds, warmup = int(job.get("rounds", ROUNDS)), int(job.get("warmup", WARMUP))
    middle = key_of(MIDDLE_KEYS - 1)  # the marker of page 501: the last key of page 500
    web = WebClient(ep)
    web_conn = await connect(ep.host, ep.web_port)
    s3_conn: HttpConnection | None = None
    access_key = ""
    try:
        logged = await web.authenticate(web_conn, "/api/auth/login")
        if logged.status != 200 or not web.cookie:
            return _failure("login of the benchmark account (did browse_seed run?)", logged)
        made = await web.json(web_conn, "POST", "/api/keys", {"name": "bench-listing"})
        if made.status != 201:
            return _failure("POST /api/keys", made)
        pair = json.loads(made.body)
        access_key = pair["accessKey"]
        s3 = S3Requests(Endpoint(ep.host, ep.port, access_key, pair["secretKey"], ep.region, ep.web_port))
        s3_conn = await connect(ep.host, ep.port)
        # name -> (connection, request head, first key index, check)
        kinds = {
            "first": (web_conn, web.head("GET", _page_target()), 0, _check_page),
            "middle": (web_conn, web.head("GET", _page_target(middle)), MIDDLE_KEYS, _check_page),
            "s3_first": (s3_conn, None, 0, _check_s3),
            "s3_middle": (s3_conn, None, MIDDLE_KEYS, _check_s3),
        }
        page_bytes = 0
        for name, (conn, head, first, check) in kinds.items():
            if head is None:
                head = s3.head("GET", BUCKET, query=_s3_query(middle if first else None))
            response = await conn.request(head, keep_body=True)
            problem = check(response, first)
            if problem:
                return _failure(f"{name} page: {problem}", response)
            page_bytes = page_bytes or len(response.body)
        latencies: dict[str, list[int]] = {name: [] for name in kinds}
        listing_ms: dict[str, list[float]] = {"first": [], "middle": []}
        rec = Recorder()
        cpu0, t0 = _cpu_seconds(), time.perf_counter()
        for round_number in range(warmup + rounds):
            for name, (conn, head, first, _check) in kinds.items():
                if head is None:  # S3 heads are signed anew (their date moves on)
                    head = s3.head("GET", BUCKET, query=_s3_query(middle if first else None))
                s0 = time.perf_counter_ns()
                response = await conn.request(head)
                spent = time.perf_counter_ns() - s0
                if response.status != 200 or not response.received:
                    rec.failure(f"{name}: status {response.status}", response)
                    continue
                if round_number < warmup:
                    continue
                latencies[name].append(spent)
                if name in listing_ms:
                    timing = _SERVER_TIMING.search(response.head)
                    if timing:
                        listing_ms[name].append(float(timing.group(1)))
        elapsed, cpu = time.perf_counter() - t0, _cpu_seconds() - cpu0
    except (OSError, ValueError, KeyError) as exc:
        return _failure(f"{type(exc).__name__}: {exc}")
    finally:
        if access_key:  # best effort: the plan allows 5 key pairs
            try:
                await web.json(web_conn, "DELETE", f"/api/keys?id={quote(access_key)}")
            except (OSError, ValueError):
                pass
        web_conn.close()
        if s3_conn is not None:
            s3_conn.close()
    rec.latencies_ns = latencies["first"]  # p50_ms / p99_ms: the first page, the headline
    result = _summary(rec, elapsed, cpu)
    for name, values in latencies.items():
        for label, fraction in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):
            result[f"{name}_{label}_ms"] = _ms(values, fraction)
    for name, values in listing_ms.items():
        if values:
            result[f"{name}_listing_p50_ms"] = statistics.median(values)
    result |= {
        "p90_ms": result["first_p90_ms"],
        "rounds": rounds,
        "warmup": warmup,
        "page_kb": page_bytes / 1e3,
    }
    return result
