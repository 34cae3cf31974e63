"""cloudlayer.io's API on Folio's web listener, under `/v1` and `/v2`: document
generation (html, url, template to pdf or image; sync and async), jobs, assets,
account, getStatus and (v2) storage. Paths, fields and status codes follow the seeds;
errors are `{"error": {"code", "message", "details"}}`; every answer carries the
X-RateLimit-* headers of the account's per-minute budget."""

from __future__ import annotations

import hmac
import time
from dataclasses import replace
from typing import Any
from urllib.parse import quote

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from core.jsonapi import ApiError
from core.netguard import BlockedTarget, check_url
from core.requestbody import (
    ClientGone,
    declared_length,
    json_object,
    json_value,
    multipart_boundary,
    read_json_object,
    too_large,
)
from core.strictparse import ascii_int
from docgen import jobs as job_rows
from docgen import options as opts
from docgen import user_storage
from docgen.budget import retry_after
from docgen.engine_choice import choose_engine
from docgen.options import RenderJob, bad
from docgen.service import DocService
from docgen.templates import TemplateProblem, gallery_template

DEFAULT_LIMIT, MAX_LIMIT = 25, 100
OUTPUTS = {"pdf", "image"}
SOURCES = {"html", "url", "template"}


class DocApi:
    def __init__(self, service: DocService) -> None:
        self.service = service
        # The service's budget: the dashboard's template previews spend the same one.
        self.budget = service.budget

    # --- plumbing ---------------------------------------------------------------

    def _account(self, request: Request):
        token = (request.headers.get("x-api-key") or "").strip()
        account = self.service.doc_keys.account_of(token) if token else None
        if account is None:
            raise ApiError(401, "Unauthorized", "Send a valid API key (cl-...) in the X-API-Key header.")
        return account

    def _base(self, request: Request) -> str:
        return str(request.base_url).rstrip("/")

    async def _json_body(self, request: Request) -> dict[str, Any]:
        return await read_json_object(request, self.service.settings.max_request_bytes)

    async def _multipart(self, request: Request) -> tuple[dict[str, Any], str, Any]:
        """The multipart template variant: `options` (JSON), `template` and `data` files
        (or text fields)."""
        limit = self.service.settings.max_request_bytes
        # Starlette's form parser reads the whole body: it needs a declared size.
        if declared_length(request, limit) is None:
            raise too_large(limit)
        multipart_boundary(request.headers.get("content-type", ""))  # RFC 2046, before the parser sees it
        try:
            async with request.form(max_files=3, max_fields=10) as form:
                parts: dict[str, str] = {}
                for name in ("options", "template", "data"):
                    value = form.get(name)
                    if value is None:
                        continue
                    parts[name] = value if isinstance(value, str) else (await value.read()).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ApiError(400, "BadRequest", "The template and data must be UTF-8 text.") from exc
        except ClientDisconnect:
            raise ClientGone() from None
        except Exception as exc:  # noqa: BLE001 - a malformed form is the client's error
            raise ApiError(400, "BadRequest", f"The multipart form could not be read: {exc}") from exc
        options = json_object(parts.get("options") or "{}", "options", field="options")
        data = json_value(parts.get("data") or "{}", "data", field="data")
        if "template" not in parts:
            raise ApiError(400, "BadRequest", "The form needs a template file.", {"field": "template"})
        return options, parts["template"], data

    # --- generation -------------------------------------------------------------

    async def _document_html(self, source: str, request: Request, account) -> tuple[dict[str, Any], RenderJob]:
        ctype = request.headers.get("content-type", "").lower()
        template_text = data = None
        if source == "template" and ctype.startswith("multipart/"):
            body, template_text, data = await self._multipart(request)
        else:
            body = await self._json_body(request)
        return body, await document_work(self.service, account, source, body, template_text, data)

    async def generate(self, request: Request, version: int, source: str, output: str) -> Response:
        account = self._account(request)
        headers = self._limit(account, request)
        plan = self.service.config.plan(account.plan)
        if plan.docgen_calls_per_month:
            calls = self.service.db.read(lambda c: job_rows.job_counts(c, account.id, job_rows.month_start_ms(time.time())))["calls"]
            if calls >= plan.docgen_calls_per_month:
                raise ApiError(
                    402, "PaymentRequired", "Your plan's document calls for this month are used up.", headers=headers
                )
        body, work = await self._document_html(source, request, account)
        if output == "pdf":
            work = _replace(work, kind="pdf", pdf=opts.pdf_options(body))
        else:
            work = _replace(work, kind="image", image=opts.image_options(body))
        asynchronous = body.get("async", version == 2)
        storage = body.get("storage", version == 2 or asynchronous)
        if not isinstance(asynchronous, bool) or not isinstance(storage, bool):
            raise bad("async", "async and storage must be true or false.")
        if asynchronous and not storage:
            raise bad("storage", '"storage": false requires "async": false.')
        webhook = body.get("webhook")
        if webhook is not None and (not isinstance(webhook, str) or not webhook.startswith(("https://", "http://"))):
            raise bad("webhook", "webhook must be an https URL.")
        filename = body.get("filename")
        if filename is not None and (not isinstance(filename, str) or "/" in filename or not filename.strip()):
            raise bad("filename", "filename must be a plain file name.")
        job_options = {
            "timeout": opts.timeout_ms(body),
            "filename": filename,
            "webhook": webhook,
            "version": version,
            "baseUrl": self._base(request),
            # For the dashboard's jobs list: the engine, and which key asked (its last
            # characters, as the keys page shows them).
            "engine": work.engine,
            "apiKeyHint": (request.headers.get("x-api-key") or "").strip()[-4:],
        }
        job = self.service.new_job(account, f"{source}-{output}", job_rows.public_params(body), job_options)
        if asynchronous:
            await self.service.accept(job, work)
            return JSONResponse(self.service.job_json(job, self._base(request)), status_code=202, headers=headers)
        outcome = await self.service.execute(job, work, store=storage)
        if outcome.rendered is None or job.status != "success":
            raise ApiError(
                422, "RenderFailed", job.error or "The document could not be made.", {"jobId": job.id}, headers
            )
        rendered = outcome.rendered
        name = filename or f"{job.asset_id or job.id}.{rendered.ext}"
        headers["content-disposition"] = f"attachment; filename*=UTF-8''{quote(name)}"
        headers["x-job-id"] = job.id
        headers["x-folio-engine"] = work.engine
        if job.asset_id:
            headers["x-asset-id"] = job.asset_id
        return Response(rendered.data, status_code=201, media_type=rendered.content_type, headers=headers)

    def _limit(self, account, request: Request | None = None) -> dict[str, str]:
        per_minute = self.service.config.plan(account.plan).docgen_per_minute
        allowed, headers = self.budget.take(account.id, per_minute)
        if request is not None:
            request.state.rate_headers = headers  # for the errors answered after this point
        if not allowed:
            headers["retry-after"] = str(retry_after(headers))
            raise ApiError(429, "TooManyRequests", f"Your plan allows {per_minute} requests a minute.", headers=headers)
        return headers

    # --- reading ---------------------------------------------------------------

    @staticmethod
    def _page(request: Request) -> tuple[int, int]:
        # ascii_int: int() would take '٣' or '1_0', and an offset past SQLite's 64 bits was a 500.
        limit = ascii_int(request.query_params.get("limit", str(DEFAULT_LIMIT)), minimum=1, maximum=MAX_LIMIT)
        offset = ascii_int(request.query_params.get("offset", "0"), maximum=2**63 - 1)
        if limit is None or offset is None:
            raise ApiError(400, "BadRequest", f"limit is 1 to {MAX_LIMIT}; offset is 0 or more.")
        return limit, offset

    async def _one_or_page(self, request: Request, param: str, one, page, to_json, noun: str) -> Response:
        """`GET {things}/{id}` (404 unless the account's) or a page of `GET {things}`."""
        account = self._account(request)
        headers = self._limit(account, request)
        base = self._base(request)
        wanted = request.path_params.get(param)
        if wanted:
            found = self.service.db.read(lambda c: one(c, account.id, wanted))
            if found is None:
                raise ApiError(404, "NotFound", f"No such {noun}.", headers=headers)
            return JSONResponse(to_json(found, base), headers=headers)
        limit, offset = self._page(request)
        items = self.service.db.read(lambda c: page(c, account.id, limit, offset))
        return JSONResponse([to_json(item, base) for item in items], headers=headers)

    async def jobs(self, request: Request) -> Response:
        return await self._one_or_page(
            request, "job_id", job_rows.get_job, job_rows.list_jobs, self.service.job_json, "job"
        )

    async def assets(self, request: Request) -> Response:
        return await self._one_or_page(
            request,
            "asset_id",
            lambda c, account_id, asset_id: job_rows.get_asset(c, asset_id, account_id),
            job_rows.list_assets,
            self.service.asset_json,
            "asset",
        )

    async def download(self, request: Request) -> Response:
        """A pre-authenticated link: no API key, an expiring signature."""
        asset_id, which = request.path_params["asset_id"], request.path_params["which"]
        expires = request.query_params.get("expires", "")
        signature = request.query_params.get("signature", "")
        denied = ApiError(403, "Forbidden", "This download link is invalid or has expired.")
        expires_at = ascii_int(expires)  # '²' passes isdigit() and then fails int()
        if which not in ("file", "preview") or expires_at is None or expires_at < time.time():
            raise denied
        expected = self.service.link_signature(asset_id, which, expires_at)
        if not _same(expected, signature):
            raise denied
        asset = self.service.db.read(lambda c: job_rows.get_asset(c, asset_id))
        key = (asset.key if which == "file" else asset.preview_key) if asset else None
        bucket = self.service.store.bucket(asset.bucket) if asset else None
        if asset is None or key is None or bucket is None:
            raise ApiError(404, "NotFound", "The file is no longer stored.")
        try:
            reader = self.service.store.open_object(bucket, key)
        except Exception as exc:  # noqa: BLE001 - deleted over S3, or pruned
            raise ApiError(404, "NotFound", "The file is no longer stored.") from exc
        data = b"".join([chunk async for chunk in reader.iter_range(0, reader.version.size - 1)])
        media = asset.type if which == "file" else "image/png"
        name = asset.filename if which == "file" else f"{asset.id}.preview.png"
        return Response(
            data, media_type=media, headers={"content-disposition": f"inline; filename*=UTF-8''{quote(name)}"}
        )

    async def account(self, request: Request) -> Response:
        account = self._account(request)
        headers = self._limit(account, request)
        return JSONResponse(documents_usage(self.service, account), headers=headers)

    async def templates(self, request: Request) -> Response:
        """The account's saved templates: POST {name, template (Base64)}, GET, DELETE {id}."""
        account = self._account(request)
        headers = self._limit(account, request)
        db = self.service.db
        template_id = request.path_params.get("template_id")
        if request.method == "POST" and not template_id:
            body = await self._json_body(request)
            name = body.get("name")
            if not isinstance(name, str) or not name.strip() or len(name) > 200:
                raise bad("name", "name is required (up to 200 characters).")
            text = opts.base64_text("template", body.get("template"))
            saved = await save_template(self.service, account, name, text)
            return JSONResponse(saved, status_code=201, headers=headers)
        if request.method == "GET" and not template_id:
            return JSONResponse(db.read(lambda c: job_rows.list_templates(c, account.id)), headers=headers)
        if request.method == "DELETE" and template_id:
            if not await db.write(lambda c: job_rows.delete_template(c, account.id, template_id)):
                raise ApiError(404, "NotFound", "No such template.")
            return JSONResponse({"success": True}, headers=headers)
        raise ApiError(405, "MethodNotAllowed", "Use POST or GET on templates, DELETE on templates/{id}.")

    async def status(self, request: Request) -> Response:
        account = self._account(request)
        return JSONResponse({"status": "ok"}, headers=self._limit(account, request))

    async def storage(self, request: Request) -> Response:
        account = self._account(request)
        headers = self._limit(account, request)
        service = self.service
        if request.method == "GET":
            found = service.db.read(lambda c: user_storage.load(c, service.box, account.id))
            if found is None:
                raise ApiError(404, "NotFound", "No storage is configured; files go to cloud storage.", headers=headers)
            return JSONResponse(found.masked(), headers=headers)
        if request.method == "DELETE":
            await service.db.write(lambda c: user_storage.delete(c, account.id))
            return JSONResponse(
                {"message": "Storage configuration deleted. Reverting to default cloud storage."}, headers=headers
            )
        config = await save_storage(service, account, await self._json_body(request))
        return JSONResponse(
            {
                "message": "Storage configuration saved successfully.",
                "bucket": config.bucket,
                "region": config.region,
                "prefix": config.prefix,
            },
            status_code=201,
            headers=headers,
        )


async def document_work(
    service: DocService, account, source: str, body: dict[str, Any], template_text: str | None = None, data: Any = None
) -> RenderJob:
    """What to render for a request's body (html, url or template; a multipart template
    passes its text and data): the template evaluated, the engine chosen, the options
    checked. The API and the dashboard's template preview both start here."""
    settings = service.settings
    html = url = None
    if source == "html":
        html = opts.base64_text("html", body.get("html"))
    elif source == "url":
        url = body.get("url")
        if not isinstance(url, str) or not url:
            raise bad("url", "url is required: the address of the page to render.")
        try:
            await check_url(
                url,
                allow_private=settings.allow_private_targets,
                allow_loopback=settings.allow_loopback_targets,
                allow_http=True,
            )
        except BlockedTarget as exc:
            raise bad("url", f"That URL cannot be rendered: {exc}.") from exc
    else:
        if template_text is None:
            if body.get("templateId"):
                template_id = str(body["templateId"])
                template_text = gallery_template(template_id) or service.db.read(
                    lambda c: job_rows.template_body(c, account.id, template_id)
                )
                if template_text is None:
                    raise bad("templateId", f"No template {template_id!r} (built in or saved in your account).")
            else:
                template_text = opts.base64_text("template", body.get("template"))
            data = body.get("data", {})
            if isinstance(data, str):
                data = json_value(data, "data", field="data")
        try:
            html = await service.render_template(template_text, data)
        except TemplateProblem as exc:
            raise bad("template", str(exc)) from exc
    choice = choose_engine(
        body.get("engine"), source, html, service.chromium.available, settings.long_document_elements
    )
    chromium_options = opts.chromium_options(body)
    if not choice.javascript:
        # A static document Folio moved to Chromium renders as WeasyPrint would have:
        # no scripts, nothing to wait for.
        chromium_options.update(javascript=False, wait_for_selector=None, auto_scroll=False)
    return RenderJob(
        engine=choice.engine,
        **chromium_options,
        kind="pdf",
        html=html,
        url=url,
        delay_ms=opts.delay_ms(body),
        generate_preview=bool(body.get("generatePreview", False)),
        allow_private=settings.allow_private_targets,
        allow_loopback=settings.allow_loopback_targets,
        max_resource_bytes=settings.max_fetch_bytes,
    )


def documents_usage(service: DocService, account) -> dict[str, Any]:
    """The account's document figures (GET /v1/account, and the dashboard's usage)."""
    plan = service.config.plan(account.plan)
    counts = service.db.read(lambda c: job_rows.job_counts(c, account.id, job_rows.month_start_ms(time.time())))
    usage = service.store.usage(account.id)
    return {
        "email": account.email,
        "calls": counts["calls"],
        "callsLimit": plan.docgen_calls_per_month,
        "bytesTotal": counts["bytesTotal"],
        "bytesLimit": plan.storage_bytes,
        "storageUsed": usage.bytes,
        "storageLimit": plan.storage_bytes,
        "computeTimeTotal": counts["computeTimeTotal"],
        "computeTimeLimit": 0,
        "subType": account.plan,
        "subActive": True,
        "successJobs": counts["successJobs"],
        "errorJobs": counts["errorJobs"],
        "totalJobs": counts["totalJobs"],
        "bytesUsed": usage.bytes,
        "webhookSigningSecret": service.webhooks.job_secret(account.id),
    }


async def save_template(service: DocService, account, name: object, text: str) -> dict[str, Any]:
    """A new saved template (usable as templateId), checked to parse first."""
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise bad("name", "name is required (up to 200 characters).")
    try:
        await service.check_template(text)
    except TemplateProblem as exc:
        raise bad("template", str(exc)) from exc
    saved = await service.db.write(lambda c: job_rows.save_template(c, account.id, name.strip(), text))
    if saved is None:
        raise ApiError(403, "TooManyTemplates", f"At most {job_rows.MAX_SAVED_TEMPLATES} saved templates.")
    return saved


async def save_storage(service: DocService, account, body: dict[str, Any]) -> user_storage.UserStorage:
    """Check and save the account's own storage (POST /v2/storage, the dashboard's form)."""
    config = _storage_config(body)
    if config.endpoint:
        try:
            await check_url(
                config.endpoint,
                allow_private=service.settings.allow_private_targets,
                allow_loopback=service.settings.allow_loopback_targets,
                allow_http=True,
            )
        except BlockedTarget as exc:
            raise bad("endpoint", f"That endpoint cannot be used: {exc}.") from exc
    await service.db.write(lambda c: user_storage.save(c, service.box, account.id, config))
    return config


def _storage_config(body: dict[str, Any]) -> user_storage.UserStorage:
    def text(name: str, required: bool = True, default: str | None = None) -> str | None:
        value = body.get(name, default)
        if value is None and not required:
            return None
        if not isinstance(value, str) or (required and not value.strip()):
            raise bad(name, f"{name} is required (a string).")
        return value

    acl = text("acl", default="private") or "private"
    if acl not in user_storage.ACLS:
        raise bad("acl", f"acl must be one of {', '.join(user_storage.ACLS)}.")
    return user_storage.UserStorage(
        bucket=text("bucket") or "",
        region=text("region") or "",
        access_key_id=text("accessKeyId") or "",
        secret_access_key=text("secretAccessKey") or "",
        endpoint=text("endpoint", required=False),
        prefix=text("prefix", required=False, default="") or "",
        acl=acl,
    )


def _replace(job: RenderJob, **changes: Any) -> RenderJob:
    return replace(job, **changes)


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def routes(service: DocService) -> list[Route]:
    api = DocApi(service)

    def wrap(handler):
        async def run(request: Request) -> Response:
            try:
                return await handler(request)
            except ApiError as exc:
                # Every answer after authentication carries the rate-limit figures.
                exc.headers = {**getattr(request.state, "rate_headers", {}), **exc.headers}
                return exc.response()

        return run

    def generator(version: int, source: str, output: str):
        return wrap(lambda request: api.generate(request, version, source, output))

    found: list[Route] = []
    for version in (1, 2):
        prefix = f"/v{version}"
        for source in sorted(SOURCES):
            for output in sorted(OUTPUTS):
                found.append(Route(f"{prefix}/{source}/{output}", generator(version, source, output), methods=["POST"]))
        found += [
            Route(f"{prefix}/jobs", wrap(api.jobs), methods=["GET"]),
            Route(f"{prefix}/jobs/{{job_id}}", wrap(api.jobs), methods=["GET"]),
            Route(f"{prefix}/assets", wrap(api.assets), methods=["GET"]),
            Route(f"{prefix}/assets/{{asset_id}}", wrap(api.assets), methods=["GET"]),
            Route(f"{prefix}/assets/{{asset_id}}/{{which}}", wrap(api.download), methods=["GET"]),
            Route(f"{prefix}/account", wrap(api.account), methods=["GET"]),
            Route(f"{prefix}/getStatus", wrap(api.status), methods=["GET"]),
            Route(f"{prefix}/templates", wrap(api.templates), methods=["GET", "POST"]),
            Route(f"{prefix}/templates/{{template_id}}", wrap(api.templates), methods=["DELETE"]),
        ]
    found.append(Route("/v2/storage", wrap(api.storage), methods=["GET", "POST", "DELETE"]))
    return found
