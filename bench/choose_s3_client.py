"""obstore against aiobotocore as Folio's client for an upstream S3 (issue 18's blob backend).

Against the `seaweedfs` bench target (bench/targets.py: `weed server -s3` as it ships, on free
loopback ports, SigV4 checked), each client in a fresh process of its own per case, so that its
peak RSS is its own (sampled every 5 ms while the timed part runs, set-up uploads excluded):

- put4k / get4k at concurrency 16, put1m / get1m at concurrency 8, for `--duration` seconds
- put256m: 256 MiB generated 1 MiB at a time and streamed up (never whole in memory): obstore's
  `put_async` with an async iterator (its multipart upload: 5 MiB parts, up to 12 in flight);
  aiobotocore with an explicit multipart upload (8 MiB parts, up to 4 in flight) since a body of
  unknown length cannot be one PutObject
- get256m: one 256 MiB object read as a stream in 1 MiB chunks and discarded

Both clients keep their defaults otherwise (over plain http both hash each payload for SigV4;
aiobotocore's connection pool is raised to the concurrency). Runs alternate between the
clients; the figures are medians of `--runs`.

aiobotocore pins botocore to an older release than Folio's boto3 needs, so it cannot live in
Folio's virtual environment: it gets one of its own, bench/.cache/s3clients-venv, made on first
use from PyPI (obstore is in the `bench` extra).

    .venv/bin/python -m bench.choose_s3_client             # 3 runs of 3 s: about 3 minutes
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
SIDE_VENV = REPO_ROOT / "bench" / ".cache" / "s3clients-venv"
SIDE_REQUIREMENTS = ("aiobotocore>=2.13", "obstore>=0.6", "uvloop>=0.19")
MiB = 2**20
CASES: dict[str, tuple[str, int, int]] = {  # name: (op, object size, concurrency)
    "put4k": ("put", 4096, 16),
    "get4k": ("get", 4096, 16),
    "put1m": ("put", MiB, 8),
    "get1m": ("get", MiB, 8),
    "put256m": ("put_stream", 256 * MiB, 1),
    "get256m": ("get_stream", 256 * MiB, 1),
}
CLIENTS = ("obstore", "aiobotocore")
CHUNK = MiB


# ---------------------------------------------------------------- the child: one client, one case


class ObstoreClient:
    def __init__(self, ep: dict[str, Any], concurrency: int) -> None:
        from obstore.store import S3Store

        self.obs = __import__("obstore")
        self.store = S3Store(
            ep["bucket"],
            endpoint=f"http://{ep['host']}:{ep['port']}",
            access_key_id=ep["key"],
            secret_access_key=ep["secret"],
            region="us-east-1",
            virtual_hosted_style_request=False,
            client_options={"allow_http": True},
        )

    async def put(self, key: str, body: bytes) -> None:
        await self.obs.put_async(self.store, key, body)

    async def get(self, key: str) -> int:
        result = await self.obs.get_async(self.store, key)
        return len(await result.bytes_async())

    async def put_stream(self, key: str, size: int) -> None:
        await self.obs.put_async(self.store, key, _chunks(size))

    async def get_stream(self, key: str) -> int:
        result = await self.obs.get_async(self.store, key)
        total = 0
        async for chunk in result.stream(min_chunk_size=CHUNK):
            total += len(chunk)
        return total

    async def close(self) -> None:
        pass


class AiobotocoreClient:
    PART = 8 * MiB
    PARTS_IN_FLIGHT = 4

    def __init__(self, ep: dict[str, Any], concurrency: int) -> None:
        self.ep, self.concurrency = ep, concurrency
        self.bucket = ep["bucket"]

    async def open(self) -> None:
        from aiobotocore.config import AioConfig
        from aiobotocore.session import get_session

        self._cm = get_session().create_client(
            "s3",
            endpoint_url=f"http://{self.ep['host']}:{self.ep['port']}",
            aws_access_key_id=self.ep["key"],
            aws_secret_access_key=self.ep["secret"],
            region_name="us-east-1",
            config=AioConfig(max_pool_connections=max(10, self.concurrency), s3={"addressing_style": "path"}),
        )
        self.s3 = await self._cm.__aenter__()

    async def put(self, key: str, body: bytes) -> None:
        await self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)

    async def get(self, key: str) -> int:
        resp = await self.s3.get_object(Bucket=self.bucket, Key=key)
        async with resp["Body"] as body:
            return len(await body.read())

    async def put_stream(self, key: str, size: int) -> None:
        upload = await self.s3.create_multipart_upload(Bucket=self.bucket, Key=key)
        upload_id, parts, gate = upload["UploadId"], [], asyncio.Semaphore(self.PARTS_IN_FLIGHT)

        async def send(number: int, data: bytes) -> None:
            try:
                resp = await self.s3.upload_part(
                    Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data
                )
                parts.append({"PartNumber": number, "ETag": resp["ETag"]})
            finally:
                gate.release()

        tasks, buffer, number = [], bytearray(), 0
        async for chunk in _chunks(size):
            buffer += chunk
            if len(buffer) >= self.PART:
                await gate.acquire()  # at most PARTS_IN_FLIGHT parts held in memory
                number += 1
                tasks.append(asyncio.create_task(send(number, bytes(buffer))))
                buffer = bytearray()
        if buffer:
            await gate.acquire()
            number += 1
            tasks.append(asyncio.create_task(send(number, bytes(buffer))))
        await asyncio.gather(*tasks)
        parts.sort(key=lambda p: p["PartNumber"])
        await self.s3.complete_multipart_upload(
            Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
        )

    async def get_stream(self, key: str) -> int:
        resp = await self.s3.get_object(Bucket=self.bucket, Key=key)
        total = 0
        async with resp["Body"] as body:
            async for chunk in body.iter_chunks(CHUNK):
                total += len(chunk)
        return total

    async def close(self) -> None:
        await self._cm.__aexit__(None, None, None)


async def _chunks(size: int):  # noqa: ANN202 - an async generator of bytes
    block = os.urandom(CHUNK)  # one block reused: generating bytes is not what is measured
    sent = 0
    while sent < size:
        n = min(CHUNK, size - sent)
        yield block[:n] if n < CHUNK else block
        sent += n


class RssSampler:
    """The process's resident set sampled every 5 ms from /proc/self/statm while the timed part
    runs: ru_maxrss cannot be reset, and a GET case's set-up upload must not count as its peak."""

    def __init__(self) -> None:
        import threading

        self.peak = 0
        self._page = os.sysconf("SC_PAGE_SIZE")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        with open("/proc/self/statm") as statm:
            self.peak = max(self.peak, int(statm.read().split()[1]) * self._page)

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self._sample()

    def __enter__(self) -> RssSampler:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


async def child(client_name: str, case: str, ep: dict[str, Any], duration: float, run: int) -> dict:
    op, size, concurrency = CASES[case]
    client: Any = (
        ObstoreClient(ep, concurrency) if client_name == "obstore" else AiobotocoreClient(ep, concurrency)
    )
    if hasattr(client, "open"):
        await client.open()
    body = os.urandom(size) if op in ("put", "get") else b""
    prefix = f"{client_name}/{case}/{run}"
    if op == "get":  # the objects read: one per worker, written first (not timed)
        await asyncio.gather(*(client.put(f"{prefix}/{w}", body) for w in range(concurrency)))
    if op == "get_stream":
        await client.put_stream(f"{prefix}/big", size)
    if op == "put":  # warm up: connections opened, credentials and signing keys made (not timed)
        await asyncio.gather(*(client.put(f"{prefix}/warm/{w}", body) for w in range(concurrency)))
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    latencies: list[float] = []
    sampler = RssSampler().__enter__()
    cpu0, t0 = time.process_time(), time.perf_counter()
    if op in ("put", "get"):
        stop_at = t0 + duration

        async def worker(w: int) -> None:
            n = 0
            while time.perf_counter() < stop_at:
                s = time.perf_counter()
                if op == "put":
                    await client.put(f"{prefix}/{w}/{n}", body)
                else:
                    assert await client.get(f"{prefix}/{w}") == size
                latencies.append(time.perf_counter() - s)
                n += 1

        await asyncio.gather(*(worker(w) for w in range(concurrency)))
    elif op == "put_stream":
        await client.put_stream(f"{prefix}/big", size)
        latencies.append(time.perf_counter() - t0)
    else:
        assert await client.get_stream(f"{prefix}/big") == size
        latencies.append(time.perf_counter() - t0)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    sampler.__exit__()
    await client.close()
    latencies.sort()
    ops = len(latencies)
    return {
        "ops_per_s": ops / elapsed,
        "mb_per_s": ops * size / elapsed / 1e6,
        "p50_ms": 1e3 * latencies[ops // 2],
        "p99_ms": 1e3 * latencies[min(ops - 1, int(ops * 0.99))],
        "client_cpu_ms_per_op": 1e3 * cpu / ops,
        "rss_before_mib": rss_before,
        # the process's peak while the timed part ran (set-up uploads excluded), and over its life
        "peak_rss_mib": sampler.peak / MiB,
        "maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


# ---------------------------------------------------------------- the parent: target, processes, table


def side_python() -> Path:
    """The side environment's interpreter (aiobotocore and obstore), made on first use."""
    python = SIDE_VENV / "bin" / "python"
    stamp = SIDE_VENV / ".installed"
    if stamp.exists() and stamp.read_text() == " ".join(SIDE_REQUIREMENTS):
        return python
    subprocess.run([sys.executable, "-m", "venv", str(SIDE_VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", *SIDE_REQUIREMENTS], check=True)
    stamp.write_text(" ".join(SIDE_REQUIREMENTS))
    return python


def run_child(python: Path, client: str, case: str, ep: dict[str, Any], duration: float, run: int) -> dict:
    payload = json.dumps({"client": client, "case": case, "ep": ep, "duration": duration, "run": run})
    out = subprocess.run(
        [str(python), str(Path(__file__).resolve()), "--child", payload],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO_ROOT,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{client} {case} failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout)


def measure_all(args: argparse.Namespace) -> dict[str, Any]:
    from bench.run import run_loadgen
    from bench.targets import SeaweedFSTarget

    pythons = {"obstore": Path(sys.executable), "aiobotocore": side_python()}
    target = SeaweedFSTarget()
    results: dict[str, Any] = {"loadavg_start": os.getloadavg(), "cases": {}}
    with tempfile.TemporaryDirectory(prefix="choose-s3-") as tmp:
        try:
            endpoint = target.start(Path(tmp))
            results["seaweedfs"] = target.version
            created = run_loadgen(endpoint, {"op": "create_bucket", "bucket": "clients"}, 60)
            assert created.get("ok"), created
            ep = {
                "host": endpoint.host,
                "port": endpoint.port,
                "key": endpoint.access_key,
                "secret": endpoint.secret_key,
                "bucket": "clients",
            }
            raw: dict[str, dict[str, list[dict]]] = {}
            for case in args.cases.split(","):
                for run in range(args.runs):
                    for client in CLIENTS:
                        try:
                            got = run_child(pythons[client], client, case, ep, args.duration, run)
                        except (RuntimeError, subprocess.TimeoutExpired) as exc:  # one case, not the run
                            results.setdefault("failures", []).append(str(exc)[-1500:])
                            print(str(exc)[-1500:], file=sys.stderr)
                            continue
                        raw.setdefault(case, {}).setdefault(client, []).append(got)
                        print(
                            f"{case:8} {client:11} run {run + 1}: {got['ops_per_s']:8.1f} ops/s "
                            f"{got['mb_per_s']:8.1f} MB/s  peak RSS {got['peak_rss_mib']:.0f} MiB",
                            file=sys.stderr,
                        )
        finally:
            target.stop()
    results["loadavg_end"] = os.getloadavg()
    for case, by_client in raw.items():
        results["cases"][case] = {
            client: {key: statistics.median(r[key] for r in runs) for key in runs[0]}
            | {"runs_mb_per_s": [round(r["mb_per_s"], 1) for r in runs]}
            for client, runs in by_client.items()
        }
    return results


def table(results: dict[str, Any]) -> str:
    lines = [
        "| case | obstore | aiobotocore | obstore / aiobotocore | p50 ms (obstore / aiobotocore) "
        "| client CPU ms/op | peak RSS MiB |",
        "|---|---|---|---|---|---|---|",
    ]
    for case, d in results["cases"].items():
        if len(d) < 2:
            lines.append(f"| {case} | failed: see the failures | | | | | |")
            continue
        o, a = d["obstore"], d["aiobotocore"]
        unit, key = ("ops/s", "ops_per_s") if CASES[case][1] <= 4096 else ("MB/s", "mb_per_s")
        lines.append(
            f"| {case} (c{CASES[case][2]}) | {o[key]:,.1f} {unit} | {a[key]:,.1f} {unit} | {o[key] / a[key]:.2f}x "
            f"| {o['p50_ms']:.2f} / {a['p50_ms']:.2f} "
            f"| {o['client_cpu_ms_per_op']:.2f} / {a['client_cpu_ms_per_op']:.2f} "
            f"| {o['peak_rss_mib']:.0f} / {a['peak_rss_mib']:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.choose_s3_client", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--duration", type=float, default=3.0, help="seconds per timed run of the small cases"
    )
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated: {','.join(CASES)}")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # internal: one client, one case
    args = parser.parse_args(argv)
    if args.child:
        job = json.loads(args.child)
        try:
            import uvloop

            uvloop.install()
        except ImportError:
            pass
        result = asyncio.run(child(job["client"], job["case"], job["ep"], job["duration"], job["run"]))
        print(json.dumps(result))
        return 0
    results = measure_all(args)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    print(table(results))
    print(f"load average at start {results['loadavg_start']}, at end {results['loadavg_end']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
