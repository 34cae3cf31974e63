"""Receives an object's bytes as they arrive and turns them into either inline
data (small objects) or a durable blob, hashing on the way.

Large bodies are gathered into pieces (lists of the received buffers, never
copied); each piece is hashed on one worker thread and written with one
`writev` on another while the event loop receives the next piece. Few, large
hand-offs matter here: every return from a worker thread has to win the GIL
back from the busy event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from concurrent.futures import Executor
from typing import Protocol

from s3proxy.store.blob_store import BlobStore, BlobWriter
from s3proxy.store.free_space import FreeSpaceFloor

Buffer = bytes | memoryview


class Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...


def _hash_all(hashers: Sequence[Hasher], pieces: list[Buffer]) -> None:
    for hasher in hashers:
        for piece in pieces:
            hasher.update(piece)


class ObjectWriter:
    """Write with `write()`, end with `finish()`, then hand to `Store.put_object`
    (or `abort()` to drop everything)."""

    def __init__(
        self,
        blobs: BlobStore,
        executor: Executor,
        *,
        inline_threshold: int,
        chunk_bytes: int,
        hashers: Sequence[Hasher] = (),
        floor: FreeSpaceFloor | None = None,
    ) -> None:
        self._floor = floor
        self._blobs = blobs
        self._executor = executor
        self._inline_threshold = inline_threshold
        self._chunk_bytes = chunk_bytes
        self.md5 = hashlib.md5()
        self._hashers: list[Hasher] = [self.md5, *hashers]
        self._pieces: list[Buffer] = []
        self._buffered = 0
        self._pending: asyncio.Future | None = None
        self.blob: BlobWriter | None = None
        self.inline_data: bytes | None = None
        self.size = 0
        self.finished = False

    async def write(self, data: Buffer) -> None:
        if not data:
            return
        if self._floor is not None:  # blob or inline, the bytes take space: none under the floor
            on_disk = self.blob.size if self.blob is not None else 0
            self._floor.admit(len(data), unwritten=self.size - on_disk)
        self._pieces.append(data)
        self._buffered += len(data)
        self.size += len(data)
        if self._buffered >= self._chunk_bytes:
            await self._flush()

    async def _flush(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            await pending
        if not self._pieces:
            return
        pieces, self._pieces, self._buffered = self._pieces, [], 0
        if self.blob is None:
            self.blob = self._blobs.new_file()
        loop = asyncio.get_running_loop()
        # Hashes and the write run side by side; the next piece is received meanwhile.
        self._pending = asyncio.gather(
            loop.run_in_executor(self._executor, _hash_all, self._hashers, pieces),
            loop.run_in_executor(self._executor, self.blob.write_pieces, pieces),
        )

    async def finish(self) -> None:
        """All bytes are in: settle hashes and pending writes (nothing is published yet)."""
        if self.blob is None and self.size <= self._inline_threshold:
            data = b"".join(self._pieces)
            self._pieces, self._buffered = [], 0
            _hash_all(self._hashers, [data])
            self.inline_data = data
        else:
            await self._flush()
            if self._pending is not None:
                pending, self._pending = self._pending, None
                await pending
        self.finished = True

    @property
    def etag(self) -> str:
        return self.md5.hexdigest()

    def abort(self) -> None:
        if self.blob is not None:
            self.blob.abort()
            self.blob = None
        self._pieces, self._buffered = [], 0

    async def aclose_pending(self) -> None:
        """Wait for writes in flight (before aborting after an error)."""
        if self._pending is not None:
            pending, self._pending = self._pending, None
            try:
                await pending
            except Exception:  # noqa: BLE001 - we are already failing; the file is dropped next
                pass
