"""`/v2/storage` (seed 000): the account's own S3-compatible bucket. Its secret is
encrypted at rest and masked on GET; every generated file is also uploaded there at
`{prefix}{filename}` with boto3, and a failed upload leaves the job successful with
the failure recorded on it.

boto3 builds and signs the request (SigV4, checksums, retries, error parsing stay
botocore's), but does not send it: its own HTTP stack would connect by name, after
the outbound guard resolved that name separately. A `before-send` handler sends the
signed request through the pinned client instead (`core/pinned_http.py`), which
connects to the address the guard checked, with the endpoint's own Host header and
TLS server name."""

from __future__ import annotations

import sqlite3
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from core.db import Migration
from core.netguard import BlockedTarget, check_url_syntax
from core.pinned_http import pinned_client
from core.secrets import SecretBox

MIGRATIONS = [
    Migration(
        "docgen.storage",
        1,
        """
        CREATE TABLE docgen_storage (
            account_id TEXT PRIMARY KEY,
            bucket TEXT NOT NULL,
            region TEXT NOT NULL,
            access_key_id TEXT NOT NULL,
            secret_enc BLOB NOT NULL,
            endpoint TEXT,
            prefix TEXT NOT NULL,
            acl TEXT NOT NULL,
            updated_at REAL NOT NULL
        ) WITHOUT ROWID;
        """,
    )
]

ACLS = ("private", "public-read", "public-read-write", "authenticated-read", "bucket-owner-read",
        "bucket-owner-full-control")


@dataclass(frozen=True)
class UserStorage:
    bucket: str
    region: str
    access_key_id: str
    secret_access_key: str
    endpoint: str | None
    prefix: str
    acl: str

    def masked(self) -> dict[str, Any]:
        key = self.access_key_id
        shown = f"{key[:4]}...{key[-4:]}" if len(key) > 8 else "****"
        return {
            "bucket": self.bucket,
            "region": self.region,
            "accessKeyId": shown,
            "secretAccessKey": "****",
            "endpoint": self.endpoint,
            "prefix": self.prefix,
            "acl": self.acl,
        }


def save(conn: sqlite3.Connection, box: SecretBox, account_id: str, storage: UserStorage) -> None:
    conn.execute(
        "INSERT INTO docgen_storage (account_id, bucket, region, access_key_id, secret_enc, endpoint, prefix, acl,"
        " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(account_id) DO UPDATE SET bucket = excluded.bucket,"
        " region = excluded.region, access_key_id = excluded.access_key_id, secret_enc = excluded.secret_enc,"
        " endpoint = excluded.endpoint, prefix = excluded.prefix, acl = excluded.acl, updated_at = excluded.updated_at",
        (
            account_id, storage.bucket, storage.region, storage.access_key_id,
            box.encrypt(storage.secret_access_key, f"docgen-storage:{account_id}"), storage.endpoint,
            storage.prefix, storage.acl, time.time(),
        ),
    )


def load(conn: sqlite3.Connection, box: SecretBox, account_id: str) -> UserStorage | None:
    row = conn.execute(
        "SELECT bucket, region, access_key_id, secret_enc, endpoint, prefix, acl FROM docgen_storage"
        " WHERE account_id = ?",
        (account_id,),
    ).fetchone()
    if row is None:
        return None
    secret = box.decrypt(row[3], f"docgen-storage:{account_id}")
    return UserStorage(row[0], row[1], row[2], secret, row[4], row[5], row[6])


def delete(conn: sqlite3.Connection, account_id: str) -> bool:
    return bool(conn.execute("DELETE FROM docgen_storage WHERE account_id = ?", (account_id,)).rowcount)


def upload(
    storage: UserStorage, filename: str, data: bytes, content_type: str, *, allow_private: bool, allow_loopback: bool
) -> dict[str, Any]:
    """In a thread: PUT the file; the outcome as recorded on the job. The endpoint passes
    the outbound guard now, as the upload connects, not only when it was saved
    (settings and DNS change)."""
    key = f"{storage.prefix}{filename}"

    def put(client: Any) -> None:
        client.put_object(Bucket=storage.bucket, Key=key, Body=data, ContentType=content_type, ACL=storage.acl)

    error = _with_client(storage, put, allow_private=allow_private, allow_loopback=allow_loopback)
    if error is not None:
        return {"status": "failed", "bucket": storage.bucket, "key": key, "error": error}
    return {"status": "delivered", "bucket": storage.bucket, "key": key}


def check_connection(storage: UserStorage, *, allow_private: bool, allow_loopback: bool) -> str | None:
    """In a thread: PUT a small object under the prefix and delete it again, as a
    delivery would; None when both worked, else what went wrong."""
    key = f"{storage.prefix}folio-connection-test-{uuid.uuid4().hex[:12]}.txt"

    def put_and_delete(client: Any) -> None:
        client.put_object(Bucket=storage.bucket, Key=key, Body=b"Folio connection test", ContentType="text/plain")
        client.delete_object(Bucket=storage.bucket, Key=key)

    return _with_client(storage, put_and_delete, allow_private=allow_private, allow_loopback=allow_loopback)


def _with_client(storage: UserStorage, action: Any, *, allow_private: bool, allow_loopback: bool) -> str | None:
    """Run `action(s3_client)` against the storage through the pinned, guarded
    connection; the error's text, or None."""
    # Imported here: boto3 takes a while to import and only deliveries need it.
    import boto3
    from botocore.config import Config as BotoConfig
    from botocore.exceptions import BotoCoreError, ClientError

    if storage.endpoint:
        try:
            check_url_syntax(storage.endpoint, allow_http=True)
        except BlockedTarget as exc:
            return f"endpoint refused: {exc}"
    client = boto3.client(
        "s3",
        region_name=storage.region,
        endpoint_url=storage.endpoint or None,
        aws_access_key_id=storage.access_key_id,
        aws_secret_access_key=storage.secret_access_key,
        config=BotoConfig(connect_timeout=10, read_timeout=30, retries={"max_attempts": 2}),
    )
    timeout = httpx.Timeout(30, connect=10)
    with pinned_client(allow_private=allow_private, allow_loopback=allow_loopback, timeout=timeout) as http:
        client.meta.events.register("before-send.s3", lambda request, **_: send_pinned(http, request))
        try:
            action(client)
        except BlockedTarget as exc:
            return f"endpoint refused: {exc}"
        except (BotoCoreError, ClientError) as exc:
            return str(exc)[:500]
    return None


_NOT_SENT = {"expect", "transfer-encoding"}
# A PutObject answer is a few hundred bytes; an endpoint streaming more is not heard out.
MAX_RESPONSE_BYTES = 1 << 20


class _Body:
    """A response body as botocore reads it (`AWSResponse.raw.stream()`)."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_: Any) -> Any:
        yield self.data


def send_pinned(http: httpx.Client, request: Any) -> Any:
    """Send botocore's prepared, signed request with the pinned client; botocore's
    own connection errors for httpx's, so its retries and messages apply."""
    from botocore.awsrequest import AWSResponse
    from botocore.exceptions import (
        ConnectTimeoutError,
        EndpointConnectionError,
        HTTPClientError,
        ReadTimeoutError,
    )

    body = request.body
    if hasattr(body, "read"):
        body = body.read()
    elif isinstance(body, str):
        body = body.encode()
    # Left out, neither being part of the SigV4 signature: `Expect: 100-continue`
    # (httpx does not wait for a 100) and `Transfer-Encoding: chunked` (for an
    # aws-chunked body over https; the encoded body is sent whole, with its length).
    headers = [(name, value) for name, value in request.headers.items() if name.lower() not in _NOT_SENT]
    try:
        with http.stream(request.method, request.url, headers=headers, content=body or b"") as response:
            answer = bytearray()
            for chunk in response.iter_bytes():
                answer += chunk
                if len(answer) > MAX_RESPONSE_BYTES:
                    raise HTTPClientError(error=f"the storage endpoint answered over {MAX_RESPONSE_BYTES} bytes")
    except httpx.ConnectTimeout as exc:
        raise ConnectTimeoutError(endpoint_url=request.url, error=exc) from exc
    except httpx.ConnectError as exc:
        raise EndpointConnectionError(endpoint_url=request.url, error=exc) from exc
    except httpx.TimeoutException as exc:
        raise ReadTimeoutError(endpoint_url=request.url, error=exc) from exc
    except httpx.HTTPError as exc:
        raise HTTPClientError(error=exc) from exc
    return AWSResponse(request.url, response.status_code, response.headers.multi_items(), _Body(bytes(answer)))
