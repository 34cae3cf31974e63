"""Share links (issue 5, "Shares"): an expiring link to a file that anyone can
download without credentials until it expires or is revoked. The link carries a
random token; the database keeps only its SHA-256. Each download is counted and
records `share.downloaded`; creating one records `share.created`.

`/api/shares` (cookie or API key): POST {"fileId"} or {"bucket", "key"}, optional
"expiresIn" seconds (up to 30 days, where presigned URLs stop at 7) and "maxDownloads";
GET lists; DELETE ?id= revokes. `GET /s/{token}` downloads."""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from core.db import Migration
from core.events import record_event
from core.jsonapi import ApiError, bad_request, not_found
from restapi.auth import Caller
from restapi.dashboard import json_body, session_caller
from restapi.files import RestServices, content_disposition, iso, owned_bucket
from restapi.ids import parse_file_id
from restapi.routing import json_route
from s3proxy.store.errors import StoreError

MIGRATIONS = [
    Migration(
        "restapi.shares",
        1,
        """
        CREATE TABLE shares (
            id TEXT PRIMARY KEY,
            token_hash TEXT NOT NULL UNIQUE,
            account_id TEXT NOT NULL,
            bucket TEXT NOT NULL,
            key TEXT NOT NULL,
            created_at REAL NOT NULL,
            expires_at REAL NOT NULL,
            revoked_at REAL,
            downloads INTEGER NOT NULL DEFAULT 0
        ) WITHOUT ROWID;
        CREATE INDEX shares_by_account ON shares(account_id, created_at);
        """,
    ),
    Migration(
        "restapi.shares",
        2,
        """
        -- An optional download limit: the link stops working after that many downloads.
        ALTER TABLE shares ADD COLUMN max_downloads INTEGER;
        """,
    ),
    Migration(
        "restapi.shares",
        3,
        """
        -- When a link's last allowed download happened: housekeeping removes used-up links
        -- a grace period after it, as it does expired and revoked ones (links used up before
        -- this migration count from now).
        ALTER TABLE shares ADD COLUMN used_up_at REAL;
        UPDATE shares SET used_up_at = (julianday('now') - 2440587.5) * 86400.0
            WHERE max_downloads IS NOT NULL AND downloads >= max_downloads;
        CREATE INDEX shares_by_expiry ON shares(expires_at);
        CREATE INDEX shares_revoked ON shares(revoked_at) WHERE revoked_at IS NOT NULL;
        CREATE INDEX shares_used_up ON shares(used_up_at) WHERE used_up_at IS NOT NULL;
        """,
        postgres="""
        ALTER TABLE shares ADD COLUMN used_up_at DOUBLE PRECISION;
        UPDATE shares SET used_up_at = extract(epoch FROM now())
            WHERE max_downloads IS NOT NULL AND downloads >= max_downloads;
        CREATE INDEX shares_by_expiry ON shares(expires_at);
        CREATE INDEX shares_revoked ON shares(revoked_at) WHERE revoked_at IS NOT NULL;
        CREATE INDEX shares_used_up ON shares(used_up_at) WHERE used_up_at IS NOT NULL;
        """,
    ),
]

DEFAULT_SECONDS = 7 * 86400
MAX_SECONDS = 30 * 86400
_COLUMNS = "id, account_id, bucket, key, created_at, expires_at, revoked_at, downloads, max_downloads"
MAX_DOWNLOAD_LIMIT = 1_000_000


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _share_json(request: Request, row: tuple, token: str | None = None) -> dict[str, Any]:
    share_id, _account, bucket, key, created, expires, revoked, downloads, max_downloads = row
    out: dict[str, Any] = {
        "id": share_id,
        "bucket": bucket,
        "key": key,
        "createdAt": iso(created),
        "expiresAt": iso(expires),
        "revoked": revoked is not None,
        "expired": expires < time.time(),
        "downloads": downloads,
        "maxDownloads": max_downloads,
    }
    if token is not None:  # the link exists only in this answer
        out["token"] = token
        out["url"] = str(request.base_url).rstrip("/") + f"/s/{token}"
    return out


def prune_shares(conn: sqlite3.Connection, dead_before: float, limit: int) -> int:
    """Delete up to `limit` links that stopped working before `dead_before`: expired,
    revoked or used up (one batch of housekeeping; a dead link serves nothing, and the
    dashboard lists it until then). Returns how many went."""
    return conn.execute(
        "DELETE FROM shares WHERE id IN (SELECT id FROM shares"
        " WHERE expires_at < ? OR revoked_at < ? OR used_up_at < ? LIMIT ?)",
        (dead_before, dead_before, dead_before, limit),
    ).rowcount


def list_shares(request: Request, services: RestServices, account_id: str) -> list[dict[str, Any]]:
    """The account's links, newest first, with their download counts (never a token)."""
    rows = services.store.db.read(
        lambda c: c.execute(
            f"SELECT {_COLUMNS} FROM shares WHERE account_id = ? ORDER BY created_at DESC", (account_id,)
        ).fetchall()
    )
    return [_share_json(request, row) for row in rows]


async def revoke_share(services: RestServices, account_id: str, share_id: str) -> None:
    now = time.time()
    done = await services.store.db.write(
        lambda c: c.execute(
            "UPDATE shares SET revoked_at = ? WHERE id = ? AND account_id = ? AND revoked_at IS NULL",
            (now, share_id, account_id),
        ).rowcount
    )
    if not done:
        raise not_found("No such share in your account.")


async def create_share(
    request: Request,
    services: RestServices,
    caller: Caller,
    bucket_name: str,
    key: str,
    expires_in: object = DEFAULT_SECONDS,
    max_downloads: object = None,
) -> dict[str, Any]:
    """A new link to the current version of a file; its URL is in this answer only."""
    if isinstance(expires_in, bool) or not isinstance(expires_in, int) or not 1 <= expires_in <= MAX_SECONDS:
        raise bad_request(f"'expiresIn' must be 1 to {MAX_SECONDS} seconds.", field="expiresIn")
    if max_downloads is not None and (
        isinstance(max_downloads, bool)
        or not isinstance(max_downloads, int)
        or not 1 <= max_downloads <= MAX_DOWNLOAD_LIMIT
    ):
        raise bad_request(f"'maxDownloads' must be 1 to {MAX_DOWNLOAD_LIMIT}, or absent.", field="maxDownloads")
    account_id = caller.account.id
    bucket = owned_bucket(services, caller, bucket_name)
    try:
        services.store.head_object(bucket, key)
    except StoreError as exc:
        raise not_found() from exc
    token = secrets.token_urlsafe(32)
    now = time.time()
    row = ("shr_" + uuid.uuid4().hex[:20], account_id, bucket.name, key, now, now + expires_in, None, 0, max_downloads)

    def insert(conn: sqlite3.Connection) -> None:
        conn.execute(
            "INSERT INTO shares (id, token_hash, account_id, bucket, key, created_at, expires_at, downloads,"
            " max_downloads) VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?)",
            (row[0], _hash(token), account_id, bucket.name, key, now, now + expires_in, max_downloads),
        )
        payload = {"shareId": row[0], "bucket": bucket.name, "key": key, "expiresAt": iso(now + expires_in)}
        record_event(conn, account_id, "share.created", payload, now)

    await services.store.db.write(insert)
    return _share_json(request, row, token)


async def shares(request: Request, services: RestServices) -> Response:
    caller = session_caller(request, services, write=request.method != "GET")
    account_id = caller.account.id
    if request.method == "GET":
        return JSONResponse({"shares": list_shares(request, services, account_id)})
    if request.method == "DELETE":
        share_id = request.query_params.get("id")
        if not share_id:
            raise bad_request("Name the share: DELETE /api/shares?id=...")
        await revoke_share(services, account_id, share_id)
        return JSONResponse({"success": True})
    body = await json_body(request)
    if isinstance(body.get("fileId"), str):
        bucket_name, key = parse_file_id(body["fileId"])
    elif isinstance(body.get("bucket"), str) and isinstance(body.get("key"), str):
        bucket_name, key = body["bucket"], body["key"]
    else:
        raise bad_request("Name the file: 'fileId', or 'bucket' and 'key'.")
    created = await create_share(
        request, services, caller, bucket_name, key, body.get("expiresIn", DEFAULT_SECONDS), body.get("maxDownloads")
    )
    return JSONResponse(created, status_code=201)


async def download(request: Request, services: RestServices) -> Response:
    """Anyone with the link, no credentials; a dead link says nothing about the file."""
    token = request.path_params["token"]
    db = services.store.db
    row = db.read(
        lambda c: c.execute(f"SELECT {_COLUMNS} FROM shares WHERE token_hash = ?", (_hash(token),)).fetchone()
    )
    now = time.time()
    if row is None or row[6] is not None or row[5] < now:
        raise ApiError(404, "NotFound", "This link does not exist, has expired or was revoked.")
    share_id, account_id, bucket_name, key = row[0], row[1], row[2], row[3]
    bucket = services.store.bucket(bucket_name)
    if bucket is None or bucket.account_id != account_id:
        raise ApiError(404, "NotFound", "This link does not exist, has expired or was revoked.")
    try:
        reader = services.store.open_object(bucket, key)
    except StoreError as exc:
        raise ApiError(404, "NotFound", "The shared file no longer exists.") from exc
    version = reader.version

    def count(conn: sqlite3.Connection) -> int | None:
        # Counted and checked against the limit in one statement: two downloads racing
        # for the last one cannot both get it.
        # The download that reaches the limit stamps used_up_at (housekeeping's clock).
        counted = conn.execute(
            "UPDATE shares SET downloads = downloads + 1,"
            " used_up_at = CASE WHEN downloads + 1 >= max_downloads THEN ? ELSE used_up_at END"
            " WHERE id = ? AND (max_downloads IS NULL OR downloads < max_downloads) RETURNING downloads",
            (now, share_id),
        ).fetchone()
        if counted is None:
            return None
        downloads = counted[0]
        payload = {"shareId": share_id, "bucket": bucket_name, "key": key, "downloads": downloads}
        record_event(conn, account_id, "share.downloaded", payload, now)
        return downloads

    try:
        counted = await db.write(count)
    except BaseException:
        reader.close()
        raise
    if counted is None:
        reader.close()
        raise ApiError(404, "NotFound", "This link has reached its download limit.")

    async def stream() -> AsyncIterator[bytes]:
        try:
            if version.size:
                async for chunk in reader.iter_range(0, version.size - 1):
                    yield bytes(chunk)
        finally:
            reader.close()

    headers = {
        "content-type": version.content_type or "application/octet-stream",
        "content-length": str(version.size),
        "content-disposition": content_disposition(key),
        "etag": f'"{version.etag}"',
        "cache-control": "private, no-store",
    }
    return StreamingResponse(stream(), headers=headers)


def routes(services: RestServices) -> list[Route]:
    return [
        json_route("/api/shares", shares, services, ["GET", "POST", "DELETE"]),
        json_route("/s/{token}", download, services, ["GET"]),
    ]
