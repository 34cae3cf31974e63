"""REST authentication (API keys, core/apikeys.py) and the same per-key rate limits
as S3."""

from __future__ import annotations

from core.apikeys import Caller, authenticate
from core.config import Config
from core.jsonapi import too_many_requests
from core.ratelimit import PLAN_RATE_FIELDS, RateLimiter

__all__ = ["Caller", "authenticate", "rate_limit"]


async def rate_limit(caller: Caller, kind: str, config: Config, limiter: RateLimiter) -> None:
    """The caller's key shares its budget with its S3 requests (same classes), and is
    shaped the same way: over the rate it waits its turn up to the configured bound."""
    rate = getattr(config.plan(caller.account.plan), PLAN_RATE_FIELDS[kind])
    wait = await limiter.admit((caller.access_key, kind), rate, max_wait=config.limits.max_rate_wait_seconds)
    if wait:
        raise too_many_requests(wait)
