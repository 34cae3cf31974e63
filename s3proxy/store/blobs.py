"""Object bytes on local disk: `blobs/ab/cd/<id>` with random ids (never derived
from keys), written through `tmp/` so a crash never leaves a torn blob.

The narrow interface both blob backends implement is s3proxy/store/blob_store.py's
`BlobStore` (the other backend: an upstream S3 bucket, s3proxy/store/blob_s3.py).
"""

from __future__ import annotations

import mmap
import os
import secrets
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from s3proxy.store.errors import full_disk_refused
from s3proxy.store.integrity import PieceChecksums


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dirs_durable(path: Path) -> None:
    """mkdir -p, then fsync the parent of every directory it made (deepest last made, so
    each new entry is durable before anything inside it is trusted): a blob renamed into a
    directory whose own entry never reached the disk could vanish with it at a power cut."""
    missing: list[Path] = []
    probe = path
    while not probe.is_dir():
        missing.append(probe)
        probe = probe.parent
    if not missing:
        return
    path.mkdir(parents=True, exist_ok=True)
    for made in reversed(missing):
        _fsync_dir(made.parent)


ALIGN = 4096
STAGE_BYTES = 1024 * 1024
O_DIRECT = getattr(os, "O_DIRECT", 0)


class AlignedBuffers:
    """Page-aligned buffers for O_DIRECT, reused: fresh pages cost a page fault each,
    which on this kind of VM is slower than the disk."""

    def __init__(self, size: int = STAGE_BYTES, keep: int = 32) -> None:
        self.size = size
        self.keep = keep
        self._free: list[mmap.mmap] = []
        self._lock = threading.Lock()

    def get(self) -> mmap.mmap:
        with self._lock:
            if self._free:
                return self._free.pop()
        return mmap.mmap(-1, self.size)

    def put(self, buffer: mmap.mmap) -> None:
        with self._lock:
            if len(self._free) < self.keep:
                self._free.append(buffer)
                return
        buffer.close()


class BlobFile:
    """A blob being written: bytes go to tmp/, `publish()` makes it durable and visible.

    The first `[storage] direct_write_bytes` (16 MiB) of a blob are written in whole 4 KiB
    blocks with O_DIRECT from an aligned staging buffer, past the page cache; the rest of a
    bigger blob goes through the page cache, and `publish()`'s fsync writes it out.
    Measured here (issue 19, docs/benchmarks.md): O_DIRECT spends less CPU per byte (1 MiB
    PUTs at concurrency 8 ran about 8% faster than through the page cache, 8 MiB multipart
    parts 5%); but a large object written so is read back from the disk (about 1,000 MB/s
    here) where one written through the page cache is read from memory (3,000 MB/s),
    which is what made a 256 MiB GET swing from run to run. 256 MiB PUTs ran as fast
    either way. The unaligned tail of the direct part goes through an ordinary descriptor."""

    def __init__(self, store: LocalBlobStore) -> None:
        self.store = store
        self.blob_id = secrets.token_hex(16)
        self.tmp_path = store.tmp_dir / self.blob_id
        self.direct = store.direct_write_bytes > 0
        self.fd: int | None = None
        self._opened = False
        self.size = 0
        self.published = False
        # CRC32C per 1 MiB piece of the bytes exactly as they are handed to the file, on the
        # write thread (the writer's MD5 and other hashes run on another thread meanwhile).
        self.checksums = PieceChecksums()
        self._stage: mmap.mmap | None = None
        self._fill = 0

    def _open(self) -> None:
        """Create the file, on the first write's worker thread: creating an inode can wait
        for the filesystem journal while other blobs' fsyncs commit it (measured: 18% of the
        event loop's time under 1 MiB PUTs when this ran on the loop)."""
        self._opened = True
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        try:
            self.fd = os.open(self.tmp_path, flags | (O_DIRECT if self.direct else 0), 0o600)
        except OSError:  # a filesystem without O_DIRECT (tmpfs): plain writes
            self.direct = False
            with full_disk_refused():  # no inode left
                self.fd = os.open(self.tmp_path, flags, 0o600)
        if self.direct:
            self._stage = self.store.buffers.get()

    def write(self, data: bytes | memoryview) -> None:
        self.write_pieces([data])

    def write_pieces(self, pieces: list[bytes | memoryview]) -> None:
        """Append the pieces (called from one worker thread at a time). A full disk
        raises `StorageFull`; the caller then `abort()`s, which removes the file."""
        with full_disk_refused():
            self._write_pieces(pieces)

    def _write_pieces(self, pieces: list[bytes | memoryview]) -> None:
        if not self._opened:
            self._open()
        assert self.fd is not None
        for piece in pieces:
            self.checksums.update(piece)
        if self._stage is None:
            self._write_buffered(pieces)
            return
        stage, capacity = self._stage, len(self._stage)
        for index, piece in enumerate(pieces):
            view = memoryview(piece).cast("B")
            while view:
                n = min(len(view), capacity - self._fill)
                stage[self._fill : self._fill + n] = view[:n]
                self._fill += n
                self.size += n
                view = view[n:]
                if self._fill == capacity:
                    _write_all(self.fd, stage)
                    self._fill = 0
                    if self.size >= self.store.direct_write_bytes:
                        self._leave_direct()
                        self._write_buffered([p for p in (view, *pieces[index + 1 :]) if len(p)])
                        return

    def _leave_direct(self) -> None:
        """The rest of the blob goes through the page cache (the staging buffer is empty:
        everything so far is on the disk in whole blocks)."""
        assert self.fd is not None and self._fill == 0
        plain = os.open(self.tmp_path, os.O_WRONLY)
        os.lseek(plain, self.size, os.SEEK_SET)
        os.close(self.fd)
        self.fd = plain
        self._release_stage()

    def _write_buffered(self, pieces: list[bytes | memoryview]) -> None:
        assert self.fd is not None
        if not pieces:
            return
        if len(pieces) > 256:  # writev takes at most IOV_MAX (1024) buffers
            pieces = [b"".join(pieces)]
        total = sum(len(p) for p in pieces)
        written = os.writev(self.fd, pieces)
        if written < total:  # short write: finish the rest piece by piece
            _write_all(self.fd, memoryview(b"".join(bytes(p) for p in pieces))[written:])
        self.size += total

    def _flush_stage(self) -> None:
        """The staged remainder: whole blocks directly, the tail through the page cache."""
        assert self.fd is not None and self._stage is not None
        aligned = self._fill - self._fill % ALIGN
        if aligned:
            _write_all(self.fd, memoryview(self._stage)[:aligned])
        tail = self._fill - aligned
        if tail:
            offset = self.size - tail
            plain = os.open(self.tmp_path, os.O_WRONLY)
            try:  # publish()'s fsync flushes these pages too: an fsync covers the whole file
                os.pwrite(plain, self._stage[aligned : self._fill], offset)
            finally:
                os.close(plain)
        self._fill = 0

    def _release_stage(self) -> None:
        if self._stage is not None:
            self.store.buffers.put(self._stage)
            self._stage = None

    def publish(self) -> str:
        """fsync, rename into blobs/, fsync the directory; returns the blob id. The
        staged tail, the fsync and a new directory can each meet a full disk."""
        with full_disk_refused():
            return self._publish()

    def _publish(self) -> str:
        if not self._opened:  # an empty blob
            self._open()
        assert self.fd is not None
        if self._stage is not None:
            self._flush_stage()
            self._release_stage()
        os.fsync(self.fd)
        os.close(self.fd)
        self.fd = None
        final = self.store.path_for(self.blob_id)
        self.store.ensure_dir(final.parent)
        os.rename(self.tmp_path, final)
        _fsync_dir(final.parent)
        self.published = True
        return self.blob_id

    def abort(self) -> None:
        self._release_stage()
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        path = self.store.path_for(self.blob_id) if self.published else self.tmp_path
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def _write_all(fd: int, data: bytes | memoryview | mmap.mmap) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class LocalBlobStore:
    backend = "local"

    def __init__(self, data_dir: Path, *, direct_write_bytes: int = 16 * 1024 * 1024) -> None:
        # Rounded up to whole staging buffers: the switch to the page cache happens when one
        # has been written out.
        self.direct_write_bytes = -(-direct_write_bytes // STAGE_BYTES) * STAGE_BYTES if O_DIRECT else 0
        self.buffers = AlignedBuffers()
        self.root = data_dir / "blobs"
        self.tmp_dir = data_dir / "tmp"
        make_dirs_durable(self.root)
        make_dirs_durable(self.tmp_dir)
        self._known_dirs: set[Path] = set()

    def path_for(self, blob_id: str) -> Path:
        if len(blob_id) != 32 or not all(c in "0123456789abcdef" for c in blob_id):
            raise ValueError("malformed blob id")
        return self.root / blob_id[:2] / blob_id[2:4] / blob_id

    def ensure_dir(self, path: Path) -> None:
        if path in self._known_dirs:
            return
        make_dirs_durable(path)
        self._known_dirs.add(path)

    def new_file(self) -> BlobFile:
        return BlobFile(self)

    def open(self, blob_id: str) -> int:
        """An open file descriptor for reading (the caller closes it)."""
        return os.open(self.path_for(blob_id), os.O_RDONLY)

    def delete(self, blob_id: str) -> None:
        try:
            os.unlink(self.path_for(blob_id))
        except FileNotFoundError:
            pass

    # A reader's open descriptor keeps an unlinked file's bytes: no grace needed.
    release = delete

    def exists(self, blob_id: str) -> bool:
        return self.path_for(blob_id).exists()

    def size(self, blob_id: str) -> int:
        return self.path_for(blob_id).stat().st_size

    def read_chunks(self, blob_id: str, chunk_bytes: int) -> Iterator[bytes]:
        with open(self.path_for(blob_id), "rb", buffering=0) as f:
            while chunk := f.read(chunk_bytes):
                yield chunk

    async def health(self) -> dict[str, Any]:
        return {"backend": self.backend}

    def close(self) -> None:
        pass

    def empty_tmp(self) -> int:
        """Start-up: whatever was in flight when the process stopped is garbage."""
        removed = 0
        for entry in os.scandir(self.tmp_dir):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                os.unlink(entry.path)
            removed += 1
        return removed

    def iter_blobs(self) -> Iterator[tuple[str, float]]:
        """Every blob id on disk with its modification time."""
        for first in os.scandir(self.root):
            if not first.is_dir():
                continue
            for second in os.scandir(first.path):
                if not second.is_dir():
                    continue
                for entry in os.scandir(second.path):
                    if entry.is_file() and len(entry.name) == 32:
                        try:
                            mtime = entry.stat().st_mtime
                        except FileNotFoundError:  # deleted since the listing (a live server)
                            continue
                        yield entry.name, mtime

    def remove_unreferenced(self, referenced: set[str], grace_seconds: float = 0.0) -> int:
        cutoff = time.time() - grace_seconds
        removed = 0
        for blob_id, mtime in list(self.iter_blobs()):
            if blob_id not in referenced and mtime <= cutoff:
                self.delete(blob_id)
                removed += 1
        return removed
