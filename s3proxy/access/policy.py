"""S3 bucket policies: the JSON document PutBucketPolicy stores, checked as AWS S3 checks
it, compiled once, and evaluated against the facts of one request.

Pure functions: no store, no HTTP. `parse_policy` turns the text into a `BucketPolicy` or
raises `MalformedPolicy` with AWS's wording; `evaluate` answers "Deny", "Allow" or None
(the policy says nothing) for a `RequestFacts`; `is_public` is GetBucketPolicyStatus's
IsPublic; `with_public_read` / `grants_public_read` are the dashboard's "public read".

Folio's principals are accounts: an account is named by its id (32 hex digits), by
`arn:aws:iam::<id>:root`, or by its canonical user id (64 hex digits); "*" is everyone,
anonymous callers included. Folio has no IAM users, roles or federation, so a policy
naming one is refused as AWS refuses a principal that does not exist ("Invalid principal
in policy"). Service principals are accepted (real policies carry them, e.g. for log
delivery) and match no Folio caller.

Wildcards (`*`, `?`) in actions, resources and StringLike values never go through a
backtracking regex: a pattern is split at its stars into fixed-length segments, and a
text is matched by anchoring the first and last segments and finding each middle one at
its leftmost place (`str.find`, or a regex without quantifiers for segments holding `?`).
Leftmost placement is optimal for star-separated fixed-length segments, so the answer is
exact and the work is linear in the text per segment, whatever the pattern.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Literal

# "Bucket policies are limited to 20 KB in size" (S3 User Guide, "Bucket policies and user
# policies"), counted on the document without the white space between tokens: S3 answers
# "Normalized policy document exceeds the maximum allowed size of 20480 bytes".
MAX_POLICY_BYTES = 20 * 1024
# The most a PutBucketPolicy body may carry before it is read as JSON at all: the
# normalized limit plus generous room for indentation. Callers can bound the body by it.
MAX_POLICY_BODY_BYTES = 4 * MAX_POLICY_BYTES
# Real policies nest seven levels deep (document > Statement > statement > Condition >
# operator > key > values); a bound far above that keeps json's recursion shallow.
_MAX_DEPTH = 32

VERSIONS = ("2012-10-17", "2008-10-17")
ARN_PREFIX = "arn:aws:s3:::"
PUBLIC_READ_SID = "FolioPublicRead"

Effect = Literal["Allow", "Deny"]


class MalformedPolicy(Exception):
    """A policy PutBucketPolicy refuses: `400 MalformedPolicy` with `message` as AWS words it."""

    code = "MalformedPolicy"
    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class PolicyTooLarge(MalformedPolicy):
    """A policy over 20 KB normalized. AWS answers it with the same `MalformedPolicy` code (the
    "PolicyTooLarge" code some S3 clones use is not one of AWS's), so `code` is unchanged; the
    subclass only lets a caller tell the case apart."""

    def __init__(self) -> None:
        super().__init__(
            f"Normalized policy document exceeds the maximum allowed size of {MAX_POLICY_BYTES} bytes"
        )


# The messages AWS S3 answers PutBucketPolicy with (as recorded by S3 clones that test
# against AWS: versitygw, Scality, s3-tests).
_NOT_JSON = "Policies must be valid JSON and the first byte must be '{'"
_INVALID_JSON = "This policy contains invalid Json"
_SYNTAX = "Invalid policy syntax."
_VERSION = "The policy must contain a valid version string"
_NO_STATEMENT = "Missing required field Statement"
_EMPTY_STATEMENT = "Could not parse the policy: Statement is empty!"
_PRINCIPAL = "Invalid principal in policy"
_ACTION = "Policy has invalid action"
_RESOURCE = "Policy has invalid resource"
_NOT_APPLICABLE = "Action does not apply to any resource(s) in statement"
_CONDITION_KEY = "Policy has an invalid condition key"
_CONDITION_NOT_APPLICABLE = "Conditions do not apply to combination of actions and resources in statement"
_IP = "Invalid IP address in Conditions"


def _missing(field: str) -> MalformedPolicy:
    return MalformedPolicy(f"Missing required field {field}")


# --- the S3 actions ------------------------------------------------------------------


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


# Every action of the Service Authorization Reference's "Actions defined by Amazon S3"
# (service prefix s3), by the resource type it acts on in a bucket policy: an object ARN,
# a bucket ARN, or neither (access points, jobs, Storage Lens, account-wide actions).
_OBJECT_ACTIONS = _words(
    "AbortMultipartUpload BypassGovernanceRetention DeleteObject DeleteObjectAnnotation "
    "DeleteObjectTagging DeleteObjectVersion DeleteObjectVersionAnnotation DeleteObjectVersionTagging "
    "GetObject GetObjectAcl GetObjectAnnotation GetObjectAttributes GetObjectLegalHold GetObjectRetention "
    "GetObjectTagging GetObjectTorrent GetObjectVersion GetObjectVersionAcl GetObjectVersionAnnotation "
    "GetObjectVersionAnnotationForReplication GetObjectVersionAttributes GetObjectVersionForReplication "
    "GetObjectVersionTagging GetObjectVersionTorrent ListMultipartUploadParts ListObjectAnnotations "
    "ListObjectVersionAnnotations ObjectOwnerOverrideToBucketOwner PutObject PutObjectAcl "
    "PutObjectAnnotation PutObjectLegalHold PutObjectRetention PutObjectTagging PutObjectVersionAcl "
    "PutObjectVersionAnnotation PutObjectVersionTagging ReplicateDelete ReplicateObject "
    "ReplicateObjectAnnotation ReplicateTags RestoreObject UpdateObjectEncryption"
)
_BUCKET_ACTIONS = _words(
    "AllowVendedLogDeliveryForResource CreateBucket CreateBucketMetadataTableConfiguration DeleteBucket "
    "DeleteBucketMetadataTableConfiguration DeleteBucketPolicy DeleteBucketWebsite "
    "GetAccelerateConfiguration GetAnalyticsConfiguration GetBucketAbac GetBucketAcl GetBucketCORS "
    "GetBucketLocation GetBucketLogging GetBucketMetadataTableConfiguration GetBucketNotification "
    "GetBucketObjectLockConfiguration GetBucketOwnershipControls GetBucketPolicy GetBucketPolicyStatus "
    "GetBucketPublicAccessBlock GetBucketRequestPayment GetBucketTagging GetBucketVersioning "
    "GetBucketWebsite GetEncryptionConfiguration GetIntelligentTieringConfiguration "
    "GetInventoryConfiguration GetLifecycleConfiguration GetMetricsConfiguration "
    "GetReplicationConfiguration ListBucket ListBucketMultipartUploads ListBucketVersions "
    "PutAccelerateConfiguration PutAnalyticsConfiguration PutBucketAbac PutBucketAcl PutBucketCORS "
    "PutBucketLogging PutBucketNotification PutBucketObjectLockConfiguration PutBucketOwnershipControls "
    "PutBucketPolicy PutBucketPublicAccessBlock PutBucketRequestPayment PutBucketTagging "
    "PutBucketVersioning PutBucketWebsite PutEncryptionConfiguration PutIntelligentTieringConfiguration "
    "PutInventoryConfiguration PutLifecycleConfiguration PutMetricsConfiguration "
    "PutReplicationConfiguration UpdateBucketMetadataAnnotationTableConfiguration "
    "UpdateBucketMetadataInventoryTableConfiguration UpdateBucketMetadataJournalTableConfiguration "
    # The tagging trio also acts on buckets since bucket ABAC; counted here so a policy
    # naming them on a bucket is not refused.
    "ListTagsForResource TagResource UntagResource"
)
_OTHER_ACTIONS = _words(
    "AssociateAccessGrantsIdentityCenter CreateAccessGrant CreateAccessGrantsInstance "
    "CreateAccessGrantsLocation CreateAccessPoint CreateAccessPointForObjectLambda CreateJob "
    "CreateMultiRegionAccessPoint CreateStorageLensGroup DeleteAccessGrant DeleteAccessGrantsInstance "
    "DeleteAccessGrantsInstanceResourcePolicy DeleteAccessGrantsLocation DeleteAccessPoint "
    "DeleteAccessPointForObjectLambda DeleteAccessPointPolicy DeleteAccessPointPolicyForObjectLambda "
    "DeleteJobTagging DeleteMultiRegionAccessPoint DeleteStorageLensConfiguration "
    "DeleteStorageLensConfigurationTagging DeleteStorageLensGroup DescribeJob "
    "DescribeMultiRegionAccessPointOperation DissociateAccessGrantsIdentityCenter GetAccessGrant "
    "GetAccessGrantsInstance GetAccessGrantsInstanceForPrefix GetAccessGrantsInstanceResourcePolicy "
    "GetAccessGrantsLocation GetAccessPoint GetAccessPointConfigurationForObjectLambda "
    "GetAccessPointForObjectLambda GetAccessPointPolicy GetAccessPointPolicyForObjectLambda "
    "GetAccessPointPolicyStatus GetAccessPointPolicyStatusForObjectLambda GetAccountPublicAccessBlock "
    "GetDataAccess GetJobTagging GetMultiRegionAccessPoint GetMultiRegionAccessPointPolicy "
    "GetMultiRegionAccessPointPolicyStatus GetMultiRegionAccessPointRoutes GetStorageLensConfiguration "
    "GetStorageLensConfigurationTagging GetStorageLensDashboard GetStorageLensGroup ListAccessGrants "
    "ListAccessGrantsInstances ListAccessGrantsLocations ListAccessPoints ListAccessPointsForObjectLambda "
    "ListAllMyBuckets ListCallerAccessGrants ListJobs ListMultiRegionAccessPoints "
    "ListStorageLensConfigurations ListStorageLensGroups PutAccessGrantsInstanceResourcePolicy "
    "PutAccessPointConfigurationForObjectLambda PutAccessPointPolicy PutAccessPointPolicyForObjectLambda "
    "PutAccessPointPublicAccessBlock PutAccountPublicAccessBlock PutJobTagging "
    "PutMultiRegionAccessPointPolicy PutStorageLensConfiguration PutStorageLensConfigurationTagging "
    "SubmitMultiRegionAccessPointRoutes UpdateAccessGrantsLocation UpdateJobPriority UpdateJobStatus "
    "UpdateStorageLensGroup"
)

S3_ACTIONS: frozenset[str] = frozenset(
    f"s3:{name}" for name in _OBJECT_ACTIONS + _BUCKET_ACTIONS + _OTHER_ACTIONS
)
# Action names compare without regard to case, as IAM compares them.
_ACTIONS_LOWER: tuple[str, ...] = tuple(sorted(name.lower() for name in S3_ACTIONS))
_OBJECT_LOWER = frozenset(f"s3:{name}".lower() for name in _OBJECT_ACTIONS)
_BUCKET_LOWER = frozenset(f"s3:{name}".lower() for name in _BUCKET_ACTIONS)

# S3's own condition keys (the Service Authorization Reference's "Condition keys for Amazon
# S3"), lowercase: key names compare without regard to case. A name ending in "/" is a
# family: `s3:ExistingObjectTag/<tag key>`.
_S3_KEYS = frozenset(
    "s3:" + key.lower()
    for key in _words(
        "AccessGrantScope AccessGrantsInstanceArn AccessGrantsLocationScope AccessPointNetworkOrigin "
        "DataAccessPointAccount DataAccessPointArn ExistingJobOperation ExistingJobPriority "
        "InventoryAccessibleOptionalFields JobSuspendedCause ObjectCreationOperation RequestJobOperation "
        "RequestJobPriority RequestObjectTagKeys ResourceAccount TlsVersion annotation-prefix authType "
        "delimiter deliverySourceArn destinationRegion if-match if-none-match isReplicationPauseRequest "
        "locationconstraint logType max-annotation-results max-keys object-lock-legal-hold "
        "object-lock-mode object-lock-remaining-retention-days object-lock-retain-until-date prefix "
        "resourceArnBeingAuthorized signatureAge signatureversion versionid x-amz-acl "
        "x-amz-bucket-namespace x-amz-content-sha256 x-amz-copy-source x-amz-grant-full-control "
        "x-amz-grant-read x-amz-grant-read-acp x-amz-grant-write x-amz-grant-write-acp "
        "x-amz-metadata-directive x-amz-object-annotation-directive x-amz-object-if-match "
        "x-amz-object-ownership x-amz-server-side-encryption x-amz-server-side-encryption-aws-kms-key-id "
        "x-amz-server-side-encryption-customer-algorithm x-amz-storage-class "
        "x-amz-website-redirect-location"
    )
)
_S3_KEY_FAMILIES = ("s3:existingobjecttag/", "s3:requestobjecttag/", "s3:buckettag/", "s3:accesspointtag/")
# Keys that come with listing only: S3 refuses them on a statement whose actions never list
# ("Conditions do not apply to combination of actions and resources in statement").
_LIST_ONLY_KEYS = frozenset({"s3:prefix", "s3:delimiter", "s3:max-keys"})
_LIST_ACTIONS = frozenset({"s3:listbucket", "s3:listbucketversions"})


# --- wildcards -------------------------------------------------------------------------

_ANY_ONE = object()  # a `?` token; a `*` splits segments


class _Glob:
    """A `*`/`?` pattern, matched in linear time per segment (see the module docstring)."""

    __slots__ = ("_first", "_last", "_middle", "_starred")

    def __init__(self, segments: list[list[object]], starred: bool) -> None:
        compiled = [_segment(items) for items in segments]
        self._starred = starred
        self._first = compiled[0]
        self._last = compiled[-1] if starred else None
        self._middle = [seg for seg in compiled[1:-1] if seg[0] > 0] if starred else []

    def match(self, text: str) -> bool:
        first_len, first = self._first
        if not self._starred:
            return len(text) == first_len and _at(first, text, 0)
        if len(text) < first_len or not _at(first, text, 0):
            return False
        last_len, last = self._last  # type: ignore[misc]
        end = len(text) - last_len
        if end < first_len or not _at(last, text, end):
            return False
        pos = first_len
        for length, seg in self._middle:
            found = text.find(seg, pos, end) if isinstance(seg, str) else _search(seg, text, pos, end)
            if found < 0:
                return False
            pos = found + length
        return True


def _segment(items: list[object]) -> tuple[int, str | re.Pattern[str]]:
    if all(isinstance(item, str) for item in items):
        return len(items), "".join(items)  # type: ignore[arg-type]
    source = "".join("." if item is _ANY_ONE else re.escape(item) for item in items)  # type: ignore[arg-type]
    return len(items), re.compile(source, re.DOTALL)


def _at(seg: str | re.Pattern[str], text: str, pos: int) -> bool:
    if isinstance(seg, str):
        return text.startswith(seg, pos)
    return seg.match(text, pos) is not None


def _search(seg: re.Pattern[str], text: str, pos: int, end: int) -> int:
    found = seg.search(text, pos, end)
    return -1 if found is None else found.start()


class _Never:
    """A pattern holding a policy variable Folio cannot resolve (`${aws:username}`): it
    matches nothing, as IAM treats a variable without a value."""

    __slots__ = ()

    def match(self, text: str) -> bool:
        return False


_NEVER = _Never()
# Policy variables that stand for a character (IAM's "special characters" variables).
_ESCAPES = {"*": "*", "?": "?", "$": "$"}
_VARIABLE = re.compile(r"\$\{([^}]*)\}")


def compile_wildcard(pattern: str, *, variables: bool = False) -> _Glob | _Never:
    """The matcher of a `*`/`?` pattern. With `variables` (policy Version 2012-10-17),
    `${*}`, `${?}` and `${$}` are the literal characters and any other `${...}` makes the
    pattern match nothing."""
    segments: list[list[object]] = [[]]
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        if variables and char == "$" and pattern.startswith("${", i):
            close = pattern.find("}", i + 2)
            if close >= 0:
                name = pattern[i + 2 : close]
                if name not in _ESCAPES:
                    return _NEVER
                segments[-1].append(_ESCAPES[name])
                i = close + 1
                continue
        if char == "*":
            segments.append([])
        elif char == "?":
            segments[-1].append(_ANY_ONE)
        else:
            segments[-1].append(char)
        i += 1
    return _Glob(segments, starred=len(segments) > 1)


def _has_wildcard(pattern: str) -> bool:
    return "*" in pattern or "?" in pattern


# --- the request -----------------------------------------------------------------------


@dataclass(frozen=True)
class RequestFacts:
    """What a policy can ask about one request."""

    account_id: str | None  # the caller's Folio account id (32 hex); None when anonymous
    canonical_id: str | None  # the caller's canonical user id (64 hex); None when anonymous
    action: str  # "s3:GetObject"
    resource: str  # "arn:aws:s3:::bucket" or "arn:aws:s3:::bucket/key"
    source_ip: str  # aws:SourceIp, IPv4 or IPv6
    secure_transport: bool  # aws:SecureTransport
    prefix: str | None = None  # s3:prefix of a listing ("" when given empty, None when absent)
    delimiter: str | None = None  # s3:delimiter of a listing
    max_keys: int | None = None  # s3:max-keys of a listing
    version_id: str | None = None  # s3:versionid of a request naming a version
    acl: str | None = None  # s3:x-amz-acl, the canned ACL a write asks for
    referer: str | None = None  # aws:Referer
    user_agent: str | None = None  # aws:UserAgent
    current_time: float | None = None  # aws:CurrentTime / aws:EpochTime, Unix seconds


def _context_value(key: str, facts: RequestFacts) -> str | None:
    """The request context's value of a (lowercase) condition key; None when the request
    does not carry the key."""
    account = facts.account_id
    if key == "aws:sourceip":
        return facts.source_ip
    if key == "aws:securetransport":
        return "true" if facts.secure_transport else "false"
    if key in ("aws:principalaccount", "aws:userid"):
        # An account's root user's aws:userid is the account id; anonymous requests carry
        # neither key (IAM "AWS global condition context keys").
        return account
    if key == "aws:principalarn":
        return f"arn:aws:iam::{account}:root" if account else None
    if key == "aws:principaltype":
        return "Account" if account else "Anonymous"
    if key == "aws:referer":
        return facts.referer
    if key == "aws:useragent":
        return facts.user_agent
    if key in ("aws:currenttime", "aws:epochtime"):
        if facts.current_time is None:
            return None
        if key == "aws:epochtime":
            return str(int(facts.current_time))
        return datetime.fromtimestamp(facts.current_time, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if key == "s3:prefix":
        return facts.prefix
    if key == "s3:delimiter":
        return facts.delimiter
    if key == "s3:max-keys":
        return None if facts.max_keys is None else str(facts.max_keys)
    if key == "s3:versionid":
        return facts.version_id
    if key == "s3:x-amz-acl":
        return facts.acl
    return None


# --- conditions ------------------------------------------------------------------------

_STRING_OPS = {
    "StringEquals": False,
    "StringNotEquals": True,
    "StringEqualsIgnoreCase": False,
    "StringNotEqualsIgnoreCase": True,
    "StringLike": False,
    "StringNotLike": True,
    # ARNs are compared as strings with wildcards (IAM checks each colon-separated part
    # apart; no key Folio supplies holds an ARN but aws:PrincipalArn, where it agrees).
    "ArnEquals": False,
    "ArnLike": False,
    "ArnNotEquals": True,
    "ArnNotLike": True,
}
_NUMERIC_OPS = {
    "NumericEquals": False,
    "NumericNotEquals": True,
    "NumericLessThan": False,
    "NumericLessThanEquals": False,
    "NumericGreaterThan": False,
    "NumericGreaterThanEquals": False,
}
_DATE_OPS = {name.replace("Numeric", "Date"): negated for name, negated in _NUMERIC_OPS.items()}
_OTHER_OPS = {"Bool": False, "BinaryEquals": False, "IpAddress": False, "NotIpAddress": True, "Null": False}
_OPERATORS: dict[str, bool] = {**_STRING_OPS, **_NUMERIC_OPS, **_DATE_OPS, **_OTHER_OPS}  # name -> negated
_ORDER = {
    "Equals": lambda a, b: a == b,
    "NotEquals": lambda a, b: a == b,  # negated afterwards
    "LessThan": lambda a, b: a < b,
    "LessThanEquals": lambda a, b: a <= b,
    "GreaterThan": lambda a, b: a > b,
    "GreaterThanEquals": lambda a, b: a >= b,
}
_NUMBER = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_PREFIX_LEN = re.compile(r"[0-9]{1,3}")


@dataclass(frozen=True)
class Condition:
    """One key of one operator: `Condition: {operator: {key: values}}`."""

    operator: str  # the base operator, without set prefix or IfExists: "StringLike"
    key: str  # lowercase
    values: tuple[str, ...]
    if_exists: bool = False
    qualifier: str | None = None  # "ForAllValues" or "ForAnyValue"
    matchers: tuple[object, ...] = ()  # compiled values: globs, networks, numbers, dates

    @property
    def negated(self) -> bool:
        return _OPERATORS[self.operator]

    def holds(self, facts: RequestFacts) -> bool:
        actual = _context_value(self.key, facts)
        if self.operator == "Null":
            # "true": the key is absent; "false": it is present. Values are OR-ed.
            return any((value == "true") == (actual is None) for value in self.matchers)
        if actual is None:
            # IAM "Condition operators": a key absent from the request context makes the
            # condition false; a negated operator (StringNotLike, NotIpAddress...) is then
            # true; ...IfExists is true. With set operators, ForAllValues over no values
            # is true and ForAnyValue false.
            if self.if_exists:
                return True
            if self.qualifier is not None:
                return self.qualifier == "ForAllValues"
            return self.negated
        # Every key Folio supplies holds one value, for which ForAllValues/ForAnyValue
        # agree with the plain operator. Values in the policy are OR-ed; a negated
        # operator holds when none of them matches.
        matched = any(self._matches(actual, matcher) for matcher in self.matchers)
        return matched != self.negated

    def _matches(self, actual: str, matcher: object) -> bool:
        op = self.operator
        if op in ("StringEquals", "StringNotEquals"):
            return matcher == actual
        if op in ("StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase"):
            return matcher == actual.casefold()
        if op in _STRING_OPS:
            return matcher.match(actual)  # type: ignore[attr-defined]
        if op in ("IpAddress", "NotIpAddress"):
            address = _request_ip(actual)
            return address is not None and address in matcher  # type: ignore[operator]
        if op == "Bool":
            return matcher == actual.lower()
        if op in _NUMERIC_OPS:
            value = _number(actual)
            return value is not None and _ORDER[op.removeprefix("Numeric")](value, matcher)
        if op in _DATE_OPS:
            value = _date(actual)
            return value is not None and _ORDER[op.removeprefix("Date")](value, matcher)
        return matcher == actual  # BinaryEquals: no key Folio supplies is binary


@lru_cache(maxsize=4096)
def _request_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # a dual-stack socket's view of an IPv4 client
    return address


def _cidr(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """An aws:SourceIp value: an address with an optional prefix length, which defaults to
    the whole address (IAM: "IAM uses the default prefix value of /32")."""
    address_text, slash, prefix = text.partition("/")
    try:
        address = ipaddress.ip_address(address_text)
    except ValueError:
        raise MalformedPolicy(_IP) from None
    most = address.max_prefixlen
    if slash:
        if not _PREFIX_LEN.fullmatch(prefix) or int(prefix) > most:
            raise MalformedPolicy(_IP)
        length = int(prefix)
    else:
        length = most
    return ipaddress.ip_network((address, length), strict=False)


def _number(text: str) -> float | None:
    return float(text) if _NUMBER.fullmatch(text) else None


def _date(text: str) -> float | None:
    """A date as date operators take one: ISO 8601 (UTC when no zone is given) or Unix seconds."""
    if text.isascii() and text.isdigit():
        return float(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _parse_operator(name: str) -> tuple[str, bool, str | None]:
    """(base operator, IfExists, set qualifier) of a condition type; the names are exact."""
    qualifier, rest = None, name
    for prefix in ("ForAllValues:", "ForAnyValue:"):
        if name.startswith(prefix):
            qualifier, rest = prefix[:-1], name[len(prefix) :]
    if_exists = rest.endswith("IfExists")
    base = rest.removesuffix("IfExists")
    if base not in _OPERATORS or (if_exists and base == "Null"):
        raise MalformedPolicy(f"Invalid Condition type : {name}")
    return base, if_exists, qualifier


def _check_key(key: str, action_names: frozenset[str] | None) -> None:
    if key.startswith("aws:") and len(key) > 4:
        return  # every global key is accepted; AWS keeps adding them
    if not (
        key in _S3_KEYS
        or any(key.startswith(family) and len(key) > len(family) for family in _S3_KEY_FAMILIES)
    ):
        raise MalformedPolicy(_CONDITION_KEY)
    if key in _LIST_ONLY_KEYS and action_names is not None and not (action_names & _LIST_ACTIONS):
        raise MalformedPolicy(_CONDITION_NOT_APPLICABLE)


def _condition_values(raw: object) -> tuple[str, ...]:
    """A condition's values: strings, numbers or booleans ("quotation marks are optional"),
    one or a list."""
    items = raw if isinstance(raw, list) else [raw]
    if not items:
        raise MalformedPolicy(_SYNTAX)
    values = []
    for item in items:
        if isinstance(item, str):
            values.append(item)
        elif isinstance(item, _Number):
            values.append(item.text)
        elif isinstance(item, bool):
            values.append("true" if item else "false")
        else:
            raise MalformedPolicy(_SYNTAX)
    return tuple(values)


def _compile_value(operator: str, value: str, variables: bool) -> object:
    if operator in ("IpAddress", "NotIpAddress"):
        return _cidr(value)
    if operator == "Bool" or operator == "Null":
        if value.lower() not in ("true", "false"):
            raise MalformedPolicy(f"Invalid value in Conditions for operator {operator}")
        return value.lower()
    if operator in _NUMERIC_OPS:
        number = _number(value)
        if number is None:
            raise MalformedPolicy(f"Invalid value in Conditions for operator {operator}")
        return number
    if operator in _DATE_OPS:
        moment = _date(value)
        if moment is None:
            raise MalformedPolicy(f"Invalid value in Conditions for operator {operator}")
        return moment
    if operator in ("StringEquals", "StringNotEquals", "StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase"):
        if variables and "${" in value:
            if any(name not in _ESCAPES for name in _VARIABLE.findall(value)):
                return _NEVER_EQUAL
            value = _VARIABLE.sub(lambda found: _ESCAPES[found.group(1)], value)
        return value.casefold() if "IgnoreCase" in operator else value
    if operator in _STRING_OPS:
        return compile_wildcard(value, variables=variables)
    return value


class _NeverEqual:
    """A StringEquals value holding an unresolvable policy variable: equal to nothing."""

    def __eq__(self, other: object) -> bool:
        return False

    __hash__ = object.__hash__


_NEVER_EQUAL = _NeverEqual()


def _parse_conditions(
    raw: object, action_names: frozenset[str] | None, variables: bool
) -> tuple[Condition, ...]:
    if not isinstance(raw, dict):
        raise MalformedPolicy(_SYNTAX)
    conditions = []
    for type_name, keys in raw.items():
        operator, if_exists, qualifier = _parse_operator(type_name)
        if not isinstance(keys, dict):
            raise MalformedPolicy(_SYNTAX)
        for written_key, raw_values in keys.items():
            key = written_key.lower()
            _check_key(key, action_names)
            values = _condition_values(raw_values)
            matchers = tuple(_compile_value(operator, value, variables) for value in values)
            conditions.append(Condition(operator, key, values, if_exists, qualifier, matchers))
    return tuple(conditions)


# --- principals ------------------------------------------------------------------------

_ACCOUNT_ID = re.compile(r"[0-9a-fA-F]{32}")
_CANONICAL_ID = re.compile(r"[0-9a-fA-F]{64}")
_ROOT_ARN = re.compile(r"arn:aws:iam::([0-9a-fA-F]{32}):root")


@dataclass(frozen=True)
class Principals:
    """A statement's Principal (or, with `negated`, its NotPrincipal)."""

    everyone: bool = False
    accounts: frozenset[str] = frozenset()  # lowercase account ids
    canonical_ids: frozenset[str] = frozenset()  # lowercase
    services: tuple[str, ...] = ()  # service principals: no Folio caller is one
    negated: bool = False

    def named(self, facts: RequestFacts) -> bool:
        if self.everyone:
            return True
        if facts.account_id is not None and facts.account_id.lower() in self.accounts:
            return True
        return facts.canonical_id is not None and facts.canonical_id.lower() in self.canonical_ids

    def matches(self, facts: RequestFacts) -> bool:
        return self.named(facts) != self.negated


def _strings(raw: object, error: str) -> list[str]:
    """An element's value: a string or a list of strings (brackets optional for one)."""
    items = raw if isinstance(raw, list) else [raw]
    if not all(isinstance(item, str) for item in items):
        raise MalformedPolicy(error)
    return items  # type: ignore[return-value]


def _parse_principals(raw: object, negated: bool) -> Principals:
    if raw == "*":
        return Principals(everyone=True, negated=negated)
    if not isinstance(raw, dict) or not raw:
        raise MalformedPolicy(_PRINCIPAL)
    everyone, accounts, canonical, services = False, set(), set(), []
    for kind, value in raw.items():
        named = _strings(value, _PRINCIPAL)
        if not named or any(not item for item in named):
            raise MalformedPolicy(_PRINCIPAL)
        if kind == "AWS":
            if named == ["*"]:
                everyone = True
                continue
            for item in named:
                root = _ROOT_ARN.fullmatch(item)
                if root:
                    accounts.add(root.group(1).lower())
                elif _ACCOUNT_ID.fullmatch(item):
                    accounts.add(item.lower())
                else:
                    raise MalformedPolicy(_PRINCIPAL)  # "*" among others, IAM users, roles...
        elif kind == "CanonicalUser":
            if not all(_CANONICAL_ID.fullmatch(item) for item in named):
                raise MalformedPolicy(_PRINCIPAL)
            canonical.update(item.lower() for item in named)
        elif kind == "Service":
            if "*" in named:
                raise MalformedPolicy(_PRINCIPAL)
            services.extend(named)
        else:
            raise MalformedPolicy(_PRINCIPAL)  # Federated and unknown kinds: none exist here
    return Principals(everyone, frozenset(accounts), frozenset(canonical), tuple(services), negated)


# --- actions and resources -------------------------------------------------------------


def _action_names(pattern: str) -> frozenset[str]:
    """The (lowercase) S3 actions an Action pattern names; refuses a pattern naming none."""
    lower = pattern.lower()
    if lower == "*":
        lower = "s3:*"
    if not lower.startswith("s3:"):
        raise MalformedPolicy(_ACTION)
    if not _has_wildcard(lower):
        if lower not in _ACTIONS_SET:
            raise MalformedPolicy(_ACTION)
        return frozenset((lower,))
    glob = compile_wildcard(lower)
    names = frozenset(name for name in _ACTIONS_LOWER if glob.match(name))
    if not names:
        raise MalformedPolicy(_ACTION)
    return names


_ACTIONS_SET = frozenset(_ACTIONS_LOWER)


def _check_resource(pattern: str, bucket_name: str, variables: bool) -> None:
    """A resource must be an S3 ARN whose bucket part (before the first "/") can name this
    bucket: S3 refuses "*" and other buckets with "Policy has invalid resource"."""
    if not pattern.startswith(ARN_PREFIX) or len(pattern) == len(ARN_PREFIX):
        raise MalformedPolicy(_RESOURCE)
    bucket_part = pattern[len(ARN_PREFIX) :].split("/", 1)[0]
    if not compile_wildcard(bucket_part, variables=variables).match(bucket_name):
        raise MalformedPolicy(_RESOURCE)


def _reaches(pattern: str) -> tuple[bool, bool]:
    """(bucket ARN, object ARN): which kinds of resource a resource pattern can match."""
    rest = pattern[len(ARN_PREFIX) :]
    return "/" not in rest, "/" in rest or "*" in rest


# --- statements and the policy ---------------------------------------------------------


@dataclass(frozen=True)
class Statement:
    effect: Effect
    principals: Principals
    action_names: frozenset[str]  # lowercase S3 actions named by Action / NotAction
    not_action: bool
    resources: tuple[str, ...]  # as written
    resource_matchers: tuple[object, ...]  # compiled once
    not_resource: bool
    conditions: tuple[Condition, ...]
    sid: str | None = None

    def applies(self, facts: RequestFacts) -> bool:
        if not self.principals.matches(facts):
            return False
        if (facts.action.lower() in self.action_names) == self.not_action:
            return False
        hit = any(matcher.match(facts.resource) for matcher in self.resource_matchers)  # type: ignore[attr-defined]
        if hit == self.not_resource:
            return False
        # Conditions are AND-ed: every key of every operator must hold.
        return all(condition.holds(facts) for condition in self.conditions)


@dataclass(frozen=True)
class BucketPolicy:
    text: str  # exactly as the user sent it: GetBucketPolicy returns it
    statements: tuple[Statement, ...]
    version: str = "2008-10-17"  # the default when the document names none
    policy_id: str | None = None


_STATEMENT_FIELDS = frozenset(
    {
        "Sid",
        "Effect",
        "Principal",
        "NotPrincipal",
        "Action",
        "NotAction",
        "Resource",
        "NotResource",
        "Condition",
    }
)


def _parse_statement(raw: object, bucket_name: str, variables: bool) -> Statement:
    if not isinstance(raw, dict):
        raise MalformedPolicy(_SYNTAX)
    if not raw.keys() <= _STATEMENT_FIELDS:
        raise MalformedPolicy(_SYNTAX)
    for one, other in (("Principal", "NotPrincipal"), ("Action", "NotAction"), ("Resource", "NotResource")):
        if one in raw and other in raw:
            raise MalformedPolicy(_SYNTAX)
    sid = raw.get("Sid")
    if sid is not None and not isinstance(sid, str):
        raise MalformedPolicy(_SYNTAX)

    if "Effect" not in raw:
        raise _missing("Effect")
    effect = raw["Effect"]
    if not isinstance(effect, str):
        raise MalformedPolicy(_SYNTAX)
    if effect not in ("Allow", "Deny"):
        raise MalformedPolicy(f"Invalid effect: {effect}")

    if "Principal" not in raw and "NotPrincipal" not in raw:
        raise _missing("Principal")
    not_principal = "NotPrincipal" in raw
    principals = _parse_principals(raw["NotPrincipal" if not_principal else "Principal"], not_principal)
    if not_principal and effect == "Allow":
        # IAM: NotPrincipal must be used with "Effect": "Deny".
        raise MalformedPolicy(_PRINCIPAL)

    if "Action" not in raw and "NotAction" not in raw:
        raise _missing("Action")
    not_action = "NotAction" in raw
    patterns = _strings(raw["NotAction" if not_action else "Action"], _ACTION)
    if not patterns:
        raise MalformedPolicy(_ACTION)
    per_pattern = [_action_names(pattern) for pattern in patterns]
    action_names = frozenset().union(*per_pattern)

    if "Resource" not in raw and "NotResource" not in raw:
        raise _missing("Resource")
    not_resource = "NotResource" in raw
    resources = _strings(raw["NotResource" if not_resource else "Resource"], _RESOURCE)
    if not resources:
        raise MalformedPolicy(_RESOURCE)
    for pattern in resources:
        _check_resource(pattern, bucket_name, variables)

    if not not_action and not not_resource:
        # Every action a statement names must act on a kind of resource it names: S3
        # refuses s3:ListBucket on bucket/* or s3:GetObject on the bucket alone.
        reach = [_reaches(pattern) for pattern in resources]
        bucket_kind = any(b for b, _ in reach)
        object_kind = any(o for _, o in reach)
        for names in per_pattern:
            if not ((bucket_kind and names & _BUCKET_LOWER) or (object_kind and names & _OBJECT_LOWER)):
                raise MalformedPolicy(_NOT_APPLICABLE)

    conditions: tuple[Condition, ...] = ()
    if "Condition" in raw:
        # With NotAction the statement can reach any action; the key check then has
        # nothing to narrow it by.
        conditions = _parse_conditions(raw["Condition"], None if not_action else action_names, variables)

    return Statement(
        effect=effect,  # type: ignore[arg-type]
        principals=principals,
        action_names=action_names,
        not_action=not_action,
        resources=tuple(resources),
        resource_matchers=tuple(compile_wildcard(pattern, variables=variables) for pattern in resources),
        not_resource=not_resource,
        conditions=conditions,
        sid=sid,
    )


class _Number:
    """A JSON number kept as written: condition values may be unquoted numbers, and where a
    string is required a number is a syntax error."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    result: dict[str, object] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _reject_constant(name: str) -> object:
    raise ValueError(f"not JSON: {name}")


def _compact_size_and_depth(text: str) -> tuple[int, int]:
    """The UTF-8 size of the document without white space between tokens, and its deepest
    nesting, in one pass (the text is at most MAX_POLICY_BODY_BYTES)."""
    size = depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            size += 1 if char < "\x80" else len(char.encode("utf-8", "surrogatepass"))
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
            continue
        if char in " \t\r\n":
            continue
        size += 1 if char < "\x80" else len(char.encode("utf-8", "surrogatepass"))
        if char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return size, deepest


def parse_policy(text: str | bytes, bucket_name: str) -> BucketPolicy:
    """The policy `text` sets on `bucket_name`, checked as PutBucketPolicy checks it; raises
    MalformedPolicy (PolicyTooLarge over 20 KB) with AWS's message. The first fault found
    is the answer: the text as JSON, its size, the document's members, then each
    statement in order."""
    if isinstance(text, bytes | bytearray):
        if len(text) > MAX_POLICY_BODY_BYTES:
            raise PolicyTooLarge()
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedPolicy(_INVALID_JSON) from None
    if len(text) > MAX_POLICY_BODY_BYTES:
        raise PolicyTooLarge()
    if not text.lstrip(" \t\r\n").startswith("{"):
        raise MalformedPolicy(_NOT_JSON)
    size, depth = _compact_size_and_depth(text)
    if depth > _MAX_DEPTH:
        raise MalformedPolicy(_SYNTAX)
    try:
        document = json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_int=_Number,
            parse_float=_Number,
            parse_constant=_reject_constant,
        )
    except (ValueError, RecursionError):
        raise MalformedPolicy(_INVALID_JSON) from None
    if size > MAX_POLICY_BYTES:
        raise PolicyTooLarge()
    if not isinstance(document, dict):
        raise MalformedPolicy(_NOT_JSON)
    if not document.keys() <= {"Version", "Id", "Statement"}:
        raise MalformedPolicy(_SYNTAX)
    version = document.get("Version", "2008-10-17")
    if version not in VERSIONS:
        raise MalformedPolicy(_VERSION)
    policy_id = document.get("Id")
    if policy_id is not None and not isinstance(policy_id, str):
        raise MalformedPolicy(_SYNTAX)
    if "Statement" not in document:
        raise MalformedPolicy(_NO_STATEMENT)
    raw_statements = document["Statement"]
    if isinstance(raw_statements, dict):
        raw_statements = [raw_statements]
    if not isinstance(raw_statements, list):
        raise MalformedPolicy(_SYNTAX)
    if not raw_statements:
        raise MalformedPolicy(_EMPTY_STATEMENT)
    # Policy variables (and their ${*} escapes) exist from Version 2012-10-17 on; in
    # 2008-10-17 "${...}" is plain text.
    variables = version == "2012-10-17"
    statements = tuple(_parse_statement(raw, bucket_name, variables) for raw in raw_statements)
    return BucketPolicy(text=text, statements=statements, version=version, policy_id=policy_id)


def evaluate(policy: BucketPolicy | None, facts: RequestFacts) -> Effect | None:
    """Answers "Deny" when a Deny statement applies (an explicit Deny wins), else "Allow" when an
    Allow statement applies, else None: the policy neither grants nor refuses."""
    if policy is None:
        return None
    allowed = False
    for statement in policy.statements:
        if statement.effect == "Allow" and allowed:
            continue  # already allowed: only a Deny can change the answer
        if statement.applies(facts):
            if statement.effect == "Deny":
                return "Deny"
            allowed = True
    return "Allow" if allowed else None


def named_principals(policy: BucketPolicy | None) -> tuple[frozenset[str], frozenset[str]]:
    """(account ids, canonical ids) the policy names, so PutBucketPolicy can refuse one that
    names an account Folio does not have ("Invalid principal in policy"), as AWS does."""
    if policy is None:
        return frozenset(), frozenset()
    accounts: set[str] = set()
    canonical: set[str] = set()
    for statement in policy.statements:
        accounts |= statement.principals.accounts
        canonical |= statement.principals.canonical_ids
    return frozenset(accounts), frozenset(canonical)


# --- "public" --------------------------------------------------------------------------

# S3 User Guide, "The meaning of 'public'": a policy is public unless every statement that
# grants to everyone is held to fixed values (no wildcard, no policy variable) of one of
# these keys, or to aws:SourceIp ranges no broader than /8 (IPv4) or /32 (IPv6).
_NARROWING_KEYS = frozenset(
    {
        "aws:sourcearn",
        "aws:sourcevpc",
        "aws:sourcevpce",
        "aws:sourceowner",
        "aws:sourceaccount",
        "aws:principalaccount",
        "aws:principalarn",
        "aws:principalorgid",
        "aws:userid",
        "s3:x-amz-server-side-encryption-aws-kms-key-id",
        "s3:dataaccesspointarn",
        "s3:dataaccesspointaccount",
    }
)
_FIXING_OPERATORS = frozenset(
    {"StringEquals", "StringEqualsIgnoreCase", "StringLike", "ArnEquals", "ArnLike"}
)
_PRIVATE_V4 = tuple(ipaddress.ip_network(net) for net in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))


def _narrows(condition: Condition) -> bool:
    """Whether a condition confines a statement to a fixed set of callers. A condition a
    request can satisfy by lacking the key (IfExists, ForAllValues) confines nothing."""
    if condition.if_exists or condition.qualifier == "ForAllValues":
        return False
    if condition.key == "aws:sourceip":
        return condition.operator == "IpAddress" and all(
            _narrow_range(network)
            for network in condition.matchers  # type: ignore[misc]
        )
    if condition.key not in _NARROWING_KEYS or condition.operator not in _FIXING_OPERATORS:
        return False
    if condition.key == "aws:userid" and any(value.startswith("AROLEID:") for value in condition.values):
        return False
    return all(not _has_wildcard(value) and "${" not in value for value in condition.values)


def _narrow_range(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    if network.version == 4:
        return network.prefixlen >= 8 or any(network.subnet_of(private) for private in _PRIVATE_V4)  # type: ignore[arg-type]
    return network.prefixlen >= 32


def is_public(policy: BucketPolicy | None) -> bool:
    """GetBucketPolicyStatus's IsPublic: an Allow statement grants to everyone ("*" or
    {"AWS": "*"}) and none of its conditions confines it to fixed callers."""
    if policy is None:
        return False
    return any(
        statement.effect == "Allow"
        and statement.principals.everyone
        and not statement.principals.negated
        and not any(_narrows(condition) for condition in statement.conditions)
        for statement in policy.statements
    )


# --- the dashboard's "public read" ------------------------------------------------------


def public_read_statement(bucket_name: str) -> dict[str, object]:
    """The usual static-website statement: anyone may GET every object of the bucket."""
    return {
        "Sid": PUBLIC_READ_SID,
        "Effect": "Allow",
        "Principal": "*",
        "Action": "s3:GetObject",
        "Resource": f"{ARN_PREFIX}{bucket_name}/*",
    }


def _covers_every_object(pattern: str, bucket_name: str) -> bool:
    """Whether a resource pattern matches every object of the bucket: a literal prefix of
    "arn:aws:s3:::<bucket>/" followed by a single trailing "*"."""
    if not pattern.endswith("*"):
        return False
    head = pattern[:-1]
    return not _has_wildcard(head) and "${" not in head and f"{ARN_PREFIX}{bucket_name}/".startswith(head)


def _grants_public_read(statement: Statement, bucket_name: str) -> bool:
    return (
        statement.effect == "Allow"
        and statement.principals.everyone
        and not statement.principals.negated
        and not statement.conditions
        and not statement.not_action
        and "s3:getobject" in statement.action_names
        and not statement.not_resource
        and any(_covers_every_object(pattern, bucket_name) for pattern in statement.resources)
    )


def grants_public_read(policy: BucketPolicy | None, bucket_name: str) -> bool:
    """True when the policy lets anyone, unconditionally, GET every object of the bucket:
    Folio's own statement or any equivalent one (Deny statements are not weighed)."""
    if policy is None:
        return False
    return any(_grants_public_read(statement, bucket_name) for statement in policy.statements)


def _is_ours(raw: object, bucket_name: str) -> bool:
    """A statement `with_public_read(..., False)` removes: Folio's, by its Sid, or one
    written exactly as Folio writes it (so removing grants nothing less than it should
    and nothing more)."""
    if not isinstance(raw, dict):
        return False
    if raw.get("Sid") == PUBLIC_READ_SID:
        return True
    expected = public_read_statement(bucket_name)
    expected.pop("Sid")
    simplified = {key: value for key, value in raw.items() if key != "Sid"}
    for key in ("Action", "Resource"):
        value = simplified.get(key)
        if isinstance(value, list) and len(value) == 1:
            simplified[key] = value[0]
    if simplified.get("Principal") in ({"AWS": "*"}, {"AWS": ["*"]}):
        simplified["Principal"] = "*"
    if isinstance(simplified.get("Action"), str):
        simplified["Action"] = simplified["Action"].lower()  # type: ignore[union-attr]
        expected["Action"] = "s3:getobject"
    return simplified == expected


def with_public_read(policy: BucketPolicy | None, bucket_name: str, public: bool) -> str | None:
    """The policy text with Folio's public-read statement added (`public`) or removed.
    Adding when the policy already grants public read changes nothing; removing drops
    Folio's statement and any written exactly like it, keeps the others, and gives None
    when none is left. A broader statement of the user's own (say GetObject and
    ListBucket to everyone) is kept: `grants_public_read` then stays true. The result is
    checked with `parse_policy` (a statement added to a policy near 20 KB can make it too
    large: PolicyTooLarge)."""
    if public and grants_public_read(policy, bucket_name):
        return policy.text  # type: ignore[union-attr]
    if policy is None:
        if not public:
            return None
        document: dict[str, object] = {"Version": "2012-10-17", "Statement": []}
    else:
        document = json.loads(policy.text)
        statements = document["Statement"]
        document["Statement"] = list(statements) if isinstance(statements, list) else [statements]
    kept = [raw for raw in document["Statement"] if not _is_ours(raw, bucket_name)]  # type: ignore[attr-defined]
    if policy is not None and not public and len(kept) == len(document["Statement"]):  # type: ignore[arg-type]
        return policy.text  # nothing of ours to remove: the user's text stays as written
    if public:
        kept.append(public_read_statement(bucket_name))
    if not kept:
        return None
    document["Statement"] = kept
    text = json.dumps(document, indent=2)
    parse_policy(text, bucket_name)
    return text
