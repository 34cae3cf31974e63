"""`folio`: serve, and the operator's admin commands."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import ssl
import sys
from collections.abc import Callable
from dataclasses import replace

from core.accounts import AccountExists, UnknownAccount
from core.config import ConfigError, load_config
from core.doc_keys import MAX_KEYS as MAX_DOC_KEYS
from core.doc_keys import TooManyDocKeys
from core.sessions import Sessions
from docgen.service import DocService
from imgtransform.service import ImageService
from restapi.files import RestServices
from s3proxy.api.app import S3App
from s3proxy.api.services import Services
from s3proxy.store.models import Retention
from server import corrupt_log, outage_log, tls
from server.background import prune_versions, scrub_periodically, sweep_incomplete_uploads
from server.backup_cli import add_backup_commands, run_backup_command
from server.check import SQLITE_ONLY, add_check_command, run_check
from server.cluster import Cluster, nodes_report
from server.fdlimit import raise_fd_limit
from server.housekeeping import Housekeeping, add_housekeeping_command, housekeeping_now
from server.memory import tune_malloc
from server.migrate_cli import add_migrate_command, run_migrate
from server.observability import Observability
from server.runtime import ensure_admin_account, open_runtime
from server.serve import run
from server.web import build_web_app
from server.workers import Listeners, supervise


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", help="TOML settings file (default: $FOLIO_CONFIG, else built-in defaults)"
    )
    parser.add_argument(
        "--data-dir", help="data directory (default: $FOLIO_DATA_DIR, else [storage] data_dir)"
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="folio", description="Folio: an S3-compatible object store")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the S3 and web listeners")
    _common(serve)
    serve.add_argument("--s3-listen", help="HOST:PORT of the S3 listener (default 127.0.0.1:9000)")
    serve.add_argument("--web-listen", help="HOST:PORT of the web listener (default 127.0.0.1:8000)")
    serve.add_argument("--tls-cert", help="PEM certificate chain: serve both listeners over HTTPS")
    serve.add_argument("--tls-key", help="PEM private key of --tls-cert")
    serve.add_argument(
        "--workers", type=int, help="worker processes sharing both listeners (default: [server] workers)"
    )

    admin = commands.add_parser("admin", help="operator commands")
    admin_commands = admin.add_subparsers(dest="admin_command", required=True)
    create = admin_commands.add_parser("create-account", help="create an account and print its credentials")
    _common(create)
    create.add_argument("--email", required=True)
    create.add_argument("--password")
    create.add_argument("--display-name")
    create.add_argument("--plan", help="a plan of config.toml (default: [accounts] default_plan)")
    set_plan = admin_commands.add_parser("set-plan", help="move an account to a plan of config.toml")
    _common(set_plan)
    set_plan.add_argument("--email", required=True)
    set_plan.add_argument("--plan", required=True)
    api_key = admin_commands.add_parser(
        "create-api-key", help="create a document API key (cl-...) for an account and print it once"
    )
    _common(api_key)
    api_key.add_argument("--email", required=True)
    api_key.add_argument("--name", default="operator")
    usage = admin_commands.add_parser("usage", help="print an account's storage usage as JSON")
    _common(usage)
    usage.add_argument("--email", required=True)
    retention = admin_commands.add_parser(
        "set-retention", help="give a bucket its own Time Machine retention (or back to its plan's)"
    )
    _common(retention)
    retention.add_argument("--bucket", required=True)
    retention.add_argument("--keep-versions", type=int, help="noncurrent versions kept per key (0: no limit)")
    retention.add_argument(
        "--keep-days", type=float, help="days kept after becoming noncurrent (0: no limit)"
    )
    retention.add_argument("--plan-default", action="store_true", help="follow the owner's plan again")
    prune = admin_commands.add_parser(
        "prune-versions", help="apply Time Machine retention now (also runs in the background)"
    )
    _common(prune)
    prune.add_argument(
        "--now", type=float, help="evaluate retention as if the clock read this Unix time (default: now)"
    )

    add_housekeeping_command(admin_commands, _common)
    nodes = admin_commands.add_parser(
        "nodes", help="list the live nodes (server processes, each worker one) and the leases they hold"
    )
    _common(nodes)
    nodes.add_argument("--json", action="store_true", help="print JSON instead of a table")

    gc = commands.add_parser("gc", help="remove blobs no object references (older than the grace period)")
    _common(gc)
    add_check_command(commands, _common)
    add_migrate_command(commands, _common)
    add_backup_commands(commands, _common)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    corrupt_log.install()
    outage_log.install()
    try:
        config = load_config(
            args.config,
            data_dir=args.data_dir,
            s3_listen=getattr(args, "s3_listen", None),
            web_listen=getattr(args, "web_listen", None),
        )
    except (ConfigError, OSError) as exc:
        sys.exit(f"folio: {exc}")
    if args.command == "serve":
        if args.workers is not None:
            if args.workers < 1:
                sys.exit("folio: --workers must be at least 1")
            config = replace(config, server=replace(config.server, workers=args.workers))
        try:  # before the store opens: a bad certificate stops start-up with one line
            config = tls.with_flags(config, args.tls_cert, args.tls_key)
            context = tls.tls_context(config.server)
        except tls.TlsError as exc:
            sys.exit(f"folio: {exc}")
        _serve(config, context)
    elif args.command == "admin":
        _admin(args, config)
    elif args.command == "check":
        sys.exit(run_check(args, config))
    elif args.command == "migrate":
        sys.exit(run_migrate(args, config))
    elif args.command == "gc":
        runtime = open_runtime(config, recover=False)
        try:
            removed = asyncio.run(runtime.store.collect_garbage())
            print(json.dumps({"removedBlobs": removed}))
        finally:
            runtime.close()
    elif args.command in ("backup", "restore"):
        # A backup copies blob files from the data directory: upstream blobs are not there.
        if config.database.url or config.blobs.backend != "local":
            sys.exit(f"folio: {SQLITE_ONLY.format(command=f'folio {args.command}')}")
        sys.exit(run_backup_command(args, config.data_dir))


def _serve(config, context: ssl.SSLContext | None) -> None:
    # The fsync, checkpoint and I/O threads release the GIL for every fsync, hash and
    # write, and must win it back from the busy event loop. At the default 5 ms switch
    # interval they queue behind it; 0.2 ms measured 30% more small GETs.
    sys.setswitchinterval(0.0002)
    tune_malloc()
    raise_fd_limit(listeners=2, max_connections=config.server.max_connections)
    if config.server.workers <= 1:
        _serve_process(config, context)
        return
    # Once, before any worker starts (server/workers.py): migrations, start-up recovery
    # (no worker has an upload in flight yet) and the first start's admin account.
    runtime = open_runtime(config)
    try:
        ensure_admin_account(runtime)
    finally:
        runtime.close()
    sys.exit(
        supervise(
            config,
            config.server.workers,
            lambda index, listeners: _serve_process(config, context, listeners, index),
        )
    )


def _serve_process(
    config, context: ssl.SSLContext | None, listeners: Listeners | None = None, worker: int | None = None
) -> None:
    """Serve in this process: the only one, or worker `worker` of a supervisor, on the
    `listeners` it bound (recovery and the admin account were its job)."""
    runtime = open_runtime(config, recover=listeners is None)
    closing: list[Callable[[], None]] = []
    try:
        if listeners is None:
            ensure_admin_account(runtime)
        # This process as a node: heartbeat, live node count (rate limits), leases.
        cluster = Cluster(runtime.db)
        runtime.webhooks.node_id = cluster.node.id
        cluster.on_node_gone.append(runtime.webhooks.release_claims)
        services = Services(
            store=runtime.store,
            accounts=runtime.accounts,
            config=config,
            body_timeout=config.server.body_timeout_seconds,
        )
        rest = RestServices(
            runtime.store,
            runtime.accounts,
            config,
            services.limiter,
            Sessions(runtime.db),
            runtime.webhooks,
            runtime.doc_keys,
        )
        image_service = ImageService(runtime.store, runtime.accounts, config, services.limiter)
        closing.append(image_service.close)
        doc_service = DocService(
            runtime.store, runtime.accounts, runtime.doc_keys, runtime.db, runtime.box, config, runtime.webhooks
        )
        doc_service.claims = cluster.claims
        cluster.on_node_gone.append(lambda _conn, _node, _now: doc_service.resume_soon())
        closing.append(doc_service.close)
        # Request metrics, /metrics, the access log and the concurrency bound.
        observed = Observability(config, runtime, services.limiter, rest, image_service.cache)
        closing.append(observed.close)
        apps = [
            (S3App(services), config.server.s3_listen),
            (_web_app(build_web_app(rest, image_service, doc_service), context), config.server.web_listen),
        ]
        scheme = "https" if context else "http"
        logging.getLogger("folio").info(
            "Folio serving S3 on %s://%s and web on %s://%s (data: %s)%s",
            scheme,
            config.server.s3_listen,
            scheme,
            config.server.web_listen,
            config.storage.data_dir,
            f", worker {worker} (node {cluster.node.id})" if worker is not None else "",
        )
        run(
            observed.wrap(apps),
            config,
            [
                cluster.run,
                # One node at a time (a lease each); webhook deliveries and document jobs
                # run everywhere, each claimed by one node.
                cluster.exclusive("multipart-sweep", lambda: sweep_incomplete_uploads(runtime.store, config)),
                cluster.exclusive("version-pruning", lambda: prune_versions(runtime.store, config)),
                cluster.exclusive("scrub", lambda: scrub_periodically(runtime.store, config)),
                runtime.webhooks.run,
                doc_service.run,
                cluster.exclusive(
                    "housekeeping", Housekeeping(runtime.db, config, doc_service.delete_asset).run
                ),
            ],
            context,
            listeners,
        )
    finally:
        for close in closing:
            close()
        runtime.close()


def _web_app(app, context: ssl.SSLContext | None):
    # Over HTTPS the web listener tells browsers to stay on HTTPS (HSTS).
    return tls.StrictTransport(app) if context else app


def _admin(args: argparse.Namespace, config) -> None:
    runtime = open_runtime(config, recover=False)
    try:
        plan = getattr(args, "plan", None)
        if plan is not None and plan not in config.plans:
            sys.exit(f"folio: no plan {args.plan!r} in the configuration ({', '.join(sorted(config.plans))})")
        if args.admin_command == "create-account":
            try:
                created = runtime.accounts.create_account_blocking(
                    args.email, args.password, display_name=args.display_name, plan=args.plan
                )
            except AccountExists:
                sys.exit(f"folio: an account with email {args.email} already exists")
            print(json.dumps(created.as_json(), indent=2))
        elif args.admin_command == "set-plan":
            try:
                account = runtime.accounts.set_plan_blocking(args.email, args.plan)
            except UnknownAccount:
                sys.exit(f"folio: no account with email {args.email}")
            print(json.dumps({"accountId": account.id, "email": account.email, "plan": account.plan}))
        elif args.admin_command == "create-api-key":
            account = runtime.accounts.by_email(args.email)
            if account is None:
                sys.exit(f"folio: no account with email {args.email}")
            try:
                info, token = runtime.doc_keys.create_blocking(account.id, args.name)
            except TooManyDocKeys:
                sys.exit(f"folio: {args.email} already has {MAX_DOC_KEYS} document API keys; revoke one first")
            print(json.dumps({"id": info.id, "name": info.name, "apiKey": token}))
        elif args.admin_command == "usage":
            account = runtime.accounts.by_email(args.email)
            if account is None:
                sys.exit(f"folio: no account with email {args.email}")
            usage = runtime.store.usage(account.id)
            plan = config.plan(account.plan)
            print(
                json.dumps(
                    {
                        "accountId": account.id,
                        "plan": account.plan,
                        "bytesUsed": usage.bytes,
                        "objects": usage.objects,
                        "quotaBytes": plan.storage_bytes,
                        "buckets": {
                            name: {"bytesUsed": used, "objects": count}
                            for name, (used, count) in usage.buckets.items()
                        },
                    }
                )
            )
        elif args.admin_command == "set-retention":
            print(json.dumps(asyncio.run(_set_retention(runtime, args))))
        elif args.admin_command == "prune-versions":
            removed = asyncio.run(runtime.store.prune_versions(now=args.now))
            print(json.dumps({"prunedVersions": removed}))
        elif args.admin_command == "housekeeping":
            print(json.dumps(asyncio.run(housekeeping_now(runtime, config, args.now))))
        elif args.admin_command == "nodes":
            print(nodes_report(runtime.db, as_json=args.json))
    finally:
        runtime.close()


async def _set_retention(runtime, args: argparse.Namespace) -> dict[str, object]:
    bucket = runtime.store.bucket(args.bucket)
    if bucket is None:
        sys.exit(f"folio: no bucket {args.bucket}")
    if args.plan_default:
        keep = None
    else:
        if args.keep_versions is None and args.keep_days is None:
            sys.exit("folio: give --keep-versions and/or --keep-days, or --plan-default")
        current = runtime.store.retention_for(bucket)
        keep = Retention(
            args.keep_versions if args.keep_versions is not None else current.keep_versions,
            args.keep_days if args.keep_days is not None else current.keep_days,
        )
        if keep.keep_versions < 0 or keep.keep_days < 0:
            sys.exit("folio: retention values cannot be negative")
    bucket = await runtime.store.set_retention(bucket, keep)
    effective = runtime.store.retention_for(bucket)
    return {
        "bucket": bucket.name,
        "own": keep is not None,
        "keepVersions": effective.keep_versions,
        "keepDays": effective.keep_days,
    }


if __name__ == "__main__":
    main()
