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
# With a delimiter, a query's first row may be a common prefix, which ends that query (the
# next one seeks past the prefix): after such a skip, rows are asked for a few at a time,
# twice as many each time keys keep coming one by one. PostgreSQL sends every row a query
# returns; SQLite reads only the rows iterated (and the cursor is iterated, not fetched).
BATCH_AFTER_SKIP = 8


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
    batch = max_keys + 1
    while True:
        want = min(max_keys - count + 1, batch)
        if upper is not None:
            rows = conn.execute(_SQL_BOUNDED, (bucket_id, lower, upper, want))
        else:
            rows = conn.execute(_SQL_OPEN, (bucket_id, lower, want))
        restart = False
        seen = 0
        for key, size, etag, modified, storage_class in rows:
            seen += 1
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
        rows.close()  # SQLite: ends the statement (and its read snapshot) where the loop stopped
        if truncated:
            break
        if restart:
            batch = BATCH_AFTER_SKIP
        elif seen < want:
            # The rows ran out before the page filled: nothing more.
            break
        else:
            # A whole batch of keys: continue after its last one, with a larger batch.
            lower = bytes(last) + b"\x00"
            batch *= 2
    return ListPage(entries, prefixes, truncated, last.decode("utf-8") if last is not None else None)
