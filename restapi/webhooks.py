"""`/api/webhooks` (seed 004, "Webhooks"): create (the secret is shown once), list
(with each webhook's recent deliveries and failure count), PATCH to toggle `active`
or change `events` / `url`, DELETE `?id=`; and for the dashboard's webhook pages:
a webhook's delivery log, a test event, and redelivering one delivery. Session cookie
or API key. The dashboard's pages (webui/pages_webhooks.py) call the same functions."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from core.jsonapi import ApiError, bad_request, not_found
from core.netguard import BlockedTarget
from core.webhooks import EVENT_TYPES, TooManyWebhooks, Webhook, WebhookDisabled, iso
from restapi.dashboard import json_body, session_caller
from restapi.files import RestServices
from restapi.routing import json_route

DELIVERY_LOG = 50


def webhook_json(hook: Webhook) -> dict[str, Any]:
    return {
        "id": hook.id,
        "url": hook.url,
        "events": list(hook.events),
        "active": hook.active,
        "failures": hook.failures,
        "createdAt": iso(hook.created_at),
        # Why it is disabled: the consecutive failure that disabled it (null: by hand) and
        # the error of the latest failed attempt.
        "disabledAt": iso(hook.disabled_at) if hook.disabled_at else None,
        "disabledAfterFailures": hook.disabled_after,
        "lastError": hook.last_error,
    }


def events_of(body: dict[str, Any], *, required: bool) -> list[str] | None:
    events = body.get("events")
    if events is None and not required:
        return None
    if not isinstance(events, list) or not events or not all(isinstance(e, str) for e in events):
        raise bad_request(
            "'events' must be a non-empty list of event types.", field="events", known=list(EVENT_TYPES)
        )
    unknown = sorted(set(events) - set(EVENT_TYPES))
    if unknown:
        raise bad_request("Unknown event types.", field="events", unknown=unknown, known=list(EVENT_TYPES))
    return list(dict.fromkeys(events))


def url_of(body: dict[str, Any], *, required: bool) -> str | None:
    url = body.get("url")
    if url is None and not required:
        return None
    if not isinstance(url, str) or not url or len(url) > 2048:
        raise bad_request("'url' must be a URL.", field="url")
    return url


# The names the fuzz layer (tests/fuzz/test_web_parsers_props.py) calls.
_events, _url = events_of, url_of


@contextmanager
def _refusals() -> Iterator[None]:
    """The model's refusals as API errors."""
    try:
        yield
    except BlockedTarget as exc:
        raise ApiError(400, "InvalidWebhookURL", f"Webhook URL refused: {exc}.", {"field": "url"}) from exc
    except TooManyWebhooks as exc:
        raise ApiError(403, "TooManyWebhooks", f"At most {exc.args[0]} webhooks per account.") from exc
    except WebhookDisabled as exc:
        raise ApiError(
            409, "WebhookDisabled", "The webhook is disabled: re-enable it first (PATCH active: true)."
        ) from exc


def list_webhooks(services: RestServices, account_id: str) -> list[dict[str, Any]]:
    return [
        {**webhook_json(h), "recentDeliveries": recent} for h, recent in services.webhooks.list(account_id)
    ]


def webhook_with_log(
    services: RestServices, account_id: str, webhook_id: str, limit: int = DELIVERY_LOG
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    hook = services.webhooks.get(account_id, webhook_id)
    log = services.webhooks.deliveries(account_id, webhook_id, limit)
    if hook is None or log is None:
        raise not_found("No such webhook in your account.")
    return webhook_json(hook), log


async def create_webhook(services: RestServices, account_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """The new webhook with its `secret` (shown this once)."""
    url = url_of(body, required=True)
    events = events_of(body, required=True)
    assert url is not None and events is not None
    with _refusals():
        hook, secret = await services.webhooks.create(account_id, url, events)
    return {**webhook_json(hook), "secret": secret}


async def update_webhook(
    services: RestServices, account_id: str, webhook_id: str, body: dict[str, Any]
) -> dict[str, Any]:
    active = body.get("active")
    if active is not None and not isinstance(active, bool):
        raise bad_request("'active' must be true or false.", field="active")
    events, url = events_of(body, required=False), url_of(body, required=False)
    with _refusals():
        updated = await services.webhooks.update(
            account_id, webhook_id, active=active, events=events, url=url
        )
    if updated is None:
        raise not_found("No such webhook in your account.")
    return webhook_json(updated)


async def delete_webhook(services: RestServices, account_id: str, webhook_id: str) -> None:
    if not await services.webhooks.delete(account_id, webhook_id):
        raise not_found("No such webhook in your account.")


async def send_test_event(services: RestServices, account_id: str, webhook_id: str) -> dict[str, Any]:
    with _refusals():
        delivery_id = await services.webhooks.send_test(account_id, webhook_id)
    if delivery_id is None:
        raise not_found("No such webhook in your account.")
    return {"deliveryId": delivery_id, "status": "pending"}


async def redeliver(services: RestServices, account_id: str, delivery_id: str) -> dict[str, Any]:
    with _refusals():
        found = await services.webhooks.redeliver(account_id, delivery_id)
    if not found:
        raise not_found("No such delivery of your webhooks.")
    return {"deliveryId": delivery_id, "status": "pending"}


def _named(body: dict[str, Any], request: Request, name: str) -> str:
    value = body.get(name) or request.query_params.get(name)
    if not isinstance(value, str) or not value:
        raise bad_request(f"Name it: '{name}' in the body or the query.", field=name)
    return value


async def webhooks(request: Request, services: RestServices) -> Response:
    caller = session_caller(request, services, write=request.method != "GET")
    account_id = caller.account.id
    if request.method == "GET":
        return JSONResponse({"webhooks": list_webhooks(services, account_id)})
    if request.method == "POST":
        created = await create_webhook(services, account_id, await json_body(request))
        return JSONResponse(created, status_code=201)
    if request.method == "PATCH":
        body = await json_body(request)
        return JSONResponse(await update_webhook(services, account_id, _named(body, request, "id"), body))
    webhook_id = request.query_params.get("id")
    if not webhook_id:
        raise bad_request("Name the webhook to delete: DELETE /api/webhooks?id=wh_...")
    await delete_webhook(services, account_id, webhook_id)
    return JSONResponse({"success": True})


async def deliveries(request: Request, services: RestServices) -> Response:
    caller = session_caller(request, services, write=False)
    limit_text = request.query_params.get("limit", str(DELIVERY_LOG))
    if not limit_text.isdigit() or not 1 <= int(limit_text) <= 500:
        raise bad_request("'limit' must be 1 to 500.", field="limit")
    hook, log = webhook_with_log(services, caller.account.id, _named({}, request, "id"), int(limit_text))
    return JSONResponse({"webhook": hook, "deliveries": log})


async def test_event(request: Request, services: RestServices) -> Response:
    caller = session_caller(request, services, write=True)
    body = await json_body(request)
    sent = await send_test_event(services, caller.account.id, _named(body, request, "id"))
    return JSONResponse(sent, status_code=202)


async def redelivery(request: Request, services: RestServices) -> Response:
    caller = session_caller(request, services, write=True)
    body = await json_body(request)
    sent = await redeliver(services, caller.account.id, _named(body, request, "deliveryId"))
    return JSONResponse(sent, status_code=202)


def routes(services: RestServices) -> list[Route]:
    return [
        json_route("/api/webhooks", webhooks, services, ["GET", "POST", "PATCH", "DELETE"]),
        json_route("/api/webhooks/deliveries", deliveries, services, ["GET"]),
        json_route("/api/webhooks/test", test_event, services, ["POST"]),
        json_route("/api/webhooks/redeliver", redelivery, services, ["POST"]),
    ]
