"""The `folio backup` and `folio restore` subcommands (server/cli.py adds them): flags,
argument checks, the JSON report on stdout, one line on stderr when something is wrong."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from server.backup import backup, list_backups
from server.backup_targets import BackupError, open_target
from server.restore import restore


def add_backup_commands(
    commands: argparse._SubParsersAction, common: Callable[[argparse.ArgumentParser], None]
) -> None:
    """`folio backup` and `folio restore` (server/cli.py calls this)."""
    back = commands.add_parser(
        "backup",
        help="copy a consistent snapshot (database, blobs, master.key) to a directory or s3://bucket/prefix",
    )
    common(back)
    back.add_argument("dest", metavar="DEST", help="a directory, or s3://bucket/prefix")
    back.add_argument(
        "--copy", action="store_true", help="copy blobs even on the same filesystem (default: hard-link them)"
    )
    back.add_argument(
        "--keep",
        type=int,
        default=0,
        help="then keep only the newest N backups and the blobs they use (0: all)",
    )
    _target_flags(back)

    rest = commands.add_parser(
        "restore", help="rebuild a data directory (--data-dir) from a backup and verify it"
    )
    common(rest)
    rest.add_argument("src", metavar="SRC", help="a directory, or s3://bucket/prefix")
    rest.add_argument("--backup-id", help="which backup (default: the newest); --list shows them")
    rest.add_argument("--list", action="store_true", help="list the backups in SRC and exit")
    rest.add_argument(
        "--force", action="store_true", help="replace the data directory's Folio files if it is not empty"
    )
    rest.add_argument("--no-verify", action="store_true", help="skip the verification after restoring")
    _target_flags(rest)


def _target_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--endpoint-url", help="S3-compatible endpoint of an s3:// location (default: AWS)")
    parser.add_argument("--region", help="region of an s3:// location (default: from the AWS configuration)")
    parser.add_argument(
        "--profile", help="AWS profile for an s3:// location (default: the environment's credentials)"
    )
    parser.add_argument("--jobs", type=int, default=8, help="blobs stored or fetched at once (default 8)")


def run_backup_command(args: argparse.Namespace, data_dir: Path) -> int:
    """Run `folio backup` or `folio restore`; prints a JSON report, returns the exit status
    (1 with a one-line reason when it cannot be done, or when the result is not whole)."""
    try:
        return _run(args, data_dir)
    except BackupError as exc:
        print(f"folio: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace, data_dir: Path) -> int:
    if args.jobs < 1:
        raise BackupError("--jobs must be 1 or more")
    location = args.dest if args.command == "backup" else args.src
    target = open_target(
        location,
        endpoint_url=args.endpoint_url,
        region=args.region,
        profile=args.profile,
        copy_only=getattr(args, "copy", False),
    )
    if args.command == "backup":
        if args.keep < 0:
            raise BackupError("--keep must be 0 (keep all) or more")
        _refuse_inside(Path(location), data_dir, "the backup")
        report = backup(data_dir, target, jobs=args.jobs, keep=args.keep)
        print(json.dumps(asdict(report)))
        if report.missingBlobs:
            print(
                f"folio: {len(report.missingBlobs)} blobs the database references were already missing "
                f"from {data_dir}; run `folio check`",
                file=sys.stderr,
            )
            return 1
        return 0
    if args.list:
        print(json.dumps([_summary(m) for m in list_backups(target)], indent=2))
        return 0
    _refuse_inside(data_dir, Path(location), "the restored data directory")
    restored = restore(
        target,
        data_dir,
        backup_id=args.backup_id,
        force=args.force,
        jobs=args.jobs,
        verify=not args.no_verify,
        config_path=args.config,
    )
    print(json.dumps(asdict(restored)))
    if restored.verification and not restored.verification.get("clean"):
        print(f"folio: the restored data directory {data_dir} did not verify clean", file=sys.stderr)
        return 1
    return 0


def _refuse_inside(inner: Path, outer: Path, what: str) -> None:
    if "://" in str(inner) or "://" in str(outer):
        return
    inner, outer = inner.resolve(), outer.resolve()
    if inner == outer or outer in inner.parents:
        raise BackupError(f"{what} ({inner}) cannot be inside {outer}")


def _summary(manifest: dict[str, object]) -> dict[str, object]:
    sizes: list[int] = list(manifest["blobs"].values())  # type: ignore[union-attr]
    return {
        "id": manifest["id"],
        "createdAt": manifest["createdAt"],
        "blobs": len(sizes),
        "bytes": sum(sizes) + int(manifest["database"]["bytes"]),  # type: ignore[index]
    }
