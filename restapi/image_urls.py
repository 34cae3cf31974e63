"""`POST /api/img/sign` (cookie or API key): a signed, expiring URL for a private
image, by the recipe in docs/image-transforms.md ("Signed URLs"). It is signed with
the caller's access key (a dashboard session: the account's newest key), so it stops
working when that key is revoked. Parameters are checked when the URL is used."""

from __future__ import annotations

import math
import time
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from core import urlsign
from core.jsonapi import ApiError, bad_request
from restapi.auth import Caller
from restapi.dashboard import json_body, session_caller
from restapi.files import RestServices, owned_bucket
from restapi.routing import json_route

DEFAULT_SECONDS = 3600


def _params(raw: object) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise bad_request('"params" must be an object such as {"w": 400, "fit": "cover"}.')
    params: dict[str, str] = {}
    for name, value in raw.items():
        if name in (urlsign.EXPIRES, urlsign.KEY_ID, urlsign.SIGNATURE):
            raise bad_request(f"{name!r} is set by the signature, not by params.", parameter=name)
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise bad_request(f"params.{name} must be a string or a number.", parameter=name)
        params[name] = f"{value:g}" if isinstance(value, float) else str(value)
    return params


async def sign(request: Request, services: RestServices) -> Response:
    caller = session_caller(request, services, write=True)
    body = await json_body(request)
    bucket_name, key = body.get("bucket"), body.get("key")
    if not isinstance(bucket_name, str) or not isinstance(key, str) or not key:
        raise bad_request('Send {"bucket": "...", "key": "...", "params": {...}, "expiresIn": 3600}.')
    bucket = owned_bucket(services, caller, bucket_name)
    longest = services.config.images.max_signed_seconds
    expires_in = body.get("expiresIn", DEFAULT_SECONDS)
    if (
        isinstance(expires_in, bool)
        or not isinstance(expires_in, int | float)
        or not 1 <= expires_in <= longest
    ):
        raise bad_request(f"expiresIn is a number of seconds from 1 to {longest}.", parameter="expiresIn")
    access_key, secret = signing_key(services, caller)
    expires = int(time.time() + math.ceil(expires_in))
    url = signed_image_url(access_key, secret, bucket.name, key, _params(body.get("params")), expires)
    base = str(request.base_url).rstrip("/")
    return JSONResponse({"url": f"{base}{url}", "expires": expires})


def signing_key(services: RestServices, caller: Caller) -> tuple[str, str]:
    """The access key (and its secret) that signs the caller's image URLs: the one it
    called with, or for a dashboard session the account's newest key."""
    access_key = caller.access_key
    if not access_key:
        keys = services.accounts.list_keys(caller.account.id)
        if not keys:
            raise ApiError(409, "NoAccessKey", "Create an access key first: signed URLs are signed with one.")
        access_key = max(keys, key=lambda k: k.created_at).access_key
    pair = services.accounts.lookup_key(access_key)
    if pair is None:
        raise ApiError(409, "NoAccessKey", "The signing key was revoked.")
    return access_key, pair[1]


def signed_image_url(
    access_key: str, secret: str, bucket: str, key: str, params: dict[str, str], expires: int
) -> str:
    """The path and query of a signed `/api/img` URL (no scheme and host)."""
    path = f"/api/img/{bucket}/{key}"
    query = urlsign.signed_query(secret, access_key, path, params, expires)
    return f"/api/img/{quote(bucket)}/{quote(key)}?{query}"


def routes(services: RestServices) -> list[Route]:
    return [json_route("/api/img/sign", sign, services, ["POST"])]
