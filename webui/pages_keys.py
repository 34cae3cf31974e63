"""Access keys: S3 key pairs and document API keys; a secret is shown once."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from core.jsonapi import ApiError
from restapi import dashboard
from restapi.files import RestServices
from webui.pages_account import s3_endpoint
from webui.render import page, redirect
from webui.routing import form_of
from webui.session import CSRF_FIELD, check_form, require_account


def _keys_page(request: Request, services: RestServices, account, **extra) -> Response:
    plan = services.config.plan(account.plan)
    return page(
        request,
        "keys.html",
        account,
        section="keys",
        keys=dashboard.list_keys(services, account.id),
        max_keys=plan.max_access_keys,
        s3_endpoint=s3_endpoint(request, services),
        **extra,
    )


async def keys(request: Request, services: RestServices) -> Response:
    account = require_account(request, services)
    if request.method == "GET":
        return _keys_page(request, services, account)
    fields = await form_of(request)
    await check_form(request, fields.get(CSRF_FIELD))
    try:
        created = await dashboard.create_key(services, account, fields.get("name", ""), fields.get("type", "s3"))
    except ApiError as exc:
        return _keys_page(request, services, account, error=exc.message, status=exc.status)
    return _keys_page(request, services, account, created=created, status=201)


async def revoke(request: Request, services: RestServices) -> Response:
    account = require_account(request, services)
    fields = await form_of(request)
    await check_form(request, fields.get(CSRF_FIELD))
    await dashboard.revoke_key(services, account.id, request.path_params["key_id"])
    if request.headers.get("hx-request"):
        return page(request, "fragments/nothing.html", account)  # htmx removes the row
    return redirect("/keys")
