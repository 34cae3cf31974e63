"""Folio's settings: typed sections, loaded from `config.toml`, then `FOLIO_*`
environment variables, then command-line flags (each later source wins)."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any


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
    log_level: str = "info"


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


@dataclass(frozen=True)
class AuthConfig:
    max_clock_skew_seconds: int = 900


@dataclass(frozen=True)
class LimitsConfig:
    max_buckets: int = 10
    max_keys_per_list: int = 1000
    max_delete_objects: int = 1000
    # Largest XML request body we parse (DeleteObjects with 1000 long keys fits).
    max_xml_body: int = 2 * 1024 * 1024
    # Multipart: every part but the last must be at least this big (EntityTooSmall).
    min_part_size: int = 5 * 1024 * 1024
    # Incomplete multipart uploads older than this are aborted by a background sweep.
    multipart_expiry_days: float = 7.0


@dataclass(frozen=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)

    @property
    def data_dir(self) -> Path:
        return Path(self.storage.data_dir)


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
    config = Config(
        server=_section(ServerConfig, raw.get("server", {}), "server"),
        storage=_section(StorageConfig, raw.get("storage", {}), "storage"),
        auth=_section(AuthConfig, raw.get("auth", {}), "auth"),
        limits=_section(LimitsConfig, raw.get("limits", {}), "limits"),
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
    _validate(config)
    return config


def _validate(config: Config) -> None:
    if config.server.engine not in ("uvicorn", "hypercorn"):
        raise ConfigError('[server] engine must be "uvicorn" or "hypercorn"')
    if config.storage.sync not in ("full", "normal"):
        raise ConfigError('[storage] sync must be "full" or "normal"')
    for name in ("s3_listen", "web_listen"):
        parse_listen(getattr(config.server, name))


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"listen address must be HOST:PORT, not {value!r}")
    return host.strip("[]") or "127.0.0.1", int(port)
