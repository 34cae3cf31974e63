"""The object browser: `/buckets/{name}` lists one keyset page of a folder (filter, go to
path, sort, thumbnails), `/buckets/{name}/object?key=` shows an object (details, preview,
the image URL builder), and the selection is deleted or downloaded as a streamed ZIP.

The listing, previews, folder markers, deletes and ZIP members are restapi.browse's;
the download is the REST file API's own; image URLs are signed as `/api/img/sign` signs
them (the dashboard never gets a way into /api/img that a key holder would not have)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import parse_qsl, quote, urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute

from core.accounts import Account
from core.jsonapi import ApiError, bad_request
from core.requestbody import read_limited
from imgtransform.params import InvalidParameter, parse_query
from restapi import browse
from restapi.auth import Caller
from restapi.files import RestServices, download, owned_bucket
from restapi.image_urls import signed_image_url, signing_key
from restapi.zipstream import stream_zip
from s3proxy.access.public_read import is_public_read
from s3proxy.store.errors import StoreError
from s3proxy.store.models import Bucket
from webui.render import page, redirect
from webui.routing import form_of, page_route
from webui.session import CSRF_FIELD, check_form, require_account

GET, POST = ["GET"], ["POST"]
THUMBNAIL = {"w": "96", "h": "96", "fit": "cover"}
LARGE = {"w": "1200", "h": "1200"}
# Thumbnail URLs are signed for the rest of this hour and the next: the same URL all
# that time, so the browser's cache (and /api/img's 304s) serve a page seen before.
THUMBNAIL_WINDOW = 3600
BUILDER_FIELDS = ("w", "h", "fit", "format", "q")
BUILDER_START = {"w": "800"}
EXPIRY_CHOICES = ((3600, "1 hour"), (86400, "1 day"), (7 * 86400, "7 days"))
SELECTION_FORM_BYTES = 512 * 1024  # a page of 100 keys of up to 1,024 bytes, URL-encoded

MESSAGES = {
    "deleted": "Deleted {n} object(s).",
    "missing": "Nothing is at that path: showing the names that start with it.",
    "select": "Select at least one file or folder first.",
}


def _caller_bucket(request: Request, services: RestServices) -> tuple[Account, Bucket]:
    account = require_account(request, services)
    # Another account's bucket answers exactly as a missing one: a 404 page.
    return account, owned_bucket(services, Caller(account, ""), request.path_params["name"])


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def shown_time(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


# Every browser page gets these.
HELPERS = {"iso": iso, "shown_time": shown_time}


def listing_url(bucket: str, **params: str | None) -> str:
    query = urlencode({name: value for name, value in params.items() if value})
    return f"/buckets/{quote(bucket)}" + (f"?{query}" if query else "")


def folder_urls(bucket: str) -> Callable[[str], str]:
    return lambda prefix: listing_url(bucket, prefix=prefix)


def object_url(bucket: str, key: str) -> str:
    return f"/buckets/{quote(bucket)}/object?{urlencode({'key': key})}"


def download_url(bucket: str, key: str) -> str:
    return f"/buckets/{quote(bucket)}/download?{urlencode({'key': key})}"


class ImageSigner:
    """Signs /api/img URLs for one account's page with its newest access key (looked
    up once per page); without a key there are no image previews, and the page says so."""

    def __init__(self, services: RestServices, account: Account, bucket: Bucket) -> None:
        self.bucket = bucket
        try:
            self.key: tuple[str, str] | None = signing_key(services, Caller(account, ""))
        except ApiError:
            self.key = None

    def url(self, key: str, params: dict[str, str], expires: int | None = None) -> str | None:
        if self.key is None:
            return None
        if expires is None:
            expires = (int(time.time()) // THUMBNAIL_WINDOW + 2) * THUMBNAIL_WINDOW
        return signed_image_url(self.key[0], self.key[1], self.bucket.name, key, params, expires)

    def preview(self, key: str, kind: str, params: dict[str, str]) -> str | None:
        """An image preview of an image or of a PDF's first page."""
        if kind == "pdf":
            return self.url(key, {**params, "page": "1"})
        return self.url(key, params) if kind == "image" else None


# --- the listing -----------------------------------------------------------------------


async def listing(request: Request, services: RestServices) -> Response:
    account, bucket = _caller_bucket(request, services)
    query = request.query_params
    if "path" in query:
        return redirect(await _go_to(services, bucket, query["path"]))
    return await _listing_page(request, services, account, bucket)


async def _listing_page(
    request: Request,
    services: RestServices,
    account: Account,
    bucket: Bucket,
    *,
    prefix: str | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    query = request.query_params
    prefix = browse.clean_prefix(query.get("prefix", "") if prefix is None else prefix)
    name_filter = query.get("filter", "")
    sort = query.get("sort", "name")
    sort = sort if sort in browse.SORTS else "name"
    descending = query.get("order") == "desc"
    started = time.perf_counter()
    listed = await browse.browse(services.store, bucket, prefix, name_filter, query.get("after"))
    objects = browse.sort_objects(listed.objects, sort, descending)
    signer = ImageSigner(services, account, bucket)
    thumbnails = {row.key: signer.preview(row.key, row.kind, THUMBNAIL) for row in objects}
    list_ms = (time.perf_counter() - started) * 1000

    def here(**changes: str | None) -> str:
        params = {"prefix": prefix, "filter": name_filter, "sort": sort if sort != "name" else None,
                  "order": "desc" if descending else None, "after": query.get("after")}  # fmt: skip
        params.update(changes)
        return listing_url(bucket.name, **params)

    code, count = query.get("msg", ""), query.get("n", "")
    message = MESSAGES[code].format(n=int(count) if count.isdigit() else 0) if code in MESSAGES else None
    response = page(
        request,
        "objects.html",
        account,
        status=status,
        section="buckets",
        bucket=bucket.name,
        versioned=bool(bucket.versioning),
        prefix=prefix,
        name_filter=name_filter,
        crumbs=browse.crumbs(prefix),
        folder_url=folder_urls(bucket.name),
        listed=listed,
        objects=objects,
        thumbnails=thumbnails,
        signing=signer.key is not None,
        sort=sort,
        descending=descending,
        here=here,
        object_url=lambda key: object_url(bucket.name, key),
        message=message,
        error=error,
        **HELPERS,
    )
    # The server's share of the page's time, for the benchmark and the curious.
    response.headers["server-timing"] = f"list;dur={list_ms:.1f}"
    return response


async def _go_to(services: RestServices, bucket: Bucket, raw: str) -> str:
    """Where "go to path" leads: a folder's listing, an object's page, or (nothing
    there) the parent folder filtered by the last name."""
    path = raw.strip().lstrip("/")
    if not path or path.endswith(browse.DELIMITER):
        return listing_url(bucket.name, prefix=path)
    try:
        services.store.head_object(bucket, path)
    except StoreError:
        pass
    else:
        return object_url(bucket.name, path)
    folder = path + browse.DELIMITER
    probe = await services.store.list_objects(bucket, prefix=folder, max_keys=1)
    if probe.entries:
        return listing_url(bucket.name, prefix=folder)
    parent, _, name = path.rpartition(browse.DELIMITER)
    return listing_url(
        bucket.name, prefix=parent + browse.DELIMITER if parent else "", filter=name, msg="missing"
    )


async def create_folder(request: Request, services: RestServices) -> Response:
    account, bucket = _caller_bucket(request, services)
    fields = await form_of(request)
    await check_form(request, fields.get(CSRF_FIELD))
    prefix = browse.clean_prefix(fields.get("prefix", ""))
    try:
        key = await browse.create_folder(services.store, bucket, prefix, fields.get("name", ""))
    except ApiError as exc:
        return await _listing_page(
            request, services, account, bucket, prefix=prefix, error=exc.message, status=exc.status
        )
    except StoreError as exc:
        message = exc.message or exc.code
        return await _listing_page(
            request, services, account, bucket, prefix=prefix, error=message, status=400
        )
    return redirect(listing_url(bucket.name, prefix=key))


# --- the selection: delete, ZIP ----------------------------------------------------------


async def _selection(request: Request) -> tuple[str, list[str], list[str], dict[str, str]]:
    """The posted selection: its prefix, keys, folders, and the other fields (a form of
    repeated `key` and `folder` fields, which form_of would cut to the first)."""
    body = await read_limited(request, SELECTION_FORM_BYTES, "Forms")
    try:
        pairs = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=1000)
    except ValueError as exc:
        raise bad_request("The selection has too many fields.") from exc
    keys = [value for name, value in pairs if name == "key" and value]
    folders = [value for name, value in pairs if name == "folder" and value]
    others: dict[str, str] = {}
    for name, value in pairs:
        others.setdefault(name, value)
    await check_form(request, others.get(CSRF_FIELD))
    return browse.clean_prefix(others.get("prefix", "")), keys, folders, others


async def delete_objects(request: Request, services: RestServices) -> Response:
    account, bucket = _caller_bucket(request, services)
    prefix, keys, folders, fields = await _selection(request)
    back = fields.get("back") or listing_url(bucket.name, prefix=prefix)
    if not back.startswith("/buckets/"):
        back = listing_url(bucket.name, prefix=prefix)
    if not keys and not folders:
        return redirect(listing_url(bucket.name, prefix=prefix, msg="select"))
    if fields.get("confirm") != "yes":
        return page(
            request, "objects_delete.html", account, section="buckets", bucket=bucket.name, prefix=prefix,
            keys=keys, folders=folders, versioned=bool(bucket.versioning), back=back,
            crumbs=browse.crumbs(prefix), folder_url=folder_urls(bucket.name),
        )  # fmt: skip
    deleted = await browse.delete_selection(services.store, bucket, keys, folders)
    return redirect(listing_url(bucket.name, prefix=prefix, msg="deleted", n=str(deleted)))


async def download_zip(request: Request, services: RestServices) -> Response:
    _account, bucket = _caller_bucket(request, services)
    prefix, keys, folders, _fields = await _selection(request)
    if not keys and not folders:
        return redirect(listing_url(bucket.name, prefix=prefix, msg="select"))
    name = (prefix.rstrip("/").rsplit("/", 1)[-1] or bucket.name) + ".zip"
    members = browse.zip_members(services.store, bucket, prefix, keys, folders)
    return StreamingResponse(
        stream_zip(members),
        media_type="application/zip",
        headers={
            "content-disposition": f"attachment; filename=\"{_ascii(name)}\"; filename*=UTF-8''{quote(name, safe='')}",
            "cache-control": "no-store",
            "x-content-type-options": "nosniff",
        },
    )


def _ascii(name: str) -> str:
    return "".join("_" if ch in '"\\' or not 32 <= ord(ch) < 127 else ch for ch in name)


# --- one object ---------------------------------------------------------------------------


def _key_of(request: Request) -> str:
    key = request.query_params.get("key", "")
    if not key:
        raise bad_request("Which object? The address needs ?key=.")
    return key


def _builder_params(source: dict[str, str], kind: str, max_side: int) -> tuple[dict[str, str], int]:
    """The URL builder's transform parameters (checked as /api/img checks them) and expiry."""
    params = {name: source[name].strip() for name in BUILDER_FIELDS if source.get(name, "").strip()}
    if not any(name in source for name in BUILDER_FIELDS):
        params = dict(BUILDER_START)  # never the whole original re-encoded as a first preview
    if kind == "pdf":
        params["page"] = source.get("page", "").strip() or "1"
    try:
        parse_query([(name, value) for name, value in params.items() if name != "page"], max_side)
    except InvalidParameter as exc:
        raise ApiError(400, "InvalidParameter", exc.message, {"parameter": exc.parameter}) from exc
    raw = source.get("expires", "")
    expires_in = int(raw) if raw.isdigit() else EXPIRY_CHOICES[0][0]
    return params, expires_in


def _builder_urls(
    request: Request, services: RestServices, signer: ImageSigner, bucket: Bucket, key: str, params: dict[str, str],
    expires_in: int,
) -> dict[str, str | int | None]:  # fmt: skip
    longest = services.config.images.max_signed_seconds
    expires_in = max(1, min(expires_in, longest))
    expires = int(time.time()) + expires_in
    base = str(request.base_url).rstrip("/")
    signed = signer.url(key, params, expires)
    public = None
    if is_public_read(bucket):
        query = urlencode(params)
        public = f"{base}/api/img/{quote(bucket.name)}/{quote(key)}" + (f"?{query}" if query else "")
    return {
        "url": f"{base}{signed}" if signed else None,
        "preview": signed,
        "publicUrl": public,
        "expires": expires,
    }


async def object_page(request: Request, services: RestServices) -> Response:
    account, bucket = _caller_bucket(request, services)
    key = _key_of(request)
    try:
        version = services.store.head_object(bucket, key)
    except StoreError as exc:
        raise ApiError(404, "NoSuchKey", f"There is no object {key!r} in {bucket.name}.") from exc
    kind = browse.preview_kind(key, version.content_type)
    text, truncated = None, False
    if kind == "text":
        data, truncated = await browse.read_head(services.store, bucket, key)
        text = browse.as_text(data)
        if not truncated and "json" in (version.content_type or browse.guess_type(key) or ""):
            text = _pretty_json(text)  # a whole JSON document, indented to be read
    signer = ImageSigner(services, account, bucket)
    builder, builder_error = None, None
    if kind in ("image", "pdf") and signer.key is not None:
        try:
            params, expires_in = _builder_params(
                dict(request.query_params), kind, services.config.images.max_output_side
            )
        except ApiError as exc:
            builder_error = exc.message
            params, expires_in = ({"page": "1"} if kind == "pdf" else {}), EXPIRY_CHOICES[0][0]
        builder = _builder_urls(request, services, signer, bucket, key, params, expires_in)
        builder["values"] = {name: params.get(name, "") for name in (*BUILDER_FIELDS, "page")}
        builder["expiresIn"] = expires_in
    prefix = key.rpartition(browse.DELIMITER)[0] + browse.DELIMITER if browse.DELIMITER in key else ""
    longest = services.config.images.max_signed_seconds
    return page(
        request,
        "objects_object.html",
        account,
        section="buckets",
        bucket=bucket.name,
        versioned=bool(bucket.versioning),
        key=key,
        name=key[len(prefix) :],
        prefix=prefix,
        crumbs=browse.crumbs(prefix),
        folder_url=folder_urls(bucket.name),
        version=version,
        kind=kind,
        content_type=version.content_type or "application/octet-stream",
        text=text,
        truncated=truncated,
        preview=signer.preview(key, kind, LARGE),
        signing=signer.key is not None,
        builder=builder,
        builder_error=builder_error,
        expiry_choices=[choice for choice in EXPIRY_CHOICES if choice[0] <= longest],
        download=download_url(bucket.name, key),
        back=listing_url(bucket.name, prefix=prefix),
        **HELPERS,
    )


def _pretty_json(text: str) -> str:
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        return text


async def image_url(request: Request, services: RestServices) -> Response:
    """The URL builder's live answer (JSON): the signed URL for the chosen parameters."""
    account, bucket = _caller_bucket(request, services)
    key = _key_of(request)
    try:
        version = services.store.head_object(bucket, key)
    except StoreError as exc:
        raise ApiError(404, "NoSuchKey", "No such object.") from exc
    kind = browse.preview_kind(key, version.content_type)
    try:
        params, expires_in = _builder_params(
            dict(request.query_params), kind, services.config.images.max_output_side
        )
    except ApiError as exc:
        return exc.response()
    signer = ImageSigner(services, account, bucket)
    if signer.key is None:
        return ApiError(
            409, "NoAccessKey", "Create an access key first: image URLs are signed with one."
        ).response()
    return JSONResponse(_builder_urls(request, services, signer, bucket, key, params, expires_in))


async def download_object(request: Request, services: RestServices) -> Response:
    _account, bucket = _caller_bucket(request, services)
    response = download(request, services, bucket, _key_of(request))
    # A stored HTML or SVG file never runs as a page of the dashboard's origin.
    response.headers["content-security-policy"] = "sandbox"
    response.headers["x-content-type-options"] = "nosniff"
    return response


def routes(services: RestServices) -> list[BaseRoute]:
    handlers: list[tuple[str, Callable, list[str]]] = [
        ("/buckets/{name}", listing, GET),
        ("/buckets/{name}/object", object_page, GET),
        ("/buckets/{name}/download", download_object, GET),
        ("/buckets/{name}/image-url", image_url, GET),
        ("/buckets/{name}/folders", create_folder, POST),
        ("/buckets/{name}/delete-objects", delete_objects, POST),
        ("/buckets/{name}/zip", download_zip, POST),
    ]
    return [page_route(path, handler, services, methods) for path, handler, methods in handlers]
