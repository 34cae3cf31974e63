"""The S3 listener as a bare ASGI callable (the hot path skips framework layers):
resolve the route, authenticate before touching the body, dispatch to the
operation's handler, answer errors as S3 XML with a request id."""

from __future__ import annotations

import itertools
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from urllib.parse import unquote_to_bytes

from core.accounts import Account
from core.acting import ANONYMOUS, act_as
from core.db import DatabaseUnavailable
from core.ratelimit import PLAN_RATE_FIELDS
from core.strictparse import header_safe
from s3proxy.api import (
    acl,
    attributes,
    bucket_policy,
    buckets,
    copy,
    cors,
    delete,
    listing,
    multipart,
    objects,
    permissions,
    post_object,
    versioning,
)
from s3proxy.api.body import ClientDisconnected
from s3proxy.api.context import RequestContext, Response
from s3proxy.api.errors import S3Error, too_many_requests
from s3proxy.api.router import Target, resolve
from s3proxy.api.services import Services
from s3proxy.api.xml import document, element
from s3proxy.auth.sigv4 import authenticate
from s3proxy.store.errors import StoreError
from s3proxy.store.integrity import CorruptObject

log = logging.getLogger("folio.s3")

Handler = Callable[[RequestContext, Services], Awaitable[Response]]

HANDLERS: dict[str, Handler] = {
    "ListBuckets": buckets.list_buckets,
    "CreateBucket": buckets.create_bucket,
    "DeleteBucket": buckets.delete_bucket,
    "HeadBucket": buckets.head_bucket,
    "GetBucketLocation": buckets.get_bucket_location,
    "ListObjects": listing.list_objects_v1,
    "ListObjectsV2": listing.list_objects_v2,
    "PutObject": objects.put_object,
    "GetObject": objects.get_object,
    "HeadObject": objects.head_object,
    "GetObjectAttributes": attributes.get_object_attributes,
    "DeleteObject": objects.delete_object,
    "DeleteObjects": delete.delete_objects,
    "CreateMultipartUpload": multipart.create_multipart_upload,
    "UploadPart": multipart.upload_part,
    "UploadPartCopy": multipart.upload_part_copy,
    "CompleteMultipartUpload": multipart.complete_multipart_upload,
    "AbortMultipartUpload": multipart.abort_multipart_upload,
    "ListParts": multipart.list_parts,
    "ListMultipartUploads": multipart.list_multipart_uploads,
    "GetBucketVersioning": versioning.get_bucket_versioning,
    "PutBucketVersioning": versioning.put_bucket_versioning,
    "ListObjectVersions": versioning.list_object_versions,
    "CopyObject": copy.copy_object,
    "GetBucketAcl": acl.get_bucket_acl,
    "PutBucketAcl": acl.put_bucket_acl,
    "GetObjectAcl": acl.get_object_acl,
    "PutObjectAcl": acl.put_object_acl,
    "GetBucketCors": cors.get_bucket_cors,
    "PutBucketCors": cors.put_bucket_cors,
    "DeleteBucketCors": cors.delete_bucket_cors,
    "PostObject": post_object.post_object,
    "PutBucketPolicy": bucket_policy.put_bucket_policy,
    "GetBucketPolicy": bucket_policy.get_bucket_policy,
    "DeleteBucketPolicy": bucket_policy.delete_bucket_policy,
    "GetBucketPolicyStatus": bucket_policy.get_bucket_policy_status,
}

LIST_OPERATIONS = frozenset(
    {"ListBuckets", "ListObjects", "ListObjectsV2", "ListObjectVersions", "ListParts", "ListMultipartUploads"}
)


def operation_class(operation: str, method: str) -> str:
    """The rate-limit class: "list", "read" (GET, HEAD) or "write" (PUT, POST, DELETE)."""
    if operation in LIST_OPERATIONS:
        return "list"
    return "read" if method in ("GET", "HEAD", "OPTIONS") else "write"


def _headers_safe(response: Response) -> bool:
    # One regex pass over all names and values (a tab is allowed in a header, so it joins them).
    return header_safe("\t".join(itertools.chain(response.headers, response.headers.values())))


def _decode_path(raw_path: str) -> str:
    try:
        return unquote_to_bytes(raw_path).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise S3Error("InvalidURI", "Couldn't parse the specified URI.") from exc


def _parse_query(query_string: str) -> dict[str, str]:
    """First value of each parameter; '+' is a space, as in form encoding."""
    query: dict[str, str] = {}
    if not query_string:
        return query
    for part in query_string.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        name = unquote_to_bytes(name.replace("+", " ")).decode("utf-8", "replace")
        if name not in query:
            query[name] = unquote_to_bytes(value.replace("+", " ")).decode("utf-8", "replace")
    return query


class S3App:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.domain = services.config.server.domain.lower().strip(".")
        self.max_skew = services.config.auth.max_clock_skew_seconds
        # Request ids: a random per-process prefix and a counter. Unique and cheap (no
        # syscall per request, unlike os.urandom).
        self._id_prefix = secrets.token_hex(4).upper()
        self._id_counter = itertools.count(1)

    def _next_request_id(self) -> str:
        return f"{self._id_prefix}{next(self._id_counter):08X}"

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        request_id = self._next_request_id()
        ctx: RequestContext | None = None
        try:
            ctx = self._context(scope, receive, request_id)
            response = await self._dispatch(ctx)
        except ClientDisconnected:
            return
        except S3Error as exc:
            response = self._error(exc, ctx, scope)
        except StoreError as exc:
            response = self._error(S3Error(exc.code, exc.message or None), ctx, scope)
        except DatabaseUnavailable as exc:
            log.warning("request %s: %s", request_id, exc)
            response = self._error(S3Error("ServiceUnavailable", headers={"Retry-After": "1"}), ctx, scope)
        except CorruptObject:
            # Damaged bytes found before any answer (an inline object): the store has logged
            # which object and marked it; the client gets S3's 500, with no traceback to add.
            response = self._error(S3Error("InternalError"), ctx, scope)
        except Exception:
            log.exception("request %s failed", request_id)
            response = self._error(S3Error("InternalError"), ctx, scope)
        if ctx is not None and ctx.bucket_name and ctx.method != "OPTIONS" and "origin" in ctx.headers:
            self._add_cors_headers(ctx, response)
        if not _headers_safe(response):
            response = await self._refuse_unsafe_headers(response, ctx, scope)
        if ctx is not None and ctx.has_body and not ctx.body_done:
            # Answered before the body was read (refused upload, Expect: 100-continue):
            # the connection cannot be reused, the client may never send those bytes.
            response.headers["connection"] = "close"
        await self._send(send, scope, response, request_id)

    async def _refuse_unsafe_headers(
        self, response: Response, ctx: RequestContext | None, scope: dict
    ) -> Response:
        """The safety net under the handlers' own checks: a request value with a CR, LF
        or other control character that reached a response header. uvicorn would refuse
        the header and drop the connection without an answer; the client gets a 400."""
        if response.stream is not None:
            await response.stream.aclose()
        names = sorted(
            name for name, value in response.headers.items() if not header_safe(f"{name}\t{value}")
        )
        log.warning("refused a response with control characters in headers %s", names)
        return self._error(
            S3Error(
                "InvalidArgument",
                "A request value cannot be used in a response header: it has control characters.",
            ),
            ctx,
            scope,
        )

    def _context(self, scope: dict, receive: Callable, request_id: str) -> RequestContext:
        headers: dict[str, str] = {}
        for raw_name, raw_value in scope["headers"]:
            name = raw_name.decode("latin-1").lower()
            value = raw_value.decode("latin-1")
            headers[name] = f"{headers[name]},{value}" if name in headers else value
        raw_path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        raw_path = raw_path.split("?", 1)[0]
        query_string = scope.get("query_string", b"").decode("latin-1")
        ctx = RequestContext(
            scope=scope,
            receive=receive,
            method=scope["method"],
            raw_path=raw_path,
            bucket_name=None,
            key=None,
            query={},
            query_string=query_string,
            headers=headers,
            request_id=request_id,
        )
        # The access log and the request metrics (server/observe.py) read it after the
        # response, and take it out again (it holds the scope: a cycle left for the GC).
        scope["folio.s3"] = ctx
        path = _decode_path(raw_path)
        host = headers.get("host", "").rsplit(":", 1)[0].lower()
        if self.domain and host.endswith("." + self.domain):
            ctx.bucket_name = host[: -len(self.domain) - 1]
            ctx.virtual_host = True
            key = path[1:] if path.startswith("/") else path
            ctx.key = key or None
        else:
            rest = path[1:] if path.startswith("/") else path
            bucket, slash, key = rest.partition("/")
            ctx.bucket_name = bucket or None
            ctx.key = key if slash and key else None
        ctx.query = _parse_query(query_string)
        return ctx

    def _add_cors_headers(self, ctx: RequestContext, response: Response) -> None:
        assert ctx.bucket_name is not None
        try:
            bucket = self.services.store.bucket(ctx.bucket_name)
        except Exception:  # noqa: BLE001 - an invalid name: there are no rules to apply
            return
        if bucket is not None and bucket.settings.cors:
            response.headers.update(cors.actual_request_headers(bucket, ctx.headers["origin"], ctx.method))

    async def _rate_limit(self, ctx: RequestContext, operation: str, plan_name: str, client: object) -> None:
        """Over the plan's rate, wait (asleep, holding no worker) for this request's turn
        while that stays within [limits] max_rate_wait_seconds; past it, 429."""
        kind = operation_class(operation, ctx.method)
        rate = getattr(self.services.config.plan(plan_name), PLAN_RATE_FIELDS[kind])
        if rate <= 0:
            return  # unlimited: no bucket to keep
        max_wait = self.services.config.limits.max_rate_wait_seconds
        wait = await self.services.limiter.admit((client, kind), rate, max_wait=max_wait)
        if wait:
            raise too_many_requests(wait)

    def _authorize(self, ctx: RequestContext, operation: str) -> None:
        """Find the request's bucket and decide (s3proxy.access) whether the caller may
        do the operation, before any of its body is read."""
        if operation in permissions.ACCOUNT_OPERATIONS:
            if ctx.account is None:
                raise S3Error("AccessDenied")
            return
        if ctx.bucket_name is None or operation == "PostObject":
            return
        # As AWS: a bucket that does not exist is NoSuchBucket for everyone, anonymous
        # callers included (after DeleteBucket too).
        ctx.bucket = self.services.existing_bucket(ctx.bucket_name)
        if operation not in permissions.HANDLER_DECIDES:
            action = permissions.required_action(operation, ctx)
            prefix = permissions.list_prefix(operation, ctx)
            self.services.authorize(ctx, ctx.bucket, action, ctx.key, prefix=prefix)

    def _client_address(self, ctx: RequestContext) -> str:
        client = ctx.scope.get("client")
        return client[0] if client else "unknown"

    async def _dispatch(self, ctx: RequestContext) -> Response:
        if ctx.method == "OPTIONS" and ctx.bucket_name is not None:
            ctx.operation = "PreflightRequest"
            anonymous_plan = self.services.config.accounts.anonymous_plan
            await self._rate_limit(ctx, ctx.operation, anonymous_plan, ("ip", self._client_address(ctx)))
            return await cors.preflight(ctx, self.services)
        if ctx.bucket_name is None:
            target = Target.SERVICE
        elif ctx.key is None:
            target = Target.BUCKET
        else:
            target = Target.OBJECT
        operation = resolve(ctx.method, target, ctx.query, ctx.headers)
        if operation is None:
            raise S3Error("MethodNotAllowed")
        ctx.operation = operation
        account_holder: list[Account] = []

        def lookup_secret(access_key: str) -> str | None:
            found = self.services.accounts.lookup_key(access_key)
            if found is None:
                return None
            account_holder.append(found[0])
            return found[1]

        ctx.auth = authenticate(
            ctx.method,
            ctx.raw_path,
            ctx.query_string,
            ctx.headers,
            lookup_secret,
            time.time(),
            self.max_skew,
            virtual_host_bucket=ctx.bucket_name if ctx.virtual_host else None,
        )
        act_as(ctx.auth.access_key if ctx.auth is not None else ANONYMOUS)
        if ctx.auth is None:
            anonymous_plan = self.services.config.accounts.anonymous_plan
            await self._rate_limit(ctx, operation, anonymous_plan, ("ip", self._client_address(ctx)))
        else:
            ctx.account = account_holder[-1]
            await self._rate_limit(ctx, operation, ctx.account.plan, ctx.auth.access_key)
        self._authorize(ctx, operation)
        handler = HANDLERS.get(operation)
        if handler is None:
            raise S3Error("NotImplemented", f"{operation} is not implemented by Folio.")
        if ctx.key is not None and len(ctx.key.encode("utf-8")) > 1024:
            raise S3Error("KeyTooLongError")
        return await handler(ctx, self.services)

    def _error(self, exc: S3Error, ctx: RequestContext | None, scope: dict) -> Response:
        resource = ctx.resource if ctx is not None else scope.get("path", "/")
        request_id = ctx.request_id if ctx is not None else ""
        inner = (
            element("Code", exc.code)
            + element("Message", exc.message)
            + "".join(element(k, v) for k, v in exc.extra.items())
            + element("Resource", resource)
            + element("RequestId", request_id)
        )
        return Response.xml(document("Error", inner, namespace=False), status=exc.status, headers=exc.headers)

    async def _send(self, send: Callable, scope: dict, response: Response, request_id: str) -> None:
        head = scope["method"] == "HEAD"
        headers = [(b"x-amz-request-id", request_id.encode()), (b"x-amz-id-2", request_id.encode())]
        for name, value in response.headers.items():
            headers.append((name.encode("latin-1"), value.encode("latin-1", "replace")))
        if response.stream is not None or response.content_length is not None:
            length = response.content_length if response.content_length is not None else 0
        else:
            length = len(response.body)
        if response.status not in (204, 304):
            headers.append((b"content-length", str(length).encode()))
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        if head or response.status in (204, 304):
            if response.stream is not None:
                await response.stream.aclose()
            await send({"type": "http.response.body", "body": b""})
            return
        if response.stream is None:
            await send({"type": "http.response.body", "body": response.body})
            return
        try:
            async for chunk in response.stream:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        finally:
            await response.stream.aclose()
        await send({"type": "http.response.body", "body": b""})


async def _lifespan(receive: Callable, send: Callable) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
