"""What the S3 handlers are given: the engine, accounts and settings (passed in,
never module globals), and the access decision applied to a request."""

from __future__ import annotations

from dataclasses import dataclass, field

from core.accounts import Account, Accounts
from core.config import Config
from core.ratelimit import RateLimiter
from s3proxy.access.decide import Caller, allowed
from s3proxy.api.body import IdleWatchdog
from s3proxy.api.context import RequestContext
from s3proxy.api.errors import S3Error
from s3proxy.store.engine import Store
from s3proxy.store.errors import NoSuchBucket, ObjectIsDeleteMarker, StoreError
from s3proxy.store.models import Bucket, ObjectVersion


def caller_of(ctx: RequestContext) -> Caller:
    account = ctx.account
    client = ctx.scope.get("client")
    return Caller(
        account_id=account.id if account is not None else None,
        canonical_id=account.canonical_id if account is not None else None,
        source_ip=client[0] if client else "",
        secure_transport=ctx.scope.get("scheme") == "https",
    )


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

    def bucket_owner(self, bucket: Bucket) -> Account | None:
        return self.accounts.get(bucket.account_id)

    def existing_bucket(self, name: str) -> Bucket:
        found = self.store.bucket(name)
        if found is None:
            raise NoSuchBucket(bucket=name)
        return found

    def authorized_bucket(self, ctx: RequestContext) -> Bucket:
        """The request's bucket, once the dispatcher has decided the caller may act on it
        (s3proxy.api.permissions); object reads decide again with the object's ACL."""
        assert ctx.bucket is not None, "the dispatcher looks up the bucket of every bucket operation"
        return ctx.bucket

    def allows(
        self,
        ctx: RequestContext,
        bucket: Bucket,
        action: str,
        key: str | None = None,
        *,
        object_acl: str | None = None,
        prefix: str | None = None,
    ) -> bool:
        return allowed(caller_of(ctx), bucket, action, key, object_acl=object_acl, prefix=prefix)

    def authorize(
        self, ctx: RequestContext, bucket: Bucket, action: str, key: str | None = None, **kw
    ) -> None:
        if not self.allows(ctx, bucket, action, key, **kw):
            raise S3Error("AccessDenied")

    def hide_absence(self, ctx: RequestContext, bucket: Bucket, key: str) -> None:
        """As S3: a caller who may not list the bucket learns nothing about which keys
        exist, so a missing key (or a delete marker) is AccessDenied for it, not 404."""
        if not self.allows(ctx, bucket, "s3:ListBucket", prefix=None):
            raise S3Error("AccessDenied")

    def readable_version(
        self,
        ctx: RequestContext,
        bucket: Bucket,
        action: str,
        key: str | None = None,
        version_id: str | None = None,
    ) -> ObjectVersion:
        """The version a request reads (its object, its ACL, its attributes) once the
        caller may do `action` on it by the object's ACL or the bucket policy."""
        if key is None:
            key, version_id = ctx.key, ctx.version_id()
        assert key is not None
        try:
            version = self.store.head_object(bucket, key, version_id)
        except (ObjectIsDeleteMarker, StoreError):
            self.hide_absence(ctx, bucket, key)
            raise
        self.authorize(ctx, bucket, action, key, object_acl=version.acl)
        return version

    def readable_copy_source(
        self, ctx: RequestContext, name: str, key: str, version_id: str | None
    ) -> Bucket:
        """The bucket of a copy source the caller may read (CopyObject, UploadPartCopy)."""
        bucket = self.existing_bucket(name)
        action = "s3:GetObjectVersion" if version_id is not None else "s3:GetObject"
        try:
            self.readable_version(ctx, bucket, action, key, version_id)
        except ObjectIsDeleteMarker:
            pass  # the copy itself answers for a delete marker, as it always has
        return bucket
