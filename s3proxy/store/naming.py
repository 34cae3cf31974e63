"""Bucket name and object key rules, as S3 defines them."""

from __future__ import annotations

import re

from s3proxy.store.errors import InvalidBucketName, InvalidKey, KeyTooLong

MAX_KEY_BYTES = 1024
_BUCKET_CHARS = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_IP_LIKE = re.compile(r"^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$")
_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")


def check_bucket_name(name: str) -> None:
    if not _BUCKET_CHARS.match(name):
        raise InvalidBucketName(
            "Bucket names must be 3-63 characters of lowercase letters, digits, dots and hyphens, "
            "beginning and ending with a letter or digit.",
            bucket=name,
        )
    if ".." in name or ".-" in name or "-." in name:
        raise InvalidBucketName("Bucket names must not contain adjacent periods or period-hyphen pairs.")
    if _IP_LIKE.match(name):
        raise InvalidBucketName("Bucket names must not be formatted as an IP address.")
    if name.startswith(_RESERVED_PREFIXES) or name.endswith(_RESERVED_SUFFIXES):
        raise InvalidBucketName("Bucket names must not use a reserved prefix or suffix.")


def encode_key(key: str) -> bytes:
    """A key as stored: its UTF-8 bytes. Rejects what S3 rejects."""
    try:
        raw = key.encode("utf-8")
    except UnicodeEncodeError as exc:  # lone surrogates from a bad percent-encoding
        raise InvalidKey("Object key is not valid UTF-8.") from exc
    if not raw:
        raise InvalidKey("Object key must not be empty.")
    if len(raw) > MAX_KEY_BYTES:
        raise KeyTooLong(f"Your key is too long: {len(raw)} bytes, the maximum is {MAX_KEY_BYTES}.")
    if b"\x00" in raw:
        # Refused with either metadata engine (Ceph RGW and MinIO refuse it too): PostgreSQL's
        # text columns that repeat a key (share links, document assets) cannot hold a NUL.
        raise InvalidKey("Object key must not contain a NUL character.")
    return raw


def prefix_successor(prefix: bytes) -> bytes | None:
    """The smallest byte string greater than every string starting with `prefix`."""
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        return None
    return trimmed[:-1] + bytes([trimmed[-1] + 1])
