"""The free-space floor: writes are refused with the disk-full error (`StorageFull`)
while free space on the data directory's filesystem is under `[storage]
min_free_bytes` or `min_free_percent` of the filesystem, whichever is smaller, so
that the disk never actually fills: deletes, and the database's own commits (WAL,
checkpoints, sessions), always find the room they need.

Only writes that add data ask (the bytes of an upload, as they arrive; see
`ObjectWriter.write`); deletes and metadata commits never do.

Asking costs no syscall most of the time: `statvfs` is called at most every
`RECHECK_SECONDS`, or after `RECHECK_BYTES` were admitted, and in between the bytes
admitted since are taken off the last answer. A refusal is always the filesystem's own
word (a fresh `statvfs`, not the estimate), so writes are admitted again as soon as
space is freed. A writer also says how many of the bytes it was admitted for are still
in its buffers: they are on their way to the disk, so they count although `statvfs`
cannot see them yet. (Concurrent uploads near the floor may each pass it by the few MiB
they buffer: the floor is a margin, not an exact limit.)
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from s3proxy.store.errors import StorageFull

log = logging.getLogger("folio.store")

RECHECK_SECONDS = 0.1
RECHECK_BYTES = 16 * 1024 * 1024
WARN_EVERY_SECONDS = 10.0


def floor_bytes(total_bytes: int, min_free_bytes: int, min_free_percent: float) -> int:
    """The smaller of the two limits for a filesystem of `total_bytes`; a limit of 0 is
    off (the other one alone applies), both 0: no floor (0)."""
    limits = [limit for limit in (min_free_bytes, int(total_bytes * min_free_percent / 100)) if limit > 0]
    return min(limits) if limits else 0


def _size(size: int) -> str:
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"


class FreeSpaceFloor:
    """Admits writes while the data directory's filesystem keeps `floor` bytes free.

    Thread-safe (called from the event loop and from I/O threads)."""

    def __init__(
        self,
        path: Path,
        min_free_bytes: int,
        min_free_percent: float,
        *,
        statvfs: Callable[[Path], os.statvfs_result] = os.statvfs,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self.min_free_bytes = min_free_bytes
        self.min_free_percent = min_free_percent
        self.enabled = min_free_bytes > 0 or min_free_percent > 0
        self._statvfs = statvfs
        self._clock = clock
        self._lock = threading.Lock()
        self.floor = 0
        self._free = 0  # at the last statvfs
        self._checked_at = float("-inf")
        self._since = 0  # bytes admitted since the last statvfs
        # Whether free space was under the floor at the last statvfs (every write refused).
        self.under = False
        self._warned_at = float("-inf")

    def _check(self, now: float, *, announce: bool = True) -> None:
        stats = self._statvfs(self.path)
        # f_bavail: what an unprivileged writer may still use (root's reserved blocks excluded).
        self._free = stats.f_bavail * stats.f_frsize
        self.floor = floor_bytes(stats.f_blocks * stats.f_frsize, self.min_free_bytes, self.min_free_percent)
        self._checked_at = now
        self._since = 0
        under = self._free < self.floor
        if under != self.under:
            self.under = under
            if announce:
                self._announce(now)

    def _announce(self, now: float) -> None:
        if self.under:
            self._warn(now, f"{_size(self._free)} free, under the floor of {_size(self.floor)}")
        else:
            log.info("free space is above the floor again (%s free): writes are accepted", _size(self._free))

    def _warn(self, now: float, what: str) -> None:
        if now - self._warned_at >= WARN_EVERY_SECONDS:  # once per burst, not per request
            self._warned_at = now
            log.warning(
                "data directory's filesystem: %s ([storage] min_free_bytes, min_free_percent):"
                " writes are refused until space is freed",
                what,
            )

    def admit(self, nbytes: int, unwritten: int = 0) -> None:
        """Raise `StorageFull` if writing `nbytes` more would leave less than the floor free;
        otherwise count them as written. `unwritten`: bytes the caller was admitted for
        earlier and still holds in memory (a statvfs cannot see them yet)."""
        if not self.enabled:
            return
        with self._lock:
            now = self._clock()
            fresh = now - self._checked_at >= RECHECK_SECONDS or self._since >= RECHECK_BYTES
            if fresh:
                self._check(now)
            # Bytes admitted since the statvfs may be among `unwritten`: counted twice at worst,
            # which costs a fresh statvfs below, never a refusal.
            if self._free - self._since - unwritten - nbytes < self.floor:
                if not fresh:  # refuse on the filesystem's word, not on the estimate or an old answer
                    self._check(now)
                if self._free - unwritten - nbytes < self.floor:
                    if not self.under:  # the disk is above the floor, this write would cross it
                        self._warn(
                            now,
                            f"a write of {_size(nbytes)} more would take free space ({_size(self._free)})"
                            f" under the floor of {_size(self.floor)}",
                        )
                    raise StorageFull()  # no message of its own: the S3 layer answers with MinIO's words
            self._since += nbytes

    def report_at_start(self) -> None:
        """Start-up: say which floor applies, and warn loudly when the disk is already
        under it (every write would be refused: better known now than at the first write)."""
        if not self.enabled:
            log.info("no free-space floor ([storage] min_free_bytes and min_free_percent are 0)")
            return
        with self._lock:
            self._check(self._clock(), announce=False)  # the start-up's own words below
            free = self._free
        if self.under:
            log.warning(
                "only %s free on the filesystem of the data directory %s, under the floor of %s"
                " ([storage] min_free_bytes = %d, min_free_percent = %s): every write will be refused"
                " with the disk-full error (507) until space is freed; free space or lower those settings",
                _size(free),
                self.path,
                _size(self.floor),
                self.min_free_bytes,
                self.min_free_percent,
            )
        else:
            log.info(
                "writes are refused when free space falls under %s (%s free now)",
                _size(self.floor),
                _size(free),
            )
