"""Time Machine retention: prune noncurrent versions past a bucket's limits (the
newest `keep_versions` noncurrent versions of a key stay, none longer than
`keep_days` after it stopped being current). The current version is never touched.

A version stops being current when its successor is written, so "noncurrent since"
is the successor's Last-Modified, as S3's NoncurrentDays counts it. Versions are
ordered by row id: the newest row of a key is always its current version."""

from __future__ import annotations

import sqlite3

from s3proxy.store.models import Retention, segments_from_json
from s3proxy.store.versions import release_blobs

DAY = 86400.0


def _doomed_indices(rows: list[tuple[int, float]], retention: Retention, now: float) -> list[int]:
    """rows: (is_latest, last_modified) of one key's versions, newest first. The
    positions of the versions retention removes."""
    cutoff = now - retention.keep_days * DAY if retention.keep_days else None
    doomed = []
    noncurrent = 0
    for index, (is_latest, _modified) in enumerate(rows):
        if is_latest or index == 0:
            continue
        noncurrent += 1
        too_many = retention.keep_versions and noncurrent > retention.keep_versions
        too_old = cutoff is not None and rows[index - 1][1] < cutoff
        if too_many or too_old:
            doomed.append(index)
    return doomed


def _doomed(
    rows: list[tuple[int, int, float, str | None]], retention: Retention, now: float
) -> list[tuple[int, str | None]]:
    """rows: (id, is_latest, last_modified, segments), newest first."""
    indices = _doomed_indices([(r[1], r[2]) for r in rows], retention, now)
    return [(rows[i][0], rows[i][3]) for i in indices]


def bytes_freed_by_next_write(
    conn: sqlite3.Connection, bucket_id: int, key: bytes, versioning: str, retention: Retention | None, now: float
) -> int:
    """What a new version of `key` would free in the same transaction: the null
    version it replaces (unversioned and Suspended buckets) and the versions retention
    then prunes. Lets a quota reservation admit an overwrite that fits once those go."""
    rows = conn.execute(
        "SELECT is_latest, last_modified, size, version_id FROM objects WHERE bucket_id = ? AND key = ?"
        " ORDER BY id DESC",
        (bucket_id, key),
    ).fetchall()
    freed = 0
    if versioning != "Enabled":
        freed += sum(r[2] for r in rows if r[3] == "null")
        rows = [r for r in rows if r[3] != "null"]
    if retention is not None and rows:
        simulated = [(1, now)] + [(0, r[1]) for r in rows]
        freed += sum(rows[i - 1][2] for i in _doomed_indices(simulated, retention, now))
    return freed


def _remove(conn: sqlite3.Connection, doomed: list[tuple[int, str | None]]) -> list[str]:
    freed: list[str] = []
    for row_id, segments in doomed:
        conn.execute("DELETE FROM objects WHERE id = ?", (row_id,))
        freed += release_blobs(conn, [s.blob_id for s in segments_from_json(segments)])
    return freed


def prune_key(
    conn: sqlite3.Connection, bucket_id: int, key: bytes, retention: Retention, now: float
) -> list[str]:
    """Prune one key's versions (after a write to it). Returns the blobs freed."""
    rows = conn.execute(
        "SELECT id, is_latest, last_modified, segments FROM objects WHERE bucket_id = ? AND key = ?"
        " ORDER BY id DESC",
        (bucket_id, key),
    ).fetchall()
    if len(rows) < 2:
        return []
    return _remove(conn, _doomed(rows, retention, now))


def prune_bucket(
    conn: sqlite3.Connection, bucket_id: int, retention: Retention, now: float, *, after: bytes, limit: int
) -> tuple[list[str], int, bytes | None]:
    """Prune keys after `after` in key order, reading at most about `limit` rows (the
    background task goes through a bucket in such batches, one transaction each).
    Returns (blobs freed, versions removed, the last key done or None at the end)."""
    rows = conn.execute(
        "SELECT key, id, is_latest, last_modified, segments FROM objects WHERE bucket_id = ? AND key > ?"
        " ORDER BY key, id DESC LIMIT ?",
        (bucket_id, after, limit),
    ).fetchall()
    if not rows:
        return [], 0, None
    if len(rows) == limit:
        # The last key may be cut short: finish it in full (its versions are few).
        last_key = bytes(rows[-1][0])
        rows = [r for r in rows if bytes(r[0]) != last_key]
        rows += conn.execute(
            "SELECT key, id, is_latest, last_modified, segments FROM objects WHERE bucket_id = ? AND key = ?"
            " ORDER BY id DESC",
            (bucket_id, last_key),
        ).fetchall()
    freed: list[str] = []
    removed = 0
    start = 0
    while start < len(rows):
        end = start
        while end < len(rows) and rows[end][0] == rows[start][0]:
            end += 1
        if end - start > 1:
            doomed = _doomed([r[1:] for r in rows[start:end]], retention, now)
            freed += _remove(conn, doomed)
            removed += len(doomed)
        start = end
    return freed, removed, bytes(rows[-1][0])
