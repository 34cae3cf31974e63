"""`python -m bench.housekeeping_soak`: does the database file stay flat under a steady load
of writes and webhook deliveries? (issue 17, "Bounded growth"; docs/benchmarks.md's notes.)

Two fresh Folio servers in turn, each under the same steady load for `--duration` seconds:
S3 PUTs at `--rate` per second (4 connections, paced), overwriting `--keys` keys of an
unversioned bucket round and round, so that the objects themselves take no more room as the
run goes on; a webhook for `object.created` and `object.updated` points at a receiver in
this process (bench/loadgen.py's `_HookReceiver`, answering 200 at once), so every write
makes one event and one delivery. The two servers differ only in housekeeping:

- **on**: events and deliveries kept `--retention` seconds (the default 7 and 30 days,
  compressed so that a run reaches the steady state), a pass every `--interval` seconds;
- **off**: `events_days = deliveries_days = 0` (kept for ever): what every release before
  housekeeping did.

Every `--sample` seconds: the size of folio.db and of its WAL, its pages and free pages
(`PRAGMA page_count` / `freelist_count`, read-only), the rows of events and deliveries and
the pending deliveries; afterwards, the server log's housekeeping passes (rows and time
per pass). Results go to bench/results/housekeeping-soak-STAMP.json and a Markdown summary
to stdout. Every process started here is stopped by its PID.

    python -m bench.housekeeping_soak                       # 2 x 5 minutes
    python -m bench.housekeeping_soak --duration 60 --rate 50   # a smoke test
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.http_client import connect
from bench.loadgen import Endpoint, S3Requests, _HookReceiver
from bench.monitor import OtherLoad, cpu_seconds, log
from tests.folio_process import FolioProcess

RESULTS_DIR = Path(__file__).resolve().parent / "results"
DAY = 86400.0
CONNECTIONS = 4
BUCKET = "soak"
_PASS = re.compile(r"housekeeping pruned (.*) in ([\d.]+) s \(longest batch ([\d.]+) ms\)")


def config_text(retention_s: float | None, interval_s: float) -> str:
    """The server's settings: retention in seconds, or None to keep everything (0 days)."""
    days = 0.0 if retention_s is None else retention_s / DAY
    return f"""
[versioning]
new_buckets = "Off"

[webhooks]
allow_loopback_targets = true
allow_http = true

[housekeeping]
interval_seconds = {interval_s!r}
events_days = {days!r}
deliveries_days = {days!r}
"""


def sample_database(data_dir: Path) -> dict[str, int]:
    path = data_dir / "folio.db"
    wal = data_dir / "folio.db-wal"
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        one = lambda sql: conn.execute(sql).fetchone()[0]  # noqa: E731 - a local shorthand
        return {
            "db_bytes": path.stat().st_size,
            "wal_bytes": wal.stat().st_size if wal.exists() else 0,
            "pages": one("PRAGMA page_count"),
            "free_pages": one("PRAGMA freelist_count"),
            "events": one("SELECT count(*) FROM events"),
            "deliveries": one("SELECT count(*) FROM deliveries"),
            "pending": one("SELECT count(*) FROM deliveries WHERE status = 'pending'"),
            "undispatched": one("SELECT count(*) FROM events WHERE delivered_at IS NULL"),
        }
    finally:
        conn.close()


async def steady_load(
    endpoint: Endpoint, server: FolioProcess, args: argparse.Namespace, arrivals: list
) -> tuple[list[dict[str, Any]], int, int]:
    """PUTs at `rate`/s for `duration` s on CONNECTIONS connections; a sample every `sample` s."""
    s3 = S3Requests(endpoint)
    body = b"s" * args.size
    interval = CONNECTIONS / args.rate  # each connection sends one PUT per interval
    started = time.monotonic()
    stop_at = started + args.duration
    counts = {"ok": 0, "failed": 0}

    async def writer(slot: int) -> None:
        conn = await connect(endpoint.host, endpoint.port)
        seq = slot
        next_at = started + slot * interval / CONNECTIONS
        try:
            while (now := time.monotonic()) < stop_at:
                if next_at > now:
                    await asyncio.sleep(next_at - now)
                next_at += interval
                key = f"k{seq % args.keys:06d}"
                seq += CONNECTIONS
                if conn.closed:
                    conn = await connect(endpoint.host, endpoint.port)
                response = await conn.request(s3.head("PUT", BUCKET, key, length=len(body)), body)
                counts["ok" if 200 <= response.status < 300 else "failed"] += 1
        finally:
            conn.close()

    samples: list[dict[str, Any]] = []

    async def sampler() -> None:
        while True:
            at = time.monotonic() - started
            row = await asyncio.to_thread(sample_database, server.data_dir)
            samples.append({"t": round(at, 1), "writes": counts["ok"], "received": len(arrivals), **row})
            if at >= args.duration:
                return
            await asyncio.sleep(max(0.0, args.sample - (time.monotonic() - started - at)))

    watcher = asyncio.create_task(sampler())
    await asyncio.gather(*(writer(slot) for slot in range(CONNECTIONS)))
    await watcher
    return samples, counts["ok"], counts["failed"]


async def soak(server: FolioProcess, args: argparse.Namespace) -> dict[str, Any]:
    signup = httpx.post(
        f"{server.web_url}/api/auth/signup",
        json={"email": "soak@example.com", "password": "correct horse battery staple"},
        timeout=30,
    )
    signup.raise_for_status()
    keys = signup.json()
    endpoint = Endpoint(
        "127.0.0.1", server.s3_port, keys["accessKey"], keys["secretKey"], web_port=server.web_port
    )
    arrivals: list[tuple[float, bytes, bytes]] = []
    loop = asyncio.get_running_loop()
    receiver = await loop.create_server(lambda: _HookReceiver(arrivals), "127.0.0.1", 0)
    try:
        port = receiver.sockets[0].getsockname()[1]
        hook = httpx.post(
            f"{server.web_url}/api/webhooks",
            headers={"X-API-Key": f"{keys['accessKey']}:{keys['secretKey']}"},
            json={"url": f"http://127.0.0.1:{port}/hook", "events": ["object.created", "object.updated"]},
            timeout=30,
        )
        hook.raise_for_status()
        conn = await connect(endpoint.host, endpoint.port)
        try:
            made = await conn.request(S3Requests(endpoint).head("PUT", BUCKET), keep_body=True)
            if not 200 <= made.status < 300:
                raise RuntimeError(f"creating the bucket: {made.status} {made.body[:300]!r}")
        finally:
            conn.close()
        load, cpu0 = OtherLoad(), cpu_seconds(server.proc.pid)
        samples, writes, failed = await steady_load(endpoint, server, args, arrivals)
        server_cpu = cpu_seconds(server.proc.pid) - cpu0
        other = load.percent(server_cpu)
        # The deliveries still in flight at the end arrive within a few seconds.
        await asyncio.sleep(3)
        received = len(arrivals)
    finally:
        receiver.close()
    return {
        "samples": samples,
        "writes": writes,
        "failed_writes": failed,
        "received": received,
        "server_cpu_s": round(server_cpu, 1),
        "other_cpu_pct": round(other, 1),
    }


def passes(log_text: str) -> dict[str, Any]:
    """The housekeeping passes in a server log: how many, rows pruned, seconds per pass."""
    seconds, batches, rows = [], [], 0
    for match in _PASS.finditer(log_text):
        seconds.append(float(match.group(2)))
        batches.append(float(match.group(3)))
        rows += sum(int(n) for n in re.findall(r"(\d+) \w+", match.group(1)))
    return {
        "passes_logged": len(seconds),
        "rows_pruned": rows,
        "pass_s_median": statistics.median(seconds) if seconds else 0.0,
        "pass_s_max": max(seconds) if seconds else 0.0,
        "batch_ms_median": statistics.median(batches) if batches else 0.0,
        "batch_ms_max": max(batches) if batches else 0.0,
    }


def summary(run: dict[str, Any], warmup_s: float) -> dict[str, Any]:
    """Sizes after the warm-up against the end, and the growth per hour and per 100,000 writes."""
    samples = run["samples"]
    steady = [s for s in samples if s["t"] >= warmup_s] or samples
    first, last = steady[0], samples[-1]
    hours = max(last["t"] - first["t"], 1e-9) / 3600
    writes = max(last["writes"] - first["writes"], 1)
    grown = last["db_bytes"] - first["db_bytes"]
    half = [s for s in samples if s["t"] >= samples[-1]["t"] / 2][0]
    return {
        "db_mib_at_half": half["db_bytes"] / 2**20,
        "growth_second_half_mib": (last["db_bytes"] - half["db_bytes"]) / 2**20,
        "events_max": max(s["events"] for s in samples),
        "deliveries_max": max(s["deliveries"] for s in samples),
        "db_mib_after_warmup": first["db_bytes"] / 2**20,
        "db_mib_end": last["db_bytes"] / 2**20,
        "db_mib_max": max(s["db_bytes"] for s in samples) / 2**20,
        "wal_mib_max": max(s["wal_bytes"] for s in samples) / 2**20,
        "growth_mib_per_hour": grown / 2**20 / hours,
        "growth_mib_per_100k_writes": grown / 2**20 * 100_000 / writes,
        "free_pages_max": max(s["free_pages"] for s in samples),
        "events_end": last["events"],
        "deliveries_end": last["deliveries"],
        "pending_max": max(s["pending"] for s in samples),
        "undispatched_max": max(s.get("undispatched", 0) for s in samples),
        "writes_per_s": run["writes"] / max(samples[-1]["t"], 1e-9),
    }


def markdown(results: dict[str, Any]) -> str:
    args = results["settings"]
    lines = [
        f"Steady load: {args['rate']:.0f} PUTs/s of {args['size']} bytes over {args['keys']:,} keys (unversioned), "
        f"each one event and one webhook delivery, {args['duration']:.0f} s per server; housekeeping on: "
        f"events and deliveries kept {args['retention']:.0f} s, a pass every {args['interval']:.0f} s; "
        f"sizes after {results['warmup_s']:.0f} s of warm-up against the end.",
        "",
        "| housekeeping | writes/s | folio.db after warm-up MiB | half-way MiB | at the end MiB | growth MiB/h "
        "| growth MiB per 100k writes | WAL max MiB | free pages max | events / deliveries max, at the end "
        "| pending deliveries / undispatched events max | passes (rows pruned) | pass s median / max | longest batch ms median / max "
        "| server CPU s | other load |",
        "|---|" + "---|" * 15,
    ]
    for name in ("on", "off"):
        run = results["runs"][name]
        s, p = run["summary"], run["housekeeping"]
        lines.append(
            f"| {name} | {s['writes_per_s']:.0f} | {s['db_mib_after_warmup']:.2f} | {s['db_mib_at_half']:.2f} "
            f"| {s['db_mib_end']:.2f} "
            f"| {s['growth_mib_per_hour']:+.1f} | {s['growth_mib_per_100k_writes']:+.2f} | {s['wal_mib_max']:.2f} "
            f"| {s['free_pages_max']:,} | {s['events_max']:,} / {s['deliveries_max']:,}, "
            f"{s['events_end']:,} / {s['deliveries_end']:,} | {s['pending_max']:,} / {s['undispatched_max']:,} "
            f"| {p['passes_logged']} ({p['rows_pruned']:,}) | {p['pass_s_median']:.2f} / {p['pass_s_max']:.2f} "
            f"| {p['batch_ms_median']:.1f} / {p['batch_ms_max']:.1f} "
            f"| {run['server_cpu_s']:.0f} | {run['other_cpu_pct']:.0f}% |"
        )
    lines += ["", "folio.db over time (MiB; events rows), every sample:", ""]
    for name in ("on", "off"):
        points = ", ".join(
            f"{s['t']:.0f}s {s['db_bytes'] / 2**20:.1f} ({s['events']:,})"
            for s in results["runs"][name]["samples"]
        )
        lines.append(f"- {name}: {points}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.housekeeping_soak", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--duration", type=float, default=300.0, help="seconds of load per server")
    parser.add_argument("--rate", type=float, default=100.0, help="PUTs per second")
    parser.add_argument("--keys", type=int, default=1000, help="keys overwritten round and round")
    parser.add_argument("--size", type=int, default=1024, help="bytes per PUT")
    parser.add_argument(
        "--retention", type=float, default=60.0, help="seconds events and deliveries are kept"
    )
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between housekeeping passes")
    parser.add_argument("--sample", type=float, default=10.0, help="seconds between samples")
    args = parser.parse_args(argv)
    warmup = min(args.duration / 2, 2 * args.retention + args.interval)
    results: dict[str, Any] = {"settings": vars(args), "warmup_s": warmup, "runs": {}}
    workroot = Path(tempfile.mkdtemp(prefix="folio-soak-"))
    try:
        for name, retention in (("on", args.retention), ("off", None)):
            server = FolioProcess(workroot / name / "data", config_text(retention, args.interval))
            log(f"housekeeping {name}: {args.duration:.0f} s at {args.rate:.0f} PUTs/s")
            server.start(timeout=60)
            try:
                run = asyncio.run(soak(server, args))
            finally:
                server.stop()
            run["housekeeping"] = passes(server.log())
            run["summary"] = summary(run, warmup)
            results["runs"][name] = run
            log(f"housekeeping {name}: {json.dumps(run['summary'])}")
    finally:
        shutil.rmtree(workroot, ignore_errors=True)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (RESULTS_DIR / f"housekeeping-soak-{stamp}.json").write_text(json.dumps(results, indent=1))
    text = markdown(results)
    (RESULTS_DIR / f"housekeeping-soak-{stamp}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
