"""The dashboard's routes on the web listener: pages at `/`, static files at `/static`."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from restapi.files import RestServices
from webui import (
    pages_account,
    pages_buckets,
    pages_documents,
    pages_history,
    pages_keys,
    pages_objects,
    pages_shares,
    pages_usage,
    pages_webhooks,
    uploads,
)
from webui.render import HERE, message_page
from webui.routing import page_route
from webui.session import current_account

GET, POST, BOTH = ["GET"], ["POST"], ["GET", "POST"]
# Paths of the JSON APIs and downloads: their 404 stays JSON whatever the client accepts.
API_PREFIXES = ("/api/", "/v1/", "/v2/", "/s/", "/healthz", "/static/")


def wants_page(request: Request) -> bool:
    """A browser navigating to a page that does not exist (not an API client)."""
    return "text/html" in request.headers.get("accept", "") and not request.url.path.startswith(API_PREFIXES)


def page_not_found(request: Request, services: RestServices) -> Response:
    return message_page(
        request, current_account(request, services), "Page not found", "There is no page at this address.", 404
    )


def routes(services: RestServices) -> list[BaseRoute]:
    return [
        page_route("/", pages_account.home, services),
        page_route("/signup", pages_account.signup, services, BOTH),
        page_route("/login", pages_account.login, services, BOTH),
        page_route("/logout", pages_account.logout, services, POST),
        page_route("/settings", pages_account.settings, services),
        *pages_account.settings_routes(services),
        page_route("/buckets", pages_buckets.buckets, services, BOTH),
        page_route("/buckets/{name}/delete", pages_buckets.delete, services, POST),
        page_route("/buckets/{name}/settings", pages_buckets.settings, services, BOTH),
        page_route("/keys", pages_keys.keys, services, BOTH),
        page_route("/keys/{key_id}/revoke", pages_keys.revoke, services, POST),
        page_route("/usage", pages_usage.usage, services),
        page_route("/shares", pages_shares.shares, services, BOTH),
        page_route("/shares/{share_id}/revoke", pages_shares.revoke, services, POST),
        *uploads.routes(services),
        *pages_objects.routes(services),
        *pages_documents.routes(services),
        *pages_webhooks.routes(services),
        *pages_history.routes(services),
        Mount("/static", app=StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
