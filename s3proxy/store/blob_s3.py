"""Blobs in an upstream S3-compatible bucket (`[blobs] backend = "s3"`): each blob is the object
`<prefix><blob id>` (a random 32-hex id, never the user's key), written once and never changed.
The database keeps everything else exactly as with local blobs: reference counts, sizes, piece
checksums; copies and multipart Completes share blobs; inline objects stay in their rows.

The client is obstore (Rust, its own runtime; chosen by bench/choose_s3_client.py, see
docs/scale-out.md). Writes run its synchronous API on the writer's worker thread (it releases
the GIL while it waits); reads use its asynchronous API on the event loop.

- Writes: up to PART_BYTES are kept in memory; a blob that fits is one PUT at publish, a larger
  one becomes a multipart upload of PART_BYTES parts, PARTS_IN_FLIGHT at a time (a write waits
  while they are full: memory stays bounded whatever the size), completed at publish.
- Reads: one ranged GET per span a reader asks for, streamed in pieces of at least 1 MiB; a
  stream that breaks (or outlives the request timeout under a slow client) goes on in a new
  ranged GET from where it stopped.
- Deletes: a blob whose count reached zero is deleted `[storage] gc_grace_seconds` later (a
  reader on this node or another may still be streaming it; a local file keeps its bytes for
  an open descriptor, an upstream object does not). The sweep (`folio gc`, start-up) deletes
  blobs under the prefix that no row references once they are older than that grace, and aborts
  multipart uploads initiated before it (a node that died mid-upload).
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import obstore
from obstore.exceptions import BaseError as ObstoreError
from obstore.store import S3Store

from core.config import BlobsConfig
from s3proxy.store.integrity import PieceChecksums

if TYPE_CHECKING:
    from obstore import BytesStream, WritableFile

log = logging.getLogger("folio.blobs")

PART_BYTES = 8 * 1024 * 1024  # the single-PUT limit and the multipart part size
PARTS_IN_FLIGHT = 3  # per upload: about (1 + 3) x 8 MiB of memory at most
READ_CHUNK = 1024 * 1024  # obstore joins the socket's pieces into chunks of at least this
REOPENS = 3  # new ranged GETs one read may start after its stream broke
HEALTH_TIMEOUT = 2.0
CLOSE_WAIT = 5.0  # seconds a closing store still waits for freed blobs to come due
_HEX = frozenset("0123456789abcdef")


def is_blob_id(name: str) -> bool:
    return len(name) == 32 and all(c in _HEX for c in name)


class S3BlobWriter:
    """A blob being written upstream (the BlobWriter of s3proxy/store/blob_store.py)."""

    def __init__(self, store: S3BlobStore) -> None:
        self.store = store
        self.blob_id = secrets.token_hex(16)
        self.key = store.key(self.blob_id)
        self.size = 0
        self.published = False
        # CRC32C per 1 MiB piece of the bytes as handed over, on the write thread, exactly as
        # the local writer records them: reads check them whatever the backend.
        self.checksums = PieceChecksums()
        self._buffer = bytearray()
        self._upload: WritableFile | None = None  # the multipart upload, once past PART_BYTES
        self._lock = threading.Lock()
        self._publishing = False
        self._aborted = False

    def write(self, data: bytes | memoryview) -> None:
        self.write_pieces([data])

    def write_pieces(self, pieces: list[bytes | memoryview]) -> None:
        """Append the pieces (one worker thread at a time). Blocks while PARTS_IN_FLIGHT parts
        are on their way: the body is received no faster than the upstream takes it."""
        for piece in pieces:
            self.checksums.update(piece)
            self.size += len(piece)
        if self._upload is None:
            for piece in pieces:
                self._buffer += piece
            if len(self._buffer) <= PART_BYTES:
                return
            # Too large for one PUT: obstore's writer makes it a multipart upload of PART_BYTES
            # parts (it copies what it is given, so the pieces are not kept).
            self._upload = obstore.open_writer(
                self.store.s3, self.key, buffer_size=PART_BYTES, max_concurrency=PARTS_IN_FLIGHT
            )
            buffered, self._buffer = self._buffer, bytearray()
            self._upload.write(buffered)
            return
        for piece in pieces:
            self._upload.write(piece)

    def publish(self) -> str:
        """The whole blob is upstream when this returns (PUT, or the upload completed)."""
        with self._lock:
            if self._aborted:
                raise RuntimeError("publish after abort")
            self._publishing = True
        try:
            if self._upload is None:
                obstore.put(self.store.s3, self.key, self._buffer, use_multipart=False)
                self._buffer = bytearray()
            else:
                upload, self._upload = self._upload, None
                upload.close()
        finally:
            with self._lock:
                self._publishing = False
                self.published = True
                aborted = self._aborted
        if aborted:  # abandoned while it was being published (a cancelled request)
            self.store.in_background(self.store.delete, self.blob_id)
        return self.blob_id

    def abort(self) -> None:
        """Leave nothing upstream. Called on the event loop too: the requests run elsewhere."""
        with self._lock:
            if self._aborted:
                return
            self._aborted = True
            if self._publishing:
                return  # publish() removes it when it is done
            upload, self._upload = self._upload, None
            published = self.published
        self._buffer = bytearray()
        if upload is not None:
            # obstore's writer cannot abort a multipart upload: complete it (the last part is
            # what is still buffered), then delete the object. An upload that cannot complete
            # is left incomplete upstream, and the sweep aborts it after the grace.
            self.store.in_background(self.store.complete_and_delete, upload, self.blob_id)
        elif published:
            self.store.in_background(self.store.delete, self.blob_id)


class S3BlobSource:
    """A blob open for reading (the BlobSource of s3proxy/store/blob_store.py): sequential
    reads served from one ranged GET per expected span."""

    def __init__(self, store: S3BlobStore, blob_id: str) -> None:
        self._store = store
        self._key = store.key(blob_id)
        self._end = 0  # exclusive end of the span the reads cover
        self._stream: BytesStream | None = None
        self._stream_end = 0  # exclusive end of the open GET's range
        self._pos = 0  # the blob offset of the next byte handed out
        self._left = memoryview(b"")  # received and not yet handed out (starts at _pos)

    def expect(self, start: int, end: int) -> None:
        self._end = end
        if self._stream is not None and (self._pos != start or end > self._stream_end):
            self.close()

    async def _open(self, offset: int) -> None:
        self.close()
        self._stream_end = max(self._end, offset + 1)
        result = await obstore.get_async(
            self._store.s3, self._key, options={"range": (offset, self._stream_end)}
        )
        self._stream = result.stream(min_chunk_size=READ_CHUNK)
        self._pos = offset

    async def read(self, length: int, offset: int) -> bytes:
        if self._stream is None or offset != self._pos or offset + length > self._stream_end:
            self._end = max(self._end, offset + length)
            await self._open(offset)
        parts: list[memoryview] = []
        have = 0
        reopened = 0
        while have < length:
            if not self._left:
                assert self._stream is not None
                try:
                    chunk = await self._stream.__anext__()
                except StopAsyncIteration:
                    break  # the blob ends here: the reader sees a short read
                except FileNotFoundError:
                    raise
                except (OSError, ObstoreError) as exc:
                    if reopened >= REOPENS:
                        raise
                    reopened += 1
                    log.info("upstream read of %s broke at %d (%s): reading on", self._key, self._pos, exc)
                    await self._open(self._pos)
                    continue
                self._left = memoryview(chunk)
            take = min(len(self._left), length - have)
            parts.append(self._left[:take])
            self._left = self._left[take:]
            have += take
            self._pos += take
        return b"".join(parts)

    def close(self) -> None:
        # Dropping the stream drops its response (and connection) on obstore's side.
        self._stream = None
        self._left = memoryview(b"")


class DelayedDeletes:
    """Deletes due some seconds from now, run by one thread. On close, the ones due within
    CLOSE_WAIT seconds are still made (a short grace: a test, or blobs freed an hour ago);
    later ones are left to the sweep (their blobs are unreferenced by then)."""

    def __init__(self, delete: Callable[[str], None], delay: float) -> None:
        self._delete = delete
        self._delay = delay
        self._due: list[tuple[float, str]] = []
        self._wake = threading.Condition()
        self._closing_at: float | None = None  # once closing: the last due time still deleted
        self._thread: threading.Thread | None = None

    def add(self, blob_id: str) -> None:
        with self._wake:
            if self._closing_at is not None:
                return
            heapq.heappush(self._due, (time.monotonic() + self._delay, blob_id))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="folio-blob-deletes", daemon=True)
                self._thread.start()
            self._wake.notify()

    def pending(self) -> int:
        with self._wake:
            return len(self._due)

    def _next(self) -> str | None:
        """The next blob due (waiting for it), or None once closed with nothing due soon."""
        with self._wake:
            while True:
                closing_at = self._closing_at
                if not self._due or (closing_at is not None and self._due[0][0] > closing_at):
                    if closing_at is not None:
                        return None
                    self._wake.wait()
                    continue
                wait = self._due[0][0] - time.monotonic()
                if wait <= 0:
                    return heapq.heappop(self._due)[1]
                self._wake.wait(wait)

    def _run(self) -> None:
        while (blob_id := self._next()) is not None:
            try:
                self._delete(blob_id)
            except Exception:  # noqa: BLE001 - left upstream: the sweep removes it later
                log.exception("deleting freed blob %s upstream failed", blob_id)

    def close(self) -> None:
        with self._wake:
            self._closing_at = time.monotonic() + CLOSE_WAIT
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout=CLOSE_WAIT + 30)
        with self._wake:
            left = len(self._due)
        if left:
            log.info("%d freed blobs not yet past their grace are left to the sweep (folio gc)", left)


class S3BlobStore:
    """The BlobStore of s3proxy/store/blob_store.py on an upstream S3-compatible bucket."""

    backend = "s3"
    buffers = None

    def __init__(self, config: BlobsConfig, *, grace_seconds: float) -> None:
        self.config = config
        self.prefix = config.prefix.lstrip("/")
        self.grace = float(grace_seconds)
        options: dict[str, Any] = {"connect_timeout": "5s", "timeout": "120s"}
        if config.endpoint.startswith("http://"):
            options["allow_http"] = True
        credentials: dict[str, Any] = {}
        if config.access_key:
            credentials = {"access_key_id": config.access_key, "secret_access_key": config.secret_key}
        self.s3 = S3Store(
            config.bucket,
            region=config.region,
            **(
                {"endpoint": config.endpoint, "virtual_hosted_style_request": False}
                if config.endpoint
                else {}
            ),
            **credentials,
            client_options=options,
            # Retried with backoff, but not for minutes: a request waits on an upstream that is down.
            retry_config={"max_retries": 4, "retry_timeout": timedelta(seconds=30)},
        )
        self._deletes = DelayedDeletes(self.delete, self.grace)
        # Aborted writes are cleaned up here, never on the event loop that aborts them.
        self._background = ThreadPoolExecutor(max_workers=2, thread_name_prefix="folio-blob-cleanup")

    def key(self, blob_id: str) -> str:
        if not is_blob_id(blob_id):
            raise ValueError("malformed blob id")
        return self.prefix + blob_id

    def in_background(self, fn: Callable[..., object], *args: object) -> None:
        def run() -> None:
            try:
                fn(*args)
            except Exception:  # noqa: BLE001 - an orphan at worst: the sweep removes it
                log.exception("cleaning up an aborted upstream write failed")

        self._background.submit(run)

    # -- writing and reading ----------------------------------------------------------------

    def new_file(self) -> S3BlobWriter:
        return S3BlobWriter(self)

    def open(self, blob_id: str) -> S3BlobSource:
        """No request yet: the first read is the GET (a missing blob raises FileNotFoundError then)."""
        return S3BlobSource(self, blob_id)

    def complete_and_delete(self, upload: WritableFile, blob_id: str) -> None:
        upload.close()
        self.delete(blob_id)

    def read_chunks(self, blob_id: str, chunk_bytes: int) -> Iterator[bytes]:
        """The whole blob in chunks of at least `chunk_bytes` (on a worker thread: the scrub)."""
        result = obstore.get(self.s3, self.key(blob_id))
        yield from result.stream(min_chunk_size=chunk_bytes)

    # -- deleting -------------------------------------------------------------------------------

    def delete(self, blob_id: str) -> None:
        try:
            obstore.delete(self.s3, self.key(blob_id))
        except FileNotFoundError:
            pass

    def release(self, blob_id: str) -> None:
        self._deletes.add(blob_id)

    def exists(self, blob_id: str) -> bool:
        try:
            self.size(blob_id)
        except FileNotFoundError:
            return False
        return True

    def size(self, blob_id: str) -> int:
        return int(obstore.head(self.s3, self.key(blob_id))["size"])

    def iter_blobs(self) -> Iterator[tuple[str, float]]:
        """Every blob under the prefix with its upstream modification time."""
        # obstore lists by path segments: list the prefix's directory, keep what starts with it.
        directory = self.prefix.rpartition("/")[0]
        for batch in obstore.list(self.s3, directory or None, chunk_size=1000):
            for meta in batch:
                path = meta["path"]
                if path.startswith(self.prefix) and is_blob_id(path[len(self.prefix) :]):
                    yield path[len(self.prefix) :], meta["last_modified"].timestamp()

    def empty_tmp(self) -> int:
        """Nothing local is in flight; another node's uploads upstream are not garbage."""
        return 0

    def remove_unreferenced(self, referenced: set[str], grace_seconds: float = 0.0) -> int:
        """The sweep: blobs no row references, older than the grace, and multipart uploads
        initiated before it. Returns the number of blobs deleted."""
        cutoff = time.time() - grace_seconds
        removed = 0
        for blob_id, mtime in list(self.iter_blobs()):
            if blob_id not in referenced and mtime <= cutoff:
                self.delete(blob_id)
                removed += 1
        aborted = self._abort_stale_uploads(cutoff)
        if aborted:
            log.info("aborted %d upstream multipart uploads initiated before the grace", aborted)
        return removed

    def _abort_stale_uploads(self, cutoff: float) -> int:
        """obstore neither lists nor aborts multipart uploads: boto3 (already a dependency)
        does, for this rare sweep only."""
        try:
            client = self._boto3()
            aborted = 0
            pages = client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.config.bucket, Prefix=self.prefix
            )
            for page in pages:
                for upload in page.get("Uploads", []):
                    key = upload["Key"]
                    if not (key.startswith(self.prefix) and is_blob_id(key[len(self.prefix) :])):
                        continue
                    if upload["Initiated"].timestamp() <= cutoff:
                        client.abort_multipart_upload(
                            Bucket=self.config.bucket, Key=key, UploadId=upload["UploadId"]
                        )
                        aborted += 1
            return aborted
        except Exception as exc:  # noqa: BLE001 - an upstream without the call: blobs were swept
            log.warning("could not sweep incomplete upstream multipart uploads: %s", exc)
            return 0

    def _boto3(self) -> Any:
        import boto3
        from botocore.config import Config as BotoConfig

        config = self.config
        return boto3.client(
            "s3",
            endpoint_url=config.endpoint or None,
            region_name=config.region,
            aws_access_key_id=config.access_key or None,
            aws_secret_access_key=config.secret_key or None,
            config=BotoConfig(s3={"addressing_style": "path"} if config.endpoint else {}),
        )

    # -- health and lifecycle ---------------------------------------------------------------

    async def health(self) -> dict[str, Any]:
        """Whether the upstream answers a cheap signed request (a HEAD of a key that is not
        there: 404 says the bucket exists and the credentials are good), and how fast."""
        report: dict[str, Any] = {
            "backend": self.backend,
            "endpoint": self.config.endpoint or "AWS S3",
            "bucket": self.config.bucket,
            "pendingDeletes": self._deletes.pending(),
        }
        started = time.perf_counter()
        try:
            await asyncio.wait_for(obstore.head_async(self.s3, self.prefix + "health-check"), HEALTH_TIMEOUT)
        except FileNotFoundError:
            pass
        except (TimeoutError, OSError, ObstoreError) as exc:
            report.update(ok=False, error=f"{type(exc).__name__}: {str(exc)[:300]}")
        report.setdefault("ok", True)
        report["latencyMs"] = round((time.perf_counter() - started) * 1000, 1)
        return report

    def close(self) -> None:
        self._deletes.close()
        self._background.shutdown(wait=True)
