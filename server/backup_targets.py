"""Where backups live: a local directory or an S3-compatible bucket, behind one small
interface so `server/backup.py` never knows which one it writes to.

Both hold the same layout (so a directory backup can be synced to a bucket and restored
from there):

    folio-backup.json          marker: this place holds Folio backups (format version)
    manifests/<id>.json        one per completed backup: its snapshot, key and blobs
    db/folio-<id>.db           the database snapshot of that backup
    master.key                 the secret-encryption key (the same for every backup)
    blobs/ab/cd/<blob-id>      object bytes, shared by every backup that references them
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

MARKER = "folio-backup.json"
LOCK_NAME = ".folio-backup.lock"


class BackupError(Exception):
    """A problem the operator can act on; printed without a traceback."""


def blob_name(blob_id: str) -> str:
    return f"blobs/{blob_id[:2]}/{blob_id[2:4]}/{blob_id}"


class Target(Protocol):
    """A backup location. Names are relative paths such as `db/folio-<id>.db`."""

    description: str

    def exists(self) -> bool:
        """Whether anything is stored there at all (a fresh location is empty)."""
        ...

    def read_bytes(self, name: str) -> bytes | None: ...

    def write_bytes(self, name: str, data: bytes) -> None: ...

    def put_file(self, name: str, local: Path) -> None:
        """Store a local file under `name` (complete, or not at all)."""
        ...

    def get_file(self, name: str, local: Path) -> None:
        """Fetch `name` into a local file (not fsynced: the restore does that)."""
        ...

    def scratch_dir(self) -> Path | None:
        """Where to write a snapshot before `put_file` (None: the system's temporary directory)."""
        ...

    def list(self, prefix: str) -> dict[str, int]:
        """Every name under `prefix` with its size."""
        ...

    def delete(self, names: list[str]) -> None: ...

    def flush(self) -> None:
        """Make every blob stored so far durable (before a manifest names them)."""
        ...

    def put_blob(self, blob_id: str, source: Path, size: int) -> str:
        """Store a blob file; returns "linked" or "copied". Raises FileNotFoundError when
        the source is gone (freed by the store since the snapshot was taken)."""
        ...

    @contextmanager
    def lock(self) -> Iterator[None]: ...


def open_target(
    location: str,
    *,
    endpoint_url: str | None,
    region: str | None,
    profile: str | None,
    copy_only: bool = False,
) -> Target:
    if location.startswith("s3://"):
        return S3Target(location, endpoint_url=endpoint_url, region=region, profile=profile)
    if "://" in location:
        raise BackupError(f"{location}: a backup location is a directory or s3://bucket/prefix")
    if endpoint_url:
        raise BackupError("--endpoint-url goes with an s3:// location")
    return DirectoryTarget(Path(location), copy_only=copy_only)


class DirectoryTarget:
    """A directory. Blobs are hard-linked when it is on the data directory's filesystem
    (blobs never change once published, so a link is as good as a copy and costs no
    space), else copied; `copy_only` always copies (bytes independent of the store)."""

    def __init__(self, root: Path, *, copy_only: bool = False) -> None:
        self.root = root
        self.description = str(root)
        self.link = not copy_only
        self._made_dirs: set[Path] = set()
        # Directories that got new entries (blob files, subdirectories): fsynced by flush().
        self._touched: set[Path] = set()

    def exists(self) -> bool:
        return self.root.is_dir() and any(entry.name != LOCK_NAME for entry in self.root.iterdir())

    def _path(self, name: str) -> Path:
        return self.root / name

    def _ensure_dir(self, path: Path) -> None:
        if path not in self._made_dirs:
            self._make_root()
            path.mkdir(parents=True, exist_ok=True)
            self._made_dirs.add(path)
            self._touched.update(p for p in (path, *path.parents) if p == self.root or self.root in p.parents)

    def _make_root(self) -> None:
        # A new backup directory is Folio's user's alone: it holds master.key.
        if not self.root.is_dir():
            self.root.mkdir(parents=True, exist_ok=True)
            os.chmod(self.root, 0o700)

    def read_bytes(self, name: str) -> bytes | None:
        try:
            return self._path(name).read_bytes()
        except FileNotFoundError:
            return None

    def write_bytes(self, name: str, data: bytes) -> None:
        path = self._path(name)
        self._ensure_dir(path.parent)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".partial-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_dir(path.parent)

    def put_file(self, name: str, local: Path) -> None:
        path = self._path(name)
        self._ensure_dir(path.parent)
        if self.root.resolve() in local.resolve().parents:  # written in place (the database snapshot)
            os.replace(local, path)
        else:
            _copy_durably(local, path)
        _fsync_dir(path.parent)

    def get_file(self, name: str, local: Path) -> None:
        source = self._path(name)
        if not source.is_file():
            raise BackupError(f"{source} is missing from the backup")
        _copy_durably(source, local, fsync=False)

    def scratch_dir(self) -> Path | None:
        # Beside its final name: the snapshot needs no second copy, nor room in /tmp.
        path = self._path("db")
        self._ensure_dir(path)
        return path

    def list(self, prefix: str) -> dict[str, int]:
        base = self._path(prefix)
        found: dict[str, int] = {}
        if not base.is_dir():
            return found
        for dirpath, dirnames, filenames in os.walk(base):
            # Work in progress (temporary copies, a snapshot being written) is not stored yet.
            dirnames[:] = [d for d in dirnames if not d.startswith(".partial-")]
            for filename in filenames:
                if filename.startswith(".partial-"):
                    continue
                full = Path(dirpath) / filename
                found[full.relative_to(self.root).as_posix()] = full.stat().st_size
        return found

    def delete(self, names: list[str]) -> None:
        for name in names:
            self._path(name).unlink(missing_ok=True)

    def flush(self) -> None:
        fsync_dirs(sorted(self._touched, reverse=True))
        self._touched.clear()

    def put_blob(self, blob_id: str, source: Path, size: int) -> str:
        # Blob files are fsynced one by one (copies) or already durable (links); their
        # directory entries are made durable together by flush().
        path = self._path(blob_name(blob_id))
        self._ensure_dir(path.parent)
        self._touched.add(path.parent)
        if self.link:
            try:
                os.link(source, path)
                return "linked"
            except FileExistsError:  # a partial copy of an earlier run left nothing by this name
                path.unlink()
                os.link(source, path)
                return "linked"
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                    raise
                self.link = False  # another filesystem (or no links there): copy from now on
        _copy_durably(source, path)
        return "copied"

    @contextmanager
    def lock(self) -> Iterator[None]:
        """One backup at a time per directory (pruning must not race another run's blobs)."""
        self._make_root()
        fd = os.open(self.root / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise BackupError(f"another backup is running into {self.root}") from None
            yield
        finally:
            os.close(fd)


def _copy_durably(source: Path, dest: Path, *, fsync: bool = True) -> None:
    """Copy through a temporary name, fsync, rename: a file under its final name is whole.
    Opening the source first means a blob freed while it is copied is still read whole.
    A restore fsyncs what it fetched itself (S3 downloads are not fsynced either)."""
    with open(source, "rb") as src:
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".partial-")
        try:
            with os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(src, out, 1024 * 1024)
                out.flush()
                if fsync:
                    os.fsync(out.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def fsync_dirs(paths: list[Path], jobs: int = 8) -> None:
    """fsync many directories at once: one by one costs a journal commit each (seconds for
    a few thousand), in parallel they share commits."""
    if paths:
        with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(paths)))) as pool:
            list(pool.map(_fsync_dir, paths))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class S3Target:
    """s3://bucket/prefix on any S3-compatible service (boto3; credentials from the usual
    AWS environment variables, shared config files or --profile). Every PUT is atomic,
    so an object that is listed is whole."""

    def __init__(
        self, url: str, *, endpoint_url: str | None, region: str | None, profile: str | None
    ) -> None:
        import boto3  # only backups to S3 pay for importing it
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config as BotoConfig

        parsed = urlparse(url)
        if not parsed.netloc:
            raise BackupError(f"{url}: expected s3://bucket/prefix")
        self.bucket = parsed.netloc
        self.prefix = parsed.path.strip("/")
        self.description = url
        session = boto3.session.Session(profile_name=profile) if profile else boto3.session.Session()
        # Enough pooled connections for the blob workers, each with its own transfer.
        self.client = session.client(
            "s3", endpoint_url=endpoint_url, region_name=region, config=BotoConfig(max_pool_connections=32)
        )
        self.transfer = TransferConfig(max_concurrency=4)

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def _errors(self, action: str):
        from botocore.exceptions import BotoCoreError, ClientError

        return _S3Errors(self, action, (BotoCoreError, ClientError))

    def exists(self) -> bool:
        with self._errors("list"):
            page = self.client.list_objects_v2(Bucket=self.bucket, Prefix=self._key(""), MaxKeys=1)
        return page.get("KeyCount", 0) > 0

    def read_bytes(self, name: str) -> bytes | None:
        from botocore.exceptions import ClientError

        with self._errors(f"read {name}"):
            try:
                return self.client.get_object(Bucket=self.bucket, Key=self._key(name))["Body"].read()
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                    return None
                raise

    def write_bytes(self, name: str, data: bytes) -> None:
        with self._errors(f"write {name}"):
            self.client.put_object(Bucket=self.bucket, Key=self._key(name), Body=data)

    def put_file(self, name: str, local: Path) -> None:
        with self._errors(f"upload {name}"):
            self.client.upload_file(str(local), self.bucket, self._key(name), Config=self.transfer)

    def get_file(self, name: str, local: Path) -> None:
        with self._errors(f"download {name}"):
            self.client.download_file(self.bucket, self._key(name), str(local), Config=self.transfer)

    def scratch_dir(self) -> Path | None:
        return None

    def list(self, prefix: str) -> dict[str, int]:
        found: dict[str, int] = {}
        strip = len(self._key(""))
        with self._errors(f"list {prefix}"):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self._key(prefix)
            )
            for page in pages:
                for item in page.get("Contents", []):
                    found[item["Key"][strip:]] = item["Size"]
        return found

    def delete(self, names: list[str]) -> None:
        for start in range(0, len(names), 1000):  # DeleteObjects takes 1,000 keys at a time
            batch = [{"Key": self._key(name)} for name in names[start : start + 1000]]
            with self._errors("delete"):
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})

    def flush(self) -> None:
        pass  # a completed PUT is durable in S3's terms

    def put_blob(self, blob_id: str, source: Path, size: int) -> str:
        with open(source, "rb") as src, self._errors(f"upload blob {blob_id}"):
            self.client.upload_fileobj(src, self.bucket, self._key(blob_name(blob_id)), Config=self.transfer)
        return "copied"

    @contextmanager
    def lock(self) -> Iterator[None]:
        # S3 has no lock to take: one backup at a time per prefix is the operator's rule
        # (docs/operations.md), as with any tool that syncs into a bucket.
        yield


class _S3Errors:
    """S3 and network failures as BackupError with what was being done (no traceback)."""

    def __init__(self, target: S3Target, action: str, kinds: tuple[type[BaseException], ...]) -> None:
        self.target, self.action, self.kinds = target, action, kinds

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, exc, _tb) -> bool:
        if exc is None or not isinstance(exc, self.kinds):
            return False
        raise BackupError(
            f"s3://{self.target.bucket}/{self.target.prefix}: cannot {self.action}: {exc}"
        ) from exc
