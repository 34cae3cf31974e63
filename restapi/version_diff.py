"""The Time Machine's model below the dashboard: one key's history with what retention
will do to each version, and the comparison of two versions.

A comparison never reads more than TEXT_BOUND bytes of a version: text up to the bound
is diffed line by line on the server; images and PDFs are compared as pictures the
page gets from /api/img (so no bytes pass through here); anything else (binary, over
the bound, or two different kinds) is compared by its metadata alone.

The diff is the standard library's `difflib` (SequenceMatcher, the algorithm behind
`diff -u`'s output format, with its "popular line" heuristic that keeps long files
fast): no dependency to keep, and with inputs bounded to 2 MiB a diff takes well under
a second in practice. It still runs in a worker thread (asyncio.to_thread) so a slow
one never stalls the event loop, and its output is cut at MAX_DIFF_LINES rows."""

from __future__ import annotations

import asyncio
import difflib
from dataclasses import dataclass, field
from datetime import UTC, datetime

from core.jsonapi import bad_request, not_found
from restapi.browse import as_text, preview_kind
from s3proxy.store.engine import Store
from s3proxy.store.errors import ObjectIsDeleteMarker, StoreError
from s3proxy.store.models import Bucket, ObjectVersion, Retention
from s3proxy.store.version_listing import VersionEntry

TEXT_BOUND = 2 * 1024 * 1024
MAX_DIFF_LINES = 20_000
CONTEXT_LINES = 3
MAX_HISTORY = 1000
DAY = 86400.0


# --- history ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class HistoryRow:
    entry: VersionEntry
    # The version's number as /api/versions counts it (oldest kept = 1); delete markers have none.
    number: int | None
    retention: str


def key_history(store: Store, bucket: Bucket, key: str) -> list[VersionEntry]:
    """Every version of `key`, delete markers included, newest first."""
    page = store.list_versions(bucket, prefix=key, max_keys=MAX_HISTORY)
    return [entry for entry in page.entries if entry.key == key]


def _day(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


def retention_note(entries: list[VersionEntry], index: int, keep: Retention | None) -> str:
    """How retention treats entries[index] (newest first), by the rule of
    s3proxy.store.retention: the current version stays; a noncurrent one goes once more
    than `keep_versions` newer noncurrent versions exist, or `keep_days` after it
    stopped being current (when its successor was written)."""
    if index == 0:
        return "Current: never pruned."
    if keep is None:
        return "Kept (versioning is off, nothing is pruned)."
    parts = []
    if keep.keep_days:
        until = entries[index - 1].last_modified + keep.keep_days * DAY
        parts.append(f"kept until {_day(until)}")
    if keep.keep_versions:
        left = keep.keep_versions - index + 1
        if left <= 0:
            parts.append("past the version limit: pruned at the next write")
        else:
            parts.append(f"pruned after {left} newer version{'s' if left != 1 else ''}")
    if not parts:
        return "Kept for good (no retention limit)."
    text = ", or ".join(parts)
    return text[0].upper() + text[1:] + (", whichever comes first." if len(parts) > 1 else ".")


def history_rows(store: Store, bucket: Bucket, key: str) -> list[HistoryRow]:
    entries = key_history(store, bucket, key)
    keep = store.retention_for(bucket) if bucket.versioning else None
    number = sum(not entry.is_delete_marker for entry in entries)
    rows = []
    for index, entry in enumerate(entries):
        rows.append(
            HistoryRow(
                entry, None if entry.is_delete_marker else number, retention_note(entries, index, keep)
            )
        )
        number -= 0 if entry.is_delete_marker else 1
    return rows


# --- comparison ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DiffLine:
    kind: str  # "add", "del", "ctx" or "hunk"
    old: int | None  # 1-based line numbers
    new: int | None
    text: str


@dataclass(frozen=True)
class MetaRow:
    name: str
    a: str
    b: str

    @property
    def differs(self) -> bool:
        return self.a != self.b


@dataclass
class Comparison:
    a: ObjectVersion
    b: ObjectVersion
    mode: str  # "text", "image", "pdf" or "meta"
    reason: str = ""  # why a "meta" comparison (or "" when the kinds call for it)
    meta: list[MetaRow] = field(default_factory=list)
    lines: list[DiffLine] = field(default_factory=list)
    added: int = 0
    removed: int = 0
    truncated: bool = False

    @property
    def identical(self) -> bool:
        return self.a.etag == self.b.etag and self.a.size == self.b.size


def _version(store: Store, bucket: Bucket, key: str, version_id: str) -> ObjectVersion:
    try:
        return store.head_object(bucket, key, version_id)
    except ObjectIsDeleteMarker as exc:
        raise bad_request("That version is a delete marker: it has no content to compare.") from exc
    except StoreError as exc:
        raise not_found("No such version.") from exc


def metadata_rows(a: ObjectVersion, b: ObjectVersion) -> list[MetaRow]:
    rows = [
        MetaRow("Size (bytes)", f"{a.size:,}", f"{b.size:,}"),
        MetaRow(
            "Type", a.content_type or "application/octet-stream", b.content_type or "application/octet-stream"
        ),
        MetaRow("ETag", f'"{a.etag}"', f'"{b.etag}"'),
        MetaRow("Last modified", _day(a.last_modified), _day(b.last_modified)),
        MetaRow("Storage class", a.storage_class, b.storage_class),
        MetaRow("Parts", str(len(a.parts) or 1), str(len(b.parts) or 1)),
    ]
    for algorithm in sorted(set(a.checksums) | set(b.checksums)):
        rows.append(
            MetaRow(f"Checksum {algorithm}", a.checksums.get(algorithm, "—"), b.checksums.get(algorithm, "—"))
        )
    for header in sorted(set(a.headers) | set(b.headers)):
        rows.append(MetaRow(header, a.headers.get(header, "—"), b.headers.get(header, "—")))
    for name in sorted(set(a.user_meta) | set(b.user_meta)):
        rows.append(MetaRow(f"x-amz-meta-{name}", a.user_meta.get(name, "—"), b.user_meta.get(name, "—")))
    return rows


async def _read_bounded(store: Store, bucket: Bucket, version: ObjectVersion) -> bytes:
    """The version's bytes; only called for versions within TEXT_BOUND."""
    assert version.size <= TEXT_BOUND
    if version.size == 0:
        return b""
    reader = store.open_object(bucket, version.key, version.version_id)
    try:
        data = bytearray()
        async for chunk in reader.iter_range(0, min(reader.version.size, TEXT_BOUND) - 1):
            data += chunk
        return bytes(data)
    finally:
        reader.close()


def _looks_binary(data: bytes) -> bool:
    """A NUL byte, or bytes that are not UTF-8 (a cut character at the very end is fine)."""
    if b"\0" in data:
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start < len(data) - 3
    return False


def diff_lines(old: str, new: str, context: int = CONTEXT_LINES) -> tuple[list[DiffLine], int, int, bool]:
    """A unified diff (as `diff -u` groups it) of two texts: its rows, the lines added
    and removed, and whether the rows were cut at MAX_DIFF_LINES."""
    a, b = old.splitlines(), new.splitlines()
    rows: list[DiffLine] = []
    added = removed = 0
    for group in difflib.SequenceMatcher(None, a, b).get_grouped_opcodes(context):
        first, last = group[0], group[-1]
        rows.append(
            DiffLine(
                "hunk",
                None,
                None,
                f"@@ -{first[1] + 1},{last[2] - first[1]} +{first[3] + 1},{last[4] - first[3]} @@",
            )
        )
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                rows.extend(DiffLine("ctx", i1 + n + 1, j1 + n + 1, a[i1 + n]) for n in range(i2 - i1))
                continue
            if tag in ("replace", "delete"):
                removed += i2 - i1
                rows.extend(DiffLine("del", i + 1, None, a[i]) for i in range(i1, i2))
            if tag in ("replace", "insert"):
                added += j2 - j1
                rows.extend(DiffLine("add", None, j + 1, b[j]) for j in range(j1, j2))
    truncated = len(rows) > MAX_DIFF_LINES
    return rows[:MAX_DIFF_LINES], added, removed, truncated


async def compare(store: Store, bucket: Bucket, key: str, a_id: str, b_id: str) -> Comparison:
    a, b = _version(store, bucket, key, a_id), _version(store, bucket, key, b_id)
    kinds = {preview_kind(key, a.content_type), preview_kind(key, b.content_type)}
    result = Comparison(a, b, "meta", meta=metadata_rows(a, b))
    if kinds == {"image"} or kinds == {"pdf"}:
        result.mode = kinds.pop()
        return result
    if len(kinds) > 1 and "text" in kinds:
        result.reason = "The two versions are of different types: compared by their metadata."
        return result
    if not kinds <= {"text", ""}:
        result.reason = "Not a text file: compared by its metadata."
        return result
    if max(a.size, b.size) > TEXT_BOUND:
        result.reason = (
            f"Over {TEXT_BOUND // (1024 * 1024)} MiB: compared by its metadata, without reading its bytes."
        )
        return result
    old, new = await _read_bounded(store, bucket, a), await _read_bounded(store, bucket, b)
    if _looks_binary(old) or _looks_binary(new):
        result.reason = "A binary file: compared by its metadata."
        return result
    result.mode = "text"
    result.lines, result.added, result.removed, result.truncated = await asyncio.to_thread(
        diff_lines, as_text(old), as_text(new)
    )
    return result
