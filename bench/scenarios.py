"""The benchmark scenarios of issues 2 to 5, each with its set-up, its load-generator job and its target.

A scenario's set-up jobs run once per server (preloading the objects a GET, LIST or copy reads);
its measured job runs `runs` times. Names are what `--scenarios` and `--profile` take; `GROUPS`
names a few scenarios at once for `--scenarios`. `RATIOS` are issue 3's size-independence
targets: one scenario's figure over another's, on the same server in the same run.

Issue 4 (the cost of quotas, rate limits and versioning) compares two Folio targets with the
features off and on (`bench/targets.py`) on the `FEATURE_SCENARIOS`: put4k, get4k and
put4k-overwrite, which rewrites a bounded set of keys so that versions pile up and retention
prunes on every write. `FEATURE_COST_LIMIT` is the issue's bound on the throughput lost.

Issue 5 runs on the `folio` target only: rest-put4k, rest-get4k, rest-put1m and rest-get1m are
put4k, get4k, put1m and get1m through the REST file API (same sizes, concurrency, durations and,
for the GETs, the same preloaded objects), each right after its S3 twin in a full run, compared
with it in the report (`REST_PAIRS`); webhook1000 times the webhook deliveries of a burst of
1,000 4 KiB S3 PUTs. The group `issue5` holds all of them with their S3 twins.

Image transforms against thumbor (the group `images`, bench/images.py): img-webp400, img-smart200,
img-jpeg800 and img-avif800 run on Folio with its image cache off (`folio-img`) and on thumbor with
its defaults (`thumbor`) and with a thread pool (`thumbor-pool`), every request a real transform
(each source served under `bench.images.COPIES` names, cycled); img-cachehit runs on Folio with the cache on
(`folio-img-cache`), over a few URLs transformed once before. `IMAGE_SPEEDUP` and
`CACHE_HIT_FACTOR` are the issue's targets.

Issue 15's uploads (the group `uploads`, bench/dashboard_upload.py, on the `folio` target only, each
on a fresh server): cli-upload1g is `aws s3 cp` of a 1 GiB file to the S3 port, dash-upload1g the
same size through the dashboard's upload endpoints as upload.js sends it. Both report the server's
peak RSS (the dashboard's target: under `UPLOAD_RSS_LIMIT_MIB`) with the upload's MB/s beside it
(the dashboard's target: at least `UPLOAD_SPEED_FLOOR` times the CLI's):

    python -m bench.run --only folio --scenarios uploads --runs 1
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench.images import COPIES as IMAGE_COPIES
from bench.images import IMAGE_BUCKET, SOURCES, TRANSFORMS

KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30
BUCKET, LIST_BUCKET = "bench", "bench-list"
GET_SMALL_KEYS, GET_LARGE_KEYS, LIST_KEYS = 256, 32, 10_000


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    metric: str  # the key of the run result that is the headline figure
    unit: str
    goal: float | None  # the issue's target for Folio; None when it sets none for this figure
    higher_is_better: bool = True
    setup: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    watch_rss: bool = False
    fresh_server: bool = False  # restart every server first, so earlier scenarios leave nothing behind
    # Servers that can lower their minimum part size (Folio, moto) run the scenario with this one,
    # restarted with a fresh directory when they run with another; None: their default (5 MiB).
    min_part_size: int | None = None
    not_for: frozenset[str] = frozenset()  # targets the scenario means nothing for, reported n/a
    # When set, the only targets the scenario runs on (others skip it silently: "not run").
    only_for: frozenset[str] | None = None
    # Secondary figures of the run results shown under the scenario's table: (key, label, unit).
    extras: tuple[tuple[str, str, str], ...] = ()

    def job(self, run: int, duration: float) -> dict[str, Any]:
        """The measured job of run number `run`."""
        return _JOBS[self.name](run, duration)

    def met(self, value: float) -> bool | None:
        if self.goal is None:
            return None
        return value >= self.goal if self.higher_is_better else value < self.goal


@dataclass(frozen=True)
class Ratio:
    """A target on one scenario's median over another's, for the same server (lower is better)."""

    name: str
    title: str
    numerator: str
    denominator: str
    limit: float

    def met(self, value: float) -> bool:
        return value <= self.limit


def _put(
    prefix: str, size: int, concurrency: int, duration: float, max_ops: int, keys: int = 0
) -> dict[str, Any]:
    """A timed PUT job: distinct keys, or with `keys` the keys `prefix + seq % keys` over and over."""
    job = {
        "op": "put",
        "bucket": BUCKET,
        "prefix": prefix,
        "size": size,
        "concurrency": concurrency,
        "duration": duration,
        "max_ops": max_ops,
    }
    return job | {"keys": keys} if keys else job


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


MPU_PART_SIZE, MPU_CONCURRENCY = 8 * MIB, 8
COMPLETE_PARTS, COPIES, MIN_COPIES = 1000, 20, 3
SMALL_PARTS = 1024  # the minimum part size the complete1000 scenarios lower the servers' to
COPY_SMALL_SOURCE, COPY_LARGE_SOURCE = "copy4k/0000000", "copy1g/source"
NOT_S3 = frozenset({"ceiling"})  # the ceiling app has no multipart upload and no copy

# Issue 4: the Folio targets with quotas, rate limits and versioning off and on (bench/targets.py).
FEATURES_OFF, FEATURES_ON = "folio-features-off", "folio-features-on"
FEATURE_TARGETS = frozenset({FEATURES_OFF, FEATURES_ON})
FEATURE_SCENARIOS = ("put4k", "get4k", "put4k-overwrite")
FEATURE_COST_LIMIT = 0.10  # the issue: features on must lose under 10% of the ops/s with them off
# put4k-overwrite rewrites keys 0..99; the set-up writes each KEEP_VERSIONS + 1 times first, so with
# versioning on every key already has its 10 noncurrent versions and each measured PUT prunes one.
OVERWRITE_PREFIX, OVERWRITE_KEYS, KEEP_VERSIONS = "put4k-overwrite/", 100, 10

# Issue 17: the cost of checking every piece a GET sends against its CRC32C. The `folio` target
# verifies (the default); `folio-verify-off` is the same Folio with `[storage] verify_reads = false`.
VERIFY_OFF = "folio-verify-off"
INTEGRITY_SCENARIOS = ("get1m", "get256m")
VERIFY_COST_LIMIT = 0.10  # the issue: under 10% slower with verification on


# Issue 18: scale-out. The same S3 scenarios on Folio as today (`folio`), with `--workers 2` on
# SQLite + local disk, on PostgreSQL + SeaweedFS with one node and with two (the load generator
# spreads its connections over both), and on SeaweedFS's own gateway (`seaweedfs`).
FOLIO_WORKERS2 = "folio-workers2"
FOLIO_PG_SEAWEEDFS, FOLIO_PG_SEAWEEDFS_2NODES = "folio-pg-seaweedfs", "folio-pg-seaweedfs-2nodes"
SCALEOUT_TARGETS = ("folio", FOLIO_WORKERS2, FOLIO_PG_SEAWEEDFS, FOLIO_PG_SEAWEEDFS_2NODES, "seaweedfs")
SCALEOUT_SCENARIOS = ("put4k", "get4k", "put1m", "get1m", "list10k")


@dataclass(frozen=True)
class ScaleOutGoal:
    """Issue 18's target: `numerator`'s median over `denominator`'s on one scenario, at least `floor`."""

    what: str
    scenario: str
    numerator: str
    denominator: str
    floor: float


SCALEOUT_GOALS = (
    ScaleOutGoal("--workers 2 / one process, 4 KiB PUT", "put4k", FOLIO_WORKERS2, "folio", 1.4),
    ScaleOutGoal("--workers 2 / one process, 4 KiB GET", "get4k", FOLIO_WORKERS2, "folio", 1.4),
    ScaleOutGoal(
        "two nodes / one node (PostgreSQL + SeaweedFS), 4 KiB GET",
        "get4k",
        FOLIO_PG_SEAWEEDFS_2NODES,
        FOLIO_PG_SEAWEEDFS,
        1.5,
    ),
    ScaleOutGoal(
        "one node on SeaweedFS / SeaweedFS alone, 1 MiB GET", "get1m", FOLIO_PG_SEAWEEDFS, "seaweedfs", 0.5
    ),
)


# Issue 5: the REST file API against S3 on the same Folio, and webhook delivery under a burst.
FOLIO_ONLY = frozenset({"folio"})
REST_PAIRS = (  # (REST scenario, its S3 twin, what it is)
    ("rest-put4k", "put4k", "4 KiB upload"),
    ("rest-get4k", "get4k", "4 KiB download"),
    ("rest-put1m", "put1m", "1 MiB upload"),
    ("rest-get1m", "get1m", "1 MiB download"),
)
WEBHOOK_SCENARIO, WEBHOOK_WRITES, WEBHOOK_CONCURRENCY, WEBHOOK_WAIT_S = "webhook1000", 1000, 16, 120.0
ISSUE5_SCENARIOS = frozenset({*(rest for rest, _, _ in REST_PAIRS), WEBHOOK_SCENARIO})


# Image transforms against thumbor (bench/images.py, bench/thumbor_env.py).
FOLIO_IMG, FOLIO_IMG_CACHE, THUMBOR, THUMBOR_POOL = "folio-img", "folio-img-cache", "thumbor", "thumbor-pool"
IMAGE_CONCURRENCY = 8
IMAGE_SCENARIOS = {f"img-{name}": name for name in TRANSFORMS}  # scenario -> transform, uncached
CACHE_HIT_SCENARIO, CACHE_HIT_COPIES = "img-cachehit", 4
# The issue: Folio's requests/s at least this many times each thumbor's, on every transform...
IMAGE_SPEEDUP = {THUMBOR: 1.5, THUMBOR_POOL: 1.2}
CACHE_HIT_FACTOR = 10.0  # ...and cache hits at least this many times the uncached rate
IMAGE_UNCACHED_TARGETS = frozenset({FOLIO_IMG, THUMBOR, THUMBOR_POOL})
ALL_IMAGE_SCENARIOS = frozenset({*IMAGE_SCENARIOS, CACHE_HIT_SCENARIO})


# Issue 15: one 1 GiB file through the dashboard's upload endpoints against `aws s3 cp` of the same
# size to the S3 port (bench/dashboard_upload.py), each on a fresh server with its RSS watched.
DASHBOARD_UPLOAD, CLI_UPLOAD = "dash-upload1g", "cli-upload1g"
UPLOAD_SPEED_FLOOR = 0.7  # the issue: the dashboard path at least 0.7x the CLI's MB/s
UPLOAD_RSS_LIMIT_MIB = 200

# Issue 15: the object browser's first page of a 100,000-object prefix (bench/dashboard_listing.py),
# with a middle page and ListObjectsV2 of the same pages beside it.
DASHBOARD_LISTING = "dash-list100k"
LISTING_OBJECTS, LISTING_GOAL_MS = 100_000, 50.0  # the issue: first page, server time p50 < 50 ms


def _img_prepare(copies: int) -> dict[str, Any]:
    """Folio: a public-read bucket holding `copies` copies of every source (thumbor: files written
    when it starts; the job does nothing there)."""
    return {"op": "img_prepare", "bucket": IMAGE_BUCKET, "sources": list(SOURCES), "copies": copies}


def _img_get(transforms: list[str], copies: int, concurrency: int, duration: float) -> dict[str, Any]:
    return {
        "op": "img_get",
        "transforms": transforms,
        "copies": copies,
        "concurrency": concurrency,
        "duration": duration,
        "max_ops": 1_000_000,
    }


def _image_scenario(name: str, transform: str) -> Scenario:
    t = TRANSFORMS[transform]
    width, height = SOURCES[t.source]
    fmt = {"image/webp": "WebP", "image/jpeg": "JPEG", "image/avif": "AVIF"}[t.content_type]
    return Scenario(
        name,
        f"{width}x{height} JPEG to {t.size[0]}x{t.size[1]} {fmt} ({t.folio}), concurrency "
        f"{IMAGE_CONCURRENCY}, every request a transform",
        "ops_per_s",
        "req/s",
        None,
        # The answer is checked once per server (type, size); a thumbor that cannot is n/a.
        setup=(_img_prepare(IMAGE_COPIES), {"op": "img_probe", "transform": transform}),
        only_for=IMAGE_UNCACHED_TARGETS,
    )


def _rest(job: dict[str, Any]) -> dict[str, Any]:
    return job | {"api": "rest"}


def _mpu(key: str, cleanup: bool) -> dict[str, Any]:
    """One 1 GiB multipart upload, 8 MiB parts at concurrency 8, each sent from one buffer."""
    return {
        "op": "mpu",
        "bucket": BUCKET,
        "key": key,
        "size": GIB,
        "part_size": MPU_PART_SIZE,
        "concurrency": MPU_CONCURRENCY,
        "cleanup": cleanup,
    }


def _complete(key: str, part_size: int) -> dict[str, Any]:
    return {
        "op": "complete",
        "bucket": BUCKET,
        "key": key,
        "parts": COMPLETE_PARTS,
        "part_size": part_size,
        "concurrency": MPU_CONCURRENCY,
    }


def _copy(src: str, dst_prefix: str, duration: float) -> dict[str, Any]:
    return {
        "op": "copy",
        "bucket": BUCKET,
        "src": src,
        "dst_prefix": dst_prefix,
        "count": COPIES,
        "min_count": MIN_COPIES,
        "duration": duration,
    }


_JOBS = {
    "put4k": lambda run, d: _put(f"put4k/r{run}/", 4 * KIB, 16, d, 500_000),
    "get4k": lambda run, d: _get("get4k/", 4 * KIB, GET_SMALL_KEYS, 16, d, 500_000),
    "put4k-overwrite": lambda run, d: _put(OVERWRITE_PREFIX, 4 * KIB, 16, d, 500_000, keys=OVERWRITE_KEYS),
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
    "mpu1g": lambda run, d: _mpu(f"mpu1g/r{run}", cleanup=True),
    "copy4k": lambda run, d: _copy(COPY_SMALL_SOURCE, f"copy4k/r{run}/", d),
    "copy1g": lambda run, d: _copy(COPY_LARGE_SOURCE, f"copy1g/r{run}/", d),
    "rest-put4k": lambda run, d: _rest(_put(f"rest-put4k/r{run}/", 4 * KIB, 16, d, 500_000)),
    "rest-get4k": lambda run, d: _rest(_get("get4k/", 4 * KIB, GET_SMALL_KEYS, 16, d, 500_000)),
    "rest-put1m": lambda run, d: _rest(_put(f"rest-put1m/r{run}/", MIB, 8, d, 4_000)),
    "rest-get1m": lambda run, d: _rest(_get("get1m/", MIB, GET_LARGE_KEYS, 8, d, 20_000)),
    WEBHOOK_SCENARIO: lambda run, d: {
        "op": "webhook_burst",
        "bucket": BUCKET,
        "prefix": f"{WEBHOOK_SCENARIO}/r{run}/",
        "count": WEBHOOK_WRITES,
        "size": 4 * KIB,
        "concurrency": WEBHOOK_CONCURRENCY,
        "wait_s": WEBHOOK_WAIT_S,
    },
    **{
        name: (lambda t: lambda run, d: _img_get([t], IMAGE_COPIES, IMAGE_CONCURRENCY, d))(transform)
        for name, transform in IMAGE_SCENARIOS.items()
    },
    CACHE_HIT_SCENARIO: lambda run, d: _img_get(list(TRANSFORMS), CACHE_HIT_COPIES, IMAGE_CONCURRENCY, d),
    DASHBOARD_UPLOAD: lambda run, d: {
        "op": "dashboard_upload",
        "key": f"{DASHBOARD_UPLOAD}/r{run}",
        "size": GIB,
    },
    CLI_UPLOAD: lambda run, d: {"op": "aws_cp", "bucket": BUCKET, "key": f"{CLI_UPLOAD}/r{run}", "size": GIB},
    DASHBOARD_LISTING: lambda run, d: {"op": "browse_listing"},
    "complete1000-1m": lambda run, d: _complete(f"complete1000-1m/r{run}", KIB),
    "complete1000-1g": lambda run, d: _complete(f"complete1000-1g/r{run}", MIB),
}

SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("put4k", "4 KiB PUT, concurrency 16", "ops_per_s", "ops/s", 4000),
        Scenario(
            "rest-put4k",
            "4 KiB REST upload (raw-body POST /api/v1/files), concurrency 16",
            "ops_per_s",
            "ops/s",
            None,
            only_for=FOLIO_ONLY,
        ),
        Scenario(
            "get4k",
            "4 KiB GET, concurrency 16",
            "ops_per_s",
            "ops/s",
            6000,
            setup=(_preload(BUCKET, "get4k/", 4 * KIB, GET_SMALL_KEYS, 16),),
        ),
        Scenario(
            "rest-get4k",
            "4 KiB REST download (GET /api/v1/files/{id}) of get4k's objects, concurrency 16",
            "ops_per_s",
            "ops/s",
            None,
            setup=(_preload(BUCKET, "get4k/", 4 * KIB, GET_SMALL_KEYS, 16),),  # run once per server
            only_for=FOLIO_ONLY,
        ),
        Scenario(
            "put4k-overwrite",
            f"4 KiB PUT, concurrency 16, overwriting {OVERWRITE_KEYS} keys (each already written "
            f"{KEEP_VERSIONS + 1} times)",
            "ops_per_s",
            "ops/s",
            None,
            setup=(
                _preload(BUCKET, OVERWRITE_PREFIX, 4 * KIB, OVERWRITE_KEYS * (KEEP_VERSIONS + 1), 16)
                | {"keys": OVERWRITE_KEYS},
            ),
            only_for=FEATURE_TARGETS,
        ),
        Scenario("put1m", "1 MiB PUT, concurrency 8", "mb_per_s", "MB/s", 600),
        Scenario(
            "rest-put1m",
            "1 MiB REST upload (raw-body POST /api/v1/files), concurrency 8",
            "mb_per_s",
            "MB/s",
            None,
            only_for=FOLIO_ONLY,
        ),
        Scenario(
            "get1m",
            "1 MiB GET, concurrency 8",
            "mb_per_s",
            "MB/s",
            1500,
            setup=(_preload(BUCKET, "get1m/", MIB, GET_LARGE_KEYS, 8),),
        ),
        Scenario(
            "rest-get1m",
            "1 MiB REST download (GET /api/v1/files/{id}) of get1m's objects, concurrency 8",
            "mb_per_s",
            "MB/s",
            None,
            setup=(_preload(BUCKET, "get1m/", MIB, GET_LARGE_KEYS, 8),),  # run once per server
            only_for=FOLIO_ONLY,
        ),
        Scenario(
            WEBHOOK_SCENARIO,
            f"webhook deliveries of a burst of {WEBHOOK_WRITES:,} 4 KiB S3 PUTs at concurrency "
            f"{WEBHOOK_CONCURRENCY} (object.created, loopback receiver)",
            "deliveries_per_s",
            "deliveries/s",
            None,
            only_for=FOLIO_ONLY,
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
        Scenario(
            "mpu1g",
            "one 1 GiB multipart upload, 8 MiB parts at concurrency 8, from Create to the end of Complete",
            "mb_per_s",
            "MB/s",
            None,
            not_for=NOT_S3,
            extras=(("complete_ms", "CompleteMultipartUpload of the 128 parts", "ms"),),
        ),
        Scenario(
            "copy4k",
            f"CopyObject of a 4 KiB object, median of up to {COPIES} copies",
            "latency_ms",
            "ms",
            None,
            higher_is_better=False,
            setup=(_preload(BUCKET, "copy4k/", 4 * KIB, 1, 1),),
            not_for=NOT_S3,
        ),
        Scenario(
            "copy1g",
            f"CopyObject of a 1 GiB object (uploaded by multipart), median of up to {COPIES} copies",
            "latency_ms",
            "ms",
            None,
            higher_is_better=False,
            setup=(_mpu(COPY_LARGE_SOURCE, cleanup=False),),
            not_for=NOT_S3,
        ),
        Scenario(
            "complete1000-1m",
            "CompleteMultipartUpload of 1,000 parts of 1 KiB (1 MiB in all); parts uploaded untimed",
            "latency_ms",
            "ms",
            None,
            higher_is_better=False,
            min_part_size=SMALL_PARTS,
            not_for=NOT_S3,
            extras=(("upload_mb_per_s", "the untimed upload of the parts", "MB/s"),),
        ),
        Scenario(
            "complete1000-1g",
            "CompleteMultipartUpload of 1,000 parts of 1 MiB (1 GiB in all); parts uploaded untimed",
            "latency_ms",
            "ms",
            None,
            higher_is_better=False,
            min_part_size=SMALL_PARTS,
            not_for=NOT_S3,
            extras=(("upload_mb_per_s", "the untimed upload of the parts", "MB/s"),),
        ),
        Scenario(
            CLI_UPLOAD,
            "`aws s3 cp` of a 1 GiB file to the S3 port (the CLI's defaults: 8 MiB parts, 10 at a time), "
            "timed as the whole command; server peak RSS (a fresh server)",
            "peak_rss_mib",
            "MiB",
            None,
            higher_is_better=False,
            watch_rss=True,
            fresh_server=True,
            only_for=FOLIO_ONLY,
            extras=(("mb_per_s", "the upload's speed", "MB/s"),),
        ),
        Scenario(
            DASHBOARD_UPLOAD,
            "a 1 GiB file through the dashboard's upload endpoints as upload.js sends it (a session, 8 MiB "
            f"parts 3 at a time with Content-MD5), create to complete; server peak RSS (a fresh server); "
            f"the issue: under {UPLOAD_RSS_LIMIT_MIB} MiB, and at least {UPLOAD_SPEED_FLOOR}x {CLI_UPLOAD}'s MB/s",
            "peak_rss_mib",
            "MiB",
            UPLOAD_RSS_LIMIT_MIB,
            higher_is_better=False,
            watch_rss=True,
            fresh_server=True,
            only_for=FOLIO_ONLY,
            extras=(("mb_per_s", "the upload's speed", "MB/s"),),
        ),
        Scenario(
            DASHBOARD_LISTING,
            f"the object browser's first page (100 rows) of a prefix of {LISTING_OBJECTS:,} objects, signed in: "
            "p50 of 200 requests on a keep-alive connection, request sent to last byte (a middle page and "
            "ListObjectsV2 of the same pages beside it)",
            "p50_ms",
            "ms",
            LISTING_GOAL_MS,
            higher_is_better=False,
            setup=({"op": "browse_seed", "count": LISTING_OBJECTS},),
            only_for=FOLIO_ONLY,
            extras=(
                ("first_p90_ms", "the first page, p90", "ms"),
                ("first_listing_p50_ms", "first page, Server-Timing `list` (listing, thumbnails), p50", "ms"),
                ("middle_p50_ms", "a middle page (after=, page 501 of 1,000), p50", "ms"),
                ("middle_p90_ms", "the middle page, p90", "ms"),
                ("middle_listing_p50_ms", "the middle page's Server-Timing `list`, p50", "ms"),
                ("s3_first_p50_ms", "ListObjectsV2 (delimiter /, max-keys 100), first page, p50", "ms"),
                ("s3_first_p90_ms", "ListObjectsV2, first page, p90", "ms"),
                ("s3_middle_p50_ms", "ListObjectsV2 with start-after the middle page's marker, p50", "ms"),
                ("s3_middle_p90_ms", "ListObjectsV2 with start-after, p90", "ms"),
                ("page_kb", "the first page's HTML", "KB"),
            ),
        ),
        *(_image_scenario(name, transform) for name, transform in IMAGE_SCENARIOS.items()),
        Scenario(
            CACHE_HIT_SCENARIO,
            f"cache hits: the {len(TRANSFORMS)} transforms of {CACHE_HIT_COPIES} copies each "
            f"({len(TRANSFORMS) * CACHE_HIT_COPIES} URLs, each transformed once before), concurrency "
            f"{IMAGE_CONCURRENCY}",
            "ops_per_s",
            "req/s",
            None,
            setup=(
                _img_prepare(CACHE_HIT_COPIES),
                _img_get(list(TRANSFORMS), CACHE_HIT_COPIES, 1, 600.0)
                | {"max_ops": len(TRANSFORMS) * CACHE_HIT_COPIES},  # the warm-up: one miss each
            ),
            only_for=frozenset({FOLIO_IMG_CACHE}),
        ),
    )
}

GROUPS: dict[str, tuple[str, ...]] = {
    "complete1000": ("complete1000-1m", "complete1000-1g"),
    "features": FEATURE_SCENARIOS,
    # Issue 5 with the S3 figures it is compared with, each REST scenario right after its twin.
    "issue5": (*(name for pair in REST_PAIRS for name in (pair[1], pair[0])), WEBHOOK_SCENARIO),
    "images": (*IMAGE_SCENARIOS, CACHE_HIT_SCENARIO),
    # Issue 15: the dashboard's upload path against the CLI.
    "uploads": (CLI_UPLOAD, DASHBOARD_UPLOAD),
    # Issue 17: GETs with read verification on (`folio`) and off (`folio-verify-off`).
    "integrity": INTEGRITY_SCENARIOS,
    # Issue 18: one process, --workers 2, PostgreSQL + SeaweedFS with one and two nodes, SeaweedFS.
    "scaleout": SCALEOUT_SCENARIOS,
}

RATIOS: tuple[Ratio, ...] = (
    Ratio(
        "complete 1 GiB / 1 MiB",
        "Complete of 1,000 parts: 1 GiB of parts against 1 MiB (the issue: no longer for 1 GiB)",
        "complete1000-1g",
        "complete1000-1m",
        2.0,
    ),
    Ratio(
        "copy 1 GiB / 4 KiB",
        "CopyObject of 1 GiB against 4 KiB (the issue: same order, independent of size)",
        "copy1g",
        "copy4k",
        3.0,
    ),
)


def expand(names: list[str]) -> list[str]:
    """Scenario names with groups replaced by their members, each once, in the order given."""
    out: list[str] = []
    for name in names:
        for member in GROUPS.get(name, (name,)):
            if member not in out:
                out.append(member)
    return out
