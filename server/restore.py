"""`folio restore SRC`: rebuild a data directory from a backup (server/backup.py wrote
it), then verify it (`folio check` when this Folio has it, else server/backup_verify.py).

The order matters: blobs and master.key, each fsynced, then the database under its
final name. A directory without folio.db is visibly an unfinished restore, and the
database never names a file that is not durably there.
"""

from __future__ import annotations

import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from server.backup import BlobProgress, list_backups, sha256_file
from server.backup_targets import BackupError, Target, blob_name, fsync_dirs
from server.backup_verify import verify_data_dir


@dataclass
class RestoreReport:
    id: str
    source: str
    dataDir: str
    databaseBytes: int = 0
    blobs: int = 0
    bytes: int = 0
    seconds: float = 0.0
    verification: dict[str, object] = field(default_factory=dict)


# What a data directory holds that a restore replaces (--force); other files are left alone.
FOLIO_ENTRIES = ("folio.db", "folio.db-wal", "folio.db-shm", "master.key", "reserve", "blobs", "tmp", "cache")


def _prepare_data_dir(data_dir: Path, force: bool) -> None:
    if data_dir.exists() and not data_dir.is_dir():
        raise BackupError(f"{data_dir} is not a directory")
    if data_dir.is_dir() and any(data_dir.iterdir()):
        if not force:
            raise BackupError(
                f"{data_dir} is not empty: restore into a new directory, or add --force to replace it"
            )
        # A stale -wal beside the restored database would be replayed into it: remove it all.
        for name in FOLIO_ENTRIES:
            path = data_dir / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(data_dir, 0o700)


def _choose(target: Target, backup_id: str | None) -> dict[str, object]:
    if not target.exists():
        raise BackupError(f"{target.description} is empty or does not exist")
    manifests = list_backups(target)
    if not manifests:
        raise BackupError(f"{target.description} holds no completed backup")
    if backup_id is None:
        return manifests[-1]
    for manifest in manifests:
        if manifest["id"] == backup_id:
            return manifest
    ids = ", ".join(str(m["id"]) for m in manifests)
    raise BackupError(f"no backup {backup_id} in {target.description} (there are: {ids})")


def restore(
    target: Target,
    data_dir: Path,
    *,
    backup_id: str | None = None,
    force: bool = False,
    jobs: int = 8,
    verify: bool = True,
    config_path: str | None = None,
) -> RestoreReport:
    started = time.monotonic()
    manifest = _choose(target, backup_id)
    _prepare_data_dir(data_dir, force)
    report = RestoreReport(id=str(manifest["id"]), source=target.description, dataDir=str(data_dir))
    blobs: dict[str, int] = manifest["blobs"]  # type: ignore[assignment]
    _fetch_blobs(target, data_dir / "blobs", blobs, jobs)
    (data_dir / "tmp").mkdir(exist_ok=True)
    report.blobs, report.bytes = len(blobs), sum(blobs.values())

    key_info: dict[str, str] = manifest["masterKey"]  # type: ignore[assignment]
    key_path = data_dir / "master.key"
    target.get_file(key_info["name"], key_path)
    os.chmod(key_path, 0o600)
    if sha256_file(key_path) != key_info["sha256"]:
        raise BackupError(
            f"master.key in {target.description} is not the key backup {report.id} was taken with"
        )

    # The database last: a directory without folio.db is visibly an unfinished restore.
    db_info: dict[str, object] = manifest["database"]  # type: ignore[assignment]
    partial = data_dir / "folio.db.restoring"
    target.get_file(str(db_info["name"]), partial)
    if sha256_file(partial) != db_info["sha256"]:
        partial.unlink()
        raise BackupError(f"{db_info['name']} in {target.description} does not match its manifest (damaged)")
    os.chmod(partial, 0o600)
    _fsync(partial)
    _fsync(key_path)
    os.replace(partial, data_dir / "folio.db")
    # Every directory entry the restore made, durable before a server trusts it.
    fsync_dirs([Path(d) for d, _subdirs, _files in os.walk(data_dir, topdown=False)], jobs)
    report.databaseBytes = int(db_info["bytes"])  # type: ignore[arg-type]
    if verify:
        report.verification = verify_data_dir(data_dir, config_path=config_path, expected_blobs=blobs)
    report.seconds = round(time.monotonic() - started, 3)
    return report


def _fetch_blobs(target: Target, blob_root: Path, blobs: dict[str, int], jobs: int) -> None:
    progress = BlobProgress(len(blobs))

    def fetch(item: tuple[str, int]) -> None:
        blob_id, size = item
        path = blob_root / blob_id[:2] / blob_id[2:4] / blob_id
        path.parent.mkdir(parents=True, exist_ok=True)
        target.get_file(blob_name(blob_id), path)
        os.chmod(path, 0o600)
        if path.stat().st_size != size:
            raise BackupError(f"blob {blob_id} in {target.description} is not {size} bytes (damaged)")
        _fsync(path)
        progress.add(size)

    blob_root.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="folio-restore") as pool:
        list(pool.map(fetch, blobs.items()))


def _fsync(path: Path) -> None:
    # One file at a time, in the fetch workers: parallel fsyncs share the journal's
    # commits, and unlike sync() none waits for other programs' dirty pages.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
