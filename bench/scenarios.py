"""The benchmark scenarios of issue 2, each with its set-up, its load-generator job and its target.

A scenario's set-up jobs run once per server (preloading the objects a GET or LIST reads);
its measured job runs `runs` times. Names are what `--scenarios` and `--profile` take.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30
BUCKET, LIST_BUCKET = "bench", "bench-list"
GET_SMALL_KEYS, GET_LARGE_KEYS, LIST_KEYS = 256, 32, 10_000


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    metric: str  # the key of the run result that is the headline figure
    unit: str
    goal: float  # the target for Folio
    higher_is_better: bool = True
    setup: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    watch_rss: bool = False
    fresh_server: bool = False  # restart every server first, so earlier scenarios leave nothing behind

    def job(self, run: int, duration: float) -> dict[str, Any]:
        """The measured job of run number `run`."""
        return _JOBS[self.name](run, duration)

    def met(self, value: float) -> bool:
        return value >= self.goal if self.higher_is_better else value < self.goal


def _put(prefix: str, size: int, concurrency: int, duration: float, max_ops: int) -> dict[str, Any]:
    return {
        "op": "put",
        "bucket": BUCKET,
        "prefix": prefix,
        "size": size,
        "concurrency": concurrency,
        "duration": duration,
        "max_ops": max_ops,
    }


def _preload(bucket: str, prefix: str, size: int, count: int, concurrency: int) -> dict[str, Any]:
    return {
        "op": "put",
        "bucket": bucket,
        "prefix": prefix,
        "size": size,
        "count": count,
        "concurrency": concurrency,
    }


def _get(
    prefix: str, size: int, count: int, concurrency: int, duration: float, max_ops: int
) -> dict[str, Any]:
    return {
        "op": "get",
        "bucket": BUCKET,
        "prefix": prefix,
        "size": size,
        "count": count,
        "concurrency": concurrency,
        "duration": duration,
        "max_ops": max_ops,
    }


_JOBS = {
    "put4k": lambda run, d: _put(f"put4k/r{run}/", 4 * KIB, 16, d, 500_000),
    "get4k": lambda run, d: _get("get4k/", 4 * KIB, GET_SMALL_KEYS, 16, d, 500_000),
    "put1m": lambda run, d: _put(f"put1m/r{run}/", MIB, 8, d, 4_000),
    "get1m": lambda run, d: _get("get1m/", MIB, GET_LARGE_KEYS, 8, d, 20_000),
    "put256m": lambda run, d: {
        "op": "put_stream",
        "bucket": BUCKET,
        "key": f"put256m/r{run}",
        "size": 256 * MIB,
    },
    "get256m": lambda run, d: {
        "op": "get_stream",
        "bucket": BUCKET,
        "key": "get256m/0000000",
        "size": 256 * MIB,
    },
    "list10k": lambda run, d: {
        "op": "list",
        "bucket": LIST_BUCKET,
        "page_size": 1000,
        "expect": LIST_KEYS,
        "duration": min(d, 2.0),
        "max_passes": 20,
    },
    "rss1g": lambda run, d: {"op": "put_stream", "bucket": BUCKET, "key": f"rss1g/r{run}", "size": GIB},
}

SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("put4k", "4 KiB PUT, concurrency 16", "ops_per_s", "ops/s", 4000),
        Scenario(
            "get4k",
            "4 KiB GET, concurrency 16",
            "ops_per_s",
            "ops/s",
            6000,
            setup=(_preload(BUCKET, "get4k/", 4 * KIB, GET_SMALL_KEYS, 16),),
        ),
        Scenario("put1m", "1 MiB PUT, concurrency 8", "mb_per_s", "MB/s", 600),
        Scenario(
            "get1m",
            "1 MiB GET, concurrency 8",
            "mb_per_s",
            "MB/s",
            1500,
            setup=(_preload(BUCKET, "get1m/", MIB, GET_LARGE_KEYS, 8),),
        ),
        Scenario("put256m", "one 256 MiB PUT, one stream", "mb_per_s", "MB/s", 550),
        Scenario(
            "get256m",
            "one 256 MiB GET, one stream",
            "mb_per_s",
            "MB/s",
            2000,
            setup=({"op": "put_stream", "bucket": BUCKET, "key": "get256m/0000000", "size": 256 * MIB},),
        ),
        Scenario(
            "list10k",
            "LIST 10,000 keys, ListObjectsV2 pages of 1,000",
            "keys_per_s",
            "keys/s",
            40_000,
            setup=(
                {"op": "create_bucket", "bucket": LIST_BUCKET},
                _preload(LIST_BUCKET, "list/", 0, LIST_KEYS, 16),
            ),
        ),
        Scenario(
            "rss1g",
            "server peak RSS during one 1 GiB PUT (each server freshly started)",
            "peak_rss_mib",
            "MiB",
            150,
            higher_is_better=False,
            watch_rss=True,
            fresh_server=True,
        ),
    )
}
