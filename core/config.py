"""Folio's settings: typed sections, loaded from `config.toml`, then `FOLIO_*`
environment variables, then command-line flags (each later source wins)."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from core.strictparse import ascii_int


@dataclass(frozen=True)
class ServerConfig:
    engine: str = "uvicorn"  # "uvicorn" (uvloop + httptools) or "hypercorn"
    s3_listen: str = "127.0.0.1:9000"
    web_listen: str = "127.0.0.1:8000"
    region: str = "us-east-1"
    # Base domain for virtual-hosted-style buckets ("bucket.s3.example.com"); empty: path-style only.
    domain: str = ""
    shutdown_grace_seconds: float = 10.0
    # A request body left idle this long is answered 400 RequestTimeout, as S3 does.
    body_timeout_seconds: float = 20.0
    # Slow or silent connections (per listener): the request head must be complete this long
    # after the connection opened or the last response ended; idle keep-alive connections close.
    header_timeout_seconds: float = 30.0
    keep_alive_timeout_seconds: float = 5.0
    # More connections than this on one listener are closed as they are accepted.
    max_connections: int = 1024
    # Request line and headers; more is answered 431.
    max_header_bytes: int = 65536
    log_level: str = "info"
    # HTTPS on both listeners: PEM certificate chain and key files (both or neither).
    tls_cert: str = ""
    tls_key: str = ""
    # Requests each listener serves at once; more get 503 SlowDown with Retry-After (S3 XML
    # on the S3 listener, JSON on the web one). 0: no bound.
    max_concurrent_requests: int = 256
    # JSON-lines access log: "" off, "-" standard error, else a file path.
    access_log: str = ""
    # /metrics on the web listener; when set, it needs `Authorization: Bearer <token>`.
    metrics_token: str = ""
    # Reverse proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (comma-separated
    # addresses, uvicorn's forwarded_allow_ips); "" believes no one.
    forwarded_allow_ips: str = ""
    # Worker processes sharing both listeners, the database and the blob store (issue 18).
    workers: int = 1


@dataclass(frozen=True)
class StorageConfig:
    data_dir: str = "data"
    # Objects up to this size live inline in the metadata row: one transaction, no file, no fsync.
    inline_threshold: int = 65536
    # "full": every commit group is fsynced (survives power loss); "normal": survives a process crash only.
    sync: str = "full"
    # Unreferenced blobs younger than this are left alone by `folio gc` on a live server.
    gc_grace_seconds: int = 3600
    # Bodies are written to disk in pieces of this size, off the event loop.
    write_chunk_bytes: int = 1048576
    # The first this many bytes of each blob are written with O_DIRECT (past the page cache),
    # the rest through it; 0: all through it. Either way each blob is fsynced before its write
    # is acknowledged.
    direct_write_bytes: int = 16 * 1024 * 1024
    # Disk space held in `reserve` (preallocated) and given up on a full disk so that deletes
    # can still be recorded; 0: none.
    reserve_bytes: int = 16 * 1024 * 1024
    # Every GET checks the pieces it sends against the checksums recorded at write time.
    verify_reads: bool = True
    # The background scrub re-reads every object this often (0: never), at most this fast.
    scrub_interval_seconds: float = 7 * 86400.0
    scrub_bytes_per_second: int = 50 * 1024 * 1024
    # Writes are refused (disk full) while free space is under the smaller of these two,
    # before the disk is really full; 0 turns either off.
    min_free_bytes: int = 1024**3
    min_free_percent: float = 2.0


@dataclass(frozen=True)
class DatabaseConfig:
    # "" : the SQLite file `folio.db` in the data directory (the default, fastest on one
    # machine); "postgresql://user@host:port/dbname": PostgreSQL 15+ shared by every node.
    url: str = ""
    # Connections each process keeps open to PostgreSQL (ignored for SQLite).
    pool_size: int = 10


@dataclass(frozen=True)
class BlobsConfig:
    # Where object bytes above [storage] inline_threshold live: "local" (blobs/ in the data
    # directory) or "s3" (any S3-compatible cluster, under opaque keys: never the user's).
    backend: str = "local"
    endpoint: str = ""  # e.g. "http://127.0.0.1:8333"; "" is AWS S3 itself
    bucket: str = ""
    region: str = "us-east-1"
    access_key: str = ""
    secret_key: str = ""
    # Upstream keys are `<prefix><blob id>`; several Folio installations can share a bucket.
    prefix: str = "folio-blobs/"


@dataclass(frozen=True)
class HousekeepingConfig:
    """Tables that would only grow, pruned on a schedule."""

    interval_seconds: float = 3600.0
    # Dispatched events and webhook deliveries (the dashboard's delivery log) kept this long.
    events_days: float = 7.0
    deliveries_days: float = 30.0
    # Finished document jobs (and their records) kept this long.
    jobs_days: float = 30.0
    # Expired sessions, share links and document assets are removed this long after expiry.
    expired_grace_days: float = 1.0


@dataclass(frozen=True)
class AuthConfig:
    max_clock_skew_seconds: int = 900
    # The key that encrypts secrets at rest and derives signing keys: "" is master.key in
    # the data directory. Nodes that serve the same database must share it (FOLIO_MASTER_KEY_FILE).
    master_key_file: str = ""


@dataclass(frozen=True)
class LimitsConfig:
    max_keys_per_list: int = 1000
    max_delete_objects: int = 1000
    # Largest XML request body we parse (DeleteObjects with 1000 long keys fits).
    max_xml_body: int = 2 * 1024 * 1024
    # Multipart: every part but the last must be at least this big (EntityTooSmall).
    min_part_size: int = 5 * 1024 * 1024
    # Incomplete multipart uploads older than this are aborted by a background sweep.
    multipart_expiry_days: float = 7.0
    # Largest single upload through the REST API (413 PayloadTooLarge beyond it).
    max_upload_bytes: int = 5 * 1024**3
    # A request over its plan's rate waits for its token (asynchronously) while the wait
    # stays within this many seconds; past it, 429. 0: refuse at once.
    max_rate_wait_seconds: float = 2.0
    # The quota an upload in flight holds is released this long after its process stops
    # renewing it (a process killed mid-upload); renewed every few seconds while it streams.
    quota_reservation_seconds: float = 60.0


@dataclass(frozen=True)
class AccountsConfig:
    # The plan of new accounts (and of accounts whose plan is no longer configured).
    default_plan: str = "default"
    # Anonymous requests (public-read objects) are rate limited per client address
    # with this plan's rates.
    anonymous_plan: str = "default"
    # The plan of the admin account made on first start (no rate limits by default).
    admin_plan: str = "admin"
    # Sign-up and login attempts per minute, per client address and per email (a burst
    # of as many): password guessing stays slow.
    login_attempts_per_minute: int = 10


@dataclass(frozen=True)
class VersioningConfig:
    # Versioning of new buckets: "Enabled" keeps previous versions ("Time Machine"),
    # "Off" makes them unversioned as in AWS. The S3 versioning API changes it per bucket.
    new_buckets: str = "Enabled"
    # How often the background task prunes versions past their plan's retention.
    prune_interval_seconds: float = 3600.0


@dataclass(frozen=True)
class WebhooksConfig:
    # Outbound guard: allow targets on private networks (and link-local, metadata), on
    # loopback only, and plain http.
    allow_private_targets: bool = False
    allow_loopback_targets: bool = False
    allow_http: bool = False
    timeout_seconds: float = 10.0
    # A failed delivery is retried this many times, after backoff_seconds, then x2, x4...
    retries: int = 3
    backoff_seconds: float = 2.0
    # Consecutive failed attempts that disable a webhook (PATCH active=true re-enables it).
    disable_after_failures: int = 10
    # Webhooks per account.
    max_per_account: int = 10


@dataclass(frozen=True)
class ImagesConfig:
    """On-the-fly image transforms (/api/img): cache, worker pool and source limits."""

    # Transformed images kept under data/cache/img, least recently used evicted; 0: no cache.
    cache_max_bytes: int = 1024**3
    # Transform threads (Pillow releases the GIL); 0: one per core, plus one to keep the
    # cores busy while a thread runs the Python between Pillow's calls.
    workers: int = 0
    # Transforms running or waiting beyond this answer 503 Busy with Retry-After.
    max_queue: int = 64
    # Sources larger than this are refused (413) without being read.
    max_source_bytes: int = 50 * 1000 * 1000
    # Decompression-bomb guards, checked from the image header before decoding.
    max_source_pixels: int = 50 * 1000 * 1000
    max_source_side: int = 16384
    # Longest output side, after dpr.
    max_output_side: int = 4096
    # AVIF is slow to encode: a negotiated AVIF larger than this many pixels is WebP instead.
    avif_max_pixels: int = 1024 * 1024
    # libavif's encoder speed, 0 (slowest, smallest) to 10; 8 is imgproxy's default and
    # about 13x faster than libavif's own default of 6 here, at much the same size.
    avif_speed: int = 8
    # libwebp's method, 0 (fastest) to 6; 2 encodes in half the time of libwebp's
    # default 4 here for files about 2% larger.
    webp_method: int = 2
    timeout_seconds: float = 20.0
    # Longest lifetime POST /api/img/sign grants a signed URL.
    max_signed_seconds: int = 7 * 24 * 3600


@dataclass(frozen=True)
class DocgenConfig:
    """The document API (/v1, /v2): rendering workers, request bounds, outbound guard."""

    # WeasyPrint worker processes; 0: one per core.
    workers: int = 0
    # A worker is replaced after this many documents (keeps memory flat).
    recycle_after: int = 200
    # Largest JSON or multipart request body.
    max_request_bytes: int = 20 * 1000 * 1000
    # Largest page or resource fetched while rendering a URL.
    max_fetch_bytes: int = 20 * 1000 * 1000
    # URL rendering and user-storage endpoints may not reach private networks (and
    # link-local, metadata) or loopback addresses unless allowed here.
    allow_private_targets: bool = False
    allow_loopback_targets: bool = False
    # How long an asset's pre-authenticated download link (`url`) stays valid.
    asset_link_seconds: int = 7 * 24 * 3600
    # The Chromium engine (JavaScript pages; url/* by default) when Debian's chromium is
    # installed: jobs at once in the one warm browser, and a restart after this many.
    chromium: bool = True
    chromium_concurrency: int = 2
    chromium_restart_after: int = 100
    # Without an `engine` in the request, html and template documents with more
    # elements than this go to Chromium when it is installed (JavaScript off): WeasyPrint
    # lays out ~0.6 ms per element. 0: WeasyPrint always (docgen/engine_choice.py).
    long_document_elements: int = 1000
    # Templates are evaluated in worker processes of their own, never on the event loop:
    # this many at once; each evaluation stopped (its worker killed) past
    # template_seconds; each worker refused memory beyond template_memory_mb MiB on top
    # of its own (docs/document-api.md, "Template limits").
    template_workers: int = 2
    template_seconds: float = 5.0
    template_memory_mb: int = 512


@dataclass(frozen=True)
class PlanConfig:
    """What an account may use. 0 means unlimited for every number."""

    # Every stored byte: current objects, noncurrent versions, parts of unfinished uploads.
    storage_bytes: int = 10 * 1024**3
    max_buckets: int = 10
    max_access_keys: int = 5
    # Requests per second per access key (anonymous: per client address), by class.
    write_per_second: int = 100  # PUT, POST, DELETE
    read_per_second: int = 300  # GET, HEAD
    list_per_second: int = (
        50  # ListBuckets, ListObjects(V2), ListObjectVersions, ListParts, ListMultipartUploads
    )
    # Dashboard API calls (/api/account, keys, buckets, versions, webhooks, shares) per account.
    dashboard_per_minute: int = 30
    # Document API (/v1, /v2) requests per minute per account (X-RateLimit-* headers;
    # 429 past it), and document jobs per calendar month (402 past it); 0: unlimited.
    docgen_per_minute: int = 60
    docgen_calls_per_month: int = 0
    # Time Machine retention: noncurrent versions kept per key, and for how many days
    # after they stopped being current. Buckets may set their own.
    keep_versions: int = 10
    keep_days: float = 30.0


# The request rates of a plan (the rest are quotas and retention).
RATE_FIELDS = (
    "write_per_second",
    "read_per_second",
    "list_per_second",
    "dashboard_per_minute",
    "docgen_per_minute",
)


def unlimited_rates(plan: PlanConfig) -> PlanConfig:
    """The plan with every request rate unlimited and its quotas as they are."""
    return replace(plan, **dict.fromkeys(RATE_FIELDS, 0))


def _default_plans() -> dict[str, PlanConfig]:
    return {"default": PlanConfig(), "admin": unlimited_rates(PlanConfig())}


@dataclass(frozen=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    blobs: BlobsConfig = field(default_factory=BlobsConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    accounts: AccountsConfig = field(default_factory=AccountsConfig)
    versioning: VersioningConfig = field(default_factory=VersioningConfig)
    webhooks: WebhooksConfig = field(default_factory=WebhooksConfig)
    images: ImagesConfig = field(default_factory=ImagesConfig)
    docgen: DocgenConfig = field(default_factory=DocgenConfig)
    housekeeping: HousekeepingConfig = field(default_factory=HousekeepingConfig)
    plans: dict[str, PlanConfig] = field(default_factory=_default_plans)

    @property
    def data_dir(self) -> Path:
        return Path(self.storage.data_dir)

    def plan(self, name: str) -> PlanConfig:
        """A plan by name; an unknown name (a plan removed from the file) is the default plan."""
        found = self.plans.get(name)
        return found if found is not None else self.plans[self.accounts.default_plan]


class ConfigError(ValueError):
    """A setting is unknown or has the wrong type."""


def _section(cls: type, values: dict[str, Any], name: str) -> Any:
    known = {f.name: f for f in fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(f"unknown setting [{name}] {key}")
        default = getattr(cls(), key)
        if isinstance(default, float) and isinstance(value, int):
            value = float(value)
        if type(default) is not type(value):
            raise ConfigError(f"[{name}] {key} must be {type(default).__name__}, not {type(value).__name__}")
        kwargs[key] = value
    return cls(**kwargs)


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    data_dir: str | None = None,
    s3_listen: str | None = None,
    web_listen: str | None = None,
    environ: dict[str, str] | None = None,
) -> Config:
    """Read the TOML file (if any), then apply FOLIO_* variables, then explicit arguments."""
    env = os.environ if environ is None else environ
    path = path or env.get("FOLIO_CONFIG")
    raw: dict[str, Any] = {}
    if path:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
    sections = {f.name: f.type for f in fields(Config)}
    for name in raw:
        if name not in sections:
            raise ConfigError(f"unknown section [{name}]")
    plans = _default_plans()
    raw_plans = raw.get("plans", {})
    if not isinstance(raw_plans, dict):
        raise ConfigError("[plans] must be a table of [plans.NAME] tables")
    for plan_name, values in raw_plans.items():
        if not isinstance(values, dict):
            raise ConfigError(f"[plans.{plan_name}] must be a table")
        plans[plan_name] = _section(PlanConfig, values, f"plans.{plan_name}")
    accounts = _section(AccountsConfig, raw.get("accounts", {}), "accounts")
    admin_plan, default_plan = accounts.admin_plan, accounts.default_plan
    if admin_plan != default_plan and admin_plan not in raw_plans and default_plan in plans:
        # Not defined in the file: the default plan's quotas without its rate limits.
        plans[admin_plan] = unlimited_rates(plans[default_plan])
    config = Config(
        server=_section(ServerConfig, raw.get("server", {}), "server"),
        storage=_section(StorageConfig, raw.get("storage", {}), "storage"),
        database=_section(DatabaseConfig, raw.get("database", {}), "database"),
        blobs=_section(BlobsConfig, raw.get("blobs", {}), "blobs"),
        auth=_section(AuthConfig, raw.get("auth", {}), "auth"),
        limits=_section(LimitsConfig, raw.get("limits", {}), "limits"),
        accounts=accounts,
        versioning=_section(VersioningConfig, raw.get("versioning", {}), "versioning"),
        webhooks=_section(WebhooksConfig, raw.get("webhooks", {}), "webhooks"),
        images=_section(ImagesConfig, raw.get("images", {}), "images"),
        docgen=_section(DocgenConfig, raw.get("docgen", {}), "docgen"),
        housekeeping=_section(HousekeepingConfig, raw.get("housekeeping", {}), "housekeeping"),
        plans=plans,
    )
    overrides = {
        "data_dir": data_dir or env.get("FOLIO_DATA_DIR"),
        "s3_listen": s3_listen or env.get("FOLIO_S3_LISTEN"),
        "web_listen": web_listen or env.get("FOLIO_WEB_LISTEN"),
    }
    if overrides["data_dir"]:
        config = replace(config, storage=replace(config.storage, data_dir=overrides["data_dir"]))
    if overrides["s3_listen"]:
        config = replace(config, server=replace(config.server, s3_listen=overrides["s3_listen"]))
    if overrides["web_listen"]:
        config = replace(config, server=replace(config.server, web_listen=overrides["web_listen"]))
    if env.get("FOLIO_MASTER_KEY_FILE"):
        config = replace(config, auth=replace(config.auth, master_key_file=env["FOLIO_MASTER_KEY_FILE"]))
    _validate(config)
    return config


def _validate(config: Config) -> None:
    if config.server.engine not in ("uvicorn", "hypercorn"):
        raise ConfigError('[server] engine must be "uvicorn" or "hypercorn"')
    if config.storage.sync not in ("full", "normal"):
        raise ConfigError('[storage] sync must be "full" or "normal"')
    for name in ("s3_listen", "web_listen"):
        parse_listen(getattr(config.server, name))
    if bool(config.server.tls_cert) != bool(config.server.tls_key):
        raise ConfigError("[server] tls_cert and tls_key go together: set both or neither")
    if config.server.max_concurrent_requests < 0:
        raise ConfigError("[server] max_concurrent_requests must be 0 (no bound) or more")
    if not 0 <= config.storage.min_free_percent < 100 or config.storage.min_free_bytes < 0:
        raise ConfigError("[storage] min_free_percent must be from 0 to 99 and min_free_bytes 0 or more")
    if config.storage.scrub_interval_seconds < 0 or config.storage.scrub_bytes_per_second < 1:
        raise ConfigError("[storage] scrub_interval_seconds must be 0 or more, scrub_bytes_per_second at least 1")
    if config.server.workers < 1:
        raise ConfigError("[server] workers must be at least 1")
    url = config.database.url
    if url and not url.startswith(("postgresql://", "postgres://")):
        raise ConfigError('[database] url must be "" (SQLite in the data directory) or postgresql://...')
    if config.database.pool_size < 1:
        raise ConfigError("[database] pool_size must be at least 1")
    if config.blobs.backend not in ("local", "s3"):
        raise ConfigError('[blobs] backend must be "local" or "s3"')
    if config.blobs.backend == "s3" and not config.blobs.bucket:
        raise ConfigError('[blobs] backend = "s3" needs a bucket')
    if config.versioning.new_buckets not in ("Enabled", "Off"):
        raise ConfigError('[versioning] new_buckets must be "Enabled" or "Off"')
    if not 0 <= config.images.avif_speed <= 10:
        raise ConfigError("[images] avif_speed must be from 0 to 10")
    if not 0 <= config.images.webp_method <= 6:
        raise ConfigError("[images] webp_method must be from 0 to 6")
    if config.images.max_queue < 1 or config.images.workers < 0:
        raise ConfigError("[images] max_queue must be at least 1 and workers at least 0")
    if config.limits.max_rate_wait_seconds < 0:
        raise ConfigError("[limits] max_rate_wait_seconds must be 0 or more")
    if config.accounts.login_attempts_per_minute < 1:
        raise ConfigError("[accounts] login_attempts_per_minute must be at least 1")
    for name in ("default_plan", "anonymous_plan", "admin_plan"):
        plan = getattr(config.accounts, name)
        if plan not in config.plans:
            raise ConfigError(f"[accounts] {name} names a plan that is not defined: {plan!r}")


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, raw_port = value.rpartition(":")
    port = ascii_int(raw_port, maximum=65535)
    if not sep or port is None:
        raise ConfigError(f"listen address must be HOST:PORT, not {value!r}")
    return host.strip("[]") or "127.0.0.1", port
