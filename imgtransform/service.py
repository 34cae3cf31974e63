"""`GET /api/img/{bucket}/{key}`: who may see the image, which cached result
answers, and the bounded pool that computes a missing one (identical concurrent
requests computed once; a full queue answers 503 rather than piling up). A PDF
source takes the same path: its page is rasterized inside the transform's job."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core import urlsign
from core.accounts import Accounts
from core.apikeys import authenticate, credentials
from core.config import Config
from core.jsonapi import ApiError, too_many_requests
from core.ratelimit import RateLimiter
from core.strictparse import ascii_int
from imgtransform.cache import DiskCache
from imgtransform.errors import ImageError
from imgtransform.negotiate import format_class
from imgtransform.params import InvalidParameter, Transform, parse_query
from imgtransform.pdf_pages import PdfPages, memory_for
from imgtransform.render import CONTENT_TYPES, Limits, Rendered, render, set_pixel_limit
from s3proxy.access.decide import Caller, allowed
from s3proxy.store.engine import Store
from s3proxy.store.errors import StoreError
from s3proxy.store.models import Bucket, ObjectVersion

CACHE_CONTROL = "public, max-age=604800"
VERSION_PARAM = "versionId"
_DENIED = ApiError(403, "AccessDenied", "Access denied.")


@dataclass(frozen=True)
class Source:
    bucket: Bucket
    key: str
    version: ObjectVersion


class ImageService:
    def __init__(self, store: Store, accounts: Accounts, config: Config, limiter: RateLimiter) -> None:
        self.store = store
        self.accounts = accounts
        self.config = config
        self.settings = config.images
        self.limiter = limiter
        self.cache = DiskCache(config.data_dir / "cache" / "img", self.settings.cache_max_bytes)
        self.limits = Limits(
            self.settings.max_source_pixels,
            self.settings.max_source_side,
            self.settings.max_output_side,
            self.settings.avif_max_pixels,
            self.settings.avif_speed,
            self.settings.webp_method,
        )
        set_pixel_limit(self.settings.max_source_pixels)
        workers = self.settings.workers or (os.cpu_count() or 1) + 1
        self.executor = ThreadPoolExecutor(workers, thread_name_prefix="folio-img")
        # PDF pages are rasterized in processes, each driven by one transform thread.
        self.pdf_pages = PdfPages(
            memory_for(self.settings.max_source_bytes, self.settings.max_source_pixels), keep=workers
        )
        # Held from reading the source until its thread finishes (even past a timeout),
        # so at most `workers` sources are in memory at once.
        self._slots = asyncio.Semaphore(workers)
        self._pending = 0  # transforms running or waiting for a slot
        self._inflight: dict[str, asyncio.Future[Rendered]] = {}
        self.transforms = 0  # completed transforms (a hook for tests and stats)

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.pdf_pages.close()

    # --- access -------------------------------------------------------------

    def _signed_owner(self, bucket: Bucket, path: str, query: dict[str, str]) -> bool:
        expires, key_id = query.get(urlsign.EXPIRES, ""), query.get(urlsign.KEY_ID, "")
        expires_at = ascii_int(expires)  # '²' passes isdigit() and then fails int()
        if expires_at is None or expires_at < time.time() or not key_id:
            return False
        pair = self.accounts.lookup_key(key_id)
        if pair is None or pair[0].id != bucket.account_id:
            return False
        if not urlsign.signature_matches(pair[1], path, query):
            return False
        self._rate_limit(key_id, pair[0].plan)
        return True

    def _header_owner(self, request: Request, bucket: Bucket) -> bool:
        if not credentials(request):
            return False
        caller = authenticate(request, self.accounts)
        if caller.account.id != bucket.account_id:
            return False  # another account: what anyone may see
        self._rate_limit(caller.access_key, caller.account.plan)
        return True

    def _rate_limit(self, client: object, plan_name: str) -> None:
        wait = self.limiter.acquire((client, "read"), self.config.plan(plan_name).read_per_second)
        if wait:
            raise too_many_requests(wait)

    def _source(
        self,
        request: Request,
        bucket_name: str,
        key: str,
        query: dict[str, str],
        version_id: str | None = None,
    ) -> Source:
        bucket = self.store.bucket(bucket_name)
        if bucket is None:
            raise _DENIED
        path = f"/api/img/{bucket_name}/{key}"
        if urlsign.SIGNATURE in query:
            if not self._signed_owner(bucket, path, query):
                raise _DENIED
            owner = True
        else:
            owner = self._header_owner(request, bucket)
        client = request.client.host if request.client else "unknown"
        if not owner:
            if version_id is not None:
                raise _DENIED  # an older version is its owner's alone (S3: s3:GetObjectVersion)
            self._rate_limit(("ip", client), self.config.accounts.anonymous_plan)
        # Anyone but the owner sees exactly what an anonymous S3 GET may read: the same
        # decision (object ACL, bucket policy), with this request's address and scheme.
        anyone = Caller(None, None, client, secure_transport=request.url.scheme == "https")
        try:
            version = self.store.head_object(bucket, key, version_id)
        except StoreError as exc:
            if owner or allowed(anyone, bucket, "s3:ListBucket"):
                raise ApiError(404, "NoSuchKey", "No such object.") from exc
            raise _DENIED from exc
        if not owner and not allowed(anyone, bucket, "s3:GetObject", key, object_acl=version.acl):
            raise _DENIED
        return Source(bucket, key, version)

    # --- transforms ------------------------------------------------------------

    async def _read(self, source: Source) -> bytes:
        reader = self.store.open_object(source.bucket, source.key, source.version.version_id)
        return b"".join([chunk async for chunk in reader.iter_range(0, reader.version.size - 1)])

    def _work(self, data: bytes, t: Transform, fmt_class: str, digest: str) -> Rendered:
        """In a worker thread: the transform, and the cache entry's file."""
        rendered = render(data, t, fmt_class, self.limits, self.settings.timeout_seconds, self.pdf_pages)
        if self.cache.enabled:
            self.cache.write(digest, rendered.format, rendered.data)
        return rendered

    async def _transform(self, source: Source, t: Transform, fmt_class: str, digest: str) -> Rendered:
        if self._pending >= self.settings.max_queue:
            raise ImageError(503, "Busy", "Too many images are being transformed; retry shortly.")
        self._pending += 1
        try:
            await self._slots.acquire()
        except BaseException:
            self._pending -= 1
            raise
        loop = asyncio.get_running_loop()

        def finished(future: Future[Rendered]) -> None:
            self._pending -= 1
            self._slots.release()
            self.transforms += 1
            if self.cache.enabled and not future.cancelled() and future.exception() is None:
                rendered = future.result()
                self.cache.add(digest, rendered.format, len(rendered.data))

        try:
            data = await self._read(source)
            work = self.executor.submit(self._work, data, t, fmt_class, digest)
        except BaseException:
            self._pending -= 1
            self._slots.release()
            raise
        work.add_done_callback(lambda future: loop.call_soon_threadsafe(finished, future))
        wrapped = asyncio.wrap_future(work)
        # A transform that outlives the wait still ends (at its own deadline): its error is
        # retrieved here, or asyncio logs "Future exception was never retrieved" with a traceback.
        wrapped.add_done_callback(lambda future: future.cancelled() or future.exception())
        try:
            return await asyncio.wait_for(asyncio.shield(wrapped), self.settings.timeout_seconds)
        except TimeoutError as exc:
            raise ImageError(503, "TransformTimeout", "The transform took too long.") from exc

    async def _computed(
        self, source: Source, t: Transform, fmt_class: str, digest: str
    ) -> tuple[Rendered, str]:
        """The result and how it was had: "miss" (computed here) or "shared"."""
        running = self._inflight.get(digest)
        if running is not None:
            return await asyncio.shield(running), "shared"
        future: asyncio.Future[Rendered] = asyncio.get_running_loop().create_future()
        self._inflight[digest] = future
        try:
            rendered = await self._transform(source, t, fmt_class, digest)
        except BaseException as exc:
            # Those sharing it get the same error; a cancelled leader (its client went
            # away) leaves them a retryable one rather than its cancellation.
            shared = exc if isinstance(exc, Exception) else ImageError(503, "Busy", "Retry shortly.")
            future.set_exception(shared)
            future.exception()  # retrieved: no "never retrieved" warning when nobody shared it
            raise
        else:
            future.set_result(rendered)
            return rendered, "miss"
        finally:
            del self._inflight[digest]

    # --- HTTP -------------------------------------------------------------------

    async def handle(self, request: Request) -> Response:
        items = parse_qsl(request.url.query, keep_blank_values=True)
        # `versionId` picks a version (the dashboard's Time Machine compares two): not a
        # transform, but signed with the rest of the query like any parameter.
        version_ids = [value for name, value in items if name == VERSION_PARAM]
        if len(version_ids) > 1 or (version_ids and not version_ids[0]):
            raise ApiError(400, "InvalidParameter", "versionId is given more than once or empty.",
                           {"parameter": VERSION_PARAM})  # fmt: skip
        try:
            t, signature = parse_query(
                [item for item in items if item[0] != VERSION_PARAM], self.settings.max_output_side
            )
        except InvalidParameter as exc:
            raise ApiError(400, "InvalidParameter", exc.message, {"parameter": exc.parameter}) from exc
        source = self._source(
            request,
            request.path_params["bucket"],
            request.path_params["path"],
            {**dict(items), **signature},
            version_ids[0] if version_ids else None,
        )
        version = source.version
        if version.size > self.settings.max_source_bytes:
            raise ApiError(
                413,
                "SourceTooLarge",
                f"The image is over {self.settings.max_source_bytes:,} bytes; it is not transformed.",
            )
        fmt_class = format_class(t.format, request.headers.get("accept"))
        digest = hashlib.sha256(
            "\0".join(
                (
                    str(source.bucket.id),
                    source.key,
                    version.version_id,
                    version.etag,
                    t.canonical(),
                    fmt_class,
                )
            ).encode()
        ).hexdigest()
        headers = {"cache-control": CACHE_CONTROL, "etag": f'"{digest[:32]}"'}
        if t.format is None:
            headers["vary"] = "Accept"
        if _matches(request.headers.get("if-none-match"), headers["etag"]):
            return Response(status_code=304, headers=headers)
        cached = self.cache.get(digest) if self.cache.enabled else None
        if cached is not None:
            fmt, data = cached
            headers["x-folio-cache"] = "hit"
            return Response(data, media_type=CONTENT_TYPES[fmt], headers=headers)
        try:
            rendered, how = await self._computed(source, t, fmt_class, digest)
        except ImageError as exc:
            retry = {"retry-after": "1"} if exc.status == 503 else None
            raise ApiError(exc.status, exc.code, exc.message, exc.details, headers=retry) from exc
        headers["x-folio-cache"] = how
        return Response(rendered.data, media_type=rendered.content_type, headers=headers)


def _matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    return any(tag.strip().removeprefix("W/") == etag for tag in if_none_match.split(","))


def routes(service: ImageService) -> list[Route]:
    async def image(request: Request) -> Response:
        try:
            return await service.handle(request)
        except ApiError as exc:
            return exc.response()

    return [Route("/api/img/{bucket}/{path:path}", image, methods=["GET", "HEAD"])]
