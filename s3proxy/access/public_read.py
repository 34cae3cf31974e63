"""The dashboard's "public read" switch, which is the usual website bucket policy
(anyone may s3:GetObject on bucket/*), as `mc anonymous set download` is on MinIO:
set and cleared by the switch, reported from the policy, so a policy written over S3
and the switch never disagree."""

from __future__ import annotations

from s3proxy.access.decide import bucket_policy
from s3proxy.access.policy import grants_public_read, with_public_read
from s3proxy.store.engine import Store
from s3proxy.store.models import Bucket


def is_public_read(bucket: Bucket) -> bool:
    return grants_public_read(bucket_policy(bucket), bucket.name)


def new_bucket_policy(bucket_name: str, public_read: bool) -> str | None:
    """The policy of a bucket created with the switch on (None: no policy)."""
    return with_public_read(None, bucket_name, True) if public_read else None


async def set_public_read(store: Store, bucket: Bucket, public_read: bool) -> Bucket:
    """Add or remove the public-read statement, keeping every other statement."""
    if public_read == is_public_read(bucket):
        return bucket
    policy = with_public_read(bucket_policy(bucket), bucket.name, public_read)
    return await store.set_bucket_policy(bucket, policy)
