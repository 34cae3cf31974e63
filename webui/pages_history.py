"""The Time Machine in the dashboard: an object's history (`/buckets/{name}/history?key=`:
versions newest first, how retention treats each, restore, undelete, download any
version) and the comparison of two versions (`/buckets/{name}/compare?key=&a=&b=`).

Restore and undelete are restapi.versions' (the JSON API's own functions); the history
and the comparison are restapi.version_diff's. Pictures of image and PDF versions come
from /api/img with `versionId`, signed as the object browser signs its previews."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from functools import partial
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute

from core.jsonapi import ApiError, bad_request
from restapi import browse, rewind, version_diff, versions
from restapi.files import RestServices, download
from s3proxy.store.models import Bucket
from webui.page_stream import streamed_page
from webui.pages_objects import HELPERS, ImageSigner, _caller_bucket, folder_urls, object_url
from webui.render import page, redirect
from webui.routing import form_of, page_route
from webui.session import CSRF_FIELD, check_form
from webui.writers import writer_label

GET, POST = ["GET"], ["POST"]
# Both versions at one size, so the side-by-side and the overlay line up pixel for pixel.
COMPARE_IMAGE = {"w": "560", "h": "420", "fit": "pad", "format": "png"}
COMPARE_PAGE = {"w": "480"}
PDF_PAGES = 3
PROGRESS_TYPE = "application/x-ndjson"

MESSAGES = {
    "restored": "Version {n} is current again, as a new version: nothing was overwritten.",
    "undeleted": "The file is back: its delete marker was removed.",
    "not-deleted": "The file is not deleted: there was nothing to undelete.",
}


def history_url(bucket: str, key: str, **extra: str) -> str:
    return f"/buckets/{quote(bucket)}/history?{urlencode({'key': key, **extra})}"


def compare_url(bucket: str, key: str, a: str, b: str) -> str:
    return f"/buckets/{quote(bucket)}/compare?{urlencode({'key': key, 'a': a, 'b': b})}"


def version_download_url(bucket: str, key: str, version: str) -> str:
    return f"/buckets/{quote(bucket)}/history/download?{urlencode({'key': key, 'version': version})}"


def _key_of(request: Request) -> str:
    key = request.query_params.get("key", "")
    if not key:
        raise bad_request("Which object? The address needs ?key=.")
    return key


def _place(bucket: str, key: str) -> dict[str, object]:
    """The breadcrumb's context: the key's folders, and its name."""
    prefix = key.rpartition(browse.DELIMITER)[0] + browse.DELIMITER if browse.DELIMITER in key else ""
    return {
        "bucket": bucket,
        "key": key,
        "name": key[len(prefix) :],
        "folder": prefix,
        "crumbs": browse.crumbs(prefix),
        "folder_url": folder_urls(bucket),
    }


async def history(request: Request, services: RestServices) -> Response:
    account, bucket = _caller_bucket(request, services)
    key = _key_of(request)
    rows = version_diff.history_rows(services.store, bucket, key)
    if not rows:
        raise ApiError(404, "NoSuchKey", f"{key!r} in {bucket.name} has no versions.")
    code, number = request.query_params.get("msg", ""), request.query_params.get("n", "")
    message = MESSAGES[code].format(n=number if number.isdigit() else "?") if code in MESSAGES else None
    contents = [row for row in rows if not row.entry.is_delete_marker]
    latest = rows[0].entry
    return page(
        request,
        "history.html",
        account,
        section="buckets",
        **_place(bucket.name, key),
        versioned=bool(bucket.versioning),
        rows=rows,
        contents=contents,
        deleted=latest.is_delete_marker,
        deleted_at=latest.last_modified if latest.is_delete_marker else None,
        message=message,
        download_url=lambda version: version_download_url(bucket.name, key, version),
        compare_url=lambda a, b: compare_url(bucket.name, key, a, b),
        object_link=None if latest.is_delete_marker else object_url(bucket.name, key),
        written_by=partial(writer_label, key_names=services.accounts.key_names(account.id)),
        **HELPERS,
    )


async def restore(request: Request, services: RestServices) -> Response:
    _account, bucket = _caller_bucket(request, services)
    fields = await form_of(request)
    await check_form(request, fields.get(CSRF_FIELD))
    key, version = fields.get("key", ""), fields.get("version", "")
    if not key or not version:
        raise bad_request("Restore needs the key and the version.")
    numbers = {
        row.entry.version_id: row.number for row in version_diff.history_rows(services.store, bucket, key)
    }
    await versions.restore_version(services, bucket, key, version)
    return redirect(history_url(bucket.name, key, msg="restored", n=str(numbers.get(version) or "")))


async def undelete(request: Request, services: RestServices) -> Response:
    _account, bucket = _caller_bucket(request, services)
    fields = await form_of(request)
    await check_form(request, fields.get(CSRF_FIELD))
    key = fields.get("key", "")
    if not key:
        raise bad_request("Undelete needs the key.")
    done = await versions.undelete(services, bucket, key)
    return redirect(history_url(bucket.name, key, msg="undeleted" if done else "not-deleted"))


async def download_version(request: Request, services: RestServices) -> Response:
    _account, bucket = _caller_bucket(request, services)
    version = request.query_params.get("version", "")
    if not version:
        raise bad_request("Which version? The address needs &version=.")
    response = download(request, services, bucket, _key_of(request), version)
    # As the object browser's download: a stored HTML or SVG file never runs as our page.
    response.headers["content-security-policy"] = "sandbox"
    response.headers["x-content-type-options"] = "nosniff"
    return response


async def compare(request: Request, services: RestServices) -> Response:
    account, bucket = _caller_bucket(request, services)
    key = _key_of(request)
    a_id, b_id = request.query_params.get("a", ""), request.query_params.get("b", "")
    if not a_id or not b_id:
        raise bad_request("Pick two versions to compare: &a= and &b=.")
    view = request.query_params.get("view", "unified")
    if view not in version_diff.VIEWS:
        raise bad_request('Show the diff how? &view= is "unified" or "split" (side by side).')
    result = await version_diff.compare(services.store, bucket, key, a_id, b_id)
    numbers = {
        row.entry.version_id: row.number for row in version_diff.history_rows(services.store, bucket, key)
    }
    signer = ImageSigner(services, account, bucket)
    pictures: dict[str, list[str | None]] = {}
    if result.mode == "image":
        pictures = {
            side: [signer.url(key, {**COMPARE_IMAGE, "versionId": vid})]
            for side, vid in (("a", a_id), ("b", b_id))
        }
    elif result.mode == "pdf":
        pictures = {
            side: [
                signer.url(key, {**COMPARE_PAGE, "page": str(n), "versionId": vid})
                for n in range(1, PDF_PAGES + 1)
            ]
            for side, vid in (("a", a_id), ("b", b_id))
        }

    def viewed(a: str, b: str, shown: str) -> str:
        url = compare_url(bucket.name, key, a, b)
        return url if shown == "unified" else f"{url}&{urlencode({'view': shown})}"

    context = {
        **_place(bucket.name, key),
        "result": result,
        "label_a": f"Version {numbers.get(a_id) or a_id[:12]}",
        "label_b": f"Version {numbers.get(b_id) or b_id[:12]}",
        "pictures": pictures,
        "signing": signer.key is not None,
        "history": history_url(bucket.name, key),
        "swap": viewed(b_id, a_id, view),
        "view": view,
        "view_urls": {shown: viewed(a_id, b_id, shown) for shown in version_diff.VIEWS},
        "download_url": lambda version: version_download_url(bucket.name, key, version),
        **HELPERS,
    }
    if result.mode != "text":
        return page(request, "history_compare.html", account, section="buckets", **context)
    # The page's frame goes out at once; the diff is made in a worker thread (bounded in
    # time: restapi.line_diff) and its rows follow as they are rendered.
    return streamed_page(
        request,
        "history_compare.html",
        account,
        section="buckets",
        block="diff",
        produce=lambda: {"diff": version_diff.text_diff(result.old_text, result.new_text, view)},
        **context,
    )


async def versions_view(request: Request, services: RestServices) -> Response:
    """Every key of the bucket with a history: more than one version, or deleted."""
    account, bucket = _caller_bucket(request, services)
    files = [
        f for f in versions.versioned_files(services, bucket) if f["versionCount"] > 1 or f["current"] is None
    ]
    return page(
        request,
        "history_versions.html",
        account,
        section="buckets",
        bucket=bucket.name,
        crumbs=[],
        folder_url=folder_urls(bucket.name),
        files=files,
        limit=versions.MAX_VERSIONS_LISTED,
        history_link=lambda key: history_url(bucket.name, key),
        **HELPERS,
    )


# --- rewind: a folder as it was at a moment -------------------------------------------------


def _moment(raw: str) -> float | None:
    """A datetime-local value ("2026-01-15T10:30" or with seconds), read as UTC."""
    raw = raw.strip().removesuffix("Z")
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise bad_request("The moment is a date and time such as 2026-01-15T10:30:00 (UTC).") from exc
    return moment.replace(tzinfo=UTC).timestamp() if moment.tzinfo is None else moment.timestamp()


def _moment_value(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%S")


async def rewind_page(request: Request, services: RestServices) -> Response:
    account, bucket = _caller_bucket(request, services)
    query = request.query_params
    prefix = query.get("prefix", "")
    at = _moment(query.get("at", ""))
    planned = rewind.plan(services, bucket, prefix, at) if at is not None else None
    restored, skipped, failed = query.get("restored"), query.get("skipped"), query.get("failed")
    return page(
        request,
        "history_rewind.html",
        account,
        section="buckets",
        bucket=bucket.name,
        prefix=prefix,
        crumbs=browse.crumbs(browse.clean_prefix(prefix)) if prefix else [],
        folder_url=folder_urls(bucket.name),
        at=at,
        at_value=_moment_value(at) if at is not None else "",
        plan=planned,
        actions=rewind,
        restored=restored,
        skipped=skipped,
        failed=failed,
        history_link=lambda key: history_url(bucket.name, key),
        **HELPERS,
    )


async def rewind_folder(request: Request, services: RestServices) -> Response:
    _account, bucket = _caller_bucket(request, services)
    fields = await form_of(request)
    await check_form(request, fields.get(CSRF_FIELD))
    prefix = fields.get("prefix", "")
    at = _moment(fields.get("at", ""))
    if at is None:
        raise bad_request("Choose the moment to rewind to.")
    if PROGRESS_TYPE in request.headers.get("accept", ""):
        # history.js asked for progress: one JSON line per restore, then where to go.
        return StreamingResponse(
            _rewind_progress(services, bucket, prefix, at),
            media_type=PROGRESS_TYPE,
            headers={"cache-control": "no-store"},
        )
    return redirect(_rewound_url(bucket.name, prefix, at, await rewind.rewind(services, bucket, prefix, at)))


def _rewound_url(bucket: str, prefix: str, at: float, done: rewind.RewindResult) -> str:
    query = {"prefix": prefix, "at": _moment_value(at), "restored": str(done.restored), "skipped": str(done.skipped),
             "failed": str(len(done.failed or []))}  # fmt: skip
    return f"/buckets/{quote(bucket)}/rewind?{urlencode(query)}"


async def _rewind_progress(
    services: RestServices, bucket: Bucket, prefix: str, at: float
) -> AsyncIterator[str]:
    """The rewind's progress as NDJSON. The rewind runs as a task of its own: a page
    closed halfway does not stop it (every restore it makes is a whole new version)."""
    queue: asyncio.Queue[dict[str, int] | None] = asyncio.Queue()
    task = asyncio.create_task(
        rewind.rewind(
            services, bucket, prefix, at, lambda done, total: queue.put_nowait({"done": done, "total": total})
        )
    )
    task.add_done_callback(lambda _task: queue.put_nowait(None))
    while (step := await queue.get()) is not None:
        yield json.dumps(step) + "\n"
    try:
        done = task.result()
    except ApiError as exc:
        yield json.dumps({"error": exc.message}) + "\n"
        return
    yield json.dumps({"restored": done.restored, "next": _rewound_url(bucket.name, prefix, at, done)}) + "\n"


def routes(services: RestServices) -> list[BaseRoute]:
    handlers: list[tuple[str, Callable, list[str]]] = [
        ("/buckets/{name}/history", history, GET),
        ("/buckets/{name}/history/restore", restore, POST),
        ("/buckets/{name}/history/undelete", undelete, POST),
        ("/buckets/{name}/history/download", download_version, GET),
        ("/buckets/{name}/compare", compare, GET),
        ("/buckets/{name}/versions", versions_view, GET),
        ("/buckets/{name}/rewind", rewind_page, GET),
        ("/buckets/{name}/rewind/restore", rewind_folder, POST),
    ]
    return [page_route(path, handler, services, methods) for path, handler, methods in handlers]
