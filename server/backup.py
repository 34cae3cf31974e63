"""`folio backup DEST`: a consistent copy of a data directory, taken while Folio runs,
into a directory or an S3-compatible bucket (server/backup_targets.py); server/restore.py
brings it back, server/backup_cli.py is the command line.

What makes a backup consistent while writes go on:

1. The database is copied with SQLite's online backup API in one step: one read
   transaction, so the snapshot is one point in time, and every write acknowledged
   before the backup started is in it (a write is acknowledged after its commit).
2. Then every blob the snapshot references is copied. Blobs never change once
   published, so a blob already in the target is reused, and one on the same
   filesystem is hard-linked instead of copied.
3. A blob can vanish between 1 and 2: its last reference was dropped after the
   snapshot and the store deleted the file (an overwrite, a delete, version pruning,
   `folio gc`). The snapshot still references it, so it would restore broken.
   Then the backup takes a fresh snapshot and copies what that one references: the
   row was deleted before the file (the store frees a file only after the
   transaction that drops its last reference commits), so the fresh snapshot no
   longer references it. Blobs copied by the first attempt are reused. We chose this
   over a lock that holds the store's deletions off: the store never waits for a
   backup, and a backup that dies cannot leave deletions held off.
   A blob missing from two snapshots in a row was lost before the backup began (the
   store's own damage, `folio check` reports it): it is listed in the manifest as
   missing and the command exits non-zero.
4. The snapshot is stored, then the manifest: a backup exists once its manifest does,
   so an interrupted run leaves the previous backups intact.

`master.key` is part of every backup: without it the S3 secret keys and other
secrets in the database cannot be decrypted. A backup must be protected like the
data directory itself.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from server.backup_targets import MARKER, BackupError, Target, blob_name

log = logging.getLogger("folio.backup")

FORMAT = 1
# Fresh snapshots taken when blobs vanish under the copy; each attempt only copies what
# the previous ones did not, so a second attempt practically always succeeds.
MAX_ATTEMPTS = 5
PROGRESS_SECONDS = 5.0


@dataclass
class BackupReport:
    id: str
    target: str
    databaseBytes: int = 0
    blobs: int = 0
    blobsCopied: int = 0
    blobsLinked: int = 0
    blobsReused: int = 0
    bytesCopied: int = 0
    bytesLinked: int = 0
    bytesReused: int = 0
    snapshots: int = 0
    missingBlobs: list[str] = field(default_factory=list)
    prunedBackups: list[str] = field(default_factory=list)
    prunedBlobs: int = 0
    seconds: float = 0.0


def new_backup_id(now: float | None = None) -> str:
    """A UTC timestamp with milliseconds: sorts in time order, unique per run."""
    moment = datetime.fromtimestamp(time.time() if now is None else now, UTC)
    return moment.strftime("%Y%m%dT%H%M%S.") + f"{moment.microsecond // 1000:03d}Z"


def snapshot_database(db_path: Path, out_path: Path) -> dict[str, int]:
    """Copy the live database into `out_path`; returns the blobs it references (id -> size)."""
    if not db_path.is_file():
        raise BackupError(f"{db_path} does not exist: is --data-dir the Folio data directory?")
    # mode=rw: never create an empty database where the real one is missing.
    source = sqlite3.connect(f"file:{db_path}?mode=rw", uri=True, timeout=30)
    try:
        # Created 0600 first (SQLite would use the umask): it holds password hashes and
        # encrypted secrets. SQLite takes an empty file as a new database.
        os.close(os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        target = sqlite3.connect(out_path)
        try:
            # pages=-1 (all at once) holds one read transaction for the whole copy: a single
            # point in time, and in WAL mode it never blocks the server's writer.
            source.backup(target, pages=-1)
            # One self-contained file (no -wal beside it) is what a backup should be.
            target.execute("PRAGMA journal_mode=DELETE")
            verdict = target.execute("PRAGMA quick_check").fetchone()[0]
            if verdict != "ok":
                raise BackupError(f"the database snapshot does not pass SQLite's quick_check: {verdict}")
            try:
                return dict(target.execute("SELECT id, size FROM blobs"))
            except sqlite3.OperationalError as exc:
                raise BackupError(f"{db_path} is not a Folio database ({exc})") from exc
        finally:
            target.close()
    finally:
        source.close()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def _blob_ids(names: dict[str, int]) -> dict[str, int]:
    """`blobs/ab/cd/<id>` names from a listing -> {id: size}."""
    found = {}
    for name, size in names.items():
        blob_id = name.rsplit("/", 1)[-1]
        if len(blob_id) == 32 and name == blob_name(blob_id):
            found[blob_id] = size
    return found


class BlobProgress:
    """A log line every few seconds while blobs are copied (long runs are not silent)."""

    def __init__(self, total: int) -> None:
        self.total, self.done, self.bytes = total, 0, 0
        self._lock = threading.Lock()
        self._next = time.monotonic() + PROGRESS_SECONDS

    def add(self, size: int) -> None:
        with self._lock:
            self.done += 1
            self.bytes += size
            if time.monotonic() >= self._next:
                self._next = time.monotonic() + PROGRESS_SECONDS
                log.info("blobs: %d of %d stored (%.1f MB)", self.done, self.total, self.bytes / 1e6)


def _check_target(target: Target, key: bytes) -> None:
    """Refuse a place that holds something else, or another Folio's backups."""
    marker = target.read_bytes(MARKER)
    if marker is None:
        if target.exists():
            raise BackupError(
                f"{target.description} is not empty and holds no Folio backup ({MARKER} is missing)"
            )
        target.write_bytes(MARKER, json.dumps({"format": FORMAT, "tool": "folio backup"}).encode())
    elif json.loads(marker).get("format") != FORMAT:
        raise BackupError(f"{target.description} holds backups of another format ({marker.decode()!r})")
    stored_key = target.read_bytes("master.key")
    if stored_key is None:
        target.write_bytes("master.key", key)
    elif stored_key != key:
        # Every backup there needs the key it was taken with; mixing instances would lose one.
        raise BackupError(f"{target.description} holds backups of another Folio (its master.key differs)")


def backup(
    data_dir: Path,
    target: Target,
    *,
    jobs: int = 8,
    keep: int = 0,
    after_snapshot: Callable[[int], None] | None = None,
) -> BackupReport:
    """Back `data_dir` up into `target`. `keep` > 0 then removes all but the newest `keep`
    backups and the blobs only they used. `after_snapshot(attempt)` runs after each
    snapshot (tests use it to free a blob at the worst moment)."""
    started = time.monotonic()
    key_path = data_dir / "master.key"
    if not key_path.is_file():
        raise BackupError(f"{key_path} does not exist: is --data-dir the Folio data directory?")
    key = key_path.read_bytes()
    report = BackupReport(id=new_backup_id(), target=target.description)
    _check_target(target, key)  # before the lock file: a refused place is left as it was
    with target.lock():
        stored = _blob_ids(target.list("blobs/"))
        with tempfile.TemporaryDirectory(prefix=".partial-", dir=target.scratch_dir()) as scratch:
            snapshot = Path(scratch) / f"folio-{report.id}.db"
            referenced, missing = _snapshot_and_blobs(
                data_dir, snapshot, target, stored, report, jobs, after_snapshot
            )
            # What the backup holds; lost blobs are named apart (restore fetches the rest,
            # and `folio check` on the restored directory names the objects they held).
            held = {blob_id: size for blob_id, size in referenced.items() if blob_id not in missing}
            report.databaseBytes = snapshot.stat().st_size
            manifest = {
                "format": FORMAT,
                "id": report.id,
                "createdAt": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "source": str(data_dir.resolve()),
                "database": {
                    "name": f"db/folio-{report.id}.db",
                    "bytes": report.databaseBytes,
                    "sha256": sha256_file(snapshot),
                },
                "masterKey": {"name": "master.key", "sha256": hashlib.sha256(key).hexdigest()},
                "blobs": held,
                "missingBlobs": sorted(missing),
            }
            target.put_file(f"db/folio-{report.id}.db", snapshot)
        target.flush()
        # The manifest last: from now on this backup exists.
        target.write_bytes(f"manifests/{report.id}.json", json.dumps(manifest).encode())
        report.blobs = len(held)
        report.missingBlobs = sorted(missing)
        if keep > 0:
            report.prunedBackups, report.prunedBlobs = prune(target, keep)
    report.seconds = round(time.monotonic() - started, 3)
    return report


def _snapshot_and_blobs(
    data_dir: Path,
    snapshot: Path,
    target: Target,
    stored: dict[str, int],
    report: BackupReport,
    jobs: int,
    after_snapshot: Callable[[int], None] | None,
) -> tuple[dict[str, int], set[str]]:
    """Snapshot, then store the blobs it references; a fresh snapshot if some vanished."""
    blob_root = data_dir / "blobs"
    vanished_before: set[str] = set()
    stored_now: dict[str, str] = {}  # blobs this run put into the target -> "linked"/"copied"
    for attempt in range(1, MAX_ATTEMPTS + 1):
        snapshot.unlink(missing_ok=True)
        referenced = snapshot_database(data_dir / "folio.db", snapshot)
        report.snapshots = attempt
        log.info("snapshot %d: %d blobs referenced", attempt, len(referenced))
        if after_snapshot is not None:
            after_snapshot(attempt)
        todo = [(blob_id, size) for blob_id, size in referenced.items() if stored.get(blob_id) != size]
        vanished = _store_blobs(blob_root, target, todo, stored, stored_now, jobs)
        # Still referenced by a fresh snapshot and still gone: lost before we came.
        lost = vanished & vanished_before
        if lost == vanished:
            if lost:
                log.warning("%d blobs the database references are missing from %s", len(lost), blob_root)
            _count(report, referenced, lost, stored_now)
            # Blobs stored for an earlier snapshot that this one no longer references
            # (freed meanwhile) belong to no backup: leave nothing behind.
            target.delete([blob_name(b) for b in stored_now if b not in referenced])
            return referenced, lost
        log.info("%d blobs were freed after snapshot %d: taking a fresh one", len(vanished), attempt)
        vanished_before = vanished
    raise BackupError(
        f"blobs kept vanishing under {MAX_ATTEMPTS} snapshots in a row (is something deleting files "
        f"in {blob_root}?): try again"
    )


def _count(
    report: BackupReport, referenced: dict[str, int], lost: set[str], stored_now: dict[str, str]
) -> None:
    """The report's figures, for the snapshot that was kept."""
    for blob_id, size in referenced.items():
        how = stored_now.get(blob_id)
        if blob_id in lost:
            continue
        if how == "linked":
            report.blobsLinked += 1
            report.bytesLinked += size
        elif how == "copied":
            report.blobsCopied += 1
            report.bytesCopied += size
        else:
            report.blobsReused += 1
            report.bytesReused += size


def _store_blobs(
    blob_root: Path,
    target: Target,
    todo: list[tuple[str, int]],
    stored: dict[str, int],
    stored_now: dict[str, str],
    jobs: int,
) -> set[str]:
    """Put each blob into the target; returns the ids whose files were gone."""
    vanished: set[str] = set()
    progress = BlobProgress(len(todo))
    lock = threading.Lock()

    def put(item: tuple[str, int]) -> None:
        blob_id, size = item
        source = blob_root / blob_id[:2] / blob_id[2:4] / blob_id
        try:
            actual = source.stat().st_size
            if actual != size:
                raise BackupError(f"blob {blob_id} is {actual} bytes on disk, the database says {size}")
            how = target.put_blob(blob_id, source, size)
        except FileNotFoundError:
            with lock:
                vanished.add(blob_id)
            return
        with lock:
            stored[blob_id] = size
            stored_now[blob_id] = how
        progress.add(size)

    if todo:
        with ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="folio-backup") as pool:
            # list(): re-raise the first failure here, after the others finished.
            list(pool.map(put, todo))
    return vanished


def list_backups(target: Target) -> list[dict[str, object]]:
    """Completed backups, oldest first."""
    found = []
    for name in sorted(target.list("manifests/")):
        if not name.endswith(".json"):
            continue
        raw = target.read_bytes(name)
        if raw is None:
            continue
        manifest = json.loads(raw)
        found.append(manifest)
    return found


def prune(target: Target, keep: int) -> tuple[list[str], int]:
    """Remove all but the newest `keep` backups, then every blob and snapshot file none
    of the kept ones references. Returns (removed backup ids, removed blob count)."""
    manifests = list_backups(target)
    kept, dropped = manifests[-keep:], manifests[:-keep]
    # Manifests first: a backup is gone as a whole before any of its files are.
    target.delete([f"manifests/{m['id']}.json" for m in dropped])
    wanted_dbs = {m["database"]["name"] for m in kept}
    target.delete([name for name in target.list("db/") if name not in wanted_dbs])
    wanted_blobs: set[str] = set()
    for manifest in kept:
        wanted_blobs.update(manifest["blobs"])
    unwanted = [blob_name(b) for b in _blob_ids(target.list("blobs/")) if b not in wanted_blobs]
    target.delete(unwanted)
    return [str(m["id"]) for m in dropped], len(unwanted)
