"""What makes a set of bucket CORS rules valid, as S3 checks it: shared by
PutBucketCors (s3proxy/api/cors.py) and the dashboard's CORS table, so both refuse the
same rules with the same words."""

from __future__ import annotations

from s3proxy.store.errors import StoreError
from s3proxy.store.models import CorsRule

CORS_METHODS = frozenset({"GET", "PUT", "POST", "DELETE", "HEAD"})
MAX_RULES = 100
MAX_AGE_LIMIT = 2**31 - 1


class InvalidCorsRules(StoreError):
    code = "InvalidRequest"


class MalformedCorsRules(StoreError):
    code = "MalformedXML"


def check_rules(rules: tuple[CorsRule, ...]) -> None:
    """Raise InvalidCorsRules / MalformedCorsRules with S3's message for a bad set."""
    if not rules or len(rules) > MAX_RULES:
        raise MalformedCorsRules(f"A CORS configuration has 1 to {MAX_RULES} rules.")
    for rule in rules:
        if not rule.allowed_methods or not rule.allowed_origins:
            raise MalformedCorsRules("Each CORS rule needs at least one allowed method and one allowed origin.")
        for method in rule.allowed_methods:
            if method not in CORS_METHODS:
                raise InvalidCorsRules(
                    f"Found unsupported HTTP method in CORS config. Unsupported method is {method}"
                )
        for pattern in rule.allowed_origins:
            if pattern.count("*") > 1:
                raise InvalidCorsRules(f'AllowedOrigin "{pattern}" can not have more than one wildcard.')
        for pattern in rule.allowed_headers:
            if pattern.count("*") > 1:
                raise InvalidCorsRules(f'AllowedHeader "{pattern}" can not have more than one wildcard.')
        if rule.max_age_seconds is not None and not 0 <= rule.max_age_seconds <= MAX_AGE_LIMIT:
            raise MalformedCorsRules("MaxAgeSeconds is a whole number of seconds.")
