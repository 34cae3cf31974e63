"""`/metrics` on the web listener: Prometheus text format from a registry of our own
(never prometheus_client's global one, which a library could fill or a second server in
the same process share).

Almost everything is read when Prometheus scrapes, by collectors that look at state
that exists anyway: the request totals the observer keeps (server/observe.py), the
counters the rate limiter, quotas and image cache keep as plain integers, row counts
and file sizes. The one thing observed as it happens is the database's group commit
(writes per durable group and the WAL fsync's latency), on its sync thread, never on
the event loop. The scrape itself runs on a worker thread (its queries and stat calls
stay off the loop). Every metric, with its labels: docs/operations.md, "Metrics and logs"."""

from __future__ import annotations

import asyncio
import gzip
import hmac
import json
import logging
import os
import sqlite3
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from core.db import DATABASE_ERRORS, Database
from core.ratelimit import RateLimiter
from core.sql_dialect import is_sqlite
from imgtransform.cache import DiskCache
from s3proxy.store.integrity import Integrity, damaged_counts
from s3proxy.store.quota import Quotas
from server.observe import LATENCY_BOUNDS, STATUS_CLASSES, RequestStats
from server.overload import ConcurrencyLimit

log = logging.getLogger("folio.metrics")

Message = MutableMapping[str, Any]
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PATH = "/metrics"
# The text format every Prometheus version reads (generate_latest writes it).
CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"
# Writes made durable by one WAL fsync (one group commit).
GROUP_BOUNDS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
FSYNC_BOUNDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def _cumulative(bounds: tuple[float, ...], counts: list[int]) -> list[tuple[str, float]]:
    """Prometheus buckets (`le` cumulative, +Inf last) from per-bucket counts."""
    cumulative, buckets = 0, []
    for bound, count in zip((*bounds, float("inf")), counts, strict=True):
        cumulative += count
        buckets.append(("+Inf" if bound == float("inf") else repr(float(bound)), cumulative))
    return buckets


class RequestCollector(Collector):
    """The observer's totals per listener and operation, the in-flight counts and the
    concurrency bound's refusals."""

    def __init__(self, stats: RequestStats, limits: dict[str, ConcurrencyLimit | None]) -> None:
        self.stats = stats
        self.limits = limits

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "folio_http_requests",
            "Requests answered, by listener, operation and status class (none: no answer was sent).",
            labels=["listener", "operation", "status_class"],
        )
        latency = HistogramMetricFamily(
            "folio_http_request_duration_seconds",
            "Time from the request head to the response's last byte.",
            labels=["listener", "operation"],
        )
        received = CounterMetricFamily(
            "folio_http_received_bytes", "Request body bytes received.", labels=["listener", "operation"]
        )
        sent = CounterMetricFamily(
            "folio_http_sent_bytes", "Response body bytes sent.", labels=["listener", "operation"]
        )
        for (listener, operation), stats in self.stats.snapshot():
            for index, count in enumerate(stats.by_class):
                if count:
                    requests.add_metric([listener, operation, STATUS_CLASSES[index]], count)
            latency.add_metric(
                [listener, operation], _cumulative(LATENCY_BOUNDS, stats.buckets), stats.seconds
            )
            received.add_metric([listener, operation], stats.bytes_in)
            sent.add_metric([listener, operation], stats.bytes_out)
        yield from (requests, latency, received, sent)
        in_flight = GaugeMetricFamily(
            "folio_http_requests_in_flight", "Requests being served now.", labels=["listener"]
        )
        for listener, count in list(self.stats.in_flight.items()):
            in_flight.add_metric([listener], count)
        yield in_flight
        bound = GaugeMetricFamily(
            "folio_http_max_concurrent_requests",
            "The listener's concurrency bound ([server] max_concurrent_requests; 0: none).",
            labels=["listener"],
        )
        refused = CounterMetricFamily(
            "folio_http_overload_refusals",
            "Requests refused with 503 SlowDown because the listener was at its bound.",
            labels=["listener"],
        )
        for listener, limit in self.limits.items():
            bound.add_metric([listener], limit.limit if limit else 0)
            refused.add_metric([listener], limit.refused if limit else 0)
        yield from (bound, refused)


class LimitsCollector(Collector):
    """Rate limits and quotas: totals the limiter and the quota keeper count themselves."""

    def __init__(self, limiter: RateLimiter, quotas: Quotas) -> None:
        self.limiter = limiter
        self.quotas = quotas

    def collect(self) -> Iterator[Metric]:
        limiter = self.limiter
        yield CounterMetricFamily(
            "folio_ratelimit_waits",
            "Requests over their plan's rate that waited for their turn.",
            limiter.waits,
        )
        yield CounterMetricFamily(
            "folio_ratelimit_wait_seconds", "Seconds those requests waited, in total.", limiter.wait_seconds
        )
        yield CounterMetricFamily(
            "folio_ratelimit_refusals",
            "Requests refused for a rate limit (429 TooManyRequests; login and dashboard limits too).",
            limiter.refusals,
        )
        yield GaugeMetricFamily(
            "folio_ratelimit_waiting", "Requests waiting for their rate-limit turn now.", limiter.waiting
        )
        yield CounterMetricFamily(
            "folio_quota_refusals",
            "Writes refused because they would pass the storage quota.",
            self.quotas.refusals,
        )


def _file_size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


class StorageCollector(Collector):
    """Database and blob sizes, object counts, and the data directory's disk."""

    def __init__(self, db: Database, data_dir: Path) -> None:
        self.db = db
        self.data_dir = data_dir

    def collect(self) -> Iterator[Metric]:
        if self.db.engine == "sqlite":  # PostgreSQL's files are the database server's
            files = GaugeMetricFamily(
                "folio_database_file_bytes", "Size of the metadata database's files.", labels=["file"]
            )
            files.add_metric(["main"], _file_size(self.db.path))
            files.add_metric(["wal"], _file_size(self.db.wal_path))
            yield files
        try:
            blobs, blob_bytes, buckets, objects, stored = self.db.read(
                lambda c: (
                    *c.execute("SELECT count(*), coalesce(sum(size), 0) FROM blobs").fetchone(),
                    *c.execute(
                        "SELECT count(*), coalesce(sum(object_count), 0), coalesce(sum(bytes_used), 0) FROM buckets"
                    ).fetchone(),
                )
            )
        except DATABASE_ERRORS as exc:
            log.warning("metrics: storage figures unavailable: %s", exc)
        else:
            yield GaugeMetricFamily(
                "folio_blobs", "Blob files in the store (objects above the inline size).", blobs
            )
            yield GaugeMetricFamily("folio_blob_bytes", "Bytes in blob files.", blob_bytes)
            yield GaugeMetricFamily("folio_buckets", "Buckets.", buckets)
            yield GaugeMetricFamily(
                "folio_objects", "Current objects (no delete markers or older versions).", objects
            )
            yield GaugeMetricFamily(
                "folio_stored_bytes",
                "Bytes the accounts use: every version kept, inline or in blobs, and unfinished uploads' parts.",
                stored,
            )
        try:
            disk = os.statvfs(self.data_dir)
        except OSError:
            return
        yield GaugeMetricFamily(
            "folio_disk_free_bytes",
            "Free bytes on the data directory's file system.",
            disk.f_bavail * disk.f_frsize,
        )
        yield GaugeMetricFamily(
            "folio_disk_size_bytes",
            "Size of the data directory's file system.",
            disk.f_blocks * disk.f_frsize,
        )


class ServicesCollector(Collector):
    """Webhook delivery queue and outcomes, document jobs, and the image cache."""

    def __init__(self, db: Database, image_cache: DiskCache | None) -> None:
        self.db = db
        self.image_cache = image_cache

    def collect(self) -> Iterator[Metric]:
        try:
            events, deliveries, failed_attempts, webhooks, jobs = self.db.read(_service_rows)
        except DATABASE_ERRORS as exc:
            log.warning("metrics: webhook and job figures unavailable: %s", exc)
        else:
            queue = GaugeMetricFamily(
                "folio_webhook_queue_depth",
                "Work waiting for the delivery worker: events not yet dispatched, deliveries pending.",
                labels=["queue"],
            )
            queue.add_metric(["events"], events)
            queue.add_metric(["deliveries"], deliveries.get("pending", 0))
            yield queue
            by_status = GaugeMetricFamily(
                "folio_webhook_deliveries",
                "Webhook deliveries kept in the delivery log, by status (failed: retries used up).",
                labels=["status"],
            )
            for status in ("pending", "delivered", "failed"):
                by_status.add_metric([status], deliveries.get(status, 0))
            yield by_status
            yield GaugeMetricFamily(
                "folio_webhook_failed_attempts",
                "Delivery attempts that failed (error or non-2xx answer), over the deliveries kept.",
                failed_attempts,
            )
            hooks = GaugeMetricFamily("folio_webhooks", "Registered webhooks, by state.", labels=["state"])
            hooks.add_metric(["active"], webhooks.get(1, 0))
            hooks.add_metric(["disabled"], webhooks.get(0, 0))
            yield hooks
            documents = GaugeMetricFamily(
                "folio_document_jobs", "Document jobs kept, by state and engine.", labels=["state", "engine"]
            )
            for (state, engine), count in sorted(jobs.items()):
                documents.add_metric([state, engine], count)
            yield documents
        cache = self.image_cache
        if cache is not None:
            yield CounterMetricFamily(
                "folio_image_cache_hits", "Image transforms answered from the disk cache.", cache.hits
            )
            yield CounterMetricFamily(
                "folio_image_cache_misses", "Image transforms not in the disk cache (computed).", cache.misses
            )
            yield GaugeMetricFamily(
                "folio_image_cache_bytes", "Bytes of transformed images cached.", cache.total
            )


class IntegrityCollector(Collector):
    """What the checksums on read and the latest scrub or `folio check` found
    (s3proxy.store.integrity: the attributes docs/operations.md names for the metrics)."""

    # ScrubSummary's lists of findings, by the label they get.
    PROBLEMS = (
        "corrupt_blobs",
        "missing_blobs",
        "corrupt_inline",
        "refcount_mismatches",
        "orphan_files",
        "lost_objects",
    )

    def __init__(self, integrity: Integrity, db: Database) -> None:
        self.integrity = integrity
        self.db = db

    def collect(self) -> Iterator[Metric]:
        integrity = self.integrity
        yield CounterMetricFamily(
            "folio_integrity_corrupt_reads",
            "Reads stopped because stored bytes failed their checksum (the client got an error, not the data).",
            integrity.corrupt_reads,
        )
        try:
            blobs, objects = self.db.read(damaged_counts)
            last = integrity.last_scrub
        except DATABASE_ERRORS as exc:
            log.warning("metrics: integrity figures unavailable: %s", exc)
            return
        damaged = GaugeMetricFamily(
            "folio_integrity_damaged",
            "Blobs and inline objects marked damaged (by reads, scrubs and checks) until a check finds them sound.",
            labels=["kind"],
        )
        damaged.add_metric(["blobs"], blobs)
        damaged.add_metric(["objects"], objects)
        yield damaged
        yield GaugeMetricFamily(
            "folio_scrub_running", "1 while the background scrub runs.", int(integrity.scrub_running)
        )
        ended = GaugeMetricFamily(
            "folio_scrub_last_end_timestamp_seconds",
            "When the latest scrub or folio check ended (Unix time), by which of the two it was.",
            labels=["kind"],
        )
        seconds = GaugeMetricFamily(
            "folio_scrub_last_duration_seconds", "How long the latest scrub or check took."
        )
        checked = GaugeMetricFamily(
            "folio_scrub_last_checked", "What the latest scrub or check re-read, by kind.", labels=["what"]
        )
        checked_bytes = GaugeMetricFamily(
            "folio_scrub_last_checked_bytes", "Bytes the latest scrub or check re-read."
        )
        problems = GaugeMetricFamily(
            "folio_scrub_last_problems",
            "What the latest scrub or check found, by problem.",
            labels=["problem"],
        )
        outcome = GaugeMetricFamily(
            "folio_scrub_last_damaged",
            "1 when the latest scrub or check left damage (0: clean or all repaired).",
        )
        complete = GaugeMetricFamily(
            "folio_scrub_last_complete", "1 when the latest scrub or check ran to its end."
        )
        if last is not None:  # none on record yet: the families without samples
            ended.add_metric([last.kind], last.finished_at)
            seconds.add_metric([], last.seconds)
            checked.add_metric(["blobs"], last.blobs_checked)
            checked.add_metric(["inline"], last.inline_checked)
            checked_bytes.add_metric([], last.bytes_checked)
            for problem in self.PROBLEMS:
                problems.add_metric([problem], len(getattr(last, problem)))
            outcome.add_metric([], int(last.damaged))
            complete.add_metric([], int(last.complete))
        yield from (ended, seconds, checked, checked_bytes, problems, outcome, complete)


def _service_rows(
    c: sqlite3.Connection,
) -> tuple[int, dict[str, int], int, dict[int, int], dict[tuple[str, str], int]]:
    events = c.execute("SELECT count(*) FROM events WHERE delivered_at IS NULL").fetchone()[0]
    deliveries = dict(c.execute("SELECT status, count(*) FROM deliveries GROUP BY status").fetchall())
    # A delivered one succeeded on its last attempt; every other attempt failed.
    failed_attempts = c.execute(
        "SELECT coalesce(sum(CASE WHEN status = 'delivered' THEN attempts - 1 ELSE attempts END), 0)"
        " FROM deliveries"
    ).fetchone()[0]
    webhooks = dict(c.execute("SELECT active, count(*) FROM webhooks GROUP BY active").fetchall())
    engine_sql = "json_extract(options, '$.engine')" if is_sqlite(c) else "options::jsonb->>'engine'"
    jobs = {
        (state, engine or "weasyprint"): count
        for state, engine, count in c.execute(
            f"SELECT status, {engine_sql}, count(*) FROM docgen_jobs GROUP BY 1, 2"
        )
    }
    return events, deliveries, failed_attempts, webhooks, jobs


class FixedHistogram:
    """Bucket counts and a sum, as plain numbers: observed by one thread, read by the
    scrape (a read may see one observation half counted; the next scrape is whole)."""

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1  # `le` is inclusive
        self.total += value

    def family(self, name: str, documentation: str) -> HistogramMetricFamily:
        buckets = _cumulative(self.bounds, list(self.counts))
        return HistogramMetricFamily(name, documentation, buckets=buckets, sum_value=self.total)


class CommitCollector(Collector):
    """The database's group commit: writes per durable group, and the WAL fsync's latency."""

    def __init__(self) -> None:
        self.groups = FixedHistogram(GROUP_BOUNDS)
        self.fsyncs = FixedHistogram(FSYNC_BOUNDS)

    def synced(self, writes: int, fsync_seconds: float | None) -> None:
        self.groups.observe(writes)
        if fsync_seconds is not None:
            self.fsyncs.observe(fsync_seconds)

    def collect(self) -> Iterator[Metric]:
        yield self.groups.family(
            "folio_db_commit_group_writes", "Writes made durable together by one WAL fsync (group commit)."
        )
        yield self.fsyncs.family(
            "folio_db_fsync_seconds", "Latency of the WAL fsync that makes a group of writes durable."
        )


def build_registry(
    stats: RequestStats,
    limits: dict[str, ConcurrencyLimit | None],
    db: Database,
    data_dir: Path,
    limiter: RateLimiter,
    quotas: Quotas,
    image_cache: DiskCache | None,
    integrity: Integrity,
) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=True)
    registry.register(RequestCollector(stats, limits))
    registry.register(LimitsCollector(limiter, quotas))
    registry.register(StorageCollector(db, data_dir))
    registry.register(ServicesCollector(db, image_cache))
    registry.register(IntegrityCollector(integrity, db))
    ProcessCollector(registry=registry)  # process_* (CPU, memory, open files), from /proc
    commits = CommitCollector()
    registry.register(commits)
    db.on_sync = commits.synced  # called on the database's sync thread
    return registry


Answer = tuple[int, list[tuple[bytes, bytes]], bytes]


def _error(status: int, code: str, message: str, *headers: tuple[bytes, bytes]) -> Answer:
    """The JSON APIs' error format (seed 001)."""
    body = json.dumps({"error": {"code": code, "message": message, "details": {}}}).encode()
    return status, [(b"content-type", b"application/json"), *headers], body


class MetricsEndpoint:
    """Answers GET /metrics in front of the web application; everything else passes."""

    def __init__(self, app: ASGIApp, registry: CollectorRegistry, token: str = "") -> None:
        self.app = app
        self.registry = registry
        self.token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH:
            await self.app(scope, receive, send)
            return
        scope["folio.operation"] = PATH
        status, headers, body = await self._answer(scope)
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})

    def _authorized(self, scope: Scope) -> bool:
        if not self.token:
            return True
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, credential = value.strip().partition(b" ")
                return scheme.lower() == b"bearer" and hmac.compare_digest(credential.strip(), self.token)
        return False

    async def _answer(self, scope: Scope) -> Answer:
        if scope["method"] not in ("GET", "HEAD"):
            return _error(405, "MethodNotAllowed", "/metrics answers GET.", (b"allow", b"GET, HEAD"))
        if not self._authorized(scope):
            return _error(
                401,
                "Unauthorized",
                "Send Authorization: Bearer <token> with the token of [server] metrics_token.",
                (b"www-authenticate", b'Bearer realm="metrics"'),
            )
        gzip_ok = any(
            name == b"accept-encoding" and b"gzip" in value.lower() for name, value in scope["headers"]
        )
        body = await asyncio.to_thread(self._render, gzip_ok)
        headers = [
            (b"content-type", CONTENT_TYPE),
            (b"cache-control", b"no-store"),
            (b"vary", b"accept-encoding"),
        ]
        if gzip_ok:
            headers.append((b"content-encoding", b"gzip"))
        return 200, headers, body

    def _render(self, compress: bool) -> bytes:
        text = generate_latest(self.registry)
        return gzip.compress(text, compresslevel=1) if compress else text
