"""Usage: storage against the plan's quota (a warning from 80%), per bucket, and the
plan's limits and rates."""

from __future__ import annotations

from dataclasses import asdict

from starlette.requests import Request
from starlette.responses import Response

from restapi import buckets as bucket_api
from restapi import dashboard
from restapi.files import RestServices
from webui.render import page
from webui.session import require_account

WARN_PERCENT = 80


async def usage(request: Request, services: RestServices) -> Response:
    account = require_account(request, services)
    summary = dashboard.account_json(services, account)
    percent = summary["usage"]["percentUsed"]
    versions_bytes, versions = await services.store.noncurrent_usage(account.id)
    used = summary["usage"]["bytesUsed"]
    return page(
        request,
        "usage.html",
        account,
        section="usage",
        summary=summary,
        buckets=bucket_api.list_buckets(services, account.id),
        plan=asdict(services.config.plan(account.plan)),
        warn=percent is not None and percent >= WARN_PERCENT,
        versions=versions,
        versions_bytes=versions_bytes,
        versions_percent=round(100 * versions_bytes / used, 1) if used else 0.0,
    )
