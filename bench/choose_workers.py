"""`folio serve --workers N` on one machine (issue 18): 4 KiB PUT and GET at concurrency 16
against one process and two workers, the two with one shared listening socket per address
and with a socket per worker bound with SO_REUSEPORT (server/workers.py), side by side in
turns (run 1 on each, then run 2...), medians of `--runs`.

    .venv/bin/python -m bench.choose_workers --runs 3 --duration 5      # about 3 minutes

Each worker's CPU seconds over a run, and the S3 connections each holds halfway through it,
are read from /proc (psutil) to show how evenly the kernel spread the connections. The load generator is bench/loadgen.py, one process per run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from bench.loadgen import Endpoint
from bench.run import run_loadgen
from bench.targets import BENCH_PLAN
from tests.folio_process import FolioProcess

KIB = 1024
GET_KEYS = 2000


@dataclass
class Variant:
    name: str
    workers: int
    sockets: str = "shared"
    server: FolioProcess | None = None
    endpoint: Endpoint | None = None
    results: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def _workers_cpu(server: FolioProcess) -> dict[int, float]:
    assert server.proc is not None
    parent = psutil.Process(server.proc.pid)
    procs = parent.children() if server.workers > 1 else [parent]
    found = {}
    for proc in procs:
        try:
            times = proc.cpu_times()
        except psutil.Error:
            continue
        found[proc.pid] = times.user + times.system
    return found


def _connections(server: FolioProcess) -> list[int]:
    """How many S3 connections each serving process holds (established, on the S3 port)."""
    assert server.proc is not None
    parent = psutil.Process(server.proc.pid)
    procs = parent.children() if server.workers > 1 else [parent]
    counts = []
    for proc in procs:
        try:
            found = proc.net_connections(kind="tcp")
        except psutil.Error:
            continue
        counts.append(
            sum(
                1
                for c in found
                if c.status == psutil.CONN_ESTABLISHED and c.laddr and c.laddr.port == server.s3_port
            )
        )
    return sorted(counts)


def _start(variant: Variant, root: Path) -> None:
    server = FolioProcess(
        data_dir=root / variant.name / "data",
        config_text=BENCH_PLAN,
        workers=variant.workers,
        env={"FOLIO_WORKER_SOCKETS": variant.sockets},
    )
    server.start(timeout=60)
    variant.server = server
    variant.endpoint = Endpoint(
        "127.0.0.1", server.s3_port, server.access_key, server.secret_key, web_port=server.web_port
    )
    run_loadgen(variant.endpoint, {"op": "create_bucket", "bucket": "bench"}, 60)
    preload = {
        "op": "put",
        "bucket": "bench",
        "prefix": "get4k/",
        "size": 4 * KIB,
        "count": GET_KEYS,
        "concurrency": 16,
    }
    run_loadgen(variant.endpoint, preload, 300)


def _job(op: str, run: int, duration: float) -> dict[str, Any]:
    if op == "put4k":
        return {
            "op": "put",
            "bucket": "bench",
            "prefix": f"put4k/r{run}/",
            "size": 4 * KIB,
            "concurrency": 16,
            "duration": duration,
            "max_ops": 500_000,
        }
    return {
        "op": "get",
        "bucket": "bench",
        "prefix": "get4k/",
        "size": 4 * KIB,
        "count": GET_KEYS,
        "concurrency": 16,
        "duration": duration,
        "max_ops": 500_000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args()
    variants = [
        Variant("one-process", 1),
        Variant("workers2-shared", 2),
        Variant("workers2-reuseport", 2, "reuseport"),
    ]
    with tempfile.TemporaryDirectory(prefix="folio-workers-") as tmp:
        try:
            for variant in variants:
                _start(variant, Path(tmp))
            for run in range(args.runs):
                for op in ("put4k", "get4k"):
                    for variant in variants:
                        assert variant.server is not None and variant.endpoint is not None
                        before = _workers_cpu(variant.server)
                        load_before = os.getloadavg()[0]
                        spread: list[list[int]] = []
                        sampler = threading.Timer(
                            args.duration / 2 + 1.0,
                            lambda v=variant, into=spread: into.append(_connections(v.server)),
                        )
                        sampler.start()
                        result = run_loadgen(variant.endpoint, _job(op, run, args.duration), 120)
                        sampler.join()
                        result["connections"] = spread[0] if spread else []
                        after = _workers_cpu(variant.server)
                        result["worker_cpu_s"] = sorted(
                            round(after[pid] - before.get(pid, 0.0), 2) for pid in after
                        )
                        result["load"] = load_before
                        variant.results.setdefault(op, []).append(result)
                        print(
                            f"run {run + 1} {op:6} {variant.name:20} {result.get('ops_per_s', 0):8.0f} ops/s"
                            f"  p50 {result.get('p50_ms', 0):6.2f} ms  p99 {result.get('p99_ms', 0):7.2f} ms"
                            f"  errors {result.get('errors', 0)}  worker CPU s {result['worker_cpu_s']}"
                            f"  connections {result['connections']}"
                            f"  load {load_before:.1f}",
                            flush=True,
                        )
                        time.sleep(0.5)
        finally:
            for variant in variants:
                if variant.server is not None:
                    variant.server.stop()
    summary = {}
    for variant in variants:
        for op, runs in variant.results.items():
            summary[f"{variant.name} {op}"] = {
                "ops_per_s_median": statistics.median(r.get("ops_per_s", 0.0) for r in runs),
                "p50_ms_median": statistics.median(r.get("p50_ms", 0.0) for r in runs),
                "p99_ms_median": statistics.median(r.get("p99_ms", 0.0) for r in runs),
                "ops_per_s": [round(r.get("ops_per_s", 0.0)) for r in runs],
                "worker_cpu_s": [r["worker_cpu_s"] for r in runs],
                "connections": [r["connections"] for r in runs],
            }
    for name, figures in summary.items():
        print(
            f"{name:28} median {figures['ops_per_s_median']:8.0f} ops/s  p50 {figures['p50_ms_median']:.2f} ms"
            f"  p99 {figures['p99_ms_median']:.2f} ms  runs {figures['ops_per_s']}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
