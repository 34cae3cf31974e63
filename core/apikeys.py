"""API-key authentication for the web listener's JSON and image services:
`X-API-Key: ACCESS:SECRET` or `Authorization: Bearer ACCESS:SECRET` (seed 004), the
same key pairs as S3, checked in constant time."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from starlette.requests import Request

from core.accounts import Account, Accounts
from core.acting import act_as
from core.jsonapi import ApiError


@dataclass(frozen=True)
class Caller:
    account: Account
    # Empty for a dashboard session (no key involved).
    access_key: str


def credentials(request: Request) -> str | None:
    value = request.headers.get("x-api-key")
    if value is not None:
        return value.strip()
    authorization = request.headers.get("authorization")
    if authorization is not None:
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() == "bearer":
            return token.strip()
    return None


def authenticate(request: Request, accounts: Accounts) -> Caller:
    found = credentials(request)
    if not found:
        raise ApiError(
            401,
            "Unauthorized",
            "Send X-API-Key: ACCESS_KEY:SECRET_KEY or Authorization: Bearer ACCESS_KEY:SECRET_KEY.",
        )
    access_key, sep, secret = found.partition(":")
    if not sep or not access_key or not secret:
        raise ApiError(401, "Unauthorized", "The API key must be ACCESS_KEY:SECRET_KEY.")
    pair = accounts.lookup_key(access_key)
    if pair is None or not hmac.compare_digest(pair[1].encode(), secret.encode()):
        raise ApiError(401, "Unauthorized", "The access key or secret key is wrong, or the key was revoked.")
    act_as(access_key)
    return Caller(pair[0], access_key)
