"""The upload manager's server side: the page `/buckets/{name}/upload` and the JSON
endpoints `static/upload.js` calls, under `/uploads/{bucket}` (a path of their own, so
that no object key can be mistaken for one of them):

    POST   /uploads/{bucket}/object?key=K                     a file below one part, raw body
    POST   /uploads/{bucket}/multipart?key=K                  {"size", "contentType"} -> uploadId, partSize
    GET    /uploads/{bucket}/multipart/{id}?key=K             the parts stored (resume after a reload)
    PUT    /uploads/{bucket}/multipart/{id}/{n}?key=K         one part, raw body, Content-MD5
    POST   /uploads/{bucket}/multipart/{id}/complete?key=K    {"parts": [{"partNumber", "etag"}]}
    DELETE /uploads/{bucket}/multipart/{id}?key=K             abort (frees the parts)

Each needs the dashboard session, and those that change something the CSRF header
(`x-csrf-token`) and our own Origin. The work is the REST API's upload
(restapi.files.receive_upload) and restapi.multipart_web, so quotas are those of any
write; each request is counted against the plan's S3 request rates exactly as the S3
operation it stands for (writes, and ListParts as a list), waiting or answering 429 with
Retry-After the same way. Refusals are the JSON API's `{"error": {...}}`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from core.accounts import Account
from core.jsonapi import ApiError, bad_request
from core.requestbody import read_json_object
from core.strictparse import ascii_int
from restapi import multipart_web
from restapi.auth import Caller, rate_limit
from restapi.files import RestServices, iso, owned_bucket, receive_upload
from s3proxy.store.errors import StoreError
from s3proxy.store.models import Bucket, ObjectVersion
from webui.render import page
from webui.routing import page_route
from webui.session import CrossSiteRequest, check_form, current_account, require_account

# A Complete names up to 10,000 parts of about 60 bytes of JSON each.
COMPLETE_BODY_LIMIT = 1024 * 1024

Handler = Callable[[Request, RestServices, Account, Bucket], Awaitable[Response]]


def _session_caller(account: Account) -> Caller:
    # S3 counts requests per access key; a dashboard session has none, so the account's
    # sessions share one budget of their own (never another account's, never the keys').
    return Caller(account, f"session:{account.id}")


def _key(request: Request) -> str:
    key = request.query_params.get("key")
    if not key:
        raise bad_request("Name the object: the 'key' query parameter.")
    return key


def _version_json(bucket: Bucket, version: ObjectVersion) -> dict[str, object]:
    return {
        "bucket": bucket.name,
        "key": version.key,
        "size": version.size,
        "etag": version.etag,
        "versionId": version.version_id if bucket.versioning else None,
        "lastModified": iso(version.last_modified),
    }


async def upload_object(
    request: Request, services: RestServices, account: Account, bucket: Bucket
) -> Response:
    """A whole file in one request: the REST API's upload of a raw body, which takes the
    bucket and key from the query (`?bucket=B&key=K`, the bucket the path names)."""
    _key(request)
    if request.query_params.get("bucket") != bucket.name:
        raise bad_request("The 'bucket' query parameter must name the bucket of the path.")
    stored_bucket, version = await receive_upload(request, services, _session_caller(account))
    return JSONResponse(_version_json(stored_bucket, version), status_code=201)


async def start_multipart(
    request: Request, services: RestServices, account: Account, bucket: Bucket
) -> Response:
    body = await read_json_object(request, 64 * 1024)
    size = body.get("size")
    if not isinstance(size, int) or isinstance(size, bool):
        raise bad_request("'size' is the file's size in bytes.", field="size")
    part_size = multipart_web.part_size_for(size)
    content_type = body.get("contentType")
    if content_type is not None and not isinstance(content_type, str):
        raise bad_request("'contentType' is a string.", field="contentType")
    upload = await multipart_web.start_upload(services, bucket, _key(request), content_type or None)
    return JSONResponse(
        {"bucket": bucket.name, "key": upload.key, "uploadId": upload.id, "partSize": part_size},
        status_code=201,
    )


async def list_parts(request: Request, services: RestServices, account: Account, bucket: Bucket) -> Response:
    upload_id = request.path_params["upload_id"]
    parts = multipart_web.stored_parts(services, bucket, _key(request), upload_id)
    return JSONResponse(
        {
            "uploadId": upload_id,
            "parts": [{"partNumber": p.part_number, "size": p.size, "etag": p.etag} for p in parts],
        }
    )


async def upload_part(request: Request, services: RestServices, account: Account, bucket: Bucket) -> Response:
    raw = request.path_params["part_number"]
    number = ascii_int(raw, minimum=1, maximum=multipart_web.MAX_PARTS)
    if number is None:
        raise bad_request(f"Part numbers are 1 to {multipart_web.MAX_PARTS}.", partNumber=raw[:20])
    etag = await multipart_web.receive_part(
        request, services, bucket, _key(request), request.path_params["upload_id"], number
    )
    return JSONResponse({"partNumber": number, "etag": etag})


async def complete_multipart(
    request: Request, services: RestServices, account: Account, bucket: Bucket
) -> Response:
    body = await read_json_object(request, COMPLETE_BODY_LIMIT)
    raw_parts = body.get("parts")
    if not isinstance(raw_parts, list):
        raise bad_request(
            "'parts' is the list of {partNumber, etag} the part uploads answered.", field="parts"
        )
    parts = []
    for item in raw_parts:
        number = item.get("partNumber") if isinstance(item, dict) else None
        etag = item.get("etag") if isinstance(item, dict) else None
        if not isinstance(number, int) or isinstance(number, bool) or not isinstance(etag, str):
            raise bad_request("Each part is {partNumber: integer, etag: string}.", field="parts")
        parts.append(multipart_web.NamedPart(number, etag))
    version = await multipart_web.complete(
        services, bucket, _key(request), request.path_params["upload_id"], parts
    )
    return JSONResponse(_version_json(bucket, version))


async def abort_multipart(
    request: Request, services: RestServices, account: Account, bucket: Bucket
) -> Response:
    await multipart_web.abort(services, bucket, _key(request), request.path_params["upload_id"])
    return Response(status_code=204)


def _json_route(path: str, handler: Handler, services: RestServices, method: str, kind: str) -> Route:
    """Session (401 without one), CSRF for writes (403), the caller's own bucket (404 for
    any other), the plan's request rate for `kind`, then the handler; errors as JSON."""

    async def endpoint(request: Request) -> Response:
        try:
            account = current_account(request, services)
            if account is None:
                raise ApiError(401, "Unauthorized", "Your session has ended: log in again to upload.")
            if method != "GET":
                try:
                    await check_form(request, None)
                except CrossSiteRequest as exc:
                    raise ApiError(403, "Forbidden", "Cross-site request refused: reload the page.") from exc
            caller = _session_caller(account)
            bucket = owned_bucket(services, caller, request.path_params["bucket"])
            await rate_limit(caller, kind, services.config, services.limiter)
            return await handler(request, services, account, bucket)
        except ApiError as exc:
            return exc.response()
        except StoreError as exc:  # QuotaExceeded before the body, among others
            return multipart_web.upload_error(exc).response()

    return Route(path, endpoint, methods=[method])


async def upload_page(request: Request, services: RestServices) -> Response:
    """A page of its own for uploading into a bucket (the object browser includes the
    same `_upload.html`)."""
    account = require_account(request, services)
    bucket = owned_bucket(services, _session_caller(account), request.path_params["name"])
    prefix = request.query_params.get("prefix", "")
    return page(request, "upload.html", account, section="buckets", bucket=bucket, prefix=prefix)


def routes(services: RestServices) -> list[BaseRoute]:
    base = "/uploads/{bucket}"
    one = base + "/multipart/{upload_id}"
    return [
        page_route("/buckets/{name}/upload", upload_page, services),
        _json_route(base + "/object", upload_object, services, "POST", "write"),
        _json_route(base + "/multipart", start_multipart, services, "POST", "write"),
        _json_route(one, list_parts, services, "GET", "list"),
        _json_route(one + "/{part_number}", upload_part, services, "PUT", "write"),
        _json_route(one + "/complete", complete_multipart, services, "POST", "write"),
        _json_route(one, abort_multipart, services, "DELETE", "write"),
    ]
