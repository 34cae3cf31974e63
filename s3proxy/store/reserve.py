"""Space held back for deletes: a preallocated file in the data directory.

When the disk is full, SQLite cannot even record a delete (the WAL has to grow, and
a checkpoint that would let it rewind has to grow the database file), so the one way
out, deleting data, would fail too. The store keeps `reserve` (`[storage]
reserve_bytes`, allocated with posix_fallocate, so the space is really taken) and
gives it up when a write that frees space meets a full disk; it is taken again once
the disk has room for it twice over.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

log = logging.getLogger("folio.store")


class SpaceReserve:
    def __init__(self, path: Path, size: int) -> None:
        self.path = path
        self.size = size
        self.released = False
        self._lock = threading.Lock()

    def restore(self) -> bool:
        """Allocate the reserve if it is missing and the disk can spare it with as much
        again left over (start-up, and after space was freed). Returns whether it is held."""
        if self.size <= 0:
            return False
        with self._lock:
            try:
                if self.path.stat().st_size >= self.size:
                    self.released = False
                    return True
            except FileNotFoundError:
                pass
            stats = os.statvfs(self.path.parent)
            if stats.f_bavail * stats.f_frsize < 2 * self.size:
                self.released = True  # try again later
                return False
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                os.posix_fallocate(fd, 0, self.size)
                os.fsync(fd)
            except OSError as exc:  # filled meanwhile, or no fallocate here: hold nothing
                os.close(fd)
                self.path.unlink(missing_ok=True)
                self.released = True
                log.info("could not reserve %d bytes for deletes: %s", self.size, exc)
                return False
            os.close(fd)
            self.released = False
            return True

    def release(self) -> bool:
        """Give the space up; False if there was none to give."""
        with self._lock:
            try:
                self.path.unlink()
            except FileNotFoundError:
                self.released = self.size > 0
                return False
            self.released = True
        log.warning("disk full: released the %d-byte reserve so that a delete can proceed", self.size)
        return True
