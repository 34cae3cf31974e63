"""The document workspace (cloudlayer-compatible API, docgen/): jobs (auto-refreshed
while any runs), assets, the template gallery and editor with a live preview, and the
month's document usage. Pages call docgen's own functions with the session's account,
as the API calls them with the account of its `cl-` key."""

from __future__ import annotations

import asyncio
import base64
import json
import re
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from core.accounts import Account
from core.jsonapi import ApiError
from core.strictparse import ascii_int
from docgen import jobs as job_rows
from docgen import options as opts
from docgen import user_storage
from docgen.api import document_work, documents_usage, save_storage, save_template
from docgen.budget import retry_after
from docgen.output import RenderError
from docgen.service import DocService
from docgen.templates import GALLERY, gallery_template
from docgen.workers import RenderTimeout
from restapi.files import RestServices
from webui.pages_objects import HELPERS, ImageSigner
from webui.render import page, redirect
from webui.routing import form_of, page_route
from webui.session import CSRF_FIELD, check_form, require_account

POST = ["POST"]
PAGE_SIZE, MAX_PAGE = 50, 100
STATUSES = ("pending", "success", "error")
FINISHED = ("success", "error")
GALLERY_IDS = ("invoice", "receipt", "report")
# The preview is the first page as an A4 image at 96 dpi: the PDF's page size.
PREVIEW_VIEWPORT = {"width": 794, "height": 1123, "deviceScaleFactor": 1}
EDITOR_FORM_BYTES = 1024 * 1024
# A page's thumbnail: portrait like A4 (1:1.41), rendered at twice the size it is shown.
PAGE_THUMBNAIL = {"w": "136", "h": "192", "fit": "cover"}
_SAMPLE = re.compile(r"Data:\s*(\{.*?\})\s*-?#}", re.S)


def _service(request: Request) -> DocService:
    # Given by server/web.py as the web app's state (passed in, not a module global).
    found = getattr(request.app.state, "doc_service", None)
    if found is None:
        raise ApiError(503, "Unavailable", "The document service is not running.")
    return found


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def shown_ms(ms: int | None) -> str:
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _day_ms(value: str, end: bool = False) -> int | None:
    """A date field (YYYY-MM-DD, UTC) as ms; `end`: the start of the next day."""
    try:
        day = datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        return None
    return int(day.timestamp() * 1000) + (86400000 if end else 0)


def _docpage(request: Request, template: str, account: Account, tab: str, **context: Any) -> Response:
    return page(
        request, template, account, section="documents", tab=tab, shown_ms=shown_ms, **HELPERS, **context
    )


# --- jobs --------------------------------------------------------------------------


def _job_filters(request: Request) -> dict[str, Any]:
    query = request.query_params
    status = query.get("status", "")
    # ascii_int as the API pages: an odd number is the first page, not a 500.
    offset = ascii_int(query.get("offset", "0"), maximum=2**63 - 1) or 0
    limit = ascii_int(query.get("limit", str(PAGE_SIZE)), minimum=1, maximum=MAX_PAGE) or PAGE_SIZE
    return {
        "status": status if status in STATUSES else "",
        "from": query.get("from", ""),
        "to": query.get("to", ""),
        "limit": limit if limit != PAGE_SIZE else None,
        "offset": offset or None,
    }


def _jobs_context(
    request: Request, services: RestServices, account: Account, filters: dict[str, Any]
) -> dict[str, Any]:
    service = _service(request)
    limit, offset = filters["limit"] or PAGE_SIZE, filters["offset"] or 0
    found = service.db.read(
        lambda c: job_rows.list_jobs(
            c,
            account.id,
            limit + 1,  # one more: is there an older page?
            offset,
            status=filters["status"] or None,
            since_ms=_day_ms(filters["from"]),
            until_ms=_day_ms(filters["to"], end=True),
        )
    )
    names = {key.hint: key.name for key in services.doc_keys.list(account.id)}
    running = service.db.read(lambda c: job_rows.has_running_jobs(c, account.id))
    query = urlencode({name: value for name, value in filters.items() if value})

    def page_url(at: int) -> str:
        return "/documents/jobs?" + urlencode({**{k: v for k, v in filters.items() if v}, "offset": at})

    return {
        "jobs": found[:limit],
        "key_names": names,
        "running": running,
        "filters": filters,
        "query": query,
        "older": page_url(offset + limit) if len(found) > limit else None,
        "newer": page_url(max(0, offset - limit)) if offset else None,
    }


async def jobs(request: Request, services: RestServices) -> Response:
    account = require_account(request, services)
    context = _jobs_context(request, services, account, _job_filters(request))
    return _docpage(request, "documents_jobs.html", account, "jobs", statuses=STATUSES, **context)


async def jobs_list(request: Request, services: RestServices) -> Response:
    """The list alone, for htmx's polling (it stops once nothing is pending)."""
    account = require_account(request, services)
    context = _jobs_context(request, services, account, _job_filters(request))
    return page(request, "fragments/documents_jobs_list.html", account, shown_ms=shown_ms, **context)


def _job_context(request: Request, services: RestServices, account: Account) -> dict[str, Any]:
    service = _service(request)
    job_id = request.path_params["job_id"]
    found = service.db.read(lambda c: job_rows.get_job(c, account.id, job_id))
    if found is None:
        raise ApiError(404, "NotFound", "No such job.")
    names = {key.hint: key.name for key in services.doc_keys.list(account.id)}
    return {
        "job": found,
        "job_json": service.job_json(found, _base(request)),
        "key_names": names,
        # Anything not finished (pending, or a status a later version adds) is polled.
        "running": found.status not in FINISHED,
    }


async def job(request: Request, services: RestServices) -> Response:
    account = require_account(request, services)
    context = _job_context(request, services, account)
    params = json.dumps(context["job"].params, indent=2, sort_keys=True)
    return _docpage(request, "documents_job.html", account, "jobs", params=params, **context)


async def job_card(request: Request, services: RestServices) -> Response:
    """A job's state alone, for its page's htmx polling: the fragment polls again only
    while the job runs, so the finished one it swaps in ends the polling."""
    account = require_account(request, services)
    context = _job_context(request, services, account)
    return page(request, "fragments/documents_job_card.html", account, shown_ms=shown_ms, **context)


# --- assets ------------------------------------------------------------------------


async def assets(request: Request, services: RestServices) -> Response:
    account = require_account(request, services)
    service = _service(request)
    found = service.db.read(lambda c: job_rows.list_assets(c, account.id, PAGE_SIZE, 0))
    base = _base(request)
    rows = []
    signers: dict[str, ImageSigner | None] = {}
    for asset in found:
        if asset.bucket not in signers:
            bucket = services.store.bucket(asset.bucket)
            signers[asset.bucket] = ImageSigner(services, account, bucket) if bucket else None
        signer = signers[asset.bucket]
        kind = "pdf" if asset.ext == "pdf" else "image"
        expires, _signature = service.link(asset.id)
        rows.append(
            {
                "asset": asset,
                "thumbnail": signer.preview(asset.key, kind, PAGE_THUMBNAIL) if signer else None,
                "url": service.asset_url(base, asset.id),
                "expires": shown_ms(expires * 1000),
            }
        )
    return _docpage(request, "documents_assets.html", account, "assets", rows=rows)


async def delete_asset(request: Request, services: RestServices) -> Response:
    account = require_account(request, services)
    fields = await form_of(request)
    await check_form(request, fields.get(CSRF_FIELD))
    if not await _service(request).delete_asset(account.id, request.path_params["asset_id"]):
        raise ApiError(404, "NotFound", "No such asset.")
    return redirect("/documents/assets")


# --- templates ---------------------------------------------------------------------


def sample_data(template: str) -> str:
    """A gallery template's sample data, from the comment at its top."""
    found = _SAMPLE.search(template)
    if not found:
        return "{}"
    try:
        return json.dumps(json.loads(found.group(1)), indent=2, ensure_ascii=False)
    except ValueError:
        return "{}"


async def templates(request: Request, services: RestServices) -> Response:
    account = require_account(request, services)
    service = _service(request)
    saved = service.db.read(lambda c: job_rows.list_templates(c, account.id))
    gallery = [name for name in GALLERY_IDS if (GALLERY / f"{name}.njk").is_file()]
    return _docpage(request, "documents_templates.html", account, "templates", gallery=gallery, saved=saved)


async def editor(request: Request, services: RestServices) -> Response:
    account = require_account(request, services)
    service = _service(request)
    query = request.query_params
    name, text, data, saved_id = "", "", "{}", ""
    if query.get("gallery"):
        text = gallery_template(query["gallery"]) or ""
        if not text:
            raise ApiError(404, "NotFound", "No such gallery template.")
        name, data = f"My {query['gallery']}", sample_data(text)
    elif query.get("id"):
        found = service.db.read(lambda c: job_rows.template_row(c, account.id, query["id"]))
        if found is None:
            raise ApiError(404, "NotFound", "No such template.")
        name, text, saved_id = found["name"], found["body"], found["id"]
        data = sample_data(text)
    return _editor_page(
        request,
        account,
        name=name,
        template_text=text,
        data=data,
        saved_id=saved_id,
        saved=query.get("saved", ""),
    )


def _editor_body(fields: dict[str, str]) -> tuple[dict[str, Any], Any]:
    try:
        data = json.loads(fields.get("data") or "{}")
    except ValueError as exc:
        raise opts.bad("data", f"The sample data is not JSON: {exc}.") from exc
    body: dict[str, Any] = {
        "template": base64.b64encode(fields.get("template", "").encode()).decode(),
        "data": data,
    }
    if fields.get("engine") in ("weasyprint", "chromium"):
        body["engine"] = fields["engine"]
    return body, data


async def preview(request: Request, services: RestServices) -> Response:
    """The editor's preview: the template rendered as the API would (same template
    limits, engine choice and timeout), its first page as a PNG; errors in place.
    Each preview spends the account's per-minute document budget, the one the API's
    requests spend: past it, the preview says when to retry (and the API answers 429)."""
    account = require_account(request, services)
    fields = await form_of(request, EDITOR_FORM_BYTES)
    await check_form(request, fields.get(CSRF_FIELD))
    service = _service(request)
    per_minute = service.config.plan(account.plan).docgen_per_minute
    allowed, rate_headers = service.budget.take(account.id, per_minute)
    if not allowed:
        # 200, not 429: htmx swaps only successful answers, and this one is the message.
        response = page(
            request,
            "fragments/documents_preview.html",
            account,
            limited=retry_after(rate_headers),
            per_minute=per_minute,
        )
        response.headers.update(rate_headers)
        return response
    image = error = engine = None
    try:
        body, _data = _editor_body(fields)
        work = await document_work(service, account, "template", body)
        body["viewPort"] = PREVIEW_VIEWPORT
        work = replace(work, kind="image", image=opts.image_options(body))
        engine = work.engine
        rendered = await service.render(work, opts.timeout_ms(body) / 1000)
        image = "data:image/png;base64," + base64.b64encode(rendered.data).decode()
    except ApiError as exc:
        error = exc.message
    except (RenderError, RenderTimeout) as exc:
        error = str(exc) or "The document could not be rendered in time."
    response = page(
        request, "fragments/documents_preview.html", account, image=image, error=error, engine=engine
    )
    response.headers.update(rate_headers)
    return response


def _editor_page(request: Request, account: Account, **context: Any) -> Response:
    service = _service(request)
    return _docpage(
        request,
        "documents_editor.html",
        account,
        "templates",
        engines=("auto", "weasyprint", "chromium"),
        chromium=service.chromium.available,
        base=_base(request),
        **context,
    )


async def save(request: Request, services: RestServices) -> Response:
    """The editor's save: a new saved template ("Save as template"); for one opened
    from the saved ones, "Save" replaces it in place (same templateId) and "Save as
    new" makes a copy with an id of its own."""
    account = require_account(request, services)
    fields = await form_of(request, EDITOR_FORM_BYTES)
    await check_form(request, fields.get(CSRF_FIELD))
    service = _service(request)
    name, text = fields.get("name", ""), fields.get("template", "")
    template_id = fields.get("id", "")
    as_new = not template_id or fields.get("action") == "new"
    try:
        if as_new:
            saved = await save_template(service, account, name, text)
        else:
            saved = await service.replace_template(account.id, template_id, name, text)
            if saved is None:
                raise ApiError(
                    404,
                    "NotFound",
                    "This saved template no longer exists: use “Save as new” to keep your edits.",
                )
    except ApiError as exc:
        # The edits stay in the editor; a failed save changed nothing that was saved.
        return _editor_page(
            request,
            account,
            status=exc.status,
            error=exc.message,
            name=name,
            template_text=text,
            data=fields.get("data", "{}"),
            saved_id=template_id,
            saved="",
        )
    return redirect(f"/documents/templates/edit?id={saved['id']}&saved={'new' if as_new else 'updated'}")


async def delete_template(request: Request, services: RestServices) -> Response:
    account = require_account(request, services)
    fields = await form_of(request)
    await check_form(request, fields.get(CSRF_FIELD))
    template_id = request.path_params["template_id"]
    if not await _service(request).db.write(lambda c: job_rows.delete_template(c, account.id, template_id)):
        raise ApiError(404, "NotFound", "No such template.")
    return redirect("/documents/templates")


# --- user storage (/v2/storage) -----------------------------------------------------

STORAGE_FIELDS = ("bucket", "region", "accessKeyId", "secretAccessKey", "endpoint", "prefix", "acl")


def _storage_page(request: Request, services: RestServices, account: Account, **extra: Any) -> Response:
    service = _service(request)
    found = service.db.read(lambda c: user_storage.load(c, service.box, account.id))
    return _docpage(
        request,
        "documents_storage.html",
        account,
        "storage",
        current=found.masked() if found else None,
        acls=user_storage.ACLS,
        **extra,
    )


async def storage(request: Request, services: RestServices) -> Response:
    account = require_account(request, services)
    if request.method == "GET":
        return _storage_page(request, services, account, message=request.query_params.get("done", ""))
    fields = await form_of(request)
    await check_form(request, fields.get(CSRF_FIELD))
    body: dict[str, Any] = {name: fields.get(name, "") for name in STORAGE_FIELDS}
    body["endpoint"] = body["endpoint"] or None
    try:
        await save_storage(_service(request), account, body)
    except ApiError as exc:
        # The secret is not sent back into the form.
        entered = {k: v for k, v in body.items() if k != "secretAccessKey"}
        return _storage_page(
            request, services, account, error=exc.message, entered=entered, status=exc.status
        )
    return redirect("/documents/storage?done=saved")


async def storage_test(request: Request, services: RestServices) -> Response:
    """A small object put and deleted with the saved settings, as a delivery would."""
    account = require_account(request, services)
    fields = await form_of(request)
    await check_form(request, fields.get(CSRF_FIELD))
    service = _service(request)
    found = service.db.read(lambda c: user_storage.load(c, service.box, account.id))
    if found is None:
        return _storage_page(request, services, account, error="No storage is configured.", status=404)
    settings = service.settings
    error = await asyncio.get_running_loop().run_in_executor(
        None,
        lambda: user_storage.check_connection(
            found,
            allow_private=settings.allow_private_targets,
            allow_loopback=settings.allow_loopback_targets,
        ),
    )
    if error is not None:
        return _storage_page(request, services, account, test_error=error)
    return _storage_page(request, services, account, test_ok=True)


async def storage_delete(request: Request, services: RestServices) -> Response:
    account = require_account(request, services)
    fields = await form_of(request)
    await check_form(request, fields.get(CSRF_FIELD))
    await _service(request).db.write(lambda c: user_storage.delete(c, account.id))
    return redirect("/documents/storage?done=removed")


# --- usage -------------------------------------------------------------------------


async def usage(request: Request, services: RestServices) -> Response:
    account = require_account(request, services)
    service = _service(request)
    figures = documents_usage(service, account)
    plan = services.config.plan(account.plan)
    return _docpage(
        request,
        "documents_usage.html",
        account,
        "usage",
        figures=figures,
        per_minute=plan.docgen_per_minute,
    )


async def home(request: Request, services: RestServices) -> Response:
    require_account(request, services)
    return redirect("/documents/jobs")


def routes(services: RestServices) -> list[BaseRoute]:
    return [
        page_route("/documents", home, services),
        page_route("/documents/jobs", jobs, services),
        page_route("/documents/jobs/list", jobs_list, services),
        page_route("/documents/jobs/{job_id}", job, services),
        page_route("/documents/jobs/{job_id}/card", job_card, services),
        page_route("/documents/assets", assets, services),
        page_route("/documents/assets/{asset_id}/delete", delete_asset, services, POST),
        page_route("/documents/templates", templates, services),
        page_route("/documents/templates/edit", editor, services),
        page_route("/documents/templates/preview", preview, services, POST),
        page_route("/documents/templates/save", save, services, POST),
        page_route("/documents/templates/{template_id}/delete", delete_template, services, POST),
        page_route("/documents/storage", storage, services, ["GET", "POST"]),
        page_route("/documents/storage/test", storage_test, services, POST),
        page_route("/documents/storage/delete", storage_delete, services, POST),
        page_route("/documents/usage", usage, services),
    ]
