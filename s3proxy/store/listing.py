"""Listing current objects in UTF-8 byte order, with prefix, delimiter (common
prefixes) and a start position; the engine half of ListObjects v1 and v2."""

from __future__ import annotations

import sqlite3

from s3proxy.store.models import ListEntry, ListPage
from s3proxy.store.naming import prefix_successor

_SQL = (
    "SELECT key, size, etag, last_modified, storage_class FROM objects"
    " WHERE bucket_id = ? AND is_latest = 1 AND key >= ?{upper} AND is_delete_marker = 0"
    " ORDER BY key LIMIT ?"
)
_SQL_BOUNDED = _SQL.format(upper=" AND key < ?")
_SQL_OPEN = _SQL.format(upper="")


def list_current(
    conn: sqlite3.Connection,
    bucket_id: int,
    *,
    prefix: bytes,
    delimiter: bytes | None,
    after: bytes | None,
    max_keys: int,
) -> ListPage:
    """Up to `max_keys` keys and common prefixes (together) after `after`.

    As S3: a common prefix that sorts at or before `after` is not returned again and
    the keys under it are skipped. That is also how a page that ended on a common
    prefix continues.
    """
    if max_keys <= 0:
        # As S3 (and moto): max-keys=0 is an empty page that is not truncated.
        return ListPage([], [], False, None)
    lower = prefix
    if after is not None and after >= prefix:
        lower = after + b"\x00"
    upper = prefix_successor(prefix) if prefix else None

    entries: list[ListEntry] = []
    prefixes: list[str] = []
    count = 0
    last: bytes | None = None
    truncated = False
    plen = len(prefix)
    while True:
        want = max_keys - count + 1
        if upper is not None:
            rows = conn.execute(_SQL_BOUNDED, (bucket_id, lower, upper, want)).fetchall()
        else:
            rows = conn.execute(_SQL_OPEN, (bucket_id, lower, want)).fetchall()
        restart = False
        for key, size, etag, modified, storage_class in rows:
            if count >= max_keys:
                truncated = True
                break
            if delimiter:
                at = key.find(delimiter, plen)
                if at >= 0:
                    common = key[: at + len(delimiter)]
                    if after is None or common > after:
                        prefixes.append(common.decode("utf-8"))
                        count += 1
                        last = common
                    # Skip every other key under this common prefix in one seek. (UTF-8
                    # never contains 0xFF, so a successor always exists.)
                    lower = prefix_successor(common) or b""
                    restart = True
                    break
            entries.append(ListEntry(key.decode("utf-8"), size, etag, modified, storage_class))
            count += 1
            last = key
        if truncated or not restart:
            # Without a restart, the rows ran out before the page filled: nothing more.
            break
    return ListPage(entries, prefixes, truncated, last.decode("utf-8") if last is not None else None)
