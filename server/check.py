"""`folio check`: re-read every blob and inline object and verify its checksums; find
missing blobs, blob files no row names and reference counts that disagree with the rows;
print a progress bar and a summary; exit 1 on damage. `--repair` fixes what needs no
guessing (reference counts, orphan files) and lists the objects that are lost.

Works on a stopped data directory and beside a running server (s3proxy/store/scrub.py
says why that is safe, repair included)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm import tqdm

from core.config import Config
from s3proxy.store.integrity import ScrubSummary
from s3proxy.store.scrub import Scrub
from server.runtime import open_runtime

EXIT_CLEAN, EXIT_DAMAGED, EXIT_FAILED = 0, 1, 2
MB = 1_000_000


def add_check_command(commands: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    check = commands.add_parser(
        "check",
        help="verify every blob and inline object against its checksums; find missing and orphan "
        "blobs and wrong reference counts (exit 1 on damage)",
    )
    common(check)
    check.add_argument(
        "--repair",
        action="store_true",
        help="fix reference counts and remove orphan blob files; list the objects that are lost",
    )
    check.add_argument(
        "--grace",
        type=float,
        metavar="SECONDS",
        help="blob files no row names are orphans once older than this (default: [storage] "
        "gc_grace_seconds; younger ones may be uploads in flight on a running server)",
    )
    check.add_argument(
        "--max-rate", type=float, metavar="MB/s", help="read at most this many MB/s (default: no limit)"
    )
    check.add_argument("--json", action="store_true", help="print the summary as JSON")
    check.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar (none either when stderr is not a terminal)",
    )


# What the commands that work on the embedded store's files answer on PostgreSQL.
SQLITE_ONLY = (
    "{command} works on the embedded SQLite store and its local blob files; with PostgreSQL or"
    " blobs on an upstream S3 use pg_dump/pg_basebackup and your S3 cluster's replication,"
    " see docs/scale-out.md"
)


def run_check(args: argparse.Namespace, config: Config) -> int:
    data_dir = Path(config.storage.data_dir)
    if config.database.url:
        if args.repair:
            print(f"folio: {SQLITE_ONLY.format(command='folio check --repair')}", file=sys.stderr)
            return EXIT_FAILED
    elif not (data_dir / "folio.db").exists():
        print(f"folio: no Folio data directory at {data_dir} (no folio.db)", file=sys.stderr)
        return EXIT_FAILED
    if args.grace is not None and args.grace < 0 or args.max_rate is not None and args.max_rate <= 0:
        print("folio: --grace must be 0 or more and --max-rate more than 0", file=sys.stderr)
        return EXIT_FAILED
    runtime = open_runtime(config, recover=False)  # recovery would remove orphans unseen
    try:
        summary = asyncio.run(_check(runtime.store, args))
    finally:
        runtime.close()
    if args.json:
        print(json.dumps({"dataDir": str(data_dir), **summary.as_json()}, indent=2))
    else:
        print(describe(summary, data_dir, repaired=args.repair))
    return EXIT_DAMAGED if summary.damaged else EXIT_CLEAN


async def _check(store: Any, args: argparse.Namespace) -> ScrubSummary:
    bar = tqdm(
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc="folio check",
        file=sys.stderr,
        # None: only on a terminal (a cron job's log gets the summary, not carriage returns)
        disable=True if args.no_progress else None,
    )
    scrub = Scrub(
        store,
        kind="check",
        repair=args.repair,
        bytes_per_second=args.max_rate * MB if args.max_rate else None,
        grace_seconds=args.grace,
        progress=bar.update,
        readers=2,  # by hand, as fast as the disk: a second read runs while the first is summed
    )
    try:
        bar.total, _items = await scrub.totals()
        bar.refresh()
        return await scrub.run()
    finally:
        bar.close()


def describe(summary: ScrubSummary, data_dir: Path, *, repaired: bool) -> str:
    """The summary for a person: what was read, how fast, what is wrong, what was fixed."""
    seconds = summary.seconds
    rate = summary.bytes_checked / seconds / MB if seconds > 0 else 0.0
    lines = [
        f"folio check of {data_dir}: {summary.blobs_checked} blobs and {summary.inline_checked} inline "
        f"objects, {summary.bytes_checked / MB:,.1f} MB read in {seconds:.1f} s ({rate:,.0f} MB/s)",
    ]
    if summary.checksums_added:
        lines.append(
            f"  checksums recorded for {summary.checksums_added} blobs and objects written before they were kept"
        )
    lines.append(
        f"  corrupt blobs: {len(summary.corrupt_blobs)}, missing blobs: {len(summary.missing_blobs)}, "
        f"corrupt inline objects: {len(summary.corrupt_inline)}"
    )
    for blob_id in summary.corrupt_blobs:
        lines.append(f"    corrupt: blob {blob_id}")
    for blob_id in summary.missing_blobs:
        lines.append(f"    missing: blob {blob_id}")
    fixed = f", {summary.refcounts_fixed} fixed" if repaired else ""
    lines.append(f"  reference counts that disagree with the rows: {len(summary.refcount_mismatches)}{fixed}")
    for item in summary.refcount_mismatches:
        recorded = "no row" if item["recorded"] is None else item["recorded"]
        lines.append(f"    blob {item['blobId']}: recorded {recorded}, rows name it {item['expected']} times")
    removed = f", {summary.orphans_removed} removed" if repaired else ""
    lines.append(
        f"  orphan blob files (no row names them): {len(summary.orphan_files)}{removed}; "
        f"{summary.pending_files} younger than the grace period left alone"
    )
    if summary.lost_objects:
        lines.append(
            "Lost objects (their bytes are damaged or gone: restore them from a backup, or delete them):"
        )
        for item in summary.lost_objects:
            where = (
                f"version {item['versionId']}" if item.get("versionId") else f"upload {item.get('uploadId')}"
            )
            lines.append(f"  {item['bucket']}/{item['key']} ({where}): {item['reason']}")
    if summary.damaged:
        hint = "" if repaired else " (--repair fixes reference counts and orphans)"
        lines.append(f"DAMAGED{hint}")
    else:
        lines.append("clean")
    return "\n".join(lines)
