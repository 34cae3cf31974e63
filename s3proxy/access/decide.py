"""The one access decision for every S3 request, `/api/img` and anything else that
serves objects to callers who are not the bucket owner.

Decision order (as AWS S3 evaluates a request with ACLs enabled, Object Ownership
"ObjectWriter"):
1. The bucket policy: an explicit Deny that matches refuses (except the bucket owner's
   own Get/Put/DeleteBucketPolicy, so an owner can always repair a policy that locks it
   out, as AWS keeps for the root user). An Allow that matches permits; for an object,
   only if the bucket owner owns it (a bucket policy cannot give away what its owner
   does not own).
2. The bucket owner may do everything to the bucket and delete any object in it.
3. The ACL: the object's own ACL for reading an object or its ACL, the bucket's ACL
   for listing, writing and deleting objects and for the bucket's ACL.
4. Otherwise: denied.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from s3proxy.access import grants
from s3proxy.access.policy import BucketPolicy, RequestFacts, evaluate, parse_policy
from s3proxy.store.models import Bucket

# What an ACL permission covers, by S3 action: on the object's ACL ...
OBJECT_ACL_PERMISSION = {
    "s3:GetObject": grants.READ,
    "s3:GetObjectVersion": grants.READ,
    "s3:GetObjectAttributes": grants.READ,
    "s3:GetObjectVersionAttributes": grants.READ,
    "s3:GetObjectAcl": grants.READ_ACP,
    "s3:GetObjectVersionAcl": grants.READ_ACP,
    "s3:PutObjectAcl": grants.WRITE_ACP,
    "s3:PutObjectVersionAcl": grants.WRITE_ACP,
}
# ... and on the bucket's. Everything else about a bucket is its owner's alone (unless
# the bucket policy allows it).
BUCKET_ACL_PERMISSION = {
    "s3:ListBucket": grants.READ,
    "s3:ListBucketVersions": grants.READ,
    "s3:ListBucketMultipartUploads": grants.READ,
    "s3:PutObject": grants.WRITE,
    "s3:DeleteObject": grants.WRITE,
    "s3:DeleteObjectVersion": grants.WRITE,
    "s3:AbortMultipartUpload": grants.WRITE,
    "s3:ListMultipartUploadParts": grants.WRITE,
    "s3:GetBucketAcl": grants.READ_ACP,
    "s3:PutBucketAcl": grants.WRITE_ACP,
}
_OWNER_KEEPS = frozenset({"s3:GetBucketPolicy", "s3:PutBucketPolicy", "s3:DeleteBucketPolicy"})


@dataclass(frozen=True)
class Caller:
    account_id: str | None  # None: anonymous
    canonical_id: str | None
    source_ip: str
    secure_transport: bool = False


@lru_cache(maxsize=1024)
def _parsed(bucket_name: str, text: str) -> BucketPolicy:
    # Policies are validated when stored; a bounded cache keeps evaluation from parsing
    # the JSON on every request.
    return parse_policy(text, bucket_name)


def bucket_policy(bucket: Bucket) -> BucketPolicy | None:
    text = bucket.settings.policy
    return _parsed(bucket.name, text) if text else None


def resource_arn(bucket: Bucket, key: str | None) -> str:
    return f"arn:aws:s3:::{bucket.name}" if key is None else f"arn:aws:s3:::{bucket.name}/{key}"


def allowed(
    caller: Caller,
    bucket: Bucket,
    action: str,
    key: str | None = None,
    *,
    object_acl: str | None = None,
    prefix: str | None = None,
) -> bool:
    """Whether `caller` may do `action` ("s3:GetObject", ...) on the bucket, or on `key`
    in it. For the object actions of OBJECT_ACL_PERMISSION, `object_acl` is the stored
    ACL of the version concerned (None: private, owned by the bucket owner)."""
    is_owner = caller.account_id == bucket.account_id
    object_action = action in OBJECT_ACL_PERMISSION
    policy = bucket_policy(bucket)
    if policy is not None:
        facts = RequestFacts(
            account_id=caller.account_id,
            canonical_id=caller.canonical_id,
            action=action,
            resource=resource_arn(bucket, key),
            source_ip=caller.source_ip,
            secure_transport=caller.secure_transport,
            prefix=prefix,
        )
        verdict = evaluate(policy, facts)
        if verdict == "Deny":
            return is_owner and action in _OWNER_KEEPS
        if verdict == "Allow" and (
            not object_action or grants.owner_of(object_acl, bucket.account_id) == bucket.account_id
        ):
            return True
    if object_action:
        if object_acl is None:
            return is_owner  # the common case: private, the bucket owner's
        acl = grants.from_stored(object_acl, bucket.account_id)
        return acl.permits(caller.account_id, OBJECT_ACL_PERMISSION[action])
    if is_owner:
        return True
    permission = BUCKET_ACL_PERMISSION.get(action)
    if permission is None:
        return False
    return bucket_acl(bucket).permits(caller.account_id, permission)


def bucket_acl(bucket: Bucket) -> grants.Acl:
    return grants.from_stored(bucket.settings.acl, bucket.account_id)
