"""File ids of the REST API: stable for a bucket and key (uploading the key again
keeps its id, and the same object has the same id whether it came over S3 or REST),
opaque to clients, and safe in a URL path. They encode "bucket/key" (a bucket name
has no '/'), so resolving one needs no table; ownership is checked on every use."""

from __future__ import annotations

import base64
import binascii

from core.jsonapi import not_found

PREFIX = "f_"


def file_id(bucket: str, key: str) -> str:
    raw = f"{bucket}/{key}".encode()
    return PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def parse_file_id(value: str) -> tuple[str, str]:
    """(bucket, key); anything that is not an id of ours is simply not found."""
    if not value.startswith(PREFIX):
        raise not_found()
    text = value[len(PREFIX) :]
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        bucket, slash, key = raw.decode("utf-8").partition("/")
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise not_found() from exc
    if not slash or not bucket or not key:
        raise not_found()
    return bucket, key
