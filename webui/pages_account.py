"""Sign-up, login, logout and the account's settings page: the password, the sessions
(listed, ended) and deleting the account, through the same functions as the JSON API
(restapi.dashboard, restapi.account_removal)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core.accounts import Account
from core.jsonapi import ApiError
from restapi import account_removal, dashboard
from restapi.files import RestServices
from webui.render import message_page, page, redirect
from webui.routing import form_of, page_route
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
        return page(
            request, "signup.html", None, status=exc.status, error=exc.message, email=email, section="signup"
        )
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
        return page(
            request, "login.html", None, status=exc.status, error=exc.message, email=email, section="login"
        )
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
    return _settings_page(request, services, require_account(request, services))


def _settings_page(
    request: Request, services: RestServices, account: Account, *, status: int = 200, **context: Any
) -> Response:
    return page(
        request,
        "settings.html",
        account,
        status=status,
        section="settings",
        summary=dashboard.account_json(services, account),
        sessions=dashboard.sessions_json(services, account.id, request.cookies.get(dashboard.COOKIE)),
        admin_refusal=account_removal.ADMIN_REFUSAL,
        **context,
    )


async def _checked_form(request: Request, services: RestServices) -> tuple[Account, dict[str, str]]:
    account = require_account(request, services)
    fields = await form_of(request)
    await check_form(request, fields.get(CSRF_FIELD))
    return account, fields


async def change_password(request: Request, services: RestServices) -> Response:
    account, fields = await _checked_form(request, services)
    new = fields.get("new_password", "")
    if new != fields.get("repeat_password", ""):
        return _settings_page(
            request, services, account, status=400, password_error="The two new passwords are not the same."
        )
    try:
        ended = await dashboard.change_password(
            request, services, account, fields.get("current_password", ""), new
        )
    except ApiError as exc:
        return _settings_page(request, services, account, status=exc.status, password_error=exc.message)
    others = (
        "no other session was open" if not ended else f"{ended} other session{'s' if ended > 1 else ''} ended"
    )
    return _settings_page(request, services, account, password_notice=f"Your password was changed; {others}.")


async def end_session(request: Request, services: RestServices) -> Response:
    account, _fields = await _checked_form(request, services)
    await dashboard.end_session(services, account.id, request.path_params["session_id"])
    return redirect("/settings#sessions")


async def end_other_sessions(request: Request, services: RestServices) -> Response:
    account, _fields = await _checked_form(request, services)
    await services.sessions.end_others(account.id, request.cookies.get(dashboard.COOKIE))
    return redirect("/settings#sessions")


async def delete_account(request: Request, services: RestServices) -> Response:
    account, fields = await _checked_form(request, services)
    try:
        await account_removal.delete_account(services, account, fields.get("confirm", ""))
    except ApiError as exc:
        return _settings_page(request, services, account, status=exc.status, delete_error=exc.message)
    response = message_page(
        request,
        None,
        "Account deleted",
        f"The account {account.email} and everything in it were deleted.",
        200,
    )
    response.delete_cookie(dashboard.COOKIE, path="/")
    return response


def settings_routes(services: RestServices) -> list[Route]:
    """The settings page's forms (the page itself is GET /settings)."""
    return [
        page_route("/settings/password", change_password, services, ["POST"]),
        page_route("/settings/sessions/others/end", end_other_sessions, services, ["POST"]),
        page_route("/settings/sessions/{session_id}/end", end_session, services, ["POST"]),
        page_route("/settings/delete", delete_account, services, ["POST"]),
    ]


async def home(request: Request, services: RestServices) -> Response:
    return redirect("/buckets" if current_account(request, services) else "/login")
