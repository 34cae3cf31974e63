"""Share links: create one for a file (an expiry of up to 30 days, longer than a
presigned URL's 7, and an optional download limit), copy it, see each link's downloads,
revoke it. The same functions as `/api/shares`."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from core.accounts import Account
from core.jsonapi import ApiError
from core.strictparse import ascii_int
from restapi import shares as share_api
from restapi.auth import Caller
from restapi.files import RestServices
from webui.render import page, redirect
from webui.routing import form_of
from webui.session import CSRF_FIELD, check_form, require_account

EXPIRY_DAYS = (1, 7, 14, 30)


def _shares_page(request: Request, services: RestServices, account: Account, **extra) -> Response:
    return page(
        request,
        "shares.html",
        account,
        section="shares",
        shares=share_api.list_shares(request, services, account.id),
        buckets=[b.name for b in services.store.list_buckets(account.id)],
        expiry_days=EXPIRY_DAYS,
        bucket=extra.pop("bucket", request.query_params.get("bucket", "")),
        key=extra.pop("key", request.query_params.get("key", "")),
        **extra,
    )


async def shares(request: Request, services: RestServices) -> Response:
    account = require_account(request, services)
    if request.method == "GET":
        return _shares_page(request, services, account)
    fields = await form_of(request)
    await check_form(request, fields.get(CSRF_FIELD))
    bucket, key = fields.get("bucket", ""), fields.get("key", "")
    days = ascii_int(fields.get("days", ""), minimum=1, maximum=max(EXPIRY_DAYS))
    limit_text = fields.get("max_downloads", "").strip()
    max_downloads = ascii_int(limit_text, minimum=1) if limit_text else None
    try:
        if days is None:
            raise ApiError(400, "BadRequest", f"Choose an expiry of 1 to {max(EXPIRY_DAYS)} days.")
        if limit_text and max_downloads is None:
            raise ApiError(400, "BadRequest", "The download limit is a whole number from 1, or empty for none.")
        created = await share_api.create_share(
            request, services, Caller(account, ""), bucket, key, days * 86400, max_downloads
        )
    except ApiError as exc:
        return _shares_page(request, services, account, status=exc.status, error=exc.message, bucket=bucket, key=key)
    return _shares_page(request, services, account, status=201, created=created, bucket=bucket, key=key)


async def revoke(request: Request, services: RestServices) -> Response:
    account = require_account(request, services)
    fields = await form_of(request)
    await check_form(request, fields.get(CSRF_FIELD))
    await share_api.revoke_share(services, account.id, request.path_params["share_id"])
    return redirect("/shares")
