"""The S3 routing table: method + target (service, bucket or object) + the
sub-resource in the query string (+ a header for CopyObject) name exactly one
operation. Operations without a handler answer 501 NotImplemented in S3 XML.

Modelled on Garage's `api/s3/router.rs`: every operation has a name, so "not
implemented" is an explicit answer, never an accident.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Target(Enum):
    SERVICE = "service"
    BUCKET = "bucket"
    OBJECT = "object"


@dataclass(frozen=True)
class Endpoint:
    operation: str
    method: str
    target: Target
    # The query key that selects this endpoint (e.g. "uploads"); None: no sub-resource.
    subresource: str | None = None
    # A header that must be present (CopyObject and UploadPartCopy: x-amz-copy-source).
    header: str | None = None
    # A second query key that must be present (UploadPart: partNumber with uploadId).
    also: str | None = None


S, B, OBJ = Target.SERVICE, Target.BUCKET, Target.OBJECT

# Order matters within one (method, target): the first match wins, the most specific first.
TABLE: tuple[Endpoint, ...] = (
    Endpoint("ListBuckets", "GET", S),
    # bucket sub-resources
    *(
        Endpoint(f"{verb}Bucket{name}", method, B, sub)
        for sub, name in (
            ("accelerate", "AccelerateConfiguration"),
            ("acl", "Acl"),
            ("analytics", "AnalyticsConfiguration"),
            ("cors", "Cors"),
            ("encryption", "Encryption"),
            ("intelligent-tiering", "IntelligentTieringConfiguration"),
            ("inventory", "InventoryConfiguration"),
            ("lifecycle", "LifecycleConfiguration"),
            ("logging", "Logging"),
            ("metrics", "MetricsConfiguration"),
            ("notification", "NotificationConfiguration"),
            ("object-lock", "ObjectLockConfiguration"),
            ("ownershipControls", "OwnershipControls"),
            ("policy", "Policy"),
            ("policyStatus", "PolicyStatus"),
            ("publicAccessBlock", "PublicAccessBlock"),
            ("replication", "Replication"),
            ("requestPayment", "RequestPayment"),
            ("tagging", "Tagging"),
            ("versioning", "Versioning"),
            ("website", "Website"),
        )
        for verb, method in (("Get", "GET"), ("Put", "PUT"), ("Delete", "DELETE"))
    ),
    Endpoint("GetBucketLocation", "GET", B, "location"),
    Endpoint("ListObjectVersions", "GET", B, "versions"),
    Endpoint("ListMultipartUploads", "GET", B, "uploads"),
    Endpoint("ListObjectsV2", "GET", B, "list-type"),
    Endpoint("ListObjects", "GET", B),
    Endpoint("HeadBucket", "HEAD", B),
    Endpoint("CreateBucket", "PUT", B),
    Endpoint("DeleteBucket", "DELETE", B),
    Endpoint("DeleteObjects", "POST", B, "delete"),
    Endpoint("PostObject", "POST", B),
    # object operations
    Endpoint("UploadPartCopy", "PUT", OBJ, "uploadId", header="x-amz-copy-source", also="partNumber"),
    Endpoint("UploadPart", "PUT", OBJ, "uploadId", also="partNumber"),
    Endpoint("PutObjectTagging", "PUT", OBJ, "tagging"),
    Endpoint("PutObjectAcl", "PUT", OBJ, "acl"),
    Endpoint("PutObjectRetention", "PUT", OBJ, "retention"),
    Endpoint("PutObjectLegalHold", "PUT", OBJ, "legal-hold"),
    Endpoint("CopyObject", "PUT", OBJ, header="x-amz-copy-source"),
    Endpoint("PutObject", "PUT", OBJ),
    Endpoint("ListParts", "GET", OBJ, "uploadId"),
    Endpoint("GetObjectTagging", "GET", OBJ, "tagging"),
    Endpoint("GetObjectAcl", "GET", OBJ, "acl"),
    Endpoint("GetObjectAttributes", "GET", OBJ, "attributes"),
    Endpoint("GetObjectRetention", "GET", OBJ, "retention"),
    Endpoint("GetObjectLegalHold", "GET", OBJ, "legal-hold"),
    Endpoint("GetObjectTorrent", "GET", OBJ, "torrent"),
    Endpoint("GetObject", "GET", OBJ),
    Endpoint("HeadObject", "HEAD", OBJ),
    Endpoint("AbortMultipartUpload", "DELETE", OBJ, "uploadId"),
    Endpoint("DeleteObjectTagging", "DELETE", OBJ, "tagging"),
    Endpoint("DeleteObject", "DELETE", OBJ),
    Endpoint("CreateMultipartUpload", "POST", OBJ, "uploads"),
    Endpoint("CompleteMultipartUpload", "POST", OBJ, "uploadId"),
    Endpoint("RestoreObject", "POST", OBJ, "restore"),
    Endpoint("SelectObjectContent", "POST", OBJ, "select"),
)

_BY_METHOD_TARGET: dict[tuple[str, Target], list[Endpoint]] = {}
for _endpoint in TABLE:
    _BY_METHOD_TARGET.setdefault((_endpoint.method, _endpoint.target), []).append(_endpoint)

# Every query key that names a sub-resource: a request carrying one we do not
# route must not silently fall through to the plain operation.
SUBRESOURCES = frozenset(e.subresource for e in TABLE if e.subresource)


def resolve(method: str, target: Target, query: dict[str, str], headers: dict[str, str]) -> str | None:
    """The operation name, or None when the method does not apply to the target."""
    for endpoint in _BY_METHOD_TARGET.get((method, target), ()):
        if endpoint.subresource is not None and endpoint.subresource not in query:
            continue
        if endpoint.also is not None and endpoint.also not in query:
            continue
        if endpoint.header is not None and endpoint.header not in headers:
            continue
        if endpoint.subresource is None and any(k in SUBRESOURCES for k in query):
            # e.g. GET /bucket?uploads&foo on a plain endpoint: an unknown combination.
            return "Unknown"
        return endpoint.operation
    return None
