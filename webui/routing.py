"""Page routes: each handler gets the request and the services; a missing session
becomes a redirect to the login page, a cross-site post a 403 page, and an API
refusal a readable page instead of JSON."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core.jsonapi import ApiError
from core.requestbody import read_limited
from restapi.files import RestServices
from webui.render import message_page, not_logged_in
from webui.session import CrossSiteRequest, LoginRequired, current_account

PageHandler = Callable[[Request, RestServices], Awaitable[Response]]


def page_route(path: str, handler: PageHandler, services: RestServices, methods: list[str] | None = None) -> Route:
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request, services)
        except LoginRequired:
            return not_logged_in(request)
        except CrossSiteRequest:
            return message_page(
                request,
                None,
                "Request refused",
                "This form was not sent from a Folio page (cross-site request). Reload the page and try again.",
                403,
            )
        except ApiError as exc:
            return message_page(request, current_account(request, services), "Something went wrong", exc.message, exc.status)

    return Route(path, endpoint, methods=methods or ["GET"])


async def form_of(request: Request, limit: int = 64 * 1024) -> dict[str, str]:
    """A url-encoded form's fields (first value of each), read within `limit` bytes
    (core.requestbody: 413 past it, nothing more read)."""
    body = await read_limited(request, limit, "Forms")
    try:
        pairs = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=200)
    except ValueError as exc:  # more fields than any of our forms has
        raise ApiError(400, "BadRequest", "The form has too many fields.") from exc
    fields: dict[str, str] = {}
    for name, value in pairs:
        fields.setdefault(name, value)
    return fields
