"""Receives an object's bytes as they arrive and turns them into either inline
data (small objects) or a durable blob, hashing on the way.

Large bodies are cut into pieces; each piece is hashed and written in worker
threads while the event loop receives the next piece, so a single upload is not
bounded by MD5 plus disk time added together.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from concurrent.futures import Executor
from typing import Protocol

from s3proxy.store.blobs import BlobFile, LocalBlobStore


class Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...


def _update_all(hashers: Sequence[Hasher], data: bytes) -> None:
    for hasher in hashers:
        hasher.update(data)


class ObjectWriter:
    """Write with `write()`, end with `finish()`, then hand to `Store.put_object`
    (or `abort()` to drop everything)."""

    def __init__(
        self,
        blobs: LocalBlobStore,
        executor: Executor,
        *,
        inline_threshold: int,
        chunk_bytes: int,
        hashers: Sequence[Hasher] = (),
    ) -> None:
        self._blobs = blobs
        self._executor = executor
        self._inline_threshold = inline_threshold
        self._chunk_bytes = chunk_bytes
        self.md5 = hashlib.md5()
        self._hashers = list(hashers)
        self._buffer = bytearray()
        self._pending: asyncio.Future | None = None
        self.blob: BlobFile | None = None
        self.inline_data: bytes | None = None
        self.size = 0
        self.finished = False

    async def write(self, data: bytes | memoryview) -> None:
        if not data:
            return
        self._buffer += data
        self.size += len(data)
        if len(self._buffer) >= self._chunk_bytes:
            await self._flush()

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        if self._pending is not None:
            await self._pending
            self._pending = None
        if not self._buffer:
            return
        piece = bytes(self._buffer)
        self._buffer.clear()
        if self.blob is None:
            self.blob = self._blobs.new_file()
        # MD5, the other hashes and the write run side by side on separate threads.
        tasks = [
            loop.run_in_executor(self._executor, self.md5.update, piece),
            loop.run_in_executor(self._executor, self.blob.write, piece),
        ]
        if self._hashers:
            tasks.append(loop.run_in_executor(self._executor, _update_all, self._hashers, piece))
        self._pending = asyncio.gather(*tasks)

    async def finish(self) -> None:
        """All bytes are in: settle hashes and pending writes (nothing is published yet)."""
        if self.blob is None and self.size <= self._inline_threshold:
            data = bytes(self._buffer)
            self._buffer.clear()
            self.md5.update(data)
            _update_all(self._hashers, data)
            self.inline_data = data
        else:
            await self._flush()
            if self._pending is not None:
                await self._pending
                self._pending = None
        self.finished = True

    @property
    def etag(self) -> str:
        return self.md5.hexdigest()

    def abort(self) -> None:
        if self.blob is not None:
            self.blob.abort()
            self.blob = None
        self._buffer.clear()

    async def aclose_pending(self) -> None:
        """Wait for writes in flight (before aborting after an error)."""
        if self._pending is not None:
            try:
                await self._pending
            except Exception:  # noqa: BLE001 - we are already failing; the file is dropped next
                pass
            self._pending = None
