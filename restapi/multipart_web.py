"""Multipart uploads on the web listener, for the dashboard's upload manager: start an
upload, stream one part of it into the store, list the parts already stored (to resume
after a page reload), complete, abort.

The same store calls as S3's CreateMultipartUpload, UploadPart, ListParts,
CompleteMultipartUpload and AbortMultipartUpload, in-process: each part is reserved
against the quota from its Content-Length before a byte is read, streamed to disk in the
writer's pieces (memory does not grow with the part or the file), checked against the
client's Content-MD5 before it is stored, and completing makes the object from the parts'
blobs with S3's multipart ETag. Nothing here knows about pages or sessions: callers pass
the bucket (already checked to be the caller's) and the key."""

from __future__ import annotations

import base64
import binascii
import hmac
from dataclasses import dataclass

from starlette.requests import Request

from core.jsonapi import ApiError, bad_request
from core.requestbody import declared_length, stream_limited
from restapi.files import RestServices, store_error
from s3proxy.store.errors import NoSuchUpload, StoreError
from s3proxy.store.models import Bucket, ObjectMeta, ObjectVersion
from s3proxy.store.multipart import Part, RequestedPart, Upload, multipart_etag

MIB = 1024 * 1024
# Parts of 8 MiB: a few in flight keep a link busy, each a short request (no timeout on a
# slow line), and a retried part costs little. Larger only when a file needs more than
# S3's 10,000 parts (beyond 78 GiB).
PART_SIZE = 8 * MIB
MAX_PARTS = 10_000
# S3's limit on one part: no request body above it is read.
MAX_PART_BYTES = 5 * 1024 * MIB
# S3's limit on one object (5 TiB).
MAX_OBJECT_BYTES = 5 * 1024 * 1024 * MIB
# ListParts pages, read whole for a resume (10,000 parts at most).
_LIST_PAGE = 1000


def part_size_for(size: int) -> int:
    """The part size for a file of `size` bytes: PART_SIZE, or the smallest whole number
    of MiB that fits the file in MAX_PARTS parts."""
    if size < 0 or size > MAX_OBJECT_BYTES:
        raise bad_request(f"A file is 0 to {MAX_OBJECT_BYTES} bytes.", size=size)
    needed = -(-size // MAX_PARTS)
    return max(PART_SIZE, -(-needed // MIB) * MIB)


def upload_error(exc: StoreError) -> ApiError:
    """A store refusal as the JSON APIs answer it (restapi.files.store_error), with a
    finished or unknown upload as 404."""
    if isinstance(exc, NoSuchUpload):
        return ApiError(
            404, "NoSuchUpload", "This upload does not exist any more (completed, aborted or expired)."
        )
    return store_error(exc)


def _content_md5(value: str | None) -> bytes | None:
    if value is None:
        return None
    try:
        digest = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ApiError(400, "InvalidDigest", "Content-MD5 is not base64.") from exc
    if len(digest) != 16:
        raise ApiError(400, "InvalidDigest", "Content-MD5 is not an MD5 digest (16 bytes).")
    return digest


async def start_upload(services: RestServices, bucket: Bucket, key: str, content_type: str | None) -> Upload:
    """CreateMultipartUpload: an upload of `key` owned by the bucket's owner, private (the
    store refuses a key S3 refuses)."""
    meta = ObjectMeta(content_type=content_type or "application/octet-stream")
    try:
        return await services.store.create_upload(bucket, key, meta, None, None)
    except StoreError as exc:
        raise upload_error(exc) from exc


def _upload(services: RestServices, bucket: Bucket, key: str, upload_id: str) -> Upload:
    try:
        return services.store.get_upload(bucket, key, upload_id)
    except StoreError as exc:
        raise upload_error(exc) from exc


async def receive_part(
    request: Request, services: RestServices, bucket: Bucket, key: str, upload_id: str, part_number: int
) -> str:
    """UploadPart from the request's raw body; returns the part's ETag (hex MD5). The
    upload must exist and the quota hold the declared length before a byte is read; a
    Content-MD5 that does not match the bytes stores nothing (400 BadDigest)."""
    if not 1 <= part_number <= MAX_PARTS:
        raise bad_request(f"Part numbers are 1 to {MAX_PARTS}.", partNumber=part_number)
    store = services.store
    expected_md5 = _content_md5(request.headers.get("content-md5"))
    upload = _upload(services, bucket, key, upload_id)
    length = declared_length(request, MAX_PART_BYTES, "Parts")
    writer = store.new_writer()
    with store.reservation(bucket) as reservation:
        try:
            if length is not None:
                await reservation.require(length)  # QuotaExceeded before any transfer
            async for chunk in stream_limited(request, MAX_PART_BYTES, "Parts"):
                if length is None:
                    await reservation.require(writer.size + len(chunk))
                await writer.write(chunk)
            await writer.finish()
            if expected_md5 is not None and not hmac.compare_digest(writer.md5.digest(), expected_md5):
                raise ApiError(
                    400, "BadDigest", "The Content-MD5 you specified did not match what was received."
                )
            return await store.put_part(bucket, key, upload.id, part_number, writer, {}, reservation)
        except BaseException as exc:
            # Nothing of a failed part remains: no blob, no row, an earlier copy of the part intact.
            await writer.aclose_pending()
            writer.abort()
            if isinstance(exc, StoreError):
                raise upload_error(exc) from exc
            raise


def stored_parts(services: RestServices, bucket: Bucket, key: str, upload_id: str) -> list[Part]:
    """ListParts, every page: the parts a resumed upload need not send again."""
    parts: list[Part] = []
    after = 0
    while True:
        try:
            _upload_row, page, truncated = services.store.list_parts(
                bucket, key, upload_id, after=after, max_parts=_LIST_PAGE
            )
        except StoreError as exc:
            raise upload_error(exc) from exc
        parts += page
        if not truncated or not page:
            return parts
        after = page[-1].part_number


@dataclass(frozen=True)
class NamedPart:
    part_number: int
    etag: str


def _finalize(_upload: Upload, parts: list[Part]) -> tuple[str, dict[str, str]]:
    # These uploads ask for no additional checksum: the object's ETag is S3's.
    return multipart_etag(parts), {}


async def complete(
    services: RestServices, bucket: Bucket, key: str, upload_id: str, parts: list[NamedPart]
) -> ObjectVersion:
    """CompleteMultipartUpload with the parts the client sent and the ETags it was given:
    S3's checks (order, ETags, minimum part size), one transaction, no byte copied."""
    if not parts:
        raise bad_request("Name at least one part.")
    requested = [RequestedPart(p.part_number, p.etag, {}) for p in parts]
    try:
        return await services.store.complete_upload(bucket, key, upload_id, requested, _finalize)
    except StoreError as exc:
        raise upload_error(exc) from exc


async def abort(services: RestServices, bucket: Bucket, key: str, upload_id: str) -> None:
    """AbortMultipartUpload: the parts' space is freed at once."""
    try:
        await services.store.abort_upload(bucket, key, upload_id)
    except StoreError as exc:
        raise upload_error(exc) from exc
