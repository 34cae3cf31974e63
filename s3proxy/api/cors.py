"""Bucket CORS, as S3 evaluates it: Put/Get/DeleteBucketCors store the rules;
a preflight `OPTIONS` is answered from them without authentication; an actual
request with an `Origin` that a rule allows gets the CORS headers on its answer,
errors included (a browser shows a script no error body without them)."""

from __future__ import annotations

from core.strictparse import ascii_int
from s3proxy.api.body import read_small_body
from s3proxy.api.context import RequestContext, Response
from s3proxy.api.errors import S3Error
from s3proxy.api.listing import MAX_INT32
from s3proxy.api.services import Services
from s3proxy.api.xml import child_text, children, document, element, local_name, parse
from s3proxy.store.cors_rules import InvalidCorsRules, MalformedCorsRules, check_rules
from s3proxy.store.models import Bucket, CorsRule

VARY = "Origin, Access-Control-Request-Headers, Access-Control-Request-Method"


def _wildcard_match(pattern: str, value: str) -> bool:
    """S3's patterns have at most one '*', matching any run of characters."""
    if "*" not in pattern:
        return pattern == value
    head, _, tail = pattern.partition("*")
    return len(value) >= len(head) + len(tail) and value.startswith(head) and value.endswith(tail)


def _origin_allowed(rule: CorsRule, origin: str) -> bool:
    return any(_wildcard_match(pattern, origin) for pattern in rule.allowed_origins)


def _headers_allowed(rule: CorsRule, requested: list[str]) -> bool:
    patterns = [p.lower() for p in rule.allowed_headers]
    return all(any(_wildcard_match(p, header) for p in patterns) for header in requested)


def matching_rule(
    bucket: Bucket, origin: str, method: str, requested_headers: list[str] = ()  # type: ignore[assignment]
) -> CorsRule | None:
    """The first rule allowing this origin, method and request headers (S3's order)."""
    for rule in bucket.settings.cors:
        if method in rule.allowed_methods and _origin_allowed(rule, origin) and _headers_allowed(
            rule, list(requested_headers)
        ):
            return rule
    return None


def _allow_origin_headers(rule: CorsRule, origin: str) -> dict[str, str]:
    if "*" in rule.allowed_origins:
        return {"access-control-allow-origin": "*"}
    return {"access-control-allow-origin": origin, "access-control-allow-credentials": "true"}


def actual_request_headers(bucket: Bucket, origin: str, method: str) -> dict[str, str]:
    """CORS headers for a non-preflight request's answer (empty when no rule matches)."""
    rule = matching_rule(bucket, origin, method)
    if rule is None:
        return {}
    headers = _allow_origin_headers(rule, origin)
    headers["access-control-allow-methods"] = ", ".join(rule.allowed_methods)
    if rule.expose_headers:
        headers["access-control-expose-headers"] = ", ".join(rule.expose_headers)
    if rule.max_age_seconds is not None:
        headers["access-control-max-age"] = str(rule.max_age_seconds)
    headers["vary"] = VARY
    return headers


def _forbidden(message: str) -> S3Error:
    return S3Error("AccessForbidden", message, status=403, extra={"Method": "OPTIONS", "ResourceType": "BUCKET"})


async def preflight(ctx: RequestContext, services: Services) -> Response:
    """OPTIONS: evaluated against the bucket's rules, no signature needed."""
    assert ctx.bucket_name is not None
    origin = ctx.headers.get("origin")
    method = ctx.headers.get("access-control-request-method")
    if not origin or not method:
        raise S3Error(
            "BadRequest", "Insufficient information. Origin request header needed.", status=400
        )
    bucket = services.store.bucket(ctx.bucket_name)
    if bucket is None:
        raise S3Error("NoSuchBucket")
    if not bucket.settings.cors:
        raise _forbidden("CORSResponse: CORS is not enabled for this bucket.")
    raw = ctx.headers.get("access-control-request-headers", "")
    requested = [h.strip().lower() for h in raw.split(",") if h.strip()]
    rule = matching_rule(bucket, origin, method.strip(), requested)
    if rule is None:
        raise _forbidden(
            "CORSResponse: This CORS request is not allowed. This is usually because the evaluation of Origin, "
            "request method / Access-Control-Request-Method or Access-Control-Request-Headers are not "
            "whitelisted by the resource's CORS spec."
        )
    headers = _allow_origin_headers(rule, origin)
    headers["access-control-allow-methods"] = ", ".join(rule.allowed_methods)
    if requested:
        headers["access-control-allow-headers"] = ", ".join(requested)
    if rule.expose_headers:
        headers["access-control-expose-headers"] = ", ".join(rule.expose_headers)
    if rule.max_age_seconds is not None:
        headers["access-control-max-age"] = str(rule.max_age_seconds)
    headers["vary"] = VARY
    return Response(headers=headers)


def _parse_rules(body: bytes) -> tuple[CorsRule, ...]:
    root = parse(body)
    if local_name(root) != "CORSConfiguration":
        raise S3Error("MalformedXML")
    rules = []
    for node in children(root, "CORSRule"):
        raw_max_age = child_text(node, "MaxAgeSeconds")
        max_age = ascii_int(raw_max_age, strip=True, maximum=MAX_INT32)
        if raw_max_age is not None and max_age is None:
            raise S3Error("MalformedXML")
        rules.append(
            CorsRule(
                allowed_origins=tuple((o.text or "").strip() for o in children(node, "AllowedOrigin")),
                allowed_methods=tuple((m.text or "").strip() for m in children(node, "AllowedMethod")),
                allowed_headers=tuple((h.text or "").strip() for h in children(node, "AllowedHeader")),
                expose_headers=tuple((h.text or "").strip() for h in children(node, "ExposeHeader")),
                max_age_seconds=max_age,
                id=child_text(node, "ID"),
            )
        )
    try:
        check_rules(tuple(rules))
    except MalformedCorsRules as exc:
        raise S3Error("MalformedXML") from exc
    except InvalidCorsRules as exc:
        raise S3Error("InvalidRequest", exc.message) from exc
    return tuple(rules)


async def put_bucket_cors(ctx: RequestContext, services: Services) -> Response:
    bucket = services.authorized_bucket(ctx)
    body = await read_small_body(ctx, services.config.limits.max_xml_body, watchdog=services.watchdog)
    rules = _parse_rules(body)
    await services.store.update_settings(bucket, cors=rules)
    return Response()


async def get_bucket_cors(ctx: RequestContext, services: Services) -> Response:
    bucket = services.authorized_bucket(ctx)
    if not bucket.settings.cors:
        raise S3Error("NoSuchCORSConfiguration")
    inner = ""
    for rule in bucket.settings.cors:
        inner += "<CORSRule>" + element("ID", rule.id)
        inner += "".join(element("AllowedHeader", h) for h in rule.allowed_headers)
        inner += "".join(element("AllowedMethod", m) for m in rule.allowed_methods)
        inner += "".join(element("AllowedOrigin", o) for o in rule.allowed_origins)
        inner += "".join(element("ExposeHeader", h) for h in rule.expose_headers)
        inner += element("MaxAgeSeconds", rule.max_age_seconds) + "</CORSRule>"
    return Response.xml(document("CORSConfiguration", inner))


async def delete_bucket_cors(ctx: RequestContext, services: Services) -> Response:
    bucket = services.authorized_bucket(ctx)
    await services.store.update_settings(bucket, cors=())
    return Response(status=204)
