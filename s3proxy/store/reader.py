"""Streams an object's bytes (inline or from its blobs), whole or a byte range.

Files are read in worker threads so a cold disk never blocks the event loop,
and one read runs ahead: while the loop sends chunk n, chunk n+1 is already
being read.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import Executor

from s3proxy.store.models import ObjectVersion

READ_CHUNK = 1024 * 1024


class ObjectReader:
    def __init__(self, version: ObjectVersion, fds: list[int], executor: Executor) -> None:
        self.version = version
        self._fds = fds
        self._executor = executor

    def _extents(self, start: int, end: int) -> Iterator[tuple[int, int, int]]:
        """(fd, length, offset) reads covering start..end inclusive: os.pread's arguments."""
        offset = 0
        for fd, (_, size) in zip(self._fds, self.version.segments, strict=True):
            seg_start, seg_end = offset, offset + size - 1
            offset += size
            if seg_end < start or seg_start > end:
                continue
            pos = max(start, seg_start) - seg_start
            stop = min(end, seg_end) - seg_start + 1
            while pos < stop:
                n = min(READ_CHUNK, stop - pos)
                yield fd, n, pos
                pos += n

    async def iter_range(self, start: int, end: int) -> AsyncIterator[bytes]:
        """Bytes start..end inclusive."""
        try:
            if self.version.inline_data is not None:
                yield self.version.inline_data[start : end + 1]
                return
            loop = asyncio.get_running_loop()
            extents = self._extents(start, end)
            nxt = next(extents, None)
            ahead = loop.run_in_executor(self._executor, os.pread, *nxt) if nxt else None
            while ahead is not None:
                wanted = nxt[1]  # type: ignore[index]
                data = await ahead
                nxt = next(extents, None)
                ahead = loop.run_in_executor(self._executor, os.pread, *nxt) if nxt else None
                if len(data) != wanted:
                    raise OSError("blob is shorter than its recorded size")
                yield data
        finally:
            self.close()

    def close(self) -> None:
        for fd in self._fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds = []
