"""Sign-up, login, logout and the account's settings page."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from core.jsonapi import ApiError
from restapi import dashboard
from restapi.files import RestServices
from webui.render import page, redirect
from webui.routing import form_of
from webui.session import CSRF_FIELD, check_form, current_account, require_account


def s3_endpoint(request: Request, services: RestServices) -> str:
    """The S3 endpoint to show: this page's host name on the S3 listener's port."""
    port = services.config.server.s3_listen.rsplit(":", 1)[-1]
    return f"{request.url.scheme}://{request.url.hostname}:{port}"


def _next_path(request: Request) -> str:
    # Only a local path: never an open redirect to another site.
    target = request.query_params.get("next", "/buckets")
    return target if target.startswith("/") and not target.startswith("//") else "/buckets"


async def signup(request: Request, services: RestServices) -> Response:
    if request.method == "GET":
        return page(request, "signup.html", current_account(request, services), section="signup")
    fields = await form_of(request)
    await check_form(request, fields.get(CSRF_FIELD))
    email = fields.get("email", "")
    try:
        done = await dashboard.sign_up(request, services, email, fields.get("password", ""))
    except ApiError as exc:
        return page(request, "signup.html", None, status=exc.status, error=exc.message, email=email, section="signup")
    # The secret is in this answer only: it is kept encrypted and never shown again.
    response = page(
        request,
        "welcome.html",
        done.account,
        access_key=done.access_key,
        secret_key=done.secret_key,
        bucket=done.bucket,
        s3_endpoint=s3_endpoint(request, services),
        session=done.session,
    )
    dashboard.set_session_cookie(request, response, done.session)
    return response


async def login(request: Request, services: RestServices) -> Response:
    if request.method == "GET":
        if current_account(request, services) is not None:
            return redirect(_next_path(request))
        return page(request, "login.html", None, section="login")
    fields = await form_of(request)
    await check_form(request, fields.get(CSRF_FIELD))
    email = fields.get("email", "")
    try:
        _account, token = await dashboard.log_in(request, services, email, fields.get("password", ""))
    except ApiError as exc:
        return page(request, "login.html", None, status=exc.status, error=exc.message, email=email, section="login")
    response = redirect(_next_path(request))
    dashboard.set_session_cookie(request, response, token)
    return response


async def logout(request: Request, services: RestServices) -> Response:
    fields = await form_of(request)
    await check_form(request, fields.get(CSRF_FIELD))
    token = request.cookies.get(dashboard.COOKIE)
    if token:
        await services.sessions.close(token)
    response = redirect("/login")
    response.delete_cookie(dashboard.COOKIE, path="/")
    return response


async def settings(request: Request, services: RestServices) -> Response:
    account = require_account(request, services)
    summary = dashboard.account_json(services, account)
    return page(request, "settings.html", account, section="settings", summary=summary)


async def home(request: Request, services: RestServices) -> Response:
    return redirect("/buckets" if current_account(request, services) else "/login")
