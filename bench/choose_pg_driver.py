"""asyncpg against psycopg 3 (async) for Folio-like statements on PostgreSQL (issue 18's choice).

A throwaway cluster (bench/pg_cluster.py: Debian's PostgreSQL, a temporary directory, a free
loopback port, default durability: fsync and synchronous_commit on) holds an `objects` table
shaped like Folio's index (bucket, key in byte order with COLLATE "C", version, size, ETag,
blob reference) seeded with 20,000 rows. Each driver runs, for a fixed time, at concurrency 1
and 16 (one connection per worker, no pool: the pool is not what is compared):

- insert: one row inserted in its own transaction (BEGIN, INSERT, COMMIT: a PUT's metadata write)
- select: one row by primary key (a GET or HEAD)
- scan:   1,000 rows of a keyset-paginated range (`key > $last ORDER BY key LIMIT 1000`: a listing page)

Runs alternate between the drivers (asyncpg, psycopg, asyncpg, ...) so that other work on the
machine falls on both; the figures are medians of `--runs`. Both on uvloop, as Folio's server.
The client's own CPU per operation is reported too: on 2 cores it is taken from the server.

    .venv/bin/python -m bench.choose_pg_driver              # 3 runs of 3 s each: about 2 minutes
    .venv/bin/python -m bench.choose_pg_driver --runs 5 --duration 5 --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bench.pg_cluster import PgCluster

SEED_ROWS = 20_000
SCAN_ROWS = 1_000
BUCKET = 1

SCHEMA = """
CREATE TABLE objects (
    bucket_id bigint NOT NULL,
    key text COLLATE "C" NOT NULL,
    version_id bigint NOT NULL,
    size bigint NOT NULL,
    etag text NOT NULL,
    blob_id bigint,
    created_at double precision NOT NULL,
    PRIMARY KEY (bucket_id, key)
)
"""
INSERT = (
    "INSERT INTO objects (bucket_id, key, version_id, size, etag, blob_id, created_at) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7)"
)
SELECT = "SELECT version_id, size, etag, blob_id FROM objects WHERE bucket_id = $1 AND key = $2"
SCAN = "SELECT key, size, etag FROM objects WHERE bucket_id = $1 AND key > $2 ORDER BY key LIMIT 1000"


def seed_key(i: int) -> str:
    return f"photos/2026/{i:08d}.jpg"


def psycopg_sql(sql: str) -> str:
    """psycopg's placeholders are %s, asyncpg's $n."""
    for n in range(7, 0, -1):
        sql = sql.replace(f"${n}", "%s")
    return sql


class Driver:
    """One driver's connect and the three statements, behind one interface."""

    name = ""

    async def connect(self, dsn: str) -> Any: ...
    async def close(self, conn: Any) -> None: ...
    async def insert(self, conn: Any, args: tuple[Any, ...]) -> None: ...
    async def select(self, conn: Any, key: str) -> None: ...
    async def scan(self, conn: Any, after: str) -> int: ...


class AsyncpgDriver(Driver):
    name = "asyncpg"

    def __init__(self) -> None:
        import asyncpg

        self.mod = asyncpg

    async def connect(self, dsn: str) -> Any:
        return await self.mod.connect(dsn)

    async def close(self, conn: Any) -> None:
        await conn.close()

    async def insert(self, conn: Any, args: tuple[Any, ...]) -> None:
        async with conn.transaction():
            await conn.execute(INSERT, *args)

    async def select(self, conn: Any, key: str) -> None:
        row = await conn.fetchrow(SELECT, BUCKET, key)
        assert row is not None

    async def scan(self, conn: Any, after: str) -> int:
        return len(await conn.fetch(SCAN, BUCKET, after))


class PsycopgDriver(Driver):
    """psycopg 3's AsyncConnection; it prepares a statement server-side after 5 executions
    (its default `prepare_threshold`), as asyncpg does from the first."""

    name = "psycopg"

    def __init__(self) -> None:
        import psycopg

        self.mod = psycopg
        self.insert_sql, self.select_sql, self.scan_sql = map(psycopg_sql, (INSERT, SELECT, SCAN))

    async def connect(self, dsn: str) -> Any:
        return await self.mod.AsyncConnection.connect(dsn, autocommit=True)

    async def close(self, conn: Any) -> None:
        await conn.close()

    async def insert(self, conn: Any, args: tuple[Any, ...]) -> None:
        async with conn.transaction():
            await conn.execute(self.insert_sql, args)

    async def select(self, conn: Any, key: str) -> None:
        cur = await conn.execute(self.select_sql, (BUCKET, key))
        assert await cur.fetchone() is not None

    async def scan(self, conn: Any, after: str) -> int:
        cur = await conn.execute(self.scan_sql, (BUCKET, after))
        return len(await cur.fetchall())


async def seed(dsn: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(SCHEMA)
        rows = [(BUCKET, seed_key(i), i, 4096, "0" * 32, i, 0.0) for i in range(SEED_ROWS)]
        await conn.copy_records_to_table(
            "objects",
            records=rows,
            columns=["bucket_id", "key", "version_id", "size", "etag", "blob_id", "created_at"],
        )
        await conn.execute("VACUUM ANALYZE objects")
    finally:
        await conn.close()


async def measure(driver: Driver, dsn: str, op: str, concurrency: int, duration: float, tag: str) -> dict:
    """Run `op` on `concurrency` connections for `duration` seconds; ops/s, latency and client CPU."""
    conns = [await driver.connect(dsn) for _ in range(concurrency)]
    latencies: list[float] = []
    counter = [0]

    def next_args(worker: int) -> Callable[[Any], Awaitable[Any]]:
        n = counter[0] = counter[0] + 1
        if op == "insert":
            key = f"new/{tag}/{worker}/{n:09d}"
            return lambda c: driver.insert(c, (BUCKET, key, n, 4096, "f" * 32, n, time.time()))
        if op == "select":
            return lambda c: driver.select(c, seed_key((n * 7919) % SEED_ROWS))
        start = (n * 7919) % (SEED_ROWS - SCAN_ROWS)  # a page that holds 1,000 rows
        return lambda c: _scan(driver, c, seed_key(start))

    async def worker(i: int, conn: Any, stop_at: float) -> None:
        while time.perf_counter() < stop_at:
            call = next_args(i)
            t0 = time.perf_counter()
            await call(conn)
            latencies.append(time.perf_counter() - t0)

    for conn in conns:  # warm up: connections open, statements prepared (psycopg after 5 runs)
        for _ in range(6):
            await next_args(0)(conn)
    latencies.clear()
    cpu0, t0 = time.process_time(), time.perf_counter()
    stop_at = t0 + duration
    await asyncio.gather(*(worker(i, c, stop_at) for i, c in enumerate(conns)))
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    for conn in conns:
        await driver.close(conn)
    latencies.sort()
    ops = len(latencies)
    return {
        "ops_per_s": ops / elapsed,
        "p50_ms": 1e3 * latencies[ops // 2],
        "p99_ms": 1e3 * latencies[min(ops - 1, int(ops * 0.99))],
        "client_cpu_us_per_op": 1e6 * cpu / ops,
    }


async def _scan(driver: Driver, conn: Any, after: str) -> None:
    got = await driver.scan(conn, after)
    assert got == SCAN_ROWS, got


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    drivers: list[Driver] = [AsyncpgDriver(), PsycopgDriver()]
    results: dict[str, Any] = {"loadavg_start": os.getloadavg(), "settings": vars(args).copy()}
    figures: dict[str, dict[str, list[dict]]] = {}
    with PgCluster() as pg:
        await seed(pg.dsn)
        for op in ("insert", "select", "scan"):
            for conc in (1, 16):
                case = f"{op} c{conc}"
                for run in range(args.runs):
                    for driver in drivers:
                        got = await measure(
                            driver, pg.dsn, op, conc, args.duration, f"{driver.name}{run}c{conc}"
                        )
                        figures.setdefault(case, {}).setdefault(driver.name, []).append(got)
                        print(
                            f"{case:10} {driver.name:8} run {run + 1}: {got['ops_per_s']:9.0f} ops/s"
                            f"  p50 {got['p50_ms']:.2f} ms  client {got['client_cpu_us_per_op']:.0f} us/op",
                            file=sys.stderr,
                        )
    results["loadavg_end"] = os.getloadavg()
    results["cases"] = {
        case: {
            name: {key: statistics.median(r[key] for r in runs) for key in runs[0]}
            | {"runs_ops_per_s": [round(r["ops_per_s"]) for r in runs]}
            for name, runs in by_driver.items()
        }
        for case, by_driver in figures.items()
    }
    return results


def table(results: dict[str, Any]) -> str:
    lines = [
        "| statement | asyncpg ops/s | psycopg ops/s | asyncpg / psycopg | p50 ms (asyncpg / psycopg) "
        "| client CPU µs/op (asyncpg / psycopg) |",
        "|---|---|---|---|---|---|",
    ]
    for case, d in results["cases"].items():
        a, p = d["asyncpg"], d["psycopg"]
        lines.append(
            f"| {case} | {a['ops_per_s']:,.0f} | {p['ops_per_s']:,.0f} | {a['ops_per_s'] / p['ops_per_s']:.2f}x "
            f"| {a['p50_ms']:.2f} / {p['p50_ms']:.2f} "
            f"| {a['client_cpu_us_per_op']:.0f} / {p['client_cpu_us_per_op']:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.choose_pg_driver", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per measured run")
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
    print(f"load average at start {results['loadavg_start']}, at end {results['loadavg_end']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
