"""Accounts and the dashboard API (seed 004, "Obtaining credentials", "Managing
keys"): sign-up, login/logout with a session cookie, the account with its plan and
usage, and access keys (`/api/keys`: list, create once-shown pairs, revoke).

Cookie-authenticated writes must come from our own origin: a browser always sends
`Origin` with a POST or DELETE, so a foreign one is refused (CSRF); clients that are
not browsers (curl, as in the seed) send none and are let through."""

from __future__ import annotations

import asyncio
import re
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from core.accounts import Account, AccountExists, TooManyKeys
from core.acting import DASHBOARD, act_as
from core.doc_keys import MAX_KEYS as MAX_DOC_KEYS
from core.doc_keys import TooManyDocKeys
from core.jsonapi import ApiError, bad_request
from core.ratelimit import retry_after_header
from core.requestbody import read_json_object
from core.secrets import verify_password
from core.sessions import session_id
from restapi import account_removal
from restapi.auth import Caller, authenticate
from restapi.files import RestServices, default_bucket, iso
from restapi.routing import json_route

COOKIE = "session"
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
MIN_PASSWORD = 8


async def json_body(request: Request, limit: int = 64 * 1024) -> dict[str, Any]:
    """The dashboard API's JSON object bodies: 64 KiB at most (core.requestbody)."""
    return await read_json_object(request, limit)


def _string(body: dict[str, Any], name: str, *, required: bool = True, max_length: int = 256) -> str:
    value = body.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise bad_request(f"'{name}' must be a non-empty string.", field=name)
    if len(value) > max_length:
        raise bad_request(f"'{name}' is too long.", field=name)
    return value


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None:
        return True  # not a browser
    host = request.headers.get("host", "")
    return urlsplit(origin).netloc == host


def session_caller(request: Request, services: RestServices, *, write: bool) -> Caller:
    """The caller from the session cookie, else from an API key; counted against the
    plan's dashboard rate (seed 004: 30 requests a minute)."""
    token = request.cookies.get(COOKIE)
    if token:
        account_id = services.sessions.account_of(token)
        account = services.accounts.get(account_id) if account_id else None
        if account is None:
            raise ApiError(401, "Unauthorized", "The session has expired; log in again.")
        if write and not _same_origin(request):
            raise ApiError(403, "Forbidden", "Cross-site request refused.")
        caller = Caller(account, "")
        act_as(DASHBOARD)
    else:
        caller = authenticate(request, services.accounts)
    per_minute = services.config.plan(caller.account.plan).dashboard_per_minute
    wait = services.limiter.acquire(("dashboard", caller.account.id), per_minute / 60, per_minute)
    if wait:
        raise ApiError(
            429,
            "TooManyRequests",
            f"The dashboard API allows {per_minute} requests a minute.",
            headers={"retry-after": retry_after_header(wait)},
        )
    return caller


def set_session_cookie(request: Request, response: Response, token: str) -> None:
    response.set_cookie(
        COOKIE,
        token,
        max_age=14 * 86400,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )


def account_json(services: RestServices, account: Account) -> dict[str, Any]:
    plan = services.config.plan(account.plan)
    usage = services.store.usage(account.id)
    return {
        "id": account.id,
        "email": account.email,
        "displayName": account.display_name,
        "canonicalId": account.canonical_id,
        "defaultBucket": services.accounts.default_bucket(account.id),
        "plan": {"name": account.plan, **{_camel(k): v for k, v in asdict(plan).items()}},
        "usage": {
            "bytesUsed": usage.bytes,
            "objects": usage.objects,
            "buckets": len(usage.buckets),
            "quotaBytes": plan.storage_bytes,
            "percentUsed": round(100 * usage.bytes / plan.storage_bytes, 2) if plan.storage_bytes else None,
        },
    }


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _login_limit(services: RestServices, request: Request, email: str) -> None:
    client = request.client.host if request.client else "unknown"
    for key in (("login-ip", client), ("login-email", email.lower())):
        # Login guesses: [accounts] login_attempts_per_minute (10) per address and per
        # email, a burst of as many.
        per_minute = services.config.accounts.login_attempts_per_minute
        wait = services.limiter.acquire(key, per_minute / 60, per_minute)
        if wait:
            raise ApiError(
                429,
                "TooManyRequests",
                "Too many login attempts; wait before trying again.",
                headers={"retry-after": retry_after_header(wait)},
            )


@dataclass(frozen=True)
class SignedUp:
    account: Account
    access_key: str
    secret_key: str  # shown once
    bucket: str
    session: str


async def sign_up(request: Request, services: RestServices, email: str, password: str) -> SignedUp:
    """Sign-up as the JSON API and the web pages both do it: the account, its first key
    pair, its default bucket and a session. Refusals are ApiErrors naming the field."""
    email = email.strip()
    if not EMAIL.match(email):
        raise bad_request("That is not an email address.", field="email")
    if len(password) < MIN_PASSWORD:
        raise bad_request(f"The password needs at least {MIN_PASSWORD} characters.", field="password")
    _login_limit(services, request, email)
    try:
        created = await services.accounts.create_account(email, password)
    except AccountExists as exc:
        raise ApiError(409, "AccountExists", "An account with this email already exists.") from exc
    caller = Caller(created.account, created.access_key)
    bucket = await default_bucket(services, caller)
    token = await services.sessions.open(created.account.id)
    return SignedUp(created.account, created.access_key, created.secret_key, bucket.name, token)


async def log_in(request: Request, services: RestServices, email: str, password: str) -> tuple[Account, str]:
    """The account and a new session token, or 401 (429 when throttled)."""
    email = email.strip()
    _login_limit(services, request, email)
    stored = services.accounts.password_hash(email)
    # scrypt is slow on purpose: off the event loop.
    ok = stored is not None and await asyncio.get_running_loop().run_in_executor(
        None, verify_password, password, stored
    )
    account = services.accounts.by_email(email) if ok else None
    if account is None:
        raise ApiError(401, "Unauthorized", "Wrong email or password.")
    return account, await services.sessions.open(account.id)


async def signup(request: Request, services: RestServices) -> Response:
    body = await json_body(request)
    done = await sign_up(request, services, _string(body, "email"), _string(body, "password"))
    payload = account_json(services, done.account)
    payload.update(accessKey=done.access_key, secretKey=done.secret_key, defaultBucket=done.bucket)
    response = JSONResponse(payload, status_code=201)
    set_session_cookie(request, response, done.session)
    return response


async def login(request: Request, services: RestServices) -> Response:
    body = await json_body(request)
    account, token = await log_in(request, services, _string(body, "email"), _string(body, "password"))
    response = JSONResponse(account_json(services, account))
    set_session_cookie(request, response, token)
    return response


async def logout(request: Request, services: RestServices) -> Response:
    token = request.cookies.get(COOKIE)
    if token:
        if not _same_origin(request):
            raise ApiError(403, "Forbidden", "Cross-site request refused.")
        await services.sessions.close(token)
    response = JSONResponse({"success": True})
    response.delete_cookie(COOKIE, path="/")
    return response


async def account(request: Request, services: RestServices) -> Response:
    caller = session_caller(request, services, write=request.method == "DELETE")
    if request.method == "DELETE":
        body = await json_body(request)
        await account_removal.delete_account(services, caller.account, _string(body, "confirm"))
        response = JSONResponse({"success": True})
        response.delete_cookie(COOKIE, path="/")
        return response
    return JSONResponse(account_json(services, caller.account))


# -- password and sessions (the settings page calls the same functions) ---------------------


async def change_password(
    request: Request, services: RestServices, account: Account, current: str, new: str
) -> int:
    """Set a new password once the current one is given; every other session of the
    account ends (the request's own session, if it has one, stays). Returns how many
    ended. Wrong guesses are throttled like logins."""
    if len(new) < MIN_PASSWORD:
        raise bad_request(f"The new password needs at least {MIN_PASSWORD} characters.", field="newPassword")
    _login_limit(services, request, account.email)
    stored = services.accounts.password_hash_of(account.id)
    ok = stored is not None and await asyncio.get_running_loop().run_in_executor(
        None, verify_password, current, stored
    )
    if not ok:
        raise ApiError(
            403, "WrongPassword", "The current password is not right.", {"field": "currentPassword"}
        )
    await services.accounts.set_password(account.id, new)
    return await services.sessions.end_others(account.id, request.cookies.get(COOKIE))


def sessions_json(services: RestServices, account_id: str, current_token: str | None) -> list[dict[str, Any]]:
    """The account's live sessions, newest first; `current` marks the caller's own."""
    current = session_id(current_token) if current_token else None
    return [
        {
            "id": s.id,
            "createdAt": iso(s.created_at),
            "expiresAt": iso(s.expires_at),
            "current": s.id == current,
        }
        for s in services.sessions.list(account_id)
    ]


async def end_session(services: RestServices, account_id: str, session: str) -> None:
    if not await services.sessions.end(account_id, session):
        raise ApiError(404, "NotFound", "No such session in your account.")


async def password(request: Request, services: RestServices) -> Response:
    caller = session_caller(request, services, write=True)
    body = await json_body(request)
    ended = await change_password(
        request, services, caller.account, _string(body, "currentPassword"), _string(body, "newPassword")
    )
    return JSONResponse({"success": True, "sessionsEnded": ended})


async def sessions(request: Request, services: RestServices) -> Response:
    caller = session_caller(request, services, write=request.method == "DELETE")
    if request.method == "GET":
        return JSONResponse(
            {"sessions": sessions_json(services, caller.account.id, request.cookies.get(COOKIE))}
        )
    target = request.query_params.get("id")
    if not target:
        raise bad_request("Name the session to end: DELETE /api/sessions?id=ID.")
    await end_session(services, caller.account.id, target)
    return JSONResponse({"success": True})


def list_keys(services: RestServices, account_id: str) -> list[dict[str, Any]]:
    """An account's S3 key pairs and document API keys, never a secret."""
    s3_keys = [
        {"id": k.access_key, "accessKey": k.access_key, "name": k.name, "createdAt": iso(k.created_at)}
        for k in services.accounts.list_keys(account_id)
    ]
    doc_keys = [
        {
            "id": k.id,
            "type": "docgen",
            "name": k.name,
            "hint": f"cl-...{k.hint}",
            "createdAt": iso(k.created_at),
        }
        for k in services.doc_keys.list(account_id)
    ]
    return s3_keys + doc_keys


async def create_key(services: RestServices, account: Account, name: str, key_type: str) -> dict[str, Any]:
    """A new S3 key pair ("s3") or document API key ("docgen"), its secret in the answer
    (shown once: only its hash or its encryption is kept)."""
    name = name.strip()[:100] or "key"
    if key_type == "docgen":
        try:
            doc_info, token = await services.doc_keys.create(account.id, name)
        except TooManyDocKeys as exc:
            raise ApiError(
                403,
                "TooManyKeys",
                f"At most {MAX_DOC_KEYS} document API keys; delete one first.",
                {"limit": MAX_DOC_KEYS},
            ) from exc
        return {"id": doc_info.id, "name": doc_info.name, "apiKey": token, "type": "docgen",
                "createdAt": iso(doc_info.created_at)}  # fmt: skip
    if key_type != "s3":
        raise bad_request('type is "s3" (an access key pair, the default) or "docgen" (a cl- API key).')
    max_keys = services.config.plan(account.plan).max_access_keys
    try:
        info, secret = await services.accounts.create_key(account.id, name, max_keys)
    except TooManyKeys as exc:
        raise ApiError(
            403,
            "TooManyKeys",
            f"Your plan allows {max_keys} access keys; delete one first.",
            {"limit": max_keys},
        ) from exc
    return {
        "id": info.access_key,
        "name": info.name,
        "accessKey": info.access_key,
        "secretKey": secret,
        "createdAt": iso(info.created_at),
    }


async def revoke_key(services: RestServices, account_id: str, key_id: str) -> None:
    if key_id.startswith("dk_"):
        revoked = await services.doc_keys.revoke(account_id, key_id)
    else:
        revoked = await services.accounts.revoke_key(account_id, key_id)
    if not revoked:
        raise ApiError(404, "NotFound", "No such access key in your account.")


async def keys(request: Request, services: RestServices) -> Response:
    write = request.method in ("POST", "DELETE")
    caller = session_caller(request, services, write=write)
    account_id = caller.account.id
    if request.method == "GET":
        return JSONResponse({"keys": list_keys(services, account_id)})
    if request.method == "POST":
        body = await json_body(request)
        name = _string(body, "name", required=False, max_length=100)
        created = await create_key(services, caller.account, name, body.get("type", "s3"))
        return JSONResponse(created, status_code=201)
    key_id = request.query_params.get("id")
    if not key_id:
        raise bad_request("Name the key to delete: DELETE /api/keys?id=ACCESS_KEY.")
    await revoke_key(services, account_id, key_id)
    return JSONResponse({"success": True})


def routes(services: RestServices) -> list[Route]:
    return [
        json_route("/api/auth/signup", signup, services, ["POST"]),
        json_route("/api/auth/login", login, services, ["POST"]),
        json_route("/api/auth/logout", logout, services, ["POST"]),
        json_route("/api/account", account, services, ["GET", "DELETE"]),
        json_route("/api/account/password", password, services, ["POST"]),
        json_route("/api/sessions", sessions, services, ["GET", "DELETE"]),
        json_route("/api/keys", keys, services, ["GET", "POST", "DELETE"]),
    ]
