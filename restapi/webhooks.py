"""`/api/webhooks` (seed 004, "Webhooks"): create (the secret is shown once), list
(with each webhook's recent deliveries and failure count), PATCH to toggle `active`
or change `events` / `url`, DELETE `?id=`. Session cookie or API key."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from core.jsonapi import ApiError, bad_request, not_found
from core.netguard import BlockedTarget
from core.webhooks import EVENT_TYPES, TooManyWebhooks, Webhook, iso
from restapi.dashboard import json_body, session_caller
from restapi.files import RestServices
from restapi.routing import json_route


def _webhook_json(hook: Webhook) -> dict[str, Any]:
    return {
        "id": hook.id,
        "url": hook.url,
        "events": list(hook.events),
        "active": hook.active,
        "failures": hook.failures,
        "createdAt": iso(hook.created_at),
    }


def _events(body: dict[str, Any], *, required: bool) -> list[str] | None:
    events = body.get("events")
    if events is None and not required:
        return None
    if not isinstance(events, list) or not events or not all(isinstance(e, str) for e in events):
        raise bad_request("'events' must be a non-empty list of event types.", field="events", known=list(EVENT_TYPES))
    unknown = sorted(set(events) - set(EVENT_TYPES))
    if unknown:
        raise bad_request("Unknown event types.", field="events", unknown=unknown, known=list(EVENT_TYPES))
    return list(dict.fromkeys(events))


def _url(body: dict[str, Any], *, required: bool) -> str | None:
    url = body.get("url")
    if url is None and not required:
        return None
    if not isinstance(url, str) or not url or len(url) > 2048:
        raise bad_request("'url' must be a URL.", field="url")
    return url


async def webhooks(request: Request, services: RestServices) -> Response:
    caller = session_caller(request, services, write=request.method != "GET")
    account_id = caller.account.id
    hooks = services.webhooks
    try:
        if request.method == "GET":
            listed = hooks.list(account_id)
            return JSONResponse(
                {"webhooks": [{**_webhook_json(h), "recentDeliveries": recent} for h, recent in listed]}
            )
        if request.method == "POST":
            body = await json_body(request)
            url = _url(body, required=True)
            events = _events(body, required=True)
            assert url is not None and events is not None
            hook, secret = await hooks.create(account_id, url, events)
            return JSONResponse({**_webhook_json(hook), "secret": secret}, status_code=201)
        if request.method == "PATCH":
            body = await json_body(request)
            webhook_id = body.get("id") or request.query_params.get("id")
            if not isinstance(webhook_id, str) or not webhook_id:
                raise bad_request("Name the webhook: 'id' in the body or the query.", field="id")
            active = body.get("active")
            if active is not None and not isinstance(active, bool):
                raise bad_request("'active' must be true or false.", field="active")
            updated = await hooks.update(
                account_id,
                webhook_id,
                active=active,
                events=_events(body, required=False),
                url=_url(body, required=False),
            )
            if updated is None:
                raise not_found("No such webhook in your account.")
            return JSONResponse(_webhook_json(updated))
        webhook_id = request.query_params.get("id")
        if not webhook_id:
            raise bad_request("Name the webhook to delete: DELETE /api/webhooks?id=wh_...")
        if not await hooks.delete(account_id, webhook_id):
            raise not_found("No such webhook in your account.")
        return JSONResponse({"success": True})
    except BlockedTarget as exc:
        raise ApiError(400, "InvalidWebhookURL", f"Webhook URL refused: {exc}.", {"field": "url"}) from exc
    except TooManyWebhooks as exc:
        raise ApiError(403, "TooManyWebhooks", f"At most {exc.args[0]} webhooks per account.") from exc


def routes(services: RestServices) -> list[Route]:
    return [json_route("/api/webhooks", webhooks, services, ["GET", "POST", "PATCH", "DELETE"])]
