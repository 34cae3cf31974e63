"""Which S3 action (the policy language's name) each operation needs, decided by the
dispatcher before the handler runs, so that a refused upload is answered before its
body (`Expect: 100-continue` gets its 403 first).

Operations on an object's own ACL-governed data (reading it, its ACL, its attributes)
are decided by their handlers, which know the object's ACL; DeleteObjects decides per
key; PostObject authenticates with its form."""

from __future__ import annotations

from s3proxy.api.context import RequestContext

# Decided in the handler, not by the dispatcher.
HANDLER_DECIDES = frozenset(
    {
        "GetObject",
        "HeadObject",
        "GetObjectAttributes",
        "GetObjectAcl",
        "PutObjectAcl",
        "DeleteObjects",
        "PostObject",
    }
)
# Operations of an account, not of a bucket: they need a signature, nothing more.
ACCOUNT_OPERATIONS = frozenset({"ListBuckets", "CreateBucket"})

_ACTIONS = {
    "HeadBucket": "s3:ListBucket",
    "ListObjects": "s3:ListBucket",
    "ListObjectsV2": "s3:ListBucket",
    "ListObjectVersions": "s3:ListBucketVersions",
    "ListMultipartUploads": "s3:ListBucketMultipartUploads",
    "GetBucketCors": "s3:GetBucketCORS",
    "PutBucketCors": "s3:PutBucketCORS",
    "DeleteBucketCors": "s3:PutBucketCORS",
    "PutObject": "s3:PutObject",
    "CopyObject": "s3:PutObject",
    "CreateMultipartUpload": "s3:PutObject",
    "UploadPart": "s3:PutObject",
    "UploadPartCopy": "s3:PutObject",
    "CompleteMultipartUpload": "s3:PutObject",
    "ListParts": "s3:ListMultipartUploadParts",
    "AbortMultipartUpload": "s3:AbortMultipartUpload",
}


def required_action(operation: str, ctx: RequestContext) -> str:
    """The S3 action of a bucket or object operation the dispatcher decides."""
    if operation == "DeleteObject":
        return "s3:DeleteObjectVersion" if "versionId" in ctx.query else "s3:DeleteObject"
    # Most operations are named as their action (GetBucketAcl, PutBucketPolicy, ...).
    return _ACTIONS.get(operation, f"s3:{operation}")


def list_prefix(operation: str, ctx: RequestContext) -> str | None:
    """The s3:prefix condition key of a listing (None when the request has none)."""
    if operation in ("ListObjects", "ListObjectsV2", "ListObjectVersions"):
        return ctx.query.get("prefix")
    return None
