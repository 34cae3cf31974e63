"""POST policies of browser-based uploads (PostObject): the base64 JSON document with
`expiration` and `conditions`, its signature (SigV4: HMAC-SHA256 of the base64 text with
the SigV4 signing key; SigV2: base64 HMAC-SHA1 with the secret, what boto3's
`generate_presigned_post` makes by default), and the check of the form's fields
against it, with AWS's codes and messages ("Invalid according to Policy: ...").

Pure functions over the form's text fields (names lowercased): the handler
(s3proxy/api/post_object.py) calls them before it stores a byte of the file."""

from __future__ import annotations

import base64
import binascii
import calendar
import hashlib
import hmac
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from core.strictparse import ascii_int
from s3proxy.api.errors import S3Error
from s3proxy.auth.sigv4 import ALGORITHM, derive_signing_key, sign, signatures_equal, split_credential

# Fields a policy need not name (AWS: "except x-amz-signature, file, policy, and field
# names that have an x-ignore- prefix"; SigV2 forms also carry AWSAccessKeyId and signature).
EXEMPT_FIELDS = frozenset({"x-amz-signature", "file", "policy", "awsaccesskeyid", "signature"})
IGNORED_PREFIX = "x-ignore-"
_EXPIRATION = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.[0-9]{1,9})?Z"
)
_MAX_RANGE = 2**63 - 1


@dataclass(frozen=True)
class Condition:
    """One condition: `operator` is "eq" or "starts-with" on `field` (lowercased, no "$")."""

    operator: str
    field: str
    value: str
    text: str  # as AWS quotes it after "Policy Condition failed: "

    def holds(self, actual: str | None) -> bool:
        if self.operator == "eq":
            return actual == self.value
        if actual is None:
            return self.value == ""
        if self.field == "content-type":
            # AWS: every one of a comma-separated Content-Type's values must match.
            return all(part.strip().startswith(self.value) for part in actual.split(","))
        return actual.startswith(self.value)


@dataclass(frozen=True)
class PostPolicy:
    expiration: float
    conditions: tuple[Condition, ...]
    # From ["content-length-range", min, max]; None when the policy has none.
    length_range: tuple[int, int] | None

    @property
    def named_fields(self) -> frozenset[str]:
        return frozenset(condition.field for condition in self.conditions)


def _invalid(message: str) -> S3Error:
    return S3Error("InvalidPolicyDocument", f"Invalid Policy: {message}")


def _expiration(value: object) -> float:
    match = _EXPIRATION.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise _invalid(f"Invalid 'expiration' value: '{value}'")
    try:
        return float(calendar.timegm(tuple(int(group) for group in match.groups()) + (0, 0, 0)))  # type: ignore[arg-type]
    except (ValueError, OverflowError) as exc:
        raise _invalid(f"Invalid 'expiration' value: '{value}'") from exc


def _field_name(raw: object, condition: object) -> str:
    if not isinstance(raw, str) or not raw.startswith("$") or len(raw) < 2:
        raise _invalid(f"Invalid Condition: {json.dumps(condition)}")
    return raw[1:].lower()


def _length_bound(value: object, condition: object) -> int:
    # JSON numbers or digit strings, as AWS accepts both; never a float or a bool.
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _invalid(f"Invalid Condition: {json.dumps(condition)}")
    number = value if isinstance(value, int) else ascii_int(value)
    if number is None or not 0 <= number <= _MAX_RANGE:
        raise _invalid(f"Invalid Condition: {json.dumps(condition)}")
    return number


def decode_policy(policy_b64: str) -> PostPolicy:
    """The policy document, or InvalidPolicyDocument for anything that is not one."""
    try:
        raw = base64.b64decode(policy_b64.encode("ascii"), validate=True)
        document = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeError, binascii.Error, RecursionError) as exc:
        raise _invalid("Invalid JSON.") from exc
    if not isinstance(document, dict):
        raise _invalid("Invalid JSON.")
    if "expiration" not in document:
        raise _invalid("Policy missing expiration.")
    expiration = _expiration(document["expiration"])
    raw_conditions = document.get("conditions")
    if not isinstance(raw_conditions, list):
        raise _invalid("Invalid 'conditions' value: must be a List.")
    conditions: list[Condition] = []
    length_range: tuple[int, int] | None = None
    for item in raw_conditions:
        if isinstance(item, dict) and item:
            for name, value in item.items():
                if not isinstance(value, str):
                    raise _invalid(f"Invalid Condition: {json.dumps(item)}")
                text = json.dumps(["eq", f"${name}", value])
                conditions.append(Condition("eq", name.lower(), value, text))
        elif isinstance(item, list) and len(item) == 3 and isinstance(item[0], str):
            operator = item[0].lower()
            if operator == "content-length-range":
                low, high = _length_bound(item[1], item), _length_bound(item[2], item)
                length_range = (low, high)
            elif operator in ("eq", "starts-with") and isinstance(item[2], str):
                conditions.append(Condition(operator, _field_name(item[1], item), item[2], json.dumps(item)))
            else:
                raise _invalid(f"Invalid Condition: {json.dumps(item)}")
        else:
            raise _invalid(f"Invalid Condition: {json.dumps(item)}")
    return PostPolicy(expiration, tuple(conditions), length_range)


def _required(fields: Mapping[str, str], name: str) -> str:
    value = fields.get(name)
    if value is None:
        raise S3Error(
            "InvalidArgument",
            f"Bucket POST must contain a field named '{name}'.  If it is specified, please check the "
            "order of the fields.",
            extra={"ArgumentName": name, "ArgumentValue": ""},
        )
    return value


def verify_policy_signature(fields: Mapping[str, str], lookup_secret: Callable[[str], str | None]) -> str:
    """The access key that signed the form's policy; raises unless the signature is right."""
    policy = fields["policy"]
    if "x-amz-signature" in fields:
        algorithm = _required(fields, "x-amz-algorithm")
        if algorithm != ALGORITHM:
            raise S3Error(
                "InvalidArgument",
                "Only AWS4-HMAC-SHA256 is supported for x-amz-algorithm.",
                extra={"ArgumentName": "x-amz-algorithm", "ArgumentValue": algorithm},
            )
        credential = _required(fields, "x-amz-credential")
        _required(fields, "x-amz-date")
        parts = split_credential(credential)
        if parts is None or parts[4] != "aws4_request":
            raise S3Error(
                "InvalidArgument",
                "Invalid credential: expecting <YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request.",
                extra={"ArgumentName": "x-amz-credential", "ArgumentValue": credential},
            )
        access_key, date, region, service, _ = parts
        secret = _secret(lookup_secret, access_key)
        expected = sign(derive_signing_key(secret, date, region, service), policy)
        given = fields["x-amz-signature"]
    elif "signature" in fields:
        access_key = _required(fields, "awsaccesskeyid")
        secret = _secret(lookup_secret, access_key)
        expected = base64.b64encode(
            hmac.new(secret.encode(), policy.encode(), hashlib.sha1).digest()
        ).decode()
        given = fields["signature"]
        if not hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace")):
            raise S3Error("SignatureDoesNotMatch")
        return access_key
    else:
        raise S3Error(
            "AccessDenied", "Bucket POST with a policy must be signed: the form has no x-amz-signature."
        )
    if not given.isascii() or not signatures_equal(expected, given):
        raise S3Error("SignatureDoesNotMatch")
    return access_key


def _secret(lookup_secret: Callable[[str], str | None], access_key: str) -> str:
    secret = lookup_secret(access_key)
    if secret is None:
        raise S3Error("InvalidAccessKeyId", extra={"AWSAccessKeyId": access_key})
    return secret


def _denied(reason: str) -> S3Error:
    return S3Error("AccessDenied", f"Invalid according to Policy: {reason}")


def check_fields(policy: PostPolicy, fields: Mapping[str, str], bucket: str, now: float) -> None:
    """Expiration, then every condition, then every field the policy does not name."""
    if now >= policy.expiration:
        raise _denied("Policy expired.")
    for condition in policy.conditions:
        actual = bucket if condition.field == "bucket" else fields.get(condition.field)
        if not condition.holds(actual):
            raise _denied(f"Policy Condition failed: {condition.text}")
    named = policy.named_fields
    for name in fields:
        if name in EXEMPT_FIELDS or name.startswith(IGNORED_PREFIX) or name in named:
            continue
        raise _denied(f"Extra input fields: {name}")


def check_length(policy: PostPolicy, size: int, *, final: bool) -> None:
    """EntityTooLarge as soon as the file passes the maximum; EntityTooSmall at its end."""
    if policy.length_range is None:
        return
    low, high = policy.length_range
    if size > high:
        raise S3Error(
            "EntityTooLarge",
            "Your proposed upload exceeds the maximum allowed size",
            extra={"MaxSizeAllowed": str(high)},
        )
    if final and size < low:
        raise S3Error(
            "EntityTooSmall",
            "Your proposed upload is smaller than the minimum allowed size",
            extra={"ProposedSize": str(size), "MinSizeAllowed": str(low)},
        )
