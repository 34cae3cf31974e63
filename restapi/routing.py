"""One route shape for the dashboard's JSON endpoints: a handler given the request
and the services, whose ApiError becomes the `{"error": {...}}` answer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core.jsonapi import ApiError

if TYPE_CHECKING:
    from restapi.files import RestServices

Handler = Callable[[Request, "RestServices"], Awaitable[Response]]


def json_route(path: str, handler: Handler, services: RestServices, methods: list[str]) -> Route:
    async def run(request: Request) -> Response:
        try:
            return await handler(request, services)
        except ApiError as exc:
            return exc.response()

    return Route(path, run, methods=methods)
