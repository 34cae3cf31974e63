"""Transformed images on disk (`data/cache/img/`), bounded in bytes, least recently
used evicted. Entries are published atomically (written to a temporary file, fsynced,
renamed) so a reader, or a restart after a crash, never sees half an image. Names
are hashes of the cache key, never object keys."""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections import OrderedDict
from pathlib import Path

log = logging.getLogger("folio.img")

EXTENSIONS = ("jpeg", "png", "webp", "avif")
# A half-written entry older than this was left by a crash (writing one takes well under a second).
TMP_LEFTOVER_SECONDS = 60.0


class DiskCache:
    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        # digest -> (format, size), oldest use first.
        self._entries: OrderedDict[str, tuple[str, int]] = OrderedDict()
        self.total = 0
        # Lookups answered from disk or not, for /metrics.
        self.hits = 0
        self.misses = 0
        if self.enabled:
            self._load()

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0

    def _path(self, digest: str, fmt: str) -> Path:
        return self.directory / digest[:2] / f"{digest}.{fmt}"

    def _load(self) -> None:
        """Index what a previous run left, oldest first; drop half-written files."""
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.directory / "tmp"
        tmp.mkdir(exist_ok=True)
        now = time.time()
        for leftover in tmp.iterdir():
            # Not one a minute old: with `--workers N` another worker may be writing it now
            # (a worker restarted after a crash loads the cache while the others serve).
            try:
                if now - leftover.stat().st_mtime > TMP_LEFTOVER_SECONDS:
                    leftover.unlink(missing_ok=True)
            except FileNotFoundError:
                pass
        found = []
        for path in self.directory.glob("??/*.*"):
            digest, _, fmt = path.name.partition(".")
            if fmt not in EXTENSIONS:
                continue
            stat = path.stat()
            found.append((stat.st_mtime, digest, fmt, stat.st_size))
        for _mtime, digest, fmt, size in sorted(found):
            self._entries[digest] = (fmt, size)
            self.total += size
        self._evict()

    def get(self, digest: str) -> tuple[str, bytes] | None:
        """(format, bytes) of a cached image, marked as just used."""
        entry = self._entries.get(digest)
        if entry is None:
            self.misses += 1
            return None
        fmt, size = entry
        try:
            with open(self._path(digest, fmt), "rb") as fh:
                data = fh.read()
        except FileNotFoundError:
            self._drop(digest)
            self.misses += 1
            return None
        if len(data) != size:
            self._drop(digest)
            self.misses += 1
            return None
        self._entries.move_to_end(digest)
        self.hits += 1
        return fmt, data

    def write(self, digest: str, fmt: str, data: bytes) -> None:
        """Publish an entry's file (in a worker thread); `add` then indexes it."""
        final = self._path(digest, fmt)
        final.parent.mkdir(exist_ok=True)
        tmp = self.directory / "tmp" / f"{uuid.uuid4().hex}.part"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, final)

    def add(self, digest: str, fmt: str, size: int) -> None:
        """Index a published entry (on the event loop) and evict past the bound."""
        if digest in self._entries:
            self.total -= self._entries.pop(digest)[1]
        self._entries[digest] = (fmt, size)
        self.total += size
        self._evict()

    def _drop(self, digest: str) -> None:
        entry = self._entries.pop(digest, None)
        if entry is not None:
            self.total -= entry[1]

    def _evict(self) -> None:
        while self.total > self.max_bytes and self._entries:
            digest, (fmt, size) = self._entries.popitem(last=False)
            self.total -= size
            try:
                self._path(digest, fmt).unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("could not evict %s: %s", digest, exc)
