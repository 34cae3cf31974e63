"""Buckets: the list with usage, create (the naming rules explained on a bad name),
delete (typing the name to confirm a bucket that is not empty, as R2 does), and the
settings page: versioning, Time Machine retention and public read (the bucket policy)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from core.accounts import Account
from core.jsonapi import ApiError
from core.strictparse import ascii_int
from restapi import buckets as bucket_api
from restapi.auth import Caller
from restapi.files import RestServices, owned_bucket
from s3proxy.access.public_read import is_public_read
from s3proxy.store.cors_rules import MAX_AGE_LIMIT, MAX_RULES
from s3proxy.store.models import CorsRule, Retention
from webui.render import page, redirect
from webui.routing import form_of
from webui.session import CSRF_FIELD, check_form, require_account

# The methods a CORS rule may allow, in the order the table shows them.
CORS_METHOD_ORDER = ("GET", "PUT", "POST", "DELETE", "HEAD")
NAME_RULES = (
    "Bucket names are 3 to 63 characters: lowercase letters, digits, dots and hyphens, starting and "
    "ending with a letter or digit, not shaped like an IP address, unique across this Folio."
)


def _list_page(request: Request, services: RestServices, account: Account, **extra) -> Response:
    return page(
        request,
        "buckets.html",
        account,
        section="buckets",
        buckets=bucket_api.list_buckets(services, account.id),
        name_rules=NAME_RULES,
        **extra,
    )


async def buckets(request: Request, services: RestServices) -> Response:
    account = require_account(request, services)
    if request.method == "GET":
        return _list_page(request, services, account)
    fields = await form_of(request)
    await check_form(request, fields.get(CSRF_FIELD))
    name = fields.get("name", "").strip()
    try:
        await bucket_api.create_bucket(
            services, account.id, name, make_public=fields.get("public") == "on",
            versioning="Enabled" if fields.get("versioning") == "on" else None,
        )  # fmt: skip
    except ApiError as exc:
        return _list_page(request, services, account, error=exc.message, bad_name=name, status=exc.status)
    return redirect(f"/buckets/{name}")


async def delete(request: Request, services: RestServices) -> Response:
    account = require_account(request, services)
    fields = await form_of(request)
    await check_form(request, fields.get(CSRF_FIELD))
    name = request.path_params["name"]
    listed = {b["name"]: b for b in bucket_api.list_buckets(services, account.id)}
    found = listed.get(name)
    if found is None:
        raise ApiError(404, "NoSuchBucket", "You have no bucket with this name.")
    if found["objects"] and fields.get("confirm") != name:
        return _list_page(
            request, services, account, status=400,
            error=f"{name} is not empty: type its name to confirm that you want to delete it.",
            confirm_bucket=name,
        )  # fmt: skip
    try:
        await bucket_api.delete_bucket(services, Caller(account, ""), name, with_contents=fields.get("confirm") == name)
    except ApiError as exc:
        return _list_page(request, services, account, error=exc.message, status=exc.status)
    return redirect("/buckets")


def _words(text: str) -> tuple[str, ...]:
    return tuple(word for word in text.replace(",", " ").split() if word)


def _cors_from_form(fields: dict[str, str]) -> tuple[CorsRule, ...]:
    """The CORS table's rows (a row without origins is left out: the blank row for a new
    rule, or a rule cleared to delete it)."""
    rows = ascii_int(fields.get("cors_rows", "0"), maximum=MAX_RULES + 1) or 0
    rules = []
    for i in range(rows):
        origins = _words(fields.get(f"cors-{i}-origins", ""))
        if not origins:
            continue
        max_age_text = fields.get(f"cors-{i}-max-age", "").strip()
        max_age = ascii_int(max_age_text, maximum=MAX_AGE_LIMIT) if max_age_text else None
        if max_age_text and max_age is None:
            raise ApiError(400, "BadRequest", f"Rule {i + 1}: the cache time is a whole number of seconds.")
        rules.append(
            CorsRule(
                allowed_origins=origins,
                allowed_methods=tuple(m for m in CORS_METHOD_ORDER if fields.get(f"cors-{i}-{m}") == "on"),
                allowed_headers=_words(fields.get(f"cors-{i}-headers", "")),
                expose_headers=_words(fields.get(f"cors-{i}-expose", "")),
                max_age_seconds=max_age,
            )
        )
    return tuple(rules)


def _retention_from_form(fields: dict[str, str]) -> Retention | None:
    if fields.get("retention") != "own":
        return None
    versions = ascii_int(fields.get("keep_versions", "").strip())
    try:
        days = float(fields.get("keep_days", "").strip())
    except ValueError:
        days = -1.0
    if versions is None or not 0 <= days <= 36500:
        raise ApiError(400, "BadRequest", "Keep a whole number of versions and a number of days (0: no limit).")
    return Retention(versions, days)


async def settings(request: Request, services: RestServices) -> Response:
    account = require_account(request, services)
    name = request.path_params["name"]
    caller = Caller(account, "")
    owned_bucket(services, caller, name)  # 404 for a bucket that is not this account's
    error = None
    if request.method == "POST":
        fields = await form_of(request)
        await check_form(request, fields.get(CSRF_FIELD))
        versioning = fields.get("versioning")
        try:
            # Everything is checked before anything changes: a bad CORS row saves nothing.
            rules, keep = _cors_from_form(fields), _retention_from_form(fields)
            bucket_api.check_cors(rules)
            await bucket_api.update_bucket(
                services, caller, name, make_public=fields.get("public") == "on",
                versioning=versioning if versioning in ("Enabled", "Suspended") else None,
            )  # fmt: skip
            await bucket_api.set_cors(services, caller, name, rules)
            await bucket_api.set_retention(services, caller, name, keep)
        except ApiError as exc:
            error = exc.message
        else:
            return redirect(f"/buckets/{name}/settings?saved=1")
    bucket = owned_bucket(services, caller, name)
    return page(
        request,
        "bucket_settings.html",
        account,
        status=400 if error else 200,
        section="buckets",
        bucket=bucket,
        public=is_public_read(bucket),
        policy=bucket.settings.policy,
        cors=bucket.settings.cors,
        methods=CORS_METHOD_ORDER,
        retention=services.store.retention_for(bucket),
        own_retention=bucket.settings.retention is not None,
        error=error,
        saved=request.query_params.get("saved") == "1",
    )
