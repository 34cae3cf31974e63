"""The `folio migrate` subcommand (server/cli.py adds it): where to, from flags or from the new
nodes' config file; the JSON report on stdout; one line on stderr when something is wrong."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from urllib.parse import urlsplit

from core.config import BlobsConfig, Config, ConfigError, load_config
from server.migrate import MigrateError, migrate


def add_migrate_command(
    commands: argparse._SubParsersAction, common: Callable[[argparse.ArgumentParser], None]
) -> None:
    parser = commands.add_parser(
        "migrate",
        help="copy a stopped single-node data directory into PostgreSQL and an S3 bucket (verified, resumable)",
    )
    common(parser)
    parser.add_argument(
        "--to-config", help="the new nodes' config file: its [database] url and [blobs] are the target"
    )
    parser.add_argument("--to-database", help="postgresql://user@host:port/dbname (an empty database)")
    parser.add_argument(
        "--to-blobs",
        help="s3://bucket/prefix/ (credentials: FOLIO_BLOBS_ACCESS_KEY and FOLIO_BLOBS_SECRET_KEY,"
        " else AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)",
    )
    parser.add_argument("--blobs-endpoint", default="", help="the S3-compatible endpoint (default: AWS)")
    parser.add_argument("--blobs-region", default="us-east-1")


def _target(args: argparse.Namespace) -> tuple[str, BlobsConfig]:
    if args.to_config:
        if args.to_database or args.to_blobs:
            raise ConfigError("give --to-config or --to-database with --to-blobs, not both")
        new: Config = load_config(args.to_config, environ={})
        if not new.database.url or new.blobs.backend != "s3":
            raise ConfigError(f'{args.to_config} needs [database] url and [blobs] backend = "s3"')
        return new.database.url, new.blobs
    if not (args.to_database and args.to_blobs):
        raise ConfigError("folio migrate needs --to-config, or --to-database and --to-blobs")
    if not args.to_database.startswith(("postgresql://", "postgres://")):
        raise ConfigError("--to-database must be a postgresql:// URL")
    parts = urlsplit(args.to_blobs)
    if parts.scheme != "s3" or not parts.netloc:
        raise ConfigError("--to-blobs must be s3://bucket/prefix/")
    env = os.environ
    prefix = parts.path.lstrip("/")
    blobs = BlobsConfig(
        backend="s3",
        endpoint=args.blobs_endpoint,
        bucket=parts.netloc,
        region=args.blobs_region,
        access_key=env.get("FOLIO_BLOBS_ACCESS_KEY") or env.get("AWS_ACCESS_KEY_ID", ""),
        secret_key=env.get("FOLIO_BLOBS_SECRET_KEY") or env.get("AWS_SECRET_ACCESS_KEY", ""),
        prefix=prefix if not prefix or prefix.endswith("/") else prefix + "/",
    )
    return args.to_database, blobs


def run_migrate(args: argparse.Namespace, config: Config) -> int:
    from core.db_postgres import PostgresDatabase
    from server.runtime import MIGRATIONS

    if config.database.url or config.blobs.backend != "local":
        print(
            "folio migrate: the source must be a single-node data directory (SQLite + local blobs)",
            file=sys.stderr,
        )
        return 2
    try:
        url, blobs = _target(args)
    except ConfigError as exc:
        print(f"folio migrate: {exc}", file=sys.stderr)
        return 2
    target = PostgresDatabase(url, pool_size=2)

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    try:
        report = migrate(config.data_dir, list(MIGRATIONS), target, blobs, say)
    except MigrateError as exc:
        print(f"folio migrate: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(report.as_json()))
    say(
        "migrated and verified. Give every new node the same master.key (it encrypts the secrets"
        " in the rows): copy it from the data directory, or point [auth] master_key_file at it."
    )
    return 0
