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
"""

from __future__ import annotations

import asyncio
import html
import json
import os
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
    endpoint: Endpoint, concurrency: int, duration: float, max_ops: int, operation: Operation
) -> dict[str, Any]:
    """Run `operation` on `concurrency` connections until `duration` passes or `max_ops` are done."""
    rec = Recorder()
    counter = iter(range(max_ops))
    connections = [await connect(endpoint.host, endpoint.port) for _ in range(concurrency)]
    deadline = time.perf_counter() + duration

    async def worker(slot: int) -> None:
        failures = 0
        for seq in counter:
            if time.perf_counter() >= deadline or failures >= MAX_CONSECUTIVE_FAILURES:
                return
            try:
                conn = connections[slot]
                if conn.closed:
                    conn = connections[slot] = await connect(endpoint.host, endpoint.port)
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
    return _summary(rec, elapsed, cpu)


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
    round and round; `count` (preload) or `duration` bounds the run."""
    s3 = S3Requests(ep)
    bucket, prefix, size = job["bucket"], job["prefix"], int(job["size"])
    keys = int(job.get("keys", 0))
    body = bytes(_payload(size))

    async def put(conn: HttpConnection, seq: int) -> tuple[Response, int]:
        head = s3.head("PUT", bucket, f"{prefix}{seq % keys if keys else seq:07d}", length=size)
        return await conn.request(head, body), size

    count = int(job.get("count", 0))
    duration = float(job.get("duration", 3600.0)) if not count else 3600.0
    return await _drive(ep, int(job["concurrency"]), duration, count or int(job["max_ops"]), put)


async def job_get(ep: Endpoint, job: dict[str, Any]) -> dict[str, Any]:
    """GET the preloaded keys `prefix + seq % count`, checking each body's length."""
    s3 = S3Requests(ep)
    bucket, prefix, size, count = job["bucket"], job["prefix"], int(job["size"]), int(job["count"])

    async def get(conn: HttpConnection, seq: int) -> tuple[Response, int]:
        response = await conn.request(s3.head("GET", bucket, f"{prefix}{seq % count:07d}"))
        if response.status == 200 and response.received != size:
            raise ValueError(f"short body: {response.received} of {size} bytes")
        return response, response.received

    return await _drive(ep, int(job["concurrency"]), float(job["duration"]), int(job["max_ops"]), get)


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
}


async def run_job(job: dict[str, Any]) -> dict[str, Any]:
    endpoint = Endpoint(**job["endpoint"])
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
