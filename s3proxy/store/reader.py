"""Streams an object's bytes (inline or from its blobs), whole or a byte range.

Bytes already in the page cache are read on the event loop (a memcpy); anything
that needs the disk is read in a worker thread, so a cold disk never blocks it.
Blob pieces are checked against their CRC32C as they are read (s3proxy.store.integrity):
in the worker thread beside the read, or on the loop for a cached piece.
A blob that is not a file (an upstream S3 object, s3proxy/store/blob_s3.py) is a `BlobSource`
read on the loop, each segment's span in one streamed request, checked the same way.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import Executor, Future

from s3proxy.store.blob_store import BlobSource
from s3proxy.store.blobs import ALIGN, O_DIRECT, AlignedBuffers
from s3proxy.store.integrity import PIECE_BYTES, BlobChecksums, CorruptObject, crc32c
from s3proxy.store.models import ObjectVersion

READ_CHUNK = 1024 * 1024
# Local reads in flight ahead of the one being sent (pieces of READ_CHUNK or PIECE_BYTES).
READ_AHEAD = 4
_NOWAIT = getattr(os, "RWF_NOWAIT", None)


def read_if_cached(fd: int, length: int, offset: int) -> bytearray | None:
    """Read from the page cache only (preadv2 RWF_NOWAIT), on the calling thread.

    A cached read is a memcpy: cheaper on the event loop than a hand-off to a worker
    thread, which must then win the GIL back. None when any byte would need the
    disk (or the system cannot tell): the caller then reads in a worker."""
    if _NOWAIT is None:
        return None
    buffer = bytearray(length)
    try:
        got = os.preadv(fd, [buffer], offset, _NOWAIT)
    except OSError:  # EAGAIN: not cached; EOPNOTSUPP: filesystem without RWF_NOWAIT
        return None
    return buffer if got == length else None


def read_direct(fd: int, length: int, offset: int, buffers: AlignedBuffers) -> bytes:
    """Read with O_DIRECT (`fd` opened with it) into a reused aligned buffer: blobs
    are written past the page cache, and a buffered read of them would allocate
    fresh cache pages, slower here than the disk itself."""
    start = offset - offset % ALIGN
    skip = offset - start
    out = bytearray()
    buffer = buffers.get()
    try:
        while len(out) < length:
            want = min(len(buffer), skip + length - len(out))
            want += -want % ALIGN
            got = os.preadv(fd, [memoryview(buffer)[:want]], start)
            if got <= skip:
                break  # end of file
            take = min(got - skip, length - len(out))
            out += buffer[skip : skip + take]
            start += got
            skip = 0
    finally:
        buffers.put(buffer)
    return bytes(out) if len(out) != length else out  # type: ignore[return-value]


# The blob's checksums and the piece a read covers: what the read is checked against.
PieceCheck = tuple[BlobChecksums, int]
# (fd, length, offset) of a read (os.pread's arguments), the slice of it to hand out, and
# the piece check when the read is one whole checked piece.
Extent = tuple["int | BlobSource", int, int, int, int, "PieceCheck | None"]
OnCorrupt = Callable[[ObjectVersion, str, str], Awaitable[Exception]]
# A read begun: its bytes (from the page cache), a worker's future (bytes, or bytes and their
# CRC32C), or None (an upstream blob's, read when taken).
Started = bytearray | Future | None


class ObjectReader:
    """An object's bytes, from its row (inline) or its blobs' open descriptors.

    With `checks` (blob id -> its piece checksums; [storage] verify_reads), every read of
    a checked blob covers whole 1 MiB pieces and each is compared with its CRC32C before
    any of its bytes is handed out; a range reads the whole pieces it touches. A piece that
    fails stops the stream with `CorruptObject` (from `on_corrupt`, which counts and marks
    it): the caller's response is aborted, never completed with wrong bytes."""

    def __init__(
        self,
        version: ObjectVersion,
        fds: list[int | BlobSource],
        executor: Executor,
        buffers: AlignedBuffers | None = None,
        checks: dict[str, BlobChecksums | None] | None = None,
        on_corrupt: OnCorrupt | None = None,
    ) -> None:
        self.version = version
        self._fds = fds
        self._executor = executor
        self._buffers = buffers
        self._direct: dict[int, int] = {}
        self._checks = checks or {}
        self._on_corrupt = on_corrupt
        # Reads ahead running on worker threads; the descriptors stay open until they end.
        self._reading: set[Future] = set()
        self._closing = False
        self._lock = threading.Lock()

    def _read_uncached(self, fd: int, length: int, offset: int) -> bytes:
        """In a worker thread: O_DIRECT when the system has it, else a plain read."""
        if self._buffers is not None and O_DIRECT:
            with self._lock:  # reads ahead of one blob run on several threads at once
                direct = self._direct.get(fd)
                if direct is None:
                    try:
                        # A new open file description of the same inode (still valid if the
                        # blob has been unlinked since), so the cached-read descriptor stays.
                        direct = os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | O_DIRECT)
                    except OSError:
                        direct = -1
                    self._direct[fd] = direct
            if direct >= 0:
                try:
                    return read_direct(direct, length, offset, self._buffers)
                except OSError:
                    pass
        return os.pread(fd, length, offset)

    def _read_and_sum(self, fd: int, length: int, offset: int) -> tuple[bytes, int]:
        """In a worker thread: the read and its CRC32C (off the event loop, beside it)."""
        data = self._read_uncached(fd, length, offset)
        return data, crc32c(data)

    def _extents(self, start: int, end: int) -> Iterator[Extent]:
        """The reads covering bytes start..end inclusive, in order."""
        offset = 0
        for fd, segment in zip(self._fds, self.version.segments, strict=True):
            seg_start, seg_end = offset, offset + segment.length - 1
            offset += segment.length
            if seg_end < start or seg_start > end:
                continue
            pos = max(start, seg_start) - seg_start
            stop = min(end, seg_end) - seg_start + 1
            check = self._checks.get(segment.blob_id)
            first, last = segment.offset + pos, segment.offset + stop  # in the blob, last exclusive
            if not isinstance(fd, int):  # the span in one streamed request (whole pieces when checked)
                if check is not None and last <= check.size:
                    fd.expect(first - first % PIECE_BYTES, min(last + -last % PIECE_BYTES, check.size))
                else:
                    fd.expect(first, last)
            if check is not None and last <= check.size:
                for piece in range(first // PIECE_BYTES, (last - 1) // PIECE_BYTES + 1):
                    piece_start, length = piece * PIECE_BYTES, check.piece_length(piece)
                    keep_from = max(first, piece_start) - piece_start
                    keep_to = min(last, piece_start + length) - piece_start
                    yield fd, length, piece_start, keep_from, keep_to, (check, piece)
                continue
            while pos < stop:  # unchecked: a blob without checksums yet, or verify_reads off
                n = min(READ_CHUNK, stop - pos)
                yield fd, n, segment.offset + pos, 0, n, None
                pos += n

    def _start(self, extent: Extent) -> Started:
        """Begin one local read: from the page cache at once (on the loop), or on a worker
        thread. Reads of an upstream blob start when they are taken (`_take`): one
        streamed request in order."""
        fd, length, offset, _keep_from, _keep_to, check = extent
        if not isinstance(fd, int):
            return None
        data = read_if_cached(fd, length, offset)
        if data is not None:
            return data
        worker = self._read_uncached if check is None else self._read_and_sum
        future = self._executor.submit(worker, fd, length, offset)
        self._reading.add(future)
        future.add_done_callback(self._read_done)
        return future

    def _read_done(self, future: Future) -> None:
        with self._lock:
            self._reading.discard(future)
            close_now = self._closing and not self._reading
        if close_now:  # the stream ended while this read ran: its descriptors go now
            self._close_descriptors()

    async def _take(self, extent: Extent, started: Started) -> tuple[bytes | bytearray, int | None]:
        fd, length, offset = extent[0], extent[1], extent[2]
        if isinstance(started, Future):
            result = await asyncio.wrap_future(started)
            return result if isinstance(result, tuple) else (result, None)
        if started is not None:
            return started, None
        assert not isinstance(fd, int)
        return await fd.read(length, offset), None

    async def iter_range(self, start: int, end: int) -> AsyncIterator[bytes]:
        """Bytes start..end inclusive. Local reads run up to READ_AHEAD pieces ahead of
        what is being sent, so a cold object streams at the disk's pace rather than one
        read's latency plus one send's at a time."""
        ahead: deque[tuple[Extent, Started]] = deque()
        try:
            if self.version.inline_data is not None:
                yield self.version.inline_data[start : end + 1]
                return
            extents = self._extents(start, end)

            def top_up() -> None:
                while len(ahead) < READ_AHEAD:
                    extent = next(extents, None)
                    if extent is None:
                        return
                    ahead.append((extent, self._start(extent)))
                    if not isinstance(extent[0], int):
                        return  # an upstream blob: one read at a time, in order

            top_up()
            while ahead:
                extent, started = ahead.popleft()
                data, crc = await self._take(extent, started)
                top_up()
                _fd, length, _offset, keep_from, keep_to, check = extent
                if check is not None:
                    blobsums, piece = check
                    if blobsums.damaged:
                        raise await self._corrupt(
                            blobsums.blob_id, piece, "a scrub found it damaged and it has no checksums"
                        )
                    if len(data) != length:
                        raise await self._corrupt(
                            blobsums.blob_id, piece, "the blob file is shorter than recorded"
                        )
                    if (crc32c(data) if crc is None else crc) != blobsums.expected(piece):
                        raise await self._corrupt(blobsums.blob_id, piece, "it fails its CRC32C")
                elif len(data) != length:
                    raise OSError("blob is shorter than its recorded size")
                yield data if keep_from == 0 and keep_to == length else data[keep_from:keep_to]
        finally:
            for _extent, started in ahead:
                if isinstance(started, Future):
                    started.cancel()  # not begun: never will; running: its done callback closes
            self.close()

    async def _corrupt(self, blob_id: str, piece: int, what: str) -> Exception:
        first = piece * PIECE_BYTES
        detail = f"piece {piece} (bytes {first}-{first + PIECE_BYTES - 1} of the blob): {what}"
        if self._on_corrupt is None:
            return CorruptObject(self.version.bucket_id, self.version.key, self.version.version_id, detail)
        return await self._on_corrupt(self.version, blob_id, detail)

    def close(self) -> None:
        """Close every descriptor, once no worker thread is reading from one (a read ahead
        still running closes them when it ends: a descriptor closed under it could be
        reused by another open before the read begins)."""
        with self._lock:
            self._closing = True
            if self._reading:
                return
        self._close_descriptors()

    def _close_descriptors(self) -> None:
        with self._lock:
            fds, self._fds = self._fds, []
            direct, self._direct = self._direct, {}
        for fd in [*fds, *(d for d in direct.values() if d >= 0)]:
            if not isinstance(fd, int):
                fd.close()
                continue
            try:
                os.close(fd)
            except OSError:
                pass
