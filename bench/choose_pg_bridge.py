"""psycopg 3 (sync, on worker threads) against asyncpg behind a bridge for Folio's synchronous
transaction bodies on PostgreSQL (issue 18).

Folio's database transactions are synchronous functions `body(conn)` that call
`conn.execute(sql, params)` (written for sqlite3); the server (uvloop) runs each one with
`await asyncio.to_thread(body)`. bench/choose_pg_driver.py compared the drivers' async APIs
awaited from the loop; this compares what those bodies can actually use:

- psycopg-thread: psycopg 3 sync connections from a psycopg_pool.ConnectionPool; the body
  runs on the worker thread and talks to PostgreSQL itself.
- asyncpg-bridge: one asyncpg pool owned by a dedicated event-loop thread (uvloop); the body
  on the worker thread submits each statement there with
  `asyncio.run_coroutine_threadsafe(...).result()` (a GET is one `pool.fetchrow` hop; a
  transaction is acquire+BEGIN, one hop per statement, then COMMIT+release).
- asyncpg-direct: asyncpg awaited on the application's loop, no thread: what rewriting every
  body as a coroutine would give. The ceiling.

The operations, on an `objects` table shaped like Folio's (versions, `is_latest`, a partial
covering index of the current versions, keys `COLLATE "C"`), 20,000 keys seeded:

- get:  one row by key (a GET or HEAD)
- put:  BEGIN; SELECT pg_advisory_xact_lock(42); SELECT the current version; UPDATE it to
        is_latest = 0; INSERT the new version; COMMIT (a PUT; the advisory lock serializes
        writers as SQLite's single writer does, which Folio's bodies assume)
- list: 1,000 current keys of a keyset page (`key > $last ORDER BY key LIMIT 1000`)

Each at concurrency 1 and 16 (that many application tasks; pools of that many connections;
the threads are asyncio's default executor unless --threads says otherwise), runs alternating
between the three so that other work on the machine falls on all, medians of `--runs`.
asyncpg's pools skip its reset query on release (an open transaction is still rolled back),
as psycopg_pool does: a round trip per operation otherwise.

    .venv/bin/python -m bench.choose_pg_bridge              # 3 runs of 3 s each: about 4 minutes
    .venv/bin/python -m bench.choose_pg_bridge --threads 16 --concurrency 16 --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import itertools
import json
import os
import statistics
import sys
import threading
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

from bench.pg_cluster import PgCluster

T = TypeVar("T")

SEED_ROWS = 20_000
LIST_ROWS = 1_000
BUCKET = 1
WARMUP_S = 1.0  # untimed, at the measured concurrency: every connection has prepared its statements
# --busy: each busy task runs 100 µs of Python, then waits 1 ms (a 10% share of a core each,
# when the loop gets it: 4 tasks keep a server's loop about 30-40% busy).
BUSY_STEP_S = 100e-6
BUSY_PAUSE_S = 1e-3

SCHEMA = """
CREATE TABLE objects (
    bucket_id bigint NOT NULL,
    key text COLLATE "C" NOT NULL,
    version_id bigint NOT NULL,
    is_latest smallint NOT NULL,
    size bigint NOT NULL,
    etag text NOT NULL,
    blob_id bigint,
    created_at double precision NOT NULL,
    PRIMARY KEY (bucket_id, key, version_id)
);
CREATE UNIQUE INDEX objects_latest ON objects (bucket_id, key) INCLUDE (version_id, size, etag)
    WHERE is_latest = 1;
"""
COLUMNS = ["bucket_id", "key", "version_id", "is_latest", "size", "etag", "blob_id", "created_at"]
GET = (
    "SELECT version_id, size, etag, blob_id FROM objects WHERE bucket_id = $1 AND key = $2 AND is_latest = 1"
)
LOCK = "SELECT pg_advisory_xact_lock(42)"
LATEST = "SELECT version_id FROM objects WHERE bucket_id = $1 AND key = $2 AND is_latest = 1"
UNLATEST = "UPDATE objects SET is_latest = 0 WHERE bucket_id = $1 AND key = $2 AND is_latest = 1"
INSERT = (
    "INSERT INTO objects (bucket_id, key, version_id, is_latest, size, etag, blob_id, created_at)"
    " VALUES ($1, $2, $3, 1, $4, $5, $6, $7)"
)
LIST = (
    "SELECT key, version_id, size, etag FROM objects"
    " WHERE bucket_id = $1 AND key > $2 AND is_latest = 1 ORDER BY key LIMIT 1000"
)

OPS = ("get", "put", "list")
MODES = ("psycopg-thread", "asyncpg-bridge", "asyncpg-direct")


def seed_key(i: int) -> str:
    return f"photos/2026/{i:08d}.jpg"


def psycopg_sql(sql: str) -> str:
    """psycopg's placeholders are %s, asyncpg's $n."""
    for n in range(9, 0, -1):
        sql = sql.replace(f"${n}", "%s")
    return sql


# New version ids for PUTs: unique across every run (next() on a count is atomic in CPython).
_versions = itertools.count(SEED_ROWS)


def put_args(key: str) -> tuple[Any, ...]:
    version = next(_versions)
    return (BUCKET, key, version, 4096, "f" * 32, version, time.time())


async def _no_reset(conn: Any) -> None:
    """asyncpg's pool still rolls back an open transaction before calling this; the default
    reset query (unlisten, unlock, RESET ALL) would be one more round trip per release, and
    Folio's bodies leave no session state behind."""


class Mode:
    """One way of running the three operations from the application's loop."""

    name = ""

    async def open(self, dsn: str, size: int) -> None: ...
    async def close(self) -> None: ...
    async def get(self, key: str) -> None: ...
    async def put(self, key: str) -> None: ...
    async def list(self, after: str) -> None: ...


class PsycopgThread(Mode):
    """Synchronous bodies on worker threads with psycopg 3 sync connections (prepared after 5
    executions, psycopg's default `prepare_threshold`; the warm-up passes that)."""

    name = "psycopg-thread"

    def __init__(self) -> None:
        self.get_sql, self.latest_sql, self.unlatest_sql, self.insert_sql, self.list_sql = map(
            psycopg_sql, (GET, LATEST, UNLATEST, INSERT, LIST)
        )

    async def open(self, dsn: str, size: int) -> None:
        from psycopg_pool import ConnectionPool

        self.pool = ConnectionPool(dsn, min_size=size, max_size=size, kwargs={"autocommit": True}, open=False)
        await asyncio.to_thread(self.pool.open, wait=True)

    async def close(self) -> None:
        await asyncio.to_thread(self.pool.close)

    def _get(self, key: str) -> None:
        with self.pool.connection() as conn:
            assert conn.execute(self.get_sql, (BUCKET, key)).fetchone() is not None

    def _put(self, key: str) -> None:
        args = put_args(key)
        with self.pool.connection() as conn, conn.transaction():
            conn.execute(LOCK)
            assert conn.execute(self.latest_sql, (BUCKET, key)).fetchone() is not None
            conn.execute(self.unlatest_sql, (BUCKET, key))
            conn.execute(self.insert_sql, args)

    def _list(self, after: str) -> None:
        with self.pool.connection() as conn:
            rows = conn.execute(self.list_sql, (BUCKET, after)).fetchall()
        assert len(rows) == LIST_ROWS, len(rows)

    async def get(self, key: str) -> None:
        await asyncio.to_thread(self._get, key)

    async def put(self, key: str) -> None:
        await asyncio.to_thread(self._put, key)

    async def list(self, after: str) -> None:
        await asyncio.to_thread(self._list, after)


class AsyncpgBridge(Mode):
    """Synchronous bodies on worker threads; every statement hops to a loop thread that owns
    an asyncpg pool and back (`run_coroutine_threadsafe(...).result()`)."""

    name = "asyncpg-bridge"

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    async def open(self, dsn: str, size: int) -> None:
        import asyncpg

        self.loop = new_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="pg-bridge", daemon=True)
        self.thread.start()

        async def create() -> Any:  # create_pool returns an awaitable Pool, not a coroutine
            return await asyncpg.create_pool(dsn, min_size=size, max_size=size, reset=_no_reset)

        self.pool = await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(create(), self.loop))

    async def close(self) -> None:
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self.pool.close(), self.loop))
        self.loop.call_soon_threadsafe(self.loop.stop)
        await asyncio.to_thread(self.thread.join)
        self.loop.close()

    async def _begin(self) -> Any:
        conn = await self.pool.acquire()
        try:
            await conn.execute("BEGIN")
        except BaseException:
            await self.pool.release(conn)
            raise
        return conn

    async def _end(self, conn: Any, commit: bool) -> None:
        try:
            await conn.execute("COMMIT" if commit else "ROLLBACK")
        finally:
            await self.pool.release(conn)

    def _get(self, key: str) -> None:
        assert self._call(self.pool.fetchrow(GET, BUCKET, key)) is not None

    def _put(self, key: str) -> None:
        args = put_args(key)
        conn = self._call(self._begin())
        ok = False
        try:
            self._call(conn.fetchrow(LOCK))
            assert self._call(conn.fetchrow(LATEST, BUCKET, key)) is not None
            self._call(conn.execute(UNLATEST, BUCKET, key))
            self._call(conn.execute(INSERT, *args))
            ok = True
        finally:
            self._call(self._end(conn, ok))

    def _list(self, after: str) -> None:
        rows = self._call(self.pool.fetch(LIST, BUCKET, after))
        assert len(rows) == LIST_ROWS, len(rows)

    async def get(self, key: str) -> None:
        await asyncio.to_thread(self._get, key)

    async def put(self, key: str) -> None:
        await asyncio.to_thread(self._put, key)

    async def list(self, after: str) -> None:
        await asyncio.to_thread(self._list, after)


class AsyncpgDirect(Mode):
    """The same statements awaited on the application's loop: no thread, no hop."""

    name = "asyncpg-direct"

    async def open(self, dsn: str, size: int) -> None:
        import asyncpg

        self.pool = await asyncpg.create_pool(dsn, min_size=size, max_size=size, reset=_no_reset)

    async def close(self) -> None:
        await self.pool.close()

    async def get(self, key: str) -> None:
        assert await self.pool.fetchrow(GET, BUCKET, key) is not None

    async def put(self, key: str) -> None:
        args = put_args(key)
        async with self.pool.acquire() as conn:
            await conn.execute("BEGIN")
            ok = False
            try:
                await conn.fetchrow(LOCK)
                assert await conn.fetchrow(LATEST, BUCKET, key) is not None
                await conn.execute(UNLATEST, BUCKET, key)
                await conn.execute(INSERT, *args)
                ok = True
            finally:
                await conn.execute("COMMIT" if ok else "ROLLBACK")

    async def list(self, after: str) -> None:
        rows = await self.pool.fetch(LIST, BUCKET, after)
        assert len(rows) == LIST_ROWS, len(rows)


def new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:
        return asyncio.new_event_loop()


async def seed(dsn: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(SCHEMA)
        rows = [(BUCKET, seed_key(i), i, 1, 4096, "0" * 32, i, 0.0) for i in range(SEED_ROWS)]
        await conn.copy_records_to_table("objects", records=rows, columns=COLUMNS)
        await conn.execute("VACUUM ANALYZE objects")
    finally:
        await conn.close()


def spin(seconds: float) -> None:
    """Pure-Python work holding the GIL, like parsing a request and building a response."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


async def busy_task(steps: list[int]) -> None:
    """Other requests' work on the application's loop: BUSY_STEP_S of Python, then a pause."""
    while True:
        spin(BUSY_STEP_S)
        steps[0] += 1
        await asyncio.sleep(BUSY_PAUSE_S)


async def measure(mode: Mode, dsn: str, op: str, concurrency: int, duration: float, busy: int = 0) -> dict:
    """Run `op` from `concurrency` tasks for `duration` seconds: ops/s, latency, client CPU
    (the whole process's: loop, worker threads, bridge thread), load average around it.
    `busy` tasks keep the loop loaded meanwhile (a server with other requests in hand)."""
    await mode.open(dsn, concurrency)
    steps = [0]
    busy_tasks = [asyncio.create_task(busy_task(steps)) for _ in range(busy)]
    counter = itertools.count(1)
    call = getattr(mode, op)

    def argument() -> str:
        n = next(counter) * 7919
        if op == "list":
            return seed_key(n % (SEED_ROWS - LIST_ROWS))  # a page that holds 1,000 current keys
        return seed_key(n % SEED_ROWS)

    async def worker(stop_at: float, latencies: list[float]) -> None:
        while time.perf_counter() < stop_at:
            arg = argument()
            t0 = time.perf_counter()
            await call(arg)
            latencies.append(time.perf_counter() - t0)

    try:
        warm: list[float] = []
        stop_at = time.perf_counter() + WARMUP_S
        await asyncio.gather(*(worker(stop_at, warm) for _ in range(concurrency)))
        load_before = os.getloadavg()[0]
        latencies: list[float] = []
        cpu0, t0, steps[0] = time.process_time(), time.perf_counter(), 0
        stop_at = t0 + duration
        await asyncio.gather(*(worker(stop_at, latencies) for _ in range(concurrency)))
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        load_after = os.getloadavg()[0]
        busy_steps = steps[0]
    finally:
        for task in busy_tasks:
            task.cancel()
        await asyncio.gather(*busy_tasks, return_exceptions=True)
        await mode.close()
    latencies.sort()
    ops = len(latencies)
    return {
        "ops_per_s": ops / elapsed,
        "p50_ms": 1e3 * latencies[ops // 2],
        "p99_ms": 1e3 * latencies[min(ops - 1, int(ops * 0.99))],
        "client_cpu_us_per_op": 1e6 * cpu / ops,
        "load_before": load_before,
        "load_after": load_after,
        "busy_steps_per_s": busy_steps / elapsed,
    }


def default_threads() -> int:
    """What asyncio.to_thread gets from the loop's default executor (Python 3.8+)."""
    return min(32, (os.cpu_count() or 1) + 4)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    threads = args.threads or default_threads()
    if args.threads:
        executor = concurrent.futures.ThreadPoolExecutor(max_workers=args.threads)
        asyncio.get_running_loop().set_default_executor(executor)
    modes: list[Mode] = [PsycopgThread(), AsyncpgBridge(), AsyncpgDirect()]
    results: dict[str, Any] = {
        "loadavg_start": os.getloadavg(),
        "settings": vars(args) | {"worker_threads": threads},
        "versions": versions(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }
    figures: dict[str, dict[str, list[dict]]] = {}
    with PgCluster() as pg:
        await seed(pg.dsn)
        for op in args.ops:
            for conc in args.concurrency:
                case = f"{op} c{conc}"
                for run in range(args.runs):
                    for mode in modes:
                        got = await measure(mode, pg.dsn, op, conc, args.duration, args.busy)
                        figures.setdefault(case, {}).setdefault(mode.name, []).append(got)
                        print(
                            f"{case:8} {mode.name:14} run {run + 1}: {got['ops_per_s']:8.0f} ops/s"
                            f"  p50 {got['p50_ms']:.2f} p99 {got['p99_ms']:.2f} ms"
                            f"  client {got['client_cpu_us_per_op']:.0f} us/op"
                            f"  load {got['load_before']:.2f}->{got['load_after']:.2f}"
                            f"  busy steps {got['busy_steps_per_s']:.0f}/s",
                            file=sys.stderr,
                        )
    results["loadavg_end"] = os.getloadavg()
    results["ended"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    results["cases"] = {
        case: {
            name: {key: statistics.median(r[key] for r in runs) for key in runs[0]}
            | {
                "runs_ops_per_s": [round(r["ops_per_s"]) for r in runs],
                "runs_load": [[round(r["load_before"], 2), round(r["load_after"], 2)] for r in runs],
            }
            for name, runs in by_mode.items()
        }
        for case, by_mode in figures.items()
    }
    return results


def versions() -> dict[str, str]:
    import asyncpg
    import psycopg
    import psycopg_pool

    return {
        "python": sys.version.split()[0],
        "asyncpg": asyncpg.__version__,
        "psycopg": psycopg.__version__,
        "psycopg_pool": psycopg_pool.__version__,
    }


def table(results: dict[str, Any]) -> str:
    a, b, c = MODES
    lines = [
        "| operation | ops/s (a / b / c) | a / c | b / a | p50 ms (a / b / c) | p99 ms (a / b / c) "
        "| client CPU µs/op (a / b / c) | runs, ops/s (a; b; c) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for case, d in results["cases"].items():

        def col(key: str, fmt: str, d: dict = d) -> str:
            return " / ".join(format(d[m][key], fmt) for m in (a, b, c))

        runs = "; ".join(", ".join(f"{x:,}" for x in d[m]["runs_ops_per_s"]) for m in (a, b, c))
        lines.append(
            f"| {case} | {col('ops_per_s', ',.0f')} "
            f"| {d[a]['ops_per_s'] / d[c]['ops_per_s']:.2f}x | {d[b]['ops_per_s'] / d[a]['ops_per_s']:.2f}x "
            f"| {col('p50_ms', '.2f')} | {col('p99_ms', '.2f')} | {col('client_cpu_us_per_op', '.0f')} | {runs} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.choose_pg_bridge", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per measured run")
    parser.add_argument(
        "--ops", type=lambda s: s.split(","), default=list(OPS), help="comma-separated: get,put,list"
    )
    parser.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 16])
    parser.add_argument(
        "--threads", type=int, default=0, help="worker threads (default: asyncio's default executor)"
    )
    parser.add_argument(
        "--busy",
        type=int,
        default=0,
        help="tasks keeping the application's loop busy meanwhile (each 100 µs of Python per ms)",
    )
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    results = asyncio.run(main_async(args))
    if args.json:
        with open(args.json, "w") as out:
            json.dump(results, out, indent=1)
    print(table(results))
    print(
        f"a = {MODES[0]}, b = {MODES[1]}, c = {MODES[2]}; "
        f"{results['settings']['worker_threads']} worker threads; {results['versions']}"
    )
    print(
        f"{results['started']} to {results['ended']}; load average at start "
        f"{results['loadavg_start']}, at end {results['loadavg_end']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
