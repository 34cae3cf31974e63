"""The Time Machine's model below the dashboard: one key's history with what retention
will do to each version, and the comparison of two versions.

A comparison never reads more than TEXT_BOUND bytes of a version: text up to the bound
is diffed line by line on the server; images and PDFs are compared as pictures the
page gets from /api/img (so no bytes pass through here); anything else (binary, over
the bound, or two different kinds) is compared by its metadata alone.

The line diff is restapi.line_diff's: the standard library's `difflib` (no dependency
to keep; its matching is what `diff -u` users expect) on pieces small enough for it,
cut at unique lines first (patience diff) and under a deadline, because difflib alone
is quadratic: on a 2 MiB file it could take most of an hour. It runs in a worker
thread, and its rows are made as the page is sent (TextDiff.rows), cut at
MAX_DIFF_LINES, either unified (as `diff -u`) or side by side."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice

from core.jsonapi import bad_request, not_found
from restapi.browse import as_text, preview_kind
from restapi.line_diff import LineDiff, Opcode, line_diff
from s3proxy.store.engine import Store
from s3proxy.store.errors import ObjectIsDeleteMarker, StoreError
from s3proxy.store.models import Bucket, ObjectVersion, Retention
from s3proxy.store.version_listing import VersionEntry

TEXT_BOUND = 2 * 1024 * 1024
MAX_DIFF_LINES = 20_000
CONTEXT_LINES = 3
VIEWS = ("unified", "split")
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
    """A row of the unified view."""

    kind: str  # "add", "del", "ctx" or "hunk"
    old: int | None  # 1-based line numbers
    new: int | None
    text: str


@dataclass(frozen=True)
class SplitRow:
    """A row of the side-by-side view: an old line and the new line facing it. A
    change pairs removed with added lines in order; a side without one has None."""

    kind: str  # "ctx", "change" or "hunk" (its header in old_text)
    old: int | None
    new: int | None
    old_text: str | None
    new_text: str | None


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
    # For "text": the two versions as text, for text_diff (each within TEXT_BOUND).
    old_text: str = ""
    new_text: str = ""

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


@dataclass(frozen=True)
class TextDiff:
    """Two texts' diff, ready to show: its counts, how exact it is, and its rows, made
    one by one as they are sent (never all held), at most MAX_DIFF_LINES of them."""

    old: list[str]
    new: list[str]
    result: LineDiff
    groups: list[list[Opcode]]  # the changes with their context, one group per hunk
    view: str  # "unified" or "split"
    row_count: int  # all the rows the view has, shown or not

    @property
    def added(self) -> int:
        return self.result.added

    @property
    def removed(self) -> int:
        return self.result.removed

    @property
    def truncated(self) -> bool:
        return self.row_count > MAX_DIFF_LINES

    @property
    def shown(self) -> int:
        return min(self.row_count, MAX_DIFF_LINES)

    def rows(self) -> Iterator[DiffLine] | Iterator[SplitRow]:
        made = _split_rows if self.view == "split" else _unified_rows
        return islice(made(self.groups, self.old, self.new), MAX_DIFF_LINES)


def text_diff(old: str, new: str, view: str = "unified", context: int = CONTEXT_LINES) -> TextDiff:
    """The diff of two texts (CPU-bound, bounded in time: run it in a worker thread)."""
    a, b = old.splitlines(), new.splitlines()
    result = line_diff(a, b)
    groups = list(grouped_opcodes(result.opcodes, context))
    return TextDiff(a, b, result, groups, view, sum(_row_count(group, view) for group in groups))


def diff_lines(old: str, new: str, context: int = CONTEXT_LINES) -> tuple[list[DiffLine], int, int, bool]:
    """A unified diff (as `diff -u` groups it) of two texts: its rows, the lines added
    and removed, and whether the rows were cut at MAX_DIFF_LINES."""
    diff = text_diff(old, new, "unified", context)
    rows = list(islice(_unified_rows(diff.groups, diff.old, diff.new), MAX_DIFF_LINES))
    return rows, diff.added, diff.removed, diff.truncated


def grouped_opcodes(opcodes: list[Opcode], context: int) -> Iterator[list[Opcode]]:
    """The changes with `context` equal lines around them, one list per hunk: what
    difflib's SequenceMatcher.get_grouped_opcodes does with its own opcodes."""
    codes = list(opcodes) or [("equal", 0, 1, 0, 1)]
    tag, i1, i2, j1, j2 = codes[0]
    if tag == "equal":
        codes[0] = tag, max(i1, i2 - context), i2, max(j1, j2 - context), j2
    tag, i1, i2, j1, j2 = codes[-1]
    if tag == "equal":
        codes[-1] = tag, i1, min(i2, i1 + context), j1, min(j2, j1 + context)
    group: list[Opcode] = []
    for tag, i1, i2, j1, j2 in codes:
        # A long equal run ends one hunk and starts the next.
        if tag == "equal" and i2 - i1 > 2 * context:
            group.append((tag, i1, min(i2, i1 + context), j1, min(j2, j1 + context)))
            yield group
            group = []
            i1, j1 = max(i1, i2 - context), max(j1, j2 - context)
        group.append((tag, i1, i2, j1, j2))
    if group and not (len(group) == 1 and group[0][0] == "equal"):
        yield group


def _range(start: int, stop: int) -> str:
    # As `diff -u` writes a range: 1-based, an empty one at the line before it.
    length = stop - start
    if length == 1:
        return str(start + 1)
    return f"{start + 1 if length else start},{length}"


def _hunk(group: list[Opcode]) -> str:
    first, last = group[0], group[-1]
    return f"@@ -{_range(first[1], last[2])} +{_range(first[3], last[4])} @@"


def _row_count(group: list[Opcode], view: str) -> int:
    rows = 1  # the hunk's header
    for tag, i1, i2, j1, j2 in group:
        if tag == "equal":
            rows += i2 - i1
        elif view == "split":
            rows += max(i2 - i1, j2 - j1)
        else:
            rows += (i2 - i1) + (j2 - j1)
    return rows


def _unified_rows(groups: list[list[Opcode]], a: list[str], b: list[str]) -> Iterator[DiffLine]:
    for group in groups:
        yield DiffLine("hunk", None, None, _hunk(group))
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                for n in range(i2 - i1):
                    yield DiffLine("ctx", i1 + n + 1, j1 + n + 1, a[i1 + n])
                continue
            for i in range(i1, i2):
                yield DiffLine("del", i + 1, None, a[i])
            for j in range(j1, j2):
                yield DiffLine("add", None, j + 1, b[j])


def _split_rows(groups: list[list[Opcode]], a: list[str], b: list[str]) -> Iterator[SplitRow]:
    for group in groups:
        yield SplitRow("hunk", None, None, _hunk(group), None)
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                for n in range(i2 - i1):
                    yield SplitRow("ctx", i1 + n + 1, j1 + n + 1, a[i1 + n], b[j1 + n])
                continue
            # Removed lines face added ones in order; the longer side runs on alone.
            for n in range(max(i2 - i1, j2 - j1)):
                i, j = i1 + n, j1 + n
                yield SplitRow(
                    "change",
                    i + 1 if i < i2 else None,
                    j + 1 if j < j2 else None,
                    a[i] if i < i2 else None,
                    b[j] if j < j2 else None,
                )


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
    result.old_text, result.new_text = as_text(old), as_text(new)
    return result
