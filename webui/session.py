"""Who is looking at a page, and CSRF protection for the forms they post.

The session is the dashboard API's cookie (HttpOnly, SameSite=Lax). Every state-changing
form carries a per-session token, derived from the session token with a keyed hash: a
page from another origin can neither read the cookie nor compute the token, and the
browser's `Origin` header must be ours as well (both checks, as OWASP recommends)."""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlsplit

from starlette.requests import Request

from core.accounts import Account
from core.acting import DASHBOARD, act_as
from restapi.dashboard import COOKIE
from restapi.files import RestServices

CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"


class LoginRequired(Exception):
    """The page needs a session: answered with a redirect to /login."""


class CrossSiteRequest(Exception):
    """A state-changing request that is not from our own pages: answered 403."""


def current_account(request: Request, services: RestServices) -> Account | None:
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    account_id = services.sessions.account_of(token)
    account = services.accounts.get(account_id) if account_id else None
    if account is not None:
        act_as(DASHBOARD)  # what this request writes, the history shows as the dashboard's
    return account


def require_account(request: Request, services: RestServices) -> Account:
    account = current_account(request, services)
    if account is None:
        raise LoginRequired()
    return account


def csrf_token(request: Request, session: str | None = None) -> str:
    """The token of this session's forms ("" before there is a session). `session`: a
    session opened by this very request (sign-up), whose cookie the browser does not
    send yet."""
    token = session or request.cookies.get(COOKIE)
    if not token:
        return ""
    return hmac.new(b"folio-dashboard-csrf", token.encode(), hashlib.sha256).hexdigest()


def same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None:
        # Browsers send Origin with every POST; a missing one is not a browser page of
        # another site (and a request without our token is refused below anyway).
        return True
    return urlsplit(origin).netloc == request.headers.get("host", "")


async def check_form(request: Request, form_token: str | None) -> None:
    """Refuse a state-changing request that does not come from our own page."""
    if not same_origin(request):
        raise CrossSiteRequest()
    if request.cookies.get(COOKIE):
        expected = csrf_token(request)
        given = form_token or request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(expected, given):
            raise CrossSiteRequest()
