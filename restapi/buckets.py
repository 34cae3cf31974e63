"""Buckets through the dashboard API (`/api/buckets`): list with usage, create,
delete, and set versioning and public-read. The same engine calls as the S3 API,
so the same naming rules, plan limits and emptiness rules apply."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from core.jsonapi import ApiError, bad_request, storage_full
from restapi.dashboard import json_body, session_caller
from restapi.files import RestServices, iso, owned_bucket
from restapi.routing import json_route
from s3proxy.access import public_read
from s3proxy.access.policy import MalformedPolicy
from s3proxy.store.errors import StorageFull, StoreError
from s3proxy.store.models import Bucket

_ERRORS = {
    "InvalidBucketName": 400,
    "BucketAlreadyExists": 409,
    "BucketAlreadyOwnedByYou": 409,
    "BucketNotEmpty": 409,
    "TooManyBuckets": 403,
    "NoSuchBucket": 404,
    "AccessDenied": 404,
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


async def buckets(request: Request, services: RestServices) -> Response:
    caller = session_caller(request, services, write=request.method != "GET")
    account_id = caller.account.id
    store = services.store
    try:
        if request.method == "GET":
            usage = store.usage(account_id).buckets
            listed = store.list_buckets(account_id)
            return JSONResponse({"buckets": [_bucket_json(services, b, usage.get(b.name)) for b in listed]})
        if request.method == "DELETE":
            name = request.query_params.get("name")
            if not name:
                raise bad_request("Name the bucket: DELETE /api/buckets?name=NAME.")
            await store.delete_bucket(owned_bucket(services, caller, name))
            return JSONResponse({"success": True})
        body = await json_body(request)
        name = body.get("name")
        if not isinstance(name, str) or not name:
            raise bad_request("'name' must name the bucket.", field="name")
        make_public, versioning = _flag(body, "publicRead"), _versioning(body)
        if request.method == "POST":
            policy = public_read.new_bucket_policy(name, bool(make_public))
            bucket, created = await store.create_bucket(account_id, name, policy=policy)
            if not created:
                raise ApiError(409, "BucketAlreadyOwnedByYou", "You already have a bucket with this name.")
            status = 201
        else:  # PATCH
            bucket = owned_bucket(services, caller, name)
            status = 200
        if versioning is not None:
            bucket = await store.set_versioning(bucket, versioning)
        if make_public is not None:
            bucket = await public_read.set_public_read(store, bucket, make_public)
        usage = store.usage(account_id).buckets.get(bucket.name)
        return JSONResponse(_bucket_json(services, bucket, usage), status_code=status)
    except MalformedPolicy as exc:  # the public-read statement would not fit the policy
        raise ApiError(400, "MalformedPolicy", exc.message) from exc
    except StoreError as exc:
        if isinstance(exc, StorageFull):
            raise storage_full() from exc
        raise ApiError(_ERRORS.get(exc.code, 400), exc.code, exc.message or exc.code) from exc


def routes(services: RestServices) -> list[Route]:
    return [json_route("/api/buckets", buckets, services, ["GET", "POST", "PATCH", "DELETE"])]
