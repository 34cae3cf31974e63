"""The free-space floor's arithmetic and its statvfs cache (s3proxy/store/free_space.py),
with a scripted filesystem and clock; the real thing runs in tests/test_disk_full.py."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from s3proxy.store.errors import StorageFull
from s3proxy.store.free_space import RECHECK_BYTES, RECHECK_SECONDS, FreeSpaceFloor, floor_bytes

GiB = 1024**3
MiB = 1024**2


def test_the_floor_is_the_smaller_of_bytes_and_percent() -> None:
    assert floor_bytes(1000 * GiB, GiB, 2.0) == GiB  # 2% is 20 GiB
    assert floor_bytes(10 * GiB, GiB, 2.0) == int(10 * GiB * 0.02)  # 2% is 205 MiB
    assert floor_bytes(64 * MiB, GiB, 25) == 16 * MiB


def test_zero_turns_either_limit_off_and_both_the_floor() -> None:
    assert floor_bytes(1000 * GiB, 0, 2.0) == 20 * GiB  # percent alone
    assert floor_bytes(10 * GiB, GiB, 0) == GiB  # bytes alone
    assert floor_bytes(10 * GiB, 0, 0) == 0
    assert floor_bytes(0, GiB, 2.0) == GiB  # an empty answer for the size: the bytes apply


class Disk:
    """A filesystem of 4 KiB blocks whose free space the test sets, counting statvfs calls."""

    def __init__(self, total: int, free: int) -> None:
        self.total, self.free, self.calls = total, free, 0

    def statvfs(self, _path: Path) -> os.statvfs_result:
        self.calls += 1
        blocks, free = self.total // 4096, self.free // 4096
        return os.statvfs_result((4096, 4096, blocks, free, free, 1000, 1000, 1000, 0, 255))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def floor_on(disk: Disk, clock: Clock, min_free_bytes: int = 16 * MiB, percent: float = 0) -> FreeSpaceFloor:
    return FreeSpaceFloor(Path("/data"), min_free_bytes, percent, statvfs=disk.statvfs, clock=clock)


def test_writes_above_the_floor_cost_one_statvfs_per_interval() -> None:
    disk, clock = Disk(GiB, 500 * MiB), Clock()
    floor = floor_on(disk, clock)
    for _ in range(1000):
        floor.admit(1024)  # 1000 pieces of 1 KiB, in no time
    assert disk.calls == 1
    clock.now += RECHECK_SECONDS * 1.5
    floor.admit(1024)
    assert disk.calls == 2


def test_many_bytes_admitted_ask_the_filesystem_again() -> None:
    disk, clock = Disk(GiB, 500 * MiB), Clock()
    floor = floor_on(disk, clock)
    floor.admit(RECHECK_BYTES)
    floor.admit(1)
    assert disk.calls == 2


def test_a_write_that_would_cross_the_floor_is_refused() -> None:
    disk, clock = Disk(GiB, 20 * MiB), Clock()
    floor = floor_on(disk, clock)
    floor.admit(3 * MiB)  # 17 MiB left: above 16
    # The estimate (20 - 3 - 2 = 15 MiB) says no; the filesystem is asked before refusing
    # and, our 3 MiB being on it now, agrees.
    disk.free = 17 * MiB
    with pytest.raises(StorageFull):
        floor.admit(2 * MiB)
    assert disk.calls == 2
    assert not floor.under  # the disk is above the floor: only this write was too big
    floor.admit(MiB)  # exactly at the floor: admitted


def test_freed_space_is_seen_by_the_next_write_without_waiting(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="folio.store")
    disk, clock = Disk(GiB, 10 * MiB), Clock()
    floor = floor_on(disk, clock)
    for _ in range(3):
        with pytest.raises(StorageFull):
            floor.admit(0)  # under the floor already: even an empty write is refused
    assert floor.under
    assert caplog.text.count("10.0 MiB free, under the floor of 16.0 MiB") == 1  # once, not per write
    disk.free = 100 * MiB  # a delete freed space
    clock.now += 0.001  # well within the cache interval
    floor.admit(MiB)
    assert disk.calls == 4
    assert not floor.under
    assert "free space is above the floor again (100.0 MiB free): writes are accepted" in caplog.text


def test_a_refusal_is_the_filesystems_word_not_the_estimates() -> None:
    disk, clock = Disk(GiB, 40 * MiB), Clock()
    floor = floor_on(disk, clock)
    floor.admit(10 * MiB)
    floor.admit(10 * MiB)  # estimated 20 MiB free: the writes were aborted meanwhile
    clock.now += 0.001
    floor.admit(10 * MiB)  # the estimate says 10 MiB left, the filesystem 40: admitted
    assert disk.calls == 2


def test_no_floor_never_asks_the_filesystem() -> None:
    disk, clock = Disk(GiB, 0), Clock()
    floor = floor_on(disk, clock, min_free_bytes=0, percent=0)
    floor.admit(GiB)
    assert disk.calls == 0


def test_percent_of_the_filesystem_size(caplog: pytest.LogCaptureFixture) -> None:
    disk, clock = Disk(64 * MiB, 20 * MiB), Clock()
    floor = floor_on(disk, clock, min_free_bytes=GiB, percent=25)
    floor.admit(4 * MiB)  # down to exactly the floor
    assert floor.floor == 16 * MiB
    disk.free = 16 * MiB
    with pytest.raises(StorageFull):
        floor.admit(1)
    disk.free = 15 * MiB
    floor.report_at_start()
    assert "every write will be refused" in caplog.text


def test_bytes_a_writer_still_buffers_count_although_statvfs_cannot_see_them() -> None:
    disk, clock = Disk(GiB, 20 * MiB), Clock()
    floor = floor_on(disk, clock)
    floor.admit(MiB, unwritten=3 * MiB)  # 20 - 3 in memory - 1: at the floor
    clock.now += RECHECK_SECONDS * 1.5  # a fresh statvfs: the buffered 4 MiB are not on it
    with pytest.raises(StorageFull):
        floor.admit(MiB, unwritten=4 * MiB)
