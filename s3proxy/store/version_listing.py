"""Listing every version of every key (ListObjectVersions): keys in UTF-8 byte
order, versions of a key newest first, delete markers included, with prefix,
delimiter and the key/version-id markers."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from s3proxy.store.naming import prefix_successor


@dataclass(frozen=True)
class VersionEntry:
    key: str
    version_id: str
    is_latest: bool
    is_delete_marker: bool
    size: int
    etag: str
    last_modified: float
    storage_class: str
    # Who wrote it (core.acting); None for Folio itself and for old versions.
    writer: str | None = None


@dataclass
class VersionPage:
    entries: list[VersionEntry]
    common_prefixes: list[str]
    is_truncated: bool
    next_key_marker: str | None
    next_version_id_marker: str | None


_SQL = (
    "SELECT key, version_id, is_latest, is_delete_marker, size, etag, last_modified, storage_class, writer, id"
    " FROM objects WHERE bucket_id = ? AND key >= ?{older}{upper} ORDER BY key, id DESC LIMIT ?"
)
# Resuming inside a key's versions (the key-marker's, or where a batch ended): the ones older
# (smaller row id) than the marker.
_OLDER = " AND (key > ? OR id < ?)"
# As in listing.py: after a common prefix is skipped, rows are asked for a few at a time
# (doubling while versions keep coming), so a skip does not fetch a page of rows to use one.
BATCH_AFTER_SKIP = 8


def list_versions(
    conn: sqlite3.Connection,
    bucket_id: int,
    *,
    prefix: bytes,
    delimiter: bytes | None,
    key_marker: bytes | None,
    version_id_marker: str | None,
    max_keys: int,
) -> VersionPage:
    if max_keys <= 0:
        # An empty, not-truncated page, as ListObjects answers max-keys=0.
        return VersionPage([], [], False, None, None)
    upper = prefix_successor(prefix) if prefix else None
    lower = prefix
    skip_until_id: int | None = None  # within key_marker: versions older than this row id
    if key_marker is not None and key_marker >= prefix:
        if version_id_marker:
            row = conn.execute(
                "SELECT id FROM objects WHERE bucket_id = ? AND key = ? AND version_id = ?",
                (bucket_id, key_marker, version_id_marker),
            ).fetchone()
            if row is not None:
                lower, skip_until_id = key_marker, row[0]
            else:
                lower = key_marker + b"\x00"
        else:
            lower = key_marker + b"\x00"
    entries: list[VersionEntry] = []
    prefixes: list[str] = []
    truncated = False
    last: tuple[bytes, str] | None = None  # (key or common prefix, version id or "")
    count = 0
    batch = max_keys + 1
    while True:
        want = min(max_keys - count + 1, batch)
        params: list[object] = [bucket_id, lower]
        if skip_until_id is not None:
            params += [lower, skip_until_id]
        if upper is not None:
            params.append(upper)
        params.append(want)
        sql = _SQL.format(
            older=_OLDER if skip_until_id is not None else "",
            upper=" AND key < ?" if upper is not None else "",
        )
        rows = conn.execute(sql, params)
        skip_until_id = None
        restart = False
        seen = 0
        last_id = 0  # the row id of `last`, where a whole batch's successor resumes
        for *fields, row_id in rows:
            key, version_id, is_latest, is_marker, size, etag, modified, storage_class, writer = fields
            seen += 1
            key = bytes(key)
            if delimiter:
                at = key.find(delimiter, len(prefix))
                if at >= 0:
                    common = key[: at + len(delimiter)]
                    if key_marker is None or common > key_marker:
                        if count >= max_keys:
                            truncated = True
                            break
                        prefixes.append(common.decode("utf-8"))
                        count += 1
                        last = (common, "")
                    lower = prefix_successor(common) or b""
                    restart = True
                    break
            if count >= max_keys:
                truncated = True
                break
            entries.append(
                VersionEntry(
                    key.decode("utf-8"),
                    version_id,
                    bool(is_latest),
                    bool(is_marker),
                    size,
                    etag,
                    modified,
                    storage_class,
                    writer,
                )
            )
            count += 1
            last, last_id = (key, version_id), row_id
        rows.close()  # SQLite: ends the statement (and its read snapshot) where the loop stopped
        if truncated:
            break
        if restart:
            batch = BATCH_AFTER_SKIP
        elif seen < want:
            break  # the rows ran out before the page filled: nothing more
        else:
            # A whole batch of versions: continue after its last one, with a larger batch.
            assert last is not None
            lower, skip_until_id = last[0], last_id
            batch *= 2
    next_key = last[0].decode("utf-8") if truncated and last else None
    next_version = last[1] or None if truncated and last else None
    return VersionPage(entries, prefixes, truncated, next_key, next_version)
