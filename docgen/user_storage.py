"""`/v2/storage` (seed 000): the account's own S3-compatible bucket. Its secret is
encrypted at rest and masked on GET; every generated file is also uploaded there at
`{prefix}{filename}` with boto3, and a failed upload leaves the job successful with
the failure recorded on it."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from core.db import Migration
from core.netguard import BlockedTarget, check_url_blocking
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
    the outbound guard now, not only when it was saved (settings and DNS change)."""
    # Imported here: boto3 takes a while to import and only deliveries need it.
    import boto3
    from botocore.config import Config as BotoConfig
    from botocore.exceptions import BotoCoreError, ClientError

    key = f"{storage.prefix}{filename}"
    if storage.endpoint:
        try:
            check_url_blocking(
                storage.endpoint, allow_private=allow_private, allow_http=True, allow_loopback=allow_loopback
            )
        except BlockedTarget as exc:
            return {"status": "failed", "bucket": storage.bucket, "key": key, "error": f"endpoint refused: {exc}"}
    client = boto3.client(
        "s3",
        region_name=storage.region,
        endpoint_url=storage.endpoint or None,
        aws_access_key_id=storage.access_key_id,
        aws_secret_access_key=storage.secret_access_key,
        config=BotoConfig(connect_timeout=10, read_timeout=30, retries={"max_attempts": 2}),
    )
    try:
        client.put_object(Bucket=storage.bucket, Key=key, Body=data, ContentType=content_type, ACL=storage.acl)
    except (BotoCoreError, ClientError) as exc:
        return {"status": "failed", "bucket": storage.bucket, "key": key, "error": str(exc)[:500]}
    return {"status": "delivered", "bucket": storage.bucket, "key": key}
