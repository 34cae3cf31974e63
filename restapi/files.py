"""The simple REST file API (seed 004, "Simple REST API"), `/api/v1/files`: upload
(multipart form `file` field or a raw body), list, download (streamed, one Range),
metadata, delete. Every call goes through the same engine as S3, so quotas,
versioning (Time Machine), limits and ownership apply identically, and an object
is the same file over either API."""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from core.accounts import Accounts
from core.byteranges import UnsatisfiableRange, parse_byte_range
from core.config import Config
from core.doc_keys import DocKeys
from core.jsonapi import ApiError, bad_request, not_found, storage_full
from core.ratelimit import RateLimiter
from core.requestbody import declared_length, stream_limited
from core.sessions import Sessions
from core.strictparse import ascii_int, header_safe
from core.webhooks import Webhooks
from restapi.auth import Caller, authenticate, rate_limit
from restapi.forms import boundary_of, stream_form
from restapi.ids import file_id, parse_file_id
from s3proxy.store.engine import Store
from s3proxy.store.errors import (
    BucketAccessDenied,
    NoSuchBucket,
    ObjectIsDeleteMarker,
    StorageFull,
    StoreError,
)
from s3proxy.store.models import Bucket, ObjectMeta, ObjectVersion

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


@dataclass
class RestServices:
    store: Store
    accounts: Accounts
    config: Config
    # Shared with the S3 listener: one budget per access key whichever API it calls.
    limiter: RateLimiter
    sessions: Sessions
    webhooks: Webhooks
    # Document API keys (cl-...), listed and revoked beside the S3 key pairs.
    doc_keys: DocKeys


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _file_json(bucket: Bucket, version: ObjectVersion) -> dict[str, object]:
    return {
        "id": file_id(bucket.name, version.key),
        "key": version.key,
        "bucket": bucket.name,
        "size": version.size,
        "contentType": version.content_type or "application/octet-stream",
        "etag": version.etag,
        "versionId": version.version_id if bucket.versioning else None,
        "createdAt": iso(version.last_modified),
        "updatedAt": iso(version.last_modified),
    }


def owned_bucket(services: RestServices, caller: Caller, name: str) -> Bucket:
    """The caller's bucket; another account's bucket is as absent as a missing one."""
    try:
        return services.store.bucket_for(name, caller.account.id)
    except (NoSuchBucket, BucketAccessDenied) as exc:
        raise ApiError(404, "NoSuchBucket", f"No bucket named {name!r} in your account.") from exc


async def default_bucket(services: RestServices, caller: Caller) -> Bucket:
    """The account's default bucket, made on first use (sign-up makes it up front)."""
    name = services.accounts.default_bucket(caller.account.id)
    if name is not None:
        found = services.store.bucket(name)
        if found is not None and found.account_id == caller.account.id:
            return found
    name = f"files-{caller.account.id[:12]}"
    bucket, _created = await services.store.create_bucket(caller.account.id, name)
    await services.accounts.set_default_bucket(caller.account.id, name)
    return bucket


async def _bucket_named(services: RestServices, caller: Caller, name: str | None) -> Bucket:
    if not name:
        return await default_bucket(services, caller)
    return owned_bucket(services, caller, name)


def store_error(exc: StoreError) -> ApiError:
    if isinstance(exc, StorageFull):
        return storage_full()
    if exc.code == "QuotaExceeded":
        return ApiError(
            403,
            "QuotaExceeded",
            "Upload would exceed your plan's storage quota. Delete data or change plans.",
        )
    if exc.code in ("NoSuchKey", "NoSuchVersion"):
        return not_found()
    if exc.code == "TooManyBuckets":
        return ApiError(403, "TooManyBuckets", exc.message or "Your plan allows no more buckets.")
    return ApiError(400, exc.code, exc.message or exc.code)


def _check_key(key: str) -> str:
    if not key or len(key.encode("utf-8")) > 1024:
        raise bad_request("A file key is 1 to 1,024 bytes of UTF-8.", key=key[:100])
    return key


async def upload(request: Request, services: RestServices, caller: Caller) -> Response:
    bucket, version = await receive_upload(request, services, caller)
    return JSONResponse(_file_json(bucket, version), status_code=201)


async def receive_upload(request: Request, services: RestServices, caller: Caller) -> tuple[Bucket, ObjectVersion]:
    """Store the request's file (a multipart form's `file` field or the raw body) as
    the new current version of its key; also the versions API's upload."""
    store = services.store
    limit = services.config.limits.max_upload_bytes
    length = declared_length(request, limit, "Uploads")  # refused before a byte is read
    content_type = request.headers.get("content-type", "")
    query = request.query_params
    # A bucket named in the query is checked before any byte is read.
    bucket = owned_bucket(services, caller, query["bucket"]) if query.get("bucket") else None
    writer = store.new_writer()
    with store.quotas.reservation(caller.account.id) as reservation:
        if length is not None:
            await reservation.require(length)  # refused before the body: no transfer
        received = 0

        async def write(piece: bytes) -> None:
            nonlocal received
            received += len(piece)
            if length is None:
                await reservation.require(received)
            await writer.write(piece)

        try:
            if content_type.lower().startswith("multipart/"):
                form = await stream_form(stream_limited(request, limit, "Uploads"), boundary_of(content_type), write)
                if not form.saw_file:
                    raise bad_request("The form has no 'file' field.")
                key = form.fields.get("key") or query.get("key") or form.filename
                bucket_name = form.fields.get("bucket") or query.get("bucket")
                file_type = form.content_type
            else:
                async for chunk in stream_limited(request, limit, "Uploads"):
                    await write(chunk)
                key = query.get("key")
                bucket_name = query.get("bucket")
                file_type = content_type or None
            if not key:
                raise bad_request("Name the file: a 'key' form field or query parameter, or a filename.")
            if file_type is not None and not header_safe(file_type):
                # It is served back as Content-Type: a control character would drop every download.
                raise bad_request("The file's content type has control characters.")
            key = _check_key(key)
            if bucket is None or bucket.name != bucket_name:
                bucket = await _bucket_named(services, caller, bucket_name)
            await writer.finish()
            meta = ObjectMeta(content_type=file_type or "application/octet-stream")
            version = await store.put_object(bucket, key, writer, meta, reservation=reservation)
        except BaseException as exc:
            # Nothing of a failed upload remains: no blob, no row, the old version intact.
            await writer.aclose_pending()
            writer.abort()
            if isinstance(exc, StoreError):
                raise store_error(exc) from exc
            raise
    return bucket, version


def _cursor_after(cursor: str | None) -> str | None:
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return base64.b64decode(padded, altchars=b"-_", validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise bad_request("The cursor is not one this API gave out.") from exc


def _make_cursor(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


async def list_files(request: Request, services: RestServices, caller: Caller) -> Response:
    query = request.query_params
    raw_limit = query.get("limit", str(DEFAULT_LIMIT))
    limit = ascii_int(raw_limit, minimum=1, maximum=MAX_LIMIT)
    if limit is None:
        raise bad_request(f"limit must be 1 to {MAX_LIMIT}.", limit=raw_limit)
    bucket = await _bucket_named(services, caller, query.get("bucket"))
    page = await services.store.list_objects(
        bucket,
        prefix=query.get("prefix", ""),
        after=_cursor_after(query.get("cursor")),
        max_keys=limit,
    )
    files = []
    for entry in page.entries:
        try:
            version = services.store.head_object(bucket, entry.key)
        except StoreError:
            continue  # deleted since the page was read
        item = _file_json(bucket, version)
        del item["createdAt"]
        files.append(item)
    body: dict[str, object] = {"files": files, "hasMore": page.is_truncated}
    body["nextCursor"] = _make_cursor(page.last_item) if page.is_truncated and page.last_item else None
    return JSONResponse(body)


def _resolve(services: RestServices, caller: Caller, value: str) -> tuple[Bucket, str]:
    bucket_name, key = parse_file_id(value)
    bucket = services.store.bucket(bucket_name)
    if bucket is None or bucket.account_id != caller.account.id:
        raise not_found()  # another account's file id looks exactly like a missing one
    return bucket, key


def content_disposition(key: str) -> str:
    name = key.rsplit("/", 1)[-1] or "file"
    ascii_name = "".join(
        "_" if ch in '"\\' or not 32 <= ord(ch) < 127 else ch for ch in name
    )
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"


def _range(header: str | None, size: int) -> tuple[int, int] | None:
    if size == 0:
        return None  # an empty file is served whole, whatever the range
    try:
        return parse_byte_range(header, size)
    except UnsatisfiableRange as exc:
        raise ApiError(
            416,
            "InvalidRange",
            "The requested range is not satisfiable.",
            headers={"content-range": f"bytes */{size}"},
        ) from exc


async def get_file(request: Request, services: RestServices, caller: Caller) -> Response:
    bucket, key = _resolve(services, caller, request.path_params["file_id"])
    if request.query_params.get("meta", "").lower() in ("true", "1"):
        try:
            version = services.store.head_object(bucket, key)
        except (StoreError, ObjectIsDeleteMarker) as exc:
            raise not_found() from exc
        return JSONResponse(_file_json(bucket, version))
    return download(request, services, bucket, key)


def download(
    request: Request, services: RestServices, bucket: Bucket, key: str, version_id: str | None = None
) -> Response:
    """An object's bytes as an attachment: streamed, one Range honoured (206), the
    ETag and Last-Modified of the version. Also the dashboard's download link and the
    source of its audio and video players."""
    try:
        reader = services.store.open_object(bucket, key, version_id)
    except StoreError as exc:
        raise not_found() from exc
    version = reader.version
    try:
        byte_range = _range(request.headers.get("range"), version.size)
    except BaseException:
        reader.close()
        raise
    headers = {
        "content-disposition": content_disposition(key),
        "etag": f'"{version.etag}"',
        "last-modified": datetime.fromtimestamp(version.last_modified, UTC).strftime(
            "%a, %d %b %Y %H:%M:%S GMT"
        ),
        "accept-ranges": "bytes",
    }
    status = 200
    start, end = 0, version.size - 1
    if byte_range is not None:
        start, end = byte_range
        status = 206
        headers["content-range"] = f"bytes {start}-{end}/{version.size}"
    headers["content-length"] = str(end - start + 1 if version.size else 0)
    headers["content-type"] = version.content_type or "application/octet-stream"
    if version.inline_data is not None:
        # Small objects live in their row: one plain answer, no streaming machinery.
        reader.close()
        body = bytes(version.inline_data[start : end + 1]) if version.size else b""
        return Response(body, status_code=status, headers=headers)

    async def stream() -> AsyncIterator[bytes]:
        try:
            if version.size:
                async for chunk in reader.iter_range(start, end):
                    yield bytes(chunk)  # the reader may hand out views of its buffers
        finally:
            reader.close()

    # The stored type exactly (media_type= would append a charset to text types).
    return StreamingResponse(stream(), status_code=status, headers=headers)


async def delete_file(request: Request, services: RestServices, caller: Caller) -> Response:
    bucket, key = _resolve(services, caller, request.path_params["file_id"])
    try:
        services.store.head_object(bucket, key)
    except StoreError as exc:
        raise not_found() from exc
    await services.store.delete_object(bucket, key)
    return JSONResponse({"success": True})


def routes(services: RestServices) -> list[Route]:
    def endpoint(handler, kind: str):
        async def run(request: Request) -> Response:
            try:
                caller = authenticate(request, services.accounts)
                await rate_limit(caller, kind, services.config, services.limiter)
                return await handler(request, services, caller)
            except ApiError as exc:
                return exc.response()
            except StoreError as exc:
                return store_error(exc).response()

        return run

    upload_endpoint, list_endpoint = endpoint(upload, "write"), endpoint(list_files, "list")
    get_endpoint, delete_endpoint = endpoint(get_file, "read"), endpoint(delete_file, "write")

    async def files(request: Request) -> Response:
        return await (upload_endpoint if request.method == "POST" else list_endpoint)(request)

    async def one_file(request: Request) -> Response:
        return await (delete_endpoint if request.method == "DELETE" else get_endpoint)(request)

    return [
        Route("/api/v1/files", files, methods=["GET", "POST"]),
        Route("/api/v1/files/{file_id}", one_file, methods=["GET", "HEAD", "DELETE"]),
    ]
