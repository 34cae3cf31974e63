"""The narrow interface between the object engine and where blob bytes live, and the choice of
backend from `[blobs]`.

Two backends implement it: `LocalBlobStore` (s3proxy/store/blobs.py: `blobs/ab/cd/<id>` in the
data directory, O_DIRECT writes, page-cache reads through file descriptors) and `S3BlobStore`
(s3proxy/store/blob_s3.py: an upstream S3-compatible bucket under `<prefix><id>`). Either way a
blob has a random 32-hex id (never derived from a key), and the database keeps what refers to
it: reference counts, sizes, piece checksums. Inline objects never reach a blob store.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from core.config import Config
from s3proxy.store.blobs import AlignedBuffers, LocalBlobStore
from s3proxy.store.integrity import PieceChecksums

Buffer = bytes | memoryview


class BlobWriter(Protocol):
    """A blob being written: pieces on one worker thread at a time, then `publish()` (durable,
    returns the id) or `abort()` (nothing is left behind; it may be called on the event loop,
    so it must not block)."""

    blob_id: str
    size: int
    checksums: PieceChecksums  # CRC32C per 1 MiB piece of the bytes as written

    def write(self, data: Buffer) -> None: ...
    def write_pieces(self, pieces: list[Buffer]) -> None: ...
    def publish(self) -> str: ...
    def abort(self) -> None: ...


class BlobSource(Protocol):
    """A blob open for reading that is not a file descriptor (s3proxy.store.reader):
    `expect()` announces the span the next reads cover, in order; `read()` returns exactly
    `length` bytes at `offset` (fewer only at the end of the blob)."""

    def expect(self, start: int, end: int) -> None: ...
    async def read(self, length: int, offset: int) -> bytes: ...
    def close(self) -> None: ...


class BlobStore(Protocol):
    backend: str
    buffers: AlignedBuffers | None  # O_DIRECT read buffers (local only)

    def new_file(self) -> BlobWriter: ...

    def open(self, blob_id: str) -> int | BlobSource:
        """For reading: a file descriptor (local) or a source of ranged reads. A missing blob
        may raise FileNotFoundError here or at the first read."""
        ...

    def delete(self, blob_id: str) -> None:
        """Remove now (a blob nothing references, and no reader can be using)."""
        ...

    def release(self, blob_id: str) -> None:
        """Its reference count reached zero: remove it once readers cannot need it (local: at
        once, an open descriptor keeps the bytes; s3: after `[storage] gc_grace_seconds`)."""
        ...

    def exists(self, blob_id: str) -> bool: ...
    def size(self, blob_id: str) -> int: ...  # FileNotFoundError when missing
    def read_chunks(self, blob_id: str, chunk_bytes: int) -> Iterator[bytes]: ...  # a worker thread
    def iter_blobs(self) -> Iterator[tuple[str, float]]: ...  # (id, modification time)
    def empty_tmp(self) -> int: ...
    def remove_unreferenced(self, referenced: set[str], grace_seconds: float = 0.0) -> int: ...
    async def health(self) -> dict[str, Any]: ...
    def close(self) -> None: ...


def open_blob_store(config: Config) -> BlobStore:
    """The backend `[blobs] backend` names (obstore is imported only for "s3")."""
    if config.blobs.backend == "s3":
        from s3proxy.store.blob_s3 import S3BlobStore

        return S3BlobStore(config.blobs, grace_seconds=config.storage.gc_grace_seconds)
    return LocalBlobStore(Path(config.storage.data_dir), direct_write_bytes=config.storage.direct_write_bytes)
