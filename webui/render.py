"""Page rendering: one Jinja2 environment (autoescaped), the context every page gets,
and the answers for a page that needs a login or refuses a request."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.templating import Jinja2Templates

from core.accounts import Account
from webui.session import CSRF_FIELD, csrf_token

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
# Cache-busting for vendored files: their folder names carry their versions.
templates.env.globals["htmx_src"] = "/static/vendor/htmx-2.0.11/htmx.min.js"
templates.env.globals["csrf_field"] = CSRF_FIELD


def page(
    request: Request,
    template: str,
    account: Account | None,
    *,
    status: int = 200,
    section: str = "",
    session: str | None = None,
    **context: Any,
) -> Response:
    context.update(account=account, csrf=csrf_token(request, session), section=section)
    response = templates.TemplateResponse(request, template, context, status_code=status)
    # Pages show secrets once and per-account data: never cached, never framed.
    response.headers["cache-control"] = "no-store"
    response.headers["x-frame-options"] = "DENY"
    response.headers["content-security-policy"] = (
        "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
        "style-src 'self'; script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    )
    return response


def redirect(path: str) -> Response:
    # 303: after a POST the browser GETs the target (no re-post on reload).
    return RedirectResponse(path, status_code=303)


def message_page(request: Request, account: Account | None, title: str, text: str, status: int) -> Response:
    return page(request, "message.html", account, status=status, title=title, text=text)


def not_logged_in(request: Request) -> Response:
    if request.headers.get("hx-request"):
        response = HTMLResponse("", status_code=401)
        response.headers["hx-redirect"] = "/login"
        return response
    return redirect(f"/login?next={request.url.path}")
