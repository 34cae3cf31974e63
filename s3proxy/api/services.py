"""What the S3 handlers are given: the engine, accounts and settings (passed in,
never module globals)."""

from __future__ import annotations

from dataclasses import dataclass, field

from core.accounts import Accounts
from core.config import Config
from core.ratelimit import RateLimiter
from s3proxy.api.body import IdleWatchdog
from s3proxy.api.context import RequestContext
from s3proxy.store.engine import Store
from s3proxy.store.errors import NoSuchBucket
from s3proxy.store.models import Bucket


@dataclass
class Services:
    store: Store
    accounts: Accounts
    config: Config
    # Seconds a client may leave a request body idle before RequestTimeout.
    body_timeout: float = 20.0
    watchdog: IdleWatchdog = field(init=False)
    limiter: RateLimiter = field(default_factory=RateLimiter)

    def __post_init__(self) -> None:
        self.watchdog = IdleWatchdog(self.body_timeout)

    def owned_bucket(self, ctx: RequestContext) -> Bucket:
        assert ctx.bucket_name is not None
        return self.store.bucket_for(ctx.bucket_name, ctx.require_account().id)

    def readable_bucket(self, ctx: RequestContext) -> Bucket:
        """The bucket of an object read: any bucket; unless the caller owns it, the
        handler then requires the object (or the bucket) to be public-read, which
        grants reading to everyone, signed or not (as S3's AllUsers grant)."""
        assert ctx.bucket_name is not None
        found = self.store.bucket(ctx.bucket_name)
        if found is None:
            raise NoSuchBucket(bucket=ctx.bucket_name)
        return found
