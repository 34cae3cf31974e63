"""Webhooks: the list with each one's state (active, or disabled and why), create (the
secret shown once), edit URL and events, delete; per webhook its delivery log (refreshed
while the page is open), "send test event", redeliver one delivery, re-enable, and the
seed's signature check written for it. The same functions as `/api/webhooks`
(restapi/webhooks.py)."""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from core.accounts import Account
from core.jsonapi import ApiError
from core.webhooks import DELIVERY_HEADER, EVENT_TYPES, SIGNATURE_HEADER
from restapi import webhooks as webhook_api
from restapi.files import RestServices
from webui.render import page, redirect
from webui.routing import form_of, page_route
from webui.session import CSRF_FIELD, check_form, require_account

GET, POST, BOTH = ["GET"], ["POST"], ["GET", "POST"]
# What an action says once it is done (?done=... after the redirect, so a reload does not repeat it).
NOTICES = {
    "saved": "Saved.",
    "test": "Test event queued: it appears in the delivery log below.",
    "redeliver": "Redelivery queued, with the same delivery id.",
    "enabled": "Re-enabled: its pending deliveries go out now.",
}


def _events_from(fields: dict[str, str]) -> list[str]:
    # One checkbox per event type, each its own field (forms keep the first value of a name).
    return [event for event in EVENT_TYPES if fields.get(f"event:{event}")]


def _list_page(request: Request, services: RestServices, account: Account, **extra) -> Response:
    return page(
        request,
        "webhooks.html",
        account,
        section="webhooks",
        webhooks=webhook_api.list_webhooks(services, account.id),
        event_types=EVENT_TYPES,
        checked=extra.pop("checked", ()),
        url=extra.pop("url", ""),
        **extra,
    )


async def webhooks(request: Request, services: RestServices) -> Response:
    account = require_account(request, services)
    if request.method == "GET":
        return _list_page(request, services, account)
    fields = await form_of(request)
    await check_form(request, fields.get(CSRF_FIELD))
    url, events = fields.get("url", "").strip(), _events_from(fields)
    try:
        created = await webhook_api.create_webhook(services, account.id, {"url": url, "events": events})
    except ApiError as exc:
        return _list_page(
            request, services, account, status=exc.status, error=exc.message, url=url, checked=events
        )
    return _list_page(request, services, account, status=201, created=created)


def _snippet_path(url: str) -> str:
    return urlsplit(url).path or "/"


def _detail_page(request: Request, services: RestServices, account: Account, **extra) -> Response:
    webhook_id = request.path_params["webhook_id"]
    hook, log = webhook_api.webhook_with_log(services, account.id, webhook_id)
    return page(
        request,
        "webhooks_detail.html",
        account,
        section="webhooks",
        hook=hook,
        deliveries=log,
        event_types=EVENT_TYPES,
        checked=extra.pop("checked", hook["events"]),
        url=extra.pop("url", hook["url"]),
        notice=NOTICES.get(request.query_params.get("done", "")),
        signature_header=SIGNATURE_HEADER,
        delivery_header=DELIVERY_HEADER,
        handler_path=_snippet_path(hook["url"]),
        **extra,
    )


async def detail(request: Request, services: RestServices) -> Response:
    """The webhook's page; a POST saves its URL and events."""
    account = require_account(request, services)
    if request.method == "GET":
        return _detail_page(request, services, account)
    fields = await form_of(request)
    await check_form(request, fields.get(CSRF_FIELD))
    url, events = fields.get("url", "").strip(), _events_from(fields)
    webhook_id = request.path_params["webhook_id"]
    try:
        await webhook_api.update_webhook(services, account.id, webhook_id, {"url": url, "events": events})
    except ApiError as exc:
        if exc.status == 404:
            raise
        return _detail_page(
            request, services, account, status=exc.status, error=exc.message, url=url, checked=events
        )
    return redirect(f"/webhooks/{webhook_id}?done=saved")


async def log_fragment(request: Request, services: RestServices) -> Response:
    """The delivery log alone: the detail page polls it (htmx) to show deliveries go out."""
    account = require_account(request, services)
    hook, log = webhook_api.webhook_with_log(services, account.id, request.path_params["webhook_id"])
    return page(request, "webhooks_log.html", account, hook=hook, deliveries=log)


async def _posted(request: Request, services: RestServices) -> tuple[Account, dict[str, str], str]:
    account = require_account(request, services)
    fields = await form_of(request)
    await check_form(request, fields.get(CSRF_FIELD))
    return account, fields, request.path_params["webhook_id"]


async def delete(request: Request, services: RestServices) -> Response:
    account, _, webhook_id = await _posted(request, services)
    await webhook_api.delete_webhook(services, account.id, webhook_id)
    return redirect("/webhooks")


async def enable(request: Request, services: RestServices) -> Response:
    account, _, webhook_id = await _posted(request, services)
    await webhook_api.update_webhook(services, account.id, webhook_id, {"active": True})
    return redirect(f"/webhooks/{webhook_id}?done=enabled")


async def test_event(request: Request, services: RestServices) -> Response:
    account, _, webhook_id = await _posted(request, services)
    await webhook_api.send_test_event(services, account.id, webhook_id)
    return redirect(f"/webhooks/{webhook_id}?done=test")


async def redeliver(request: Request, services: RestServices) -> Response:
    account, fields, webhook_id = await _posted(request, services)
    delivery_id = fields.get("delivery", "")
    # Only a delivery of this webhook (the API checks the account; the page also the webhook).
    _, log = webhook_api.webhook_with_log(services, account.id, webhook_id, limit=webhook_api.DELIVERY_LOG)
    if delivery_id not in {d["id"] for d in log}:
        raise ApiError(404, "NotFound", "No such delivery in this webhook's log.")
    await webhook_api.redeliver(services, account.id, delivery_id)
    return redirect(f"/webhooks/{webhook_id}?done=redeliver")


def routes(services: RestServices) -> list[BaseRoute]:
    return [
        page_route("/webhooks", webhooks, services, BOTH),
        page_route("/webhooks/{webhook_id}", detail, services, BOTH),
        page_route("/webhooks/{webhook_id}/log", log_fragment, services, GET),
        page_route("/webhooks/{webhook_id}/delete", delete, services, POST),
        page_route("/webhooks/{webhook_id}/enable", enable, services, POST),
        page_route("/webhooks/{webhook_id}/test", test_event, services, POST),
        page_route("/webhooks/{webhook_id}/redeliver", redeliver, services, POST),
    ]
