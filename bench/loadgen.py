"""The load generator: S3 scenarios driven by `http_client` with `sigv4_client` signing.

It runs as its own process (`python -m bench.loadgen`, one JSON job on stdin, one JSON
result on stdout) so it never shares a GIL with the orchestrator or a server, and it
reports the CPU seconds it spent itself (`resource.getrusage`) over the measured window,
because on two shared cores the generator is part of the measurement.

Jobs (`op`): `create_bucket`, `preload` (PUT `count` objects, unmeasured set-up), `put` and
`get` (fixed concurrency for a fixed duration, bounded by `max_ops`; a `put` with `keys`
overwrites that many keys in turn instead of writing new ones), `put_stream` and
`get_stream` (one large object over one connection), and `list` (ListObjectsV2 over the
whole bucket in pages, repeated for at least `duration` seconds); for multipart and copy,
`mpu` (one multipart upload, parts at a fixed concurrency, timed from Create to Complete),
`complete` (parts uploaded untimed, then CompleteMultipartUpload timed) and `copy`
(CopyObject of one object, one copy at a time, each copy deleted untimed).

Issue 18: an endpoint may name the S3 ports of more nodes (`Endpoint.more_ports`); the timed
`put` and `get` jobs then spread their connections over all of them, round-robin per connection.

Issue 5: `put` and `get` with `"api": "rest"` drive Folio's REST file API (docs/rest-api.md)
on the web listener (`Endpoint.web_port`) instead of S3: a raw-body
`POST /api/v1/files?bucket=B&key=K` and `GET /api/v1/files/{id}`, authenticated with
`X-API-Key: ACCESS:SECRET` (nothing to sign), on the same connections, concurrency and
timing as the S3 requests. `webhook_burst` registers a webhook for `object.created` that
points at a loopback receiver in this process, fires a burst of S3 PUTs and times each
delivery against its PUT's acknowledgement (see `job_webhook_burst`).

Image transforms (bench/images.py): `img_prepare` makes Folio's public-read bucket (dashboard API)
and uploads the copies of the source JPEGs into it (S3 PUTs); it does nothing for thumbor, whose
files the target writes. `img_probe` asks for one transform once and checks the answer (status,
content type, pixel size). `img_get` is `get` for images: anonymous GETs of Folio's
`/api/img/...` on the web listener, or of thumbor's `/unsafe/...` (`Endpoint.kind`), cycling over
the transforms and copies named, each answer's status and content type checked; Folio's
`X-Folio-Cache` answers (hit, miss, shared) are counted.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import html
import json
import os
import re
import resource
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from bench.http_client import HttpConnection, Response, connect
from bench.sigv4_client import SigV4Signer, encode_path, encode_query

MAX_CONSECUTIVE_FAILURES = 50
PIECE = 1 << 20
ERROR_SAMPLES = 5


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    access_key: str
    secret_key: str
    region: str = "us-east-1"
    web_port: int = 0  # Folio's web listener (REST file API, dashboard API); 0: the target has none
    kind: str = "s3"  # "thumbor": no S3, image URLs in thumbor's form on `port`
    # Issue 18: the S3 ports of more nodes serving the same data on `host`. The timed put and get
    # jobs spread their connections over `port` and these, round-robin per connection, as a load
    # balancer would; every request is signed for `host:port` (the name a client behind a load
    # balancer signs), set-up and single-connection jobs use `port` only.
    more_ports: tuple[int, ...] = ()

    @property
    def s3_ports(self) -> tuple[int, ...]:
        return (self.port, *self.more_ports)


class S3Requests:
    """Builds signed request heads for one endpoint."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.signer = SigV4Signer(
            endpoint.access_key, endpoint.secret_key, f"{endpoint.host}:{endpoint.port}", endpoint.region
        )

    def head(
        self,
        method: str,
        bucket: str,
        key: str = "",
        query: dict[str, str] | None = None,
        length: int = 0,
        headers: dict[str, str] | None = None,
    ) -> bytes:
        """The request line and headers; `headers` (x-amz-* ones) are signed too."""
        path = encode_path(f"/{bucket}/{key}" if key else f"/{bucket}")
        qs = encode_query(query) if query else ""
        target = f"{path}?{qs}" if qs else path
        body_header = f"Content-Length: {length}\r\n" if method in ("PUT", "POST") else ""
        signed = self.signer.headers(method, path, qs, headers)
        return f"{method} {target} HTTP/1.1\r\n{signed}{body_header}\r\n".encode()


class RestRequests:
    """Request heads for Folio's REST file API and dashboard API on the web listener: the key pair
    in `X-API-Key` (docs/rest-api.md), so nothing is signed or hashed per request."""

    def __init__(self, endpoint: Endpoint) -> None:
        if not endpoint.web_port:
            raise ValueError("this target has no web listener (Endpoint.web_port is 0): no REST API")
        from restapi.ids import file_id  # Folio's own id scheme: f_ + urlsafe base64 of "bucket/key"

        self.file_id = file_id
        self.host, self.port = endpoint.host, endpoint.web_port
        self._common = (
            f"Host: {endpoint.host}:{endpoint.web_port}\r\n"
            f"X-API-Key: {endpoint.access_key}:{endpoint.secret_key}\r\n"
        )

    def upload(
        self, bucket: str, key: str, length: int, content_type: str = "application/octet-stream"
    ) -> bytes:
        """A raw-body upload: `POST /api/v1/files?bucket=B&key=K` (201 with the file's JSON)."""
        query = encode_query({"bucket": bucket, "key": key})
        return (
            f"POST /api/v1/files?{query} HTTP/1.1\r\n{self._common}"
            f"Content-Type: {content_type}\r\nContent-Length: {length}\r\n\r\n"
        ).encode()

    def download(self, bucket: str, key: str) -> bytes:
        """`GET /api/v1/files/{id}`: the body, streamed."""
        return f"GET /api/v1/files/{self.file_id(bucket, key)} HTTP/1.1\r\n{self._common}\r\n".encode()

    def json_request(
        self, method: str, target: str, body: dict[str, Any] | None = None
    ) -> tuple[bytes, bytes]:
        """A dashboard-API request (`target` is the path and query); returns its head and body."""
        raw = json.dumps(body).encode() if body is not None else b""
        kind = "Content-Type: application/json\r\n" if body is not None else ""
        length = f"Content-Length: {len(raw)}\r\n" if method in ("POST", "PUT", "PATCH", "DELETE") else ""
        return f"{method} {target} HTTP/1.1\r\n{self._common}{kind}{length}\r\n".encode(), raw


@dataclass
class Recorder:
    """Latencies, byte counts and failures of one measured window."""

    latencies_ns: list[int] = field(default_factory=list)
    nbytes: int = 0
    errors: int = 0
    samples: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def failure(self, what: str, response: Response | None = None) -> None:
        self.errors += 1
        if len(self.samples) < ERROR_SAMPLES:
            sample: dict[str, Any] = {"what": what}
            if response is not None:
                sample["status"] = response.status
                sample["body"] = response.body[:600].decode("utf-8", "replace")
            self.samples.append(sample)


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _percentile(sorted_values: list[int], fraction: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(fraction * (len(sorted_values) - 1) + 0.5))] / 1e6


def _summary(rec: Recorder, elapsed: float, cpu: float) -> dict[str, Any]:
    lat = sorted(rec.latencies_ns)
    ops = len(lat)
    return {
        "ops": ops,
        "errors": rec.errors,
        "bytes": rec.nbytes,
        "elapsed_s": round(elapsed, 4),
        "ops_per_s": ops / elapsed if elapsed > 0 else 0.0,
        "mb_per_s": rec.nbytes / 1e6 / elapsed if elapsed > 0 else 0.0,
        "p50_ms": _percentile(lat, 0.50),
        "p99_ms": _percentile(lat, 0.99),
        "gen_cpu_s": round(cpu, 3),
        "gen_cpu_pct": round(100 * cpu / elapsed, 1) if elapsed > 0 else 0.0,
        "error_samples": rec.samples,
        **rec.extra,
    }


Operation = Callable[[HttpConnection, int], Awaitable[tuple[Response, int]]]
"""One request on a connection, given a sequence number; returns the response and its payload bytes."""


async def _drive(
    endpoint: Endpoint,
    concurrency: int,
    duration: float,
    max_ops: int,
    operation: Operation,
    port: int | None = None,
) -> dict[str, Any]:
    """Run `operation` on `concurrency` connections until `duration` passes or `max_ops` are done;
    the connections go to the S3 port (connection i to the i-th of `Endpoint.s3_ports`, round-robin),
    or to `port` (the web listener, for the REST API)."""
    rec = Recorder()
    counter = iter(range(max_ops))
    ports = (port,) if port else endpoint.s3_ports
    slot_ports = [ports[slot % len(ports)] for slot in range(concurrency)]
    connections = [await connect(endpoint.host, slot_port) for slot_port in slot_ports]
    deadline = time.perf_counter() + duration

    async def worker(slot: int) -> None:
        failures = 0
        for seq in counter:
            if time.perf_counter() >= deadline or failures >= MAX_CONSECUTIVE_FAILURES:
                return
            try:
                conn = connections[slot]
                if conn.closed:
                    conn = connections[slot] = await connect(endpoint.host, slot_ports[slot])
                t0 = time.perf_counter_ns()
                response, payload = await operation(conn, seq)
                t1 = time.perf_counter_ns()
            except (OSError, ValueError) as exc:
                rec.failure(f"{type(exc).__name__}: {exc}")
                failures += 1
                continue
            if 200 <= response.status < 300:
                rec.latencies_ns.append(t1 - t0)
                rec.nbytes += payload
                failures = 0
            else:
                rec.failure("status", response)
                failures += 1

    cpu0, t0 = _cpu_seconds(), time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    elapsed, cpu = time.perf_counter() - t0, _cpu_seconds() - cpu0
    for conn in connections:
        conn.close()
    return _summary(rec, elapsed, cpu) | {"endpoints": len(ports)}


def _payload(size: int) -> memoryview:
    """Incompressible bytes, made once; large bodies are this piece written repeatedly."""
    return memoryview(os.urandom(min(size, PIECE) or 1))[: min(size, PIECE)]


async def job_create_bucket(ep: Endpoint, job: dict[str, Any]) -> dict[str, Any]:
    s3 = S3Requests(ep)
    conn = await connect(ep.host, ep.port)
    try:
        response = await conn.request(s3.head("PUT", job["bucket"]), keep_body=True)
    finally:
        conn.close()
    ok = 200 <= response.status < 300 or b"BucketAlreadyOwnedByYou" in response.body
    return {"ok": ok, "status": response.status, "body": response.body[:600].decode("utf-8", "replace")}


async def job_put(ep: Endpoint, job: dict[str, Any]) -> dict[str, Any]:
    """PUT distinct keys `prefix + seq`, or with `keys` overwrite the keys `prefix + seq % keys`
    round and round; `count` (preload) or `duration` bounds the run. With `"api": "rest"` each
    upload is a raw-body POST to the REST file API instead (the first answers' ids are checked)."""
    bucket, prefix, size = job["bucket"], job["prefix"], int(job["size"])
    keys = int(job.get("keys", 0))
    concurrency = int(job["concurrency"])
    body = bytes(_payload(size))
    count = int(job.get("count", 0))
    duration = float(job.get("duration", 3600.0)) if not count else 3600.0
    max_ops = count or int(job["max_ops"])

    def key_of(seq: int) -> str:
        return f"{prefix}{seq % keys if keys else seq:07d}"

    if job.get("api", "s3") == "rest":
        rest = RestRequests(ep)

        async def upload(conn: HttpConnection, seq: int) -> tuple[Response, int]:
            key = key_of(seq)
            check = seq < concurrency  # keep and check a few answers; the rest are only counted
            response = await conn.request(rest.upload(bucket, key, size), body, keep_body=check)
            if (
                check
                and response.status == 201
                and f'"{rest.file_id(bucket, key)}"'.encode() not in response.body
            ):
                raise ValueError(f"upload answered 201 without the file's id: {response.body[:300]!r}")
            return response, size

        return await _drive(ep, concurrency, duration, max_ops, upload, port=rest.port)

    s3 = S3Requests(ep)

    async def put(conn: HttpConnection, seq: int) -> tuple[Response, int]:
        head = s3.head("PUT", bucket, key_of(seq), length=size)
        return await conn.request(head, body), size

    return await _drive(ep, concurrency, duration, max_ops, put)


async def job_get(ep: Endpoint, job: dict[str, Any]) -> dict[str, Any]:
    """GET the preloaded keys `prefix + seq % count`, checking each body's length; with
    `"api": "rest"` as `GET /api/v1/files/{id}` on the REST file API."""
    bucket, prefix, size, count = job["bucket"], job["prefix"], int(job["size"]), int(job["count"])
    port = None
    if job.get("api", "s3") == "rest":
        rest = RestRequests(ep)
        port = rest.port

        def head_of(key: str) -> bytes:
            return rest.download(bucket, key)

    else:
        s3 = S3Requests(ep)

        def head_of(key: str) -> bytes:
            return s3.head("GET", bucket, key)

    async def get(conn: HttpConnection, seq: int) -> tuple[Response, int]:
        response = await conn.request(head_of(f"{prefix}{seq % count:07d}"))
        if response.status == 200 and response.received != size:
            raise ValueError(f"short body: {response.received} of {size} bytes")
        return response, response.received

    return await _drive(
        ep, int(job["concurrency"]), float(job["duration"]), int(job["max_ops"]), get, port=port
    )


async def _single(ep: Endpoint, request: Callable[[HttpConnection], Awaitable[Response]]) -> dict[str, Any]:
    rec = Recorder()
    conn = await connect(ep.host, ep.port)
    cpu0, t0 = _cpu_seconds(), time.perf_counter()
    try:
        response = await request(conn)
    except (OSError, ValueError) as exc:
        rec.failure(f"{type(exc).__name__}: {exc}")
        response = None
    finally:
        conn.close()
    elapsed, cpu = time.perf_counter() - t0, _cpu_seconds() - cpu0
    if response is not None:
        if 200 <= response.status < 300:
            rec.latencies_ns.append(int(elapsed * 1e9))
        else:
            rec.failure("status", response)
    return _summary(rec, elapsed, cpu) | {"response_received": response.received if response else 0}


async def job_put_stream(ep: Endpoint, job: dict[str, Any]) -> dict[str, Any]:
    """One PUT of `size` bytes, streamed from a single 1 MiB buffer."""
    s3 = S3Requests(ep)
    size = int(job["size"])
    piece = _payload(size)

    async def put(conn: HttpConnection) -> Response:
        head = s3.head("PUT", job["bucket"], job["key"], length=size)
        return await conn.request_streamed(head, piece, size)

    result = await _single(ep, put)
    if result["ops"]:
        result["bytes"] = size
        result["mb_per_s"] = size / 1e6 / result["elapsed_s"]
    return result


async def job_get_stream(ep: Endpoint, job: dict[str, Any]) -> dict[str, Any]:
    """One GET of a large object; the body is counted, not kept."""
    s3 = S3Requests(ep)
    size = int(job["size"])

    async def get(conn: HttpConnection) -> Response:
        response = await conn.request(s3.head("GET", job["bucket"], job["key"]))
        if response.status == 200 and response.received != size:
            raise ValueError(f"short body: {response.received} of {size} bytes")
        return response

    result = await _single(ep, get)
    if result["ops"]:
        result["bytes"] = size
        result["mb_per_s"] = size / 1e6 / result["elapsed_s"]
    return result


def _between(body: bytes, tag: bytes) -> str | None:
    start = body.find(b"<" + tag + b">")
    if start < 0:
        return None
    start += len(tag) + 2
    end = body.find(b"</" + tag + b">", start)
    return html.unescape(body[start:end].decode())


async def job_list(ep: Endpoint, job: dict[str, Any]) -> dict[str, Any]:
    """List the whole bucket with ListObjectsV2 pages, over and over for at least `duration` s."""
    s3 = S3Requests(ep)
    bucket, page_size, expect = job["bucket"], str(job["page_size"]), int(job["expect"])
    rec = Recorder()
    conn = await connect(ep.host, ep.port)
    keys = passes = pages = 0
    cpu0, t0 = _cpu_seconds(), time.perf_counter()
    try:
        while passes < int(job["max_passes"]) and (passes == 0 or time.perf_counter() - t0 < job["duration"]):
            token: str | None = None
            seen = 0
            while True:
                query = {"list-type": "2", "max-keys": page_size}
                if token:
                    query["continuation-token"] = token
                if conn.closed:  # servers that answer `Connection: close` (moto)
                    conn = await connect(ep.host, ep.port)
                p0 = time.perf_counter_ns()
                response = await conn.request(s3.head("GET", bucket, query=query), keep_body=True)
                rec.latencies_ns.append(time.perf_counter_ns() - p0)
                if response.status != 200:
                    rec.failure("status", response)
                    raise ValueError(f"list page answered {response.status}")
                pages += 1
                seen += response.body.count(b"<Contents>")
                rec.nbytes += len(response.body)
                if b"<IsTruncated>true</IsTruncated>" not in response.body:
                    break
                token = _between(response.body, b"NextContinuationToken")
                if not token:
                    raise ValueError("truncated page without NextContinuationToken")
            if seen != expect:
                rec.failure(f"listed {seen} keys, expected {expect}")
                break
            keys += seen
            passes += 1
    except (OSError, ValueError) as exc:
        if not rec.samples:
            rec.failure(f"{type(exc).__name__}: {exc}")
    finally:
        conn.close()
    elapsed, cpu = time.perf_counter() - t0, _cpu_seconds() - cpu0
    rec.extra = {"keys": keys, "passes": passes, "keys_per_s": keys / elapsed if elapsed > 0 else 0.0}
    result = _summary(rec, elapsed, cpu)
    result["ops"] = pages if keys else 0
    return result


class RequestFailed(Exception):
    """A request of a multi-step job failed: what, and the response if there was one."""

    def __init__(self, what: str, response: Response | None = None) -> None:
        super().__init__(what)
        self.what = what
        self.response = response


class Reconnecting:
    """One connection, opened again when the server closed it (moto answers `Connection: close`)."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.conn: HttpConnection | None = None

    async def _ready(self) -> HttpConnection:
        if self.conn is None or self.conn.closed:
            self.conn = await connect(self.endpoint.host, self.endpoint.port)
        return self.conn

    async def request(
        self, head: bytes, body: bytes | memoryview = b"", *, keep_body: bool = False
    ) -> Response:
        return await (await self._ready()).request(head, body, keep_body=keep_body)

    async def request_streamed(self, head: bytes, piece: memoryview, total: int) -> Response:
        return await (await self._ready()).request_streamed(head, piece, total)

    async def fresh(self) -> None:
        """A new connection: one idle through a long upload may be closed by the server any moment."""
        self.close()
        self.conn = await connect(self.endpoint.host, self.endpoint.port)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


def _ok(response: Response) -> bool:
    """2xx and no `<Error>` in a kept body (Complete and Copy may fail after answering 200)."""
    return 200 <= response.status < 300 and b"<Error>" not in response.body


class Multipart:
    """CreateMultipartUpload, UploadPart (from one buffer), Complete, Abort, for one key."""

    def __init__(self, ep: Endpoint, bucket: str, key: str) -> None:
        self.ep, self.bucket, self.key = ep, bucket, key
        self.s3 = S3Requests(ep)
        self.upload_id = ""

    async def create(self, conn: Reconnecting) -> None:
        response = await conn.request(
            self.s3.head("POST", self.bucket, self.key, {"uploads": ""}), keep_body=True
        )
        upload_id = _between(response.body, b"UploadId") if _ok(response) else None
        if not upload_id:
            raise RequestFailed("CreateMultipartUpload", response)
        self.upload_id = upload_id

    async def upload_parts(
        self, count: int, part_size: int, concurrency: int, rec: Recorder | None = None
    ) -> dict[int, str]:
        """Upload parts 1..count at `concurrency`, every body from one buffer; return their ETags."""
        piece = _payload(part_size)
        numbers = iter(range(1, count + 1))
        etags: dict[int, str] = {}
        failed: list[RequestFailed] = []

        async def worker() -> None:
            conn = Reconnecting(self.ep)
            try:
                for number in numbers:
                    if failed:
                        return
                    query = {"partNumber": str(number), "uploadId": self.upload_id}
                    head = self.s3.head("PUT", self.bucket, self.key, query, length=part_size)
                    t0 = time.perf_counter_ns()
                    try:
                        response = await conn.request_streamed(head, piece, part_size)
                    except (OSError, ValueError) as exc:
                        failed.append(RequestFailed(f"UploadPart {number}: {type(exc).__name__}: {exc}"))
                        return
                    etag = response.headers.get("etag") if _ok(response) else None
                    if not etag:
                        failed.append(RequestFailed(f"UploadPart {number}", response))
                        return
                    etags[number] = etag
                    if rec is not None:
                        rec.latencies_ns.append(time.perf_counter_ns() - t0)
            finally:
                conn.close()

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        if failed:
            raise failed[0]
        return etags

    async def complete(self, conn: Reconnecting, etags: dict[int, str]) -> Response:
        body = (
            "<CompleteMultipartUpload>"
            + "".join(
                f"<Part><PartNumber>{n}</PartNumber><ETag>{html.escape(etags[n], quote=False)}</ETag></Part>"
                for n in sorted(etags)
            )
            + "</CompleteMultipartUpload>"
        ).encode()
        head = self.s3.head("POST", self.bucket, self.key, {"uploadId": self.upload_id}, length=len(body))
        response = await conn.request(head, body, keep_body=True)
        if not _ok(response):
            raise RequestFailed("CompleteMultipartUpload", response)
        return response

    async def abort(self, conn: Reconnecting) -> None:
        """Best effort, after a failure: the failure already recorded is what matters."""
        if self.upload_id:
            try:
                await conn.request(
                    self.s3.head("DELETE", self.bucket, self.key, {"uploadId": self.upload_id})
                )
            except (OSError, ValueError):
                pass


async def _delete(ep: Endpoint, conn: Reconnecting, bucket: str, key: str, rec: Recorder) -> None:
    """Untimed clean-up (servers in memory would otherwise hold every GiB); a failure still counts."""
    try:
        response = await conn.request(S3Requests(ep).head("DELETE", bucket, key), keep_body=True)
    except (OSError, ValueError) as exc:
        rec.failure(f"DeleteObject {key}: {type(exc).__name__}: {exc}")
        return
    if not 200 <= response.status < 300:
        rec.failure(f"DeleteObject {key}", response)


def _parts_of(size: int, part_size: int) -> int:
    return max(1, -(-size // part_size))


async def job_mpu(ep: Endpoint, job: dict[str, Any]) -> dict[str, Any]:
    """One multipart upload of `size` bytes in `part_size` parts at `concurrency`, timed from
    CreateMultipartUpload to the end of CompleteMultipartUpload; the object is deleted after
    (untimed) when `cleanup` is set. p50/p99 are those of the UploadPart requests."""
    size, part_size = int(job["size"]), int(job["part_size"])
    if size % part_size:
        raise ValueError("size must be a multiple of part_size")
    upload = Multipart(ep, job["bucket"], job["key"])
    rec, conn = Recorder(), Reconnecting(ep)
    cpu0, t0 = _cpu_seconds(), time.perf_counter()
    complete_ms = 0.0
    try:
        await upload.create(conn)
        etags = await upload.upload_parts(size // part_size, part_size, int(job["concurrency"]), rec)
        c0 = time.perf_counter()
        await conn.fresh()
        await upload.complete(conn, etags)
        complete_ms = (time.perf_counter() - c0) * 1e3
        ok = True
    except (RequestFailed, OSError, ValueError) as exc:
        _record(rec, exc)
        await upload.abort(conn)
        ok = False
    elapsed, cpu = time.perf_counter() - t0, _cpu_seconds() - cpu0
    if ok and job.get("cleanup"):
        await _delete(ep, conn, job["bucket"], job["key"], rec)
    conn.close()
    result = _summary(rec, elapsed, cpu)
    if not ok:
        return result | {"ops": 0}
    return result | {"bytes": size, "mb_per_s": size / 1e6 / elapsed, "complete_ms": complete_ms}


def _record(rec: Recorder, exc: Exception) -> None:
    if isinstance(exc, RequestFailed):
        rec.failure(exc.what, exc.response)
    else:
        rec.failure(f"{type(exc).__name__}: {exc}")


async def job_complete(ep: Endpoint, job: dict[str, Any]) -> dict[str, Any]:
    """`parts` parts of `part_size` bytes uploaded at `concurrency` (untimed), then one timed
    CompleteMultipartUpload; the object is deleted after (untimed)."""
    parts, part_size = int(job["parts"]), int(job["part_size"])
    upload = Multipart(ep, job["bucket"], job["key"])
    rec, conn = Recorder(), Reconnecting(ep)
    elapsed = cpu = upload_s = 0.0
    ok = False
    try:
        u0 = time.perf_counter()
        await upload.create(conn)
        etags = await upload.upload_parts(parts, part_size, int(job["concurrency"]))
        upload_s = time.perf_counter() - u0
        await conn.fresh()
        cpu0, t0 = _cpu_seconds(), time.perf_counter_ns()
        await upload.complete(conn, etags)
        elapsed_ns = time.perf_counter_ns() - t0
        elapsed, cpu = elapsed_ns / 1e9, _cpu_seconds() - cpu0
        rec.latencies_ns.append(elapsed_ns)
        ok = True
    except (RequestFailed, OSError, ValueError) as exc:
        _record(rec, exc)
        await upload.abort(conn)
    if ok:
        await _delete(ep, conn, job["bucket"], job["key"], rec)
    conn.close()
    result = _summary(rec, elapsed, cpu) | {
        "parts": parts,
        "part_size": part_size,
        "upload_s": round(upload_s, 3),
        "upload_mb_per_s": parts * part_size / 1e6 / upload_s if upload_s else 0.0,
    }
    if ok:
        result["latency_ms"] = elapsed * 1e3
    return result


async def job_copy(ep: Endpoint, job: dict[str, Any]) -> dict[str, Any]:
    """CopyObject of `src` to `dst_prefix + i`, one at a time on one connection, each copy deleted
    (untimed) before the next: `count` copies, or fewer (at least `min_count`) once `duration`
    seconds have passed. The figure is the median latency."""
    s3 = S3Requests(ep)
    bucket, src = job["bucket"], job["src"]
    source = {"x-amz-copy-source": encode_path(f"/{bucket}/{src}")}
    rec, conn = Recorder(), Reconnecting(ep)
    count, min_count, duration = int(job["count"]), int(job["min_count"]), float(job["duration"])
    failures = 0
    cpu0, t0 = _cpu_seconds(), time.perf_counter()
    for i in range(count):
        if failures >= 3 or (i >= min_count and time.perf_counter() - t0 >= duration):
            break
        key = f"{job['dst_prefix']}{i:04d}"
        head = s3.head("PUT", bucket, key, headers=source)
        c0 = time.perf_counter_ns()
        try:
            response = await conn.request(head, keep_body=True)
        except (OSError, ValueError) as exc:
            rec.failure(f"CopyObject: {type(exc).__name__}: {exc}")
            failures += 1
            continue
        c1 = time.perf_counter_ns()
        if not _ok(response) or b"CopyObjectResult" not in response.body:
            rec.failure("CopyObject", response)
            failures += 1
            continue
        rec.latencies_ns.append(c1 - c0)
        await _delete(ep, conn, bucket, key, rec)
    elapsed, cpu = time.perf_counter() - t0, _cpu_seconds() - cpu0
    conn.close()
    result = _summary(rec, elapsed, cpu)
    if rec.latencies_ns:
        result["latency_ms"] = statistics.median(rec.latencies_ns) / 1e6
    return result


_HEADER_LENGTH = re.compile(rb"^content-length:[ \t]*(\d+)", re.M | re.I)


class _HookReceiver(asyncio.Protocol):
    """A minimal keep-alive HTTP/1.1 server connection for webhook deliveries: each request is
    stamped (perf_counter) the moment its whole body is in, kept raw, and answered 200 at once;
    parsing and signature checks wait until the measurement is over."""

    def __init__(self, arrivals: list[tuple[float, bytes, bytes]]) -> None:
        self.arrivals = arrivals
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end])
            match = _HEADER_LENGTH.search(head)
            length = int(match.group(1)) if match else 0
            if len(self.buffer) < end + 4 + length:
                return
            body = bytes(self.buffer[end + 4 : end + 4 + length])
            del self.buffer[: end + 4 + length]
            self.arrivals.append((time.perf_counter(), head, body))
            assert self.transport is not None
            self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")


def _signature_of(head: bytes) -> str:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"x-cloudstorage-signature":
            return value.strip().decode("latin-1")
    return ""


async def _web_json(
    rest: RestRequests, method: str, target: str, body: dict[str, Any] | None = None
) -> Response:
    conn = await connect(rest.host, rest.port)
    try:
        head, raw = rest.json_request(method, target, body)
        return await conn.request(head, raw, keep_body=True)
    finally:
        conn.close()


async def job_webhook_burst(ep: Endpoint, job: dict[str, Any]) -> dict[str, Any]:
    """Issue 5's webhook delivery: a receiver on a free loopback port in this process, a webhook for
    `object.created` registered for it (dashboard API, the account's key pair), one lone PUT whose
    delivery is awaited first (the webhook works, and any backlog of older events is behind us:
    the worker delivers in event order), then a burst of `count` S3 PUTs of `size` bytes at
    `concurrency`. Each delivery is matched to its PUT by `data.key` and timed from the PUT's
    acknowledgement to the delivery's arrival (the same clock); throughput is (deliveries - 1) over
    the time from the first arrival to the last. Deliveries are awaited up to `wait_s` after the
    burst, then for `grace_s` more for late duplicates; the webhook is deleted at the end."""
    bucket, prefix, size = job["bucket"], job["prefix"], int(job["size"])
    count, concurrency = int(job["count"]), int(job["concurrency"])
    wait_s, grace_s = float(job.get("wait_s", 120.0)), float(job.get("grace_s", 1.0))
    rest, s3 = RestRequests(ep), S3Requests(ep)
    rec = Recorder()
    arrivals: list[tuple[float, bytes, bytes]] = []
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _HookReceiver(arrivals), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    created = await _web_json(
        rest, "POST", "/api/webhooks", {"url": f"http://127.0.0.1:{port}/hook", "events": ["object.created"]}
    )
    try:
        hook = json.loads(created.body) if created.status == 201 else {}
    except ValueError:
        hook = {}
    if not hook.get("secret") or not hook.get("id"):
        server.close()
        rec.failure("creating the webhook (POST /api/webhooks)", created)
        return _summary(rec, 0.0, 0.0) | {"ops": 0}
    secret: str = hook["secret"]
    body = bytes(_payload(size))
    acks: dict[str, float] = {}
    extra: dict[str, Any] = {}
    try:
        # The lone write: its delivery shows the webhook works and that older events are out of the way.
        lone_key = f"{prefix}lone"
        conn = await connect(ep.host, ep.port)
        try:
            response = await conn.request(s3.head("PUT", bucket, lone_key, length=size), body)
        finally:
            conn.close()
        if not 200 <= response.status < 300:
            raise RequestFailed("the lone PUT before the burst", response)
        lone_ack, seen = time.perf_counter(), 0
        lone_deadline = lone_ack + wait_s
        while True:
            for t, _, raw in arrivals[seen:]:
                if json.loads(raw).get("data", {}).get("key") == lone_key:
                    extra["lone_delay_ms"] = (t - lone_ack) * 1e3
            seen = len(arrivals)
            if "lone_delay_ms" in extra:
                break
            if time.perf_counter() > lone_deadline:
                raise RequestFailed(f"the lone PUT's delivery did not arrive within {wait_s:.0f} s")
            await asyncio.sleep(0.005)
        first_burst_arrival = len(arrivals)

        async def put(conn: HttpConnection, seq: int) -> tuple[Response, int]:
            key = f"{prefix}{seq:07d}"
            response = await conn.request(s3.head("PUT", bucket, key, length=size), body)
            if 200 <= response.status < 300:
                acks[key] = time.perf_counter()
            return response, size

        cpu0, t0 = _cpu_seconds(), time.perf_counter()
        burst = await _drive(ep, concurrency, 3600.0, count, put)
        burst_end = time.perf_counter()
        # Wait for every acknowledged PUT's delivery (keys counted as they come, bodies parsed once).
        delivered: set[str] = set()
        seen = first_burst_arrival
        deadline = burst_end + wait_s
        while len(delivered & acks.keys()) < len(acks) and time.perf_counter() < deadline:
            for _, _, raw in arrivals[seen:]:
                delivered.add(json.loads(raw).get("data", {}).get("key", ""))
            seen = len(arrivals)
            await asyncio.sleep(0.005)
        all_in = time.perf_counter()
        await asyncio.sleep(grace_s)  # late duplicates, if any
        elapsed, cpu = all_in - t0, _cpu_seconds() - cpu0
        extra |= {
            "put_ops": burst["ops"],
            "put_ops_per_s": burst["ops_per_s"],
            "put_p50_ms": burst["p50_ms"],
            "put_p99_ms": burst["p99_ms"],
            "burst_s": round(burst_end - t0, 4),
        }
        rec.errors += burst["errors"]
        rec.samples += burst["error_samples"][: ERROR_SAMPLES - len(rec.samples)]
    except (RequestFailed, OSError, ValueError) as exc:
        _record(rec, exc)
        return _summary(rec, 0.0, 0.0) | extra | {"ops": 0}
    finally:
        # Deleted even after a failure, so that later scenarios on this server deliver nothing.
        try:
            deleted = await _web_json(rest, "DELETE", f"/api/webhooks?id={hook['id']}")
            if deleted.status != 200:
                rec.failure("deleting the webhook", deleted)
        except (OSError, ValueError) as exc:
            rec.failure(f"deleting the webhook: {type(exc).__name__}: {exc}")
        server.close()

    # Afterwards: signatures, duplicates (by delivery id), and the delay of each PUT's first delivery.
    first_arrival: dict[str, float] = {}
    ids: dict[str, int] = {}
    bad_signatures = others = 0
    for t, head, raw in arrivals[first_burst_arrival:]:
        if not hmac.compare_digest(
            _signature_of(head), hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
        ):
            bad_signatures += 1
        delivery = json.loads(raw)
        key = delivery.get("data", {}).get("key", "")
        if key not in acks or delivery.get("event") != "object.created":
            others += 1
            continue
        ids[delivery.get("id", "")] = ids.get(delivery.get("id", ""), 0) + 1
        first_arrival.setdefault(key, t)
    delays = sorted(int((first_arrival[k] - acks[k]) * 1e9) for k in first_arrival)
    times = sorted(first_arrival.values())
    unique = len(first_arrival)
    span = times[-1] - times[0] if unique > 1 else 0.0
    missing = len(acks) - unique
    if missing:
        rec.failure(f"{missing} of {len(acks)} acknowledged PUTs got no delivery within {wait_s:.0f} s")
    if bad_signatures:
        rec.failure(f"{bad_signatures} deliveries with a wrong X-CloudStorage-Signature")
    rec.latencies_ns = delays
    result = _summary(rec, elapsed, cpu)
    return (
        result
        | extra
        | {
            "ops": unique,
            "expected": len(acks),
            "unique": unique,
            "missing": missing,
            "all_arrived": missing == 0 and len(acks) == count,
            "duplicates": sum(n - 1 for n in ids.values()),  # the same delivery id more than once
            "keys_delivered_again": len(ids) - unique,  # another delivery id for a key already delivered
            "other_deliveries": others,
            "bad_signatures": bad_signatures,
            "deliveries_per_s": (unique - 1) / span if span > 0 else 0.0,
            "delivery_span_s": round(span, 4),
            "delay_p50_ms": _percentile(delays, 0.50),
            "delay_p99_ms": _percentile(delays, 0.99),
            "delay_max_ms": delays[-1] / 1e6 if delays else 0.0,
            "delay_min_ms": delays[0] / 1e6 if delays else 0.0,
            "end_to_end_s": round(times[-1] - t0, 4) if times else 0.0,
        }
    )


_CONTENT_TYPE = re.compile(r"^content-type:[ \t]*([^\r\n;]+)", re.M | re.I)
_FOLIO_CACHE = re.compile(r"^x-folio-cache:[ \t]*([\w-]+)", re.M | re.I)


def _image_port(ep: Endpoint) -> int:
    if ep.kind == "thumbor":
        return ep.port
    if not ep.web_port:
        raise ValueError("this target has no web listener (Endpoint.web_port is 0): no /api/img")
    return ep.web_port


def _image_head(ep: Endpoint, target: str) -> bytes:
    """An anonymous GET, as an `<img>` tag sends it (no Accept negotiation: every URL names its format)."""
    return f"GET {target} HTTP/1.1\r\nHost: {ep.host}:{_image_port(ep)}\r\n\r\n".encode()


async def job_img_prepare(ep: Endpoint, job: dict[str, Any]) -> dict[str, Any]:
    """Folio: the bucket `bucket`, public-read (POST, or PATCH if it exists, /api/buckets with the key
    pair), and `copies` copies of each source in `sources` under `src/<source>/NNNN.jpg` (S3 PUTs,
    four at a time). thumbor: nothing (the target wrote its files when it started)."""
    if ep.kind == "thumbor":
        return {"ok": True, "ops": 1, "errors": 0}
    from bench.images import ensure_sources, source_key

    bucket, copies = job["bucket"], int(job["copies"])
    rest = RestRequests(ep)
    made = await _web_json(rest, "POST", "/api/buckets", {"name": bucket, "publicRead": True})
    if made.status == 409:
        made = await _web_json(rest, "PATCH", "/api/buckets", {"name": bucket, "publicRead": True})
    if made.status not in (200, 201):
        rec = Recorder()
        rec.failure(f"making the public-read bucket {bucket} (/api/buckets)", made)
        return _summary(rec, 0.0, 0.0) | {"ops": 0}
    paths = ensure_sources()
    bodies = {name: paths[name].read_bytes() for name in job["sources"]}
    items = [(name, copy) for name in job["sources"] for copy in range(copies)]
    s3 = S3Requests(ep)

    async def put(conn: HttpConnection, seq: int) -> tuple[Response, int]:
        name, copy = items[seq]
        body = bodies[name]
        head = s3.head("PUT", bucket, source_key(name, copy), length=len(body))
        head = head[:-2] + b"Content-Type: image/jpeg\r\n\r\n"  # not signed: SigV4 allows that
        return await conn.request(head, body), len(body)

    return await _drive(ep, 4, 3600.0, len(items), put)


async def job_img_probe(ep: Endpoint, job: dict[str, Any]) -> dict[str, Any]:
    """One request for `transform` (copy 0), its answer checked: 200, the content type asked for, an
    image of the expected pixel size (decoded with Pillow when it can). A thumbor that fails this is
    `unsupported` (the scenario is n/a for it, with the reason); a Folio that fails it has failed."""
    from bench.images import TRANSFORMS

    transform = TRANSFORMS[job["transform"]]
    target = transform.path(ep.kind, 0)
    rec = Recorder()
    conn = await connect(ep.host, _image_port(ep))
    t0 = time.perf_counter()
    try:
        response = await conn.request(_image_head(ep, target), keep_body=True)
    except (OSError, ValueError) as exc:
        rec.failure(f"GET {target}: {type(exc).__name__}: {exc}")
        return _summary(rec, 0.0, 0.0) | {"ops": 0, "unsupported": ep.kind == "thumbor"}
    finally:
        conn.close()
    elapsed = time.perf_counter() - t0
    problem = ""
    kind = _CONTENT_TYPE.search(response.head)
    content_type = kind.group(1).strip().lower() if kind else "(none)"
    if response.status != 200:
        problem = f"GET {target} answered {response.status}"
    elif content_type != transform.content_type:
        problem = f"GET {target} answered {content_type} where {transform.content_type} was asked"
    else:
        try:
            import io

            from PIL import Image

            with Image.open(io.BytesIO(response.body)) as picture:
                size = picture.size
        except Exception:  # noqa: BLE001 - a format this Pillow cannot read: the type is checked above
            size = transform.size
        if size != transform.size:
            problem = (
                f"GET {target} gave a {size[0]}x{size[1]} image, not {transform.size[0]}x{transform.size[1]}"
            )
    if problem:
        # An error's body says why; an image's bytes would say nothing.
        rec.failure(problem, response if response.status != 200 else None)
        return _summary(rec, elapsed, 0.0) | {"ops": 0, "unsupported": ep.kind == "thumbor"}
    cache = _FOLIO_CACHE.search(response.head)
    rec.latencies_ns.append(int(elapsed * 1e9))
    rec.nbytes = len(response.body)
    return _summary(rec, elapsed, 0.0) | {"x_cache": cache.group(1).lower() if cache else None}


async def job_img_get(ep: Endpoint, job: dict[str, Any]) -> dict[str, Any]:
    """GET the `transforms` of `copies` copies of their sources, request `seq` asking for transform
    `seq % T` of copy `seq // T % copies`, at `concurrency` for `duration` s (or `max_ops`). Each
    answer must be 200 with the content type asked for and a body; Folio's `X-Folio-Cache` answers
    are counted (`x_cache`), and the mean answer size reported (`bytes_per_op`)."""
    from bench.images import TRANSFORMS

    transforms = [TRANSFORMS[name] for name in job["transforms"]]
    copies, count = int(job["copies"]), len(transforms)
    requests = [
        (_image_head(ep, transforms[i % count].path(ep.kind, i // count % copies)), transforms[i % count])
        for i in range(count * copies)
    ]
    tally: dict[str, int] = {}

    async def get(conn: HttpConnection, seq: int) -> tuple[Response, int]:
        head, transform = requests[seq % len(requests)]
        response = await conn.request(head)
        if response.status == 200:
            kind = _CONTENT_TYPE.search(response.head)
            if not kind or kind.group(1).strip().lower() != transform.content_type:
                got = kind.group(1) if kind else "no content type"
                raise ValueError(f"{transform.name}: answered {got} where {transform.content_type} was asked")
            if not response.received:
                raise ValueError(f"{transform.name}: an empty answer")
            cache = _FOLIO_CACHE.search(response.head)
            state = cache.group(1).lower() if cache else "none"
            tally[state] = tally.get(state, 0) + 1
        return response, response.received

    result = await _drive(
        ep,
        int(job["concurrency"]),
        float(job["duration"]),
        int(job["max_ops"]),
        get,
        port=_image_port(ep),
    )
    if ep.kind != "thumbor":
        result["x_cache"] = tally
    if result["ops"]:
        result["bytes_per_op"] = result["bytes"] / result["ops"]
    return result


async def job_dashboard_upload(ep: Endpoint, job: dict[str, Any]) -> dict[str, Any]:
    from bench.dashboard_upload import job_dashboard_upload as run  # it builds on this module

    return await run(ep, job)


async def job_aws_cp(ep: Endpoint, job: dict[str, Any]) -> dict[str, Any]:
    from bench.dashboard_upload import job_aws_cp as run

    return await run(ep, job)


async def job_browse_seed(ep: Endpoint, job: dict[str, Any]) -> dict[str, Any]:
    from bench.dashboard_listing import job_browse_seed as run  # it builds on this module

    return await run(ep, job)


async def job_browse_listing(ep: Endpoint, job: dict[str, Any]) -> dict[str, Any]:
    from bench.dashboard_listing import job_browse_listing as run

    return await run(ep, job)


JOBS: dict[str, Callable[[Endpoint, dict[str, Any]], Awaitable[dict[str, Any]]]] = {
    "create_bucket": job_create_bucket,
    "put": job_put,
    "get": job_get,
    "put_stream": job_put_stream,
    "get_stream": job_get_stream,
    "list": job_list,
    "mpu": job_mpu,
    "complete": job_complete,
    "copy": job_copy,
    "webhook_burst": job_webhook_burst,
    "img_prepare": job_img_prepare,
    "img_probe": job_img_probe,
    "img_get": job_img_get,
    "dashboard_upload": job_dashboard_upload,
    "aws_cp": job_aws_cp,
    "browse_seed": job_browse_seed,
    "browse_listing": job_browse_listing,
}


async def run_job(job: dict[str, Any]) -> dict[str, Any]:
    fields = job["endpoint"]
    endpoint = Endpoint(**(fields | {"more_ports": tuple(fields.get("more_ports", ()))}))
    return await JOBS[job["op"]](endpoint, job)


def main() -> None:
    job = json.loads(sys.stdin.read())
    try:
        import uvloop
    except ImportError:  # still correct without it, only slower
        result = asyncio.run(run_job(job)) | {"loop": "asyncio"}
    else:
        result = uvloop.run(run_job(job)) | {"loop": "uvloop"}
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result["gen_process_cpu_s"] = round(usage.ru_utime + usage.ru_stime, 3)
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
