"""REST authentication: `X-API-Key: ACCESS:SECRET` or `Authorization: Bearer
ACCESS:SECRET` (seed 004), the same key pairs as S3, checked in constant time, and
the same per-key rate limits as S3."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from starlette.requests import Request

from core.accounts import Account, Accounts
from core.config import Config
from core.jsonapi import ApiError
from core.ratelimit import PLAN_RATE_FIELDS, RateLimiter, retry_after_header


@dataclass(frozen=True)
class Caller:
    account: Account
    access_key: str


def _credentials(request: Request) -> str | None:
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
    credentials = _credentials(request)
    if not credentials:
        raise ApiError(
            401,
            "Unauthorized",
            "Send X-API-Key: ACCESS_KEY:SECRET_KEY or Authorization: Bearer ACCESS_KEY:SECRET_KEY.",
        )
    access_key, sep, secret = credentials.partition(":")
    if not sep or not access_key or not secret:
        raise ApiError(401, "Unauthorized", "The API key must be ACCESS_KEY:SECRET_KEY.")
    found = accounts.lookup_key(access_key)
    if found is None or not hmac.compare_digest(found[1].encode(), secret.encode()):
        raise ApiError(401, "Unauthorized", "The access key or secret key is wrong, or the key was revoked.")
    return Caller(found[0], access_key)


def rate_limit(caller: Caller, kind: str, config: Config, limiter: RateLimiter) -> None:
    """The caller's key shares its budget with its S3 requests (same classes)."""
    rate = getattr(config.plan(caller.account.plan), PLAN_RATE_FIELDS[kind])
    wait = limiter.acquire((caller.access_key, kind), rate)
    if wait:
        raise ApiError(
            429,
            "TooManyRequests",
            "Rate limit exceeded. Retry after the duration in the Retry-After header.",
            headers={"retry-after": retry_after_header(wait)},
        )
