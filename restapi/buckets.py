"""Buckets through the dashboard API (`/api/buckets`): list with usage, create,
delete, and set versioning and public-read. The same engine calls as the S3 API,
so the same naming rules, plan limits and emptiness rules apply."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from core.jsonapi import ApiError, bad_request, storage_full
from restapi.auth import Caller
from restapi.dashboard import json_body, session_caller
from restapi.files import RestServices, iso, owned_bucket
from restapi.routing import json_route
from s3proxy.access import public_read
from s3proxy.access.policy import MalformedPolicy
from s3proxy.store.cors_rules import check_rules
from s3proxy.store.errors import StorageFull, StoreError
from s3proxy.store.models import Bucket, CorsRule, Retention

_ERRORS = {
    "InvalidBucketName": 400,
    "BucketAlreadyExists": 409,
    "BucketAlreadyOwnedByYou": 409,
    "BucketNotEmpty": 409,
    "TooManyBuckets": 403,
    "NoSuchBucket": 404,
    "AccessDenied": 404,
    "InvalidRequest": 400,
    "MalformedXML": 400,
}


def _bucket_json(services: RestServices, bucket: Bucket, usage: tuple[int, int] | None) -> dict[str, Any]:
    return {
        "name": bucket.name,
        "region": bucket.region,
        "versioning": bucket.versioning or "Off",
        "publicRead": public_read.is_public_read(bucket),
        "createdAt": iso(bucket.created_at),
        "bytesUsed": usage[0] if usage else 0,
        "objects": usage[1] if usage else 0,
    }


def _flag(body: dict[str, Any], name: str) -> bool | None:
    value = body.get(name)
    if value is not None and not isinstance(value, bool):
        raise bad_request(f"'{name}' must be true or false.", field=name)
    return value


def _versioning(body: dict[str, Any]) -> str | None:
    value = body.get("versioning")
    if value is not None and value not in ("Enabled", "Suspended"):
        raise bad_request('\'versioning\' must be "Enabled" or "Suspended".', field="versioning")
    return value


def _store_error(exc: Exception) -> ApiError:
    if isinstance(exc, StorageFull):
        return storage_full()
    if isinstance(exc, MalformedPolicy):  # the public-read statement would not fit the policy
        return ApiError(400, "MalformedPolicy", exc.message)
    assert isinstance(exc, StoreError)
    return ApiError(_ERRORS.get(exc.code, 400), exc.code, exc.message or exc.code)


def list_buckets(services: RestServices, account_id: str) -> list[dict[str, Any]]:
    """The account's buckets with usage, as the JSON API and the dashboard pages list them."""
    usage = services.store.usage(account_id).buckets
    return [_bucket_json(services, b, usage.get(b.name)) for b in services.store.list_buckets(account_id)]


async def create_bucket(
    services: RestServices, account_id: str, name: str, *, make_public: bool = False, versioning: str | None = None
) -> dict[str, Any]:
    try:
        policy = public_read.new_bucket_policy(name, make_public)
        bucket, created = await services.store.create_bucket(account_id, name, policy=policy)
        if not created:
            raise ApiError(409, "BucketAlreadyOwnedByYou", "You already have a bucket with this name.")
        if versioning is not None:
            bucket = await services.store.set_versioning(bucket, versioning)
    except (StoreError, MalformedPolicy) as exc:
        raise _store_error(exc) from exc
    return _bucket_json(services, bucket, None)


async def update_bucket(
    services: RestServices, caller: Caller, name: str, *, make_public: bool | None = None, versioning: str | None = None
) -> dict[str, Any]:
    try:
        bucket = owned_bucket(services, caller, name)
        if versioning is not None:
            bucket = await services.store.set_versioning(bucket, versioning)
        if make_public is not None:
            bucket = await public_read.set_public_read(services.store, bucket, make_public)
    except (StoreError, MalformedPolicy) as exc:
        raise _store_error(exc) from exc
    return _bucket_json(services, bucket, services.store.usage(caller.account.id).buckets.get(bucket.name))


def check_cors(rules: tuple[CorsRule, ...]) -> None:
    """Refuse CORS rules as PutBucketCors does (an empty set is fine: no CORS)."""
    try:
        if rules:
            check_rules(rules)
    except StoreError as exc:
        raise _store_error(exc) from exc


async def set_cors(services: RestServices, caller: Caller, name: str, rules: tuple[CorsRule, ...]) -> None:
    """Replace the bucket's CORS rules (none: no CORS), checked as PutBucketCors checks them."""
    check_cors(rules)
    bucket = owned_bucket(services, caller, name)
    try:
        await services.store.update_settings(bucket, cors=rules)
    except StoreError as exc:
        raise _store_error(exc) from exc


async def set_retention(services: RestServices, caller: Caller, name: str, keep: Retention | None) -> None:
    """The bucket's own Time Machine retention (None: its plan's), as `folio admin
    set-retention` sets it."""
    if keep is not None and (keep.keep_versions < 0 or keep.keep_days < 0):
        raise bad_request("Retention values cannot be negative.")
    bucket = owned_bucket(services, caller, name)
    try:
        await services.store.set_retention(bucket, keep)
    except StoreError as exc:
        raise _store_error(exc) from exc


async def delete_bucket(services: RestServices, caller: Caller, name: str, *, with_contents: bool = False) -> None:
    """Delete a bucket: an empty one, or with `with_contents` everything in it too (the
    dashboard asks the owner to type the name first)."""
    try:
        await services.store.delete_bucket(owned_bucket(services, caller, name), with_contents=with_contents)
    except StoreError as exc:
        raise _store_error(exc) from exc


async def buckets(request: Request, services: RestServices) -> Response:
    caller = session_caller(request, services, write=request.method != "GET")
    if request.method == "GET":
        return JSONResponse({"buckets": list_buckets(services, caller.account.id)})
    if request.method == "DELETE":
        name = request.query_params.get("name")
        if not name:
            raise bad_request("Name the bucket: DELETE /api/buckets?name=NAME.")
        await delete_bucket(services, caller, name)
        return JSONResponse({"success": True})
    body = await json_body(request)
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise bad_request("'name' must name the bucket.", field="name")
    make_public, versioning = _flag(body, "publicRead"), _versioning(body)
    if request.method == "POST":
        created = await create_bucket(
            services, caller.account.id, name, make_public=bool(make_public), versioning=versioning
        )
        return JSONResponse(created, status_code=201)
    updated = await update_bucket(services, caller, name, make_public=make_public, versioning=versioning)
    return JSONResponse(updated)


def routes(services: RestServices) -> list[Route]:
    return [json_route("/api/buckets", buckets, services, ["GET", "POST", "PATCH", "DELETE"])]
