"""The engine's value types."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

NULL_VERSION = "null"


@dataclass(frozen=True)
class Bucket:
    id: int
    name: str
    account_id: str
    region: str
    versioning: str  # '', 'Enabled' or 'Suspended'
    created_at: float


@dataclass(frozen=True)
class ObjectMeta:
    """What a writer says about an object besides its bytes."""

    content_type: str | None = None
    # Cache-Control, Content-Disposition, Content-Encoding, Content-Language, Expires
    headers: dict[str, str] = field(default_factory=dict)
    user_meta: dict[str, str] = field(default_factory=dict)
    checksums: dict[str, str] = field(default_factory=dict)
    storage_class: str = "STANDARD"


@dataclass(frozen=True)
class WriteConditions:
    """Conditional writes: If-None-Match: * and If-Match: <etag>."""

    if_none_match_any: bool = False
    if_match: str | None = None

    @property
    def any(self) -> bool:
        return self.if_none_match_any or self.if_match is not None


@dataclass(frozen=True)
class ObjectVersion:
    id: int
    bucket_id: int
    key: str
    version_id: str
    is_latest: bool
    is_delete_marker: bool
    size: int
    etag: str  # hex md5 (or multipart form), without quotes
    last_modified: float
    storage_class: str
    content_type: str | None
    headers: dict[str, str]
    user_meta: dict[str, str]
    checksums: dict[str, str]
    inline_data: bytes | None
    segments: tuple[tuple[str, int], ...]

    @property
    def blob_ids(self) -> list[str]:
        return [blob_id for blob_id, _ in self.segments]


OBJECT_COLUMNS = (
    "id, bucket_id, key, version_id, is_latest, is_delete_marker, size, etag, last_modified, storage_class,"
    " content_type, headers, user_meta, checksums, inline_data, segments"
)


def object_from_row(row: tuple) -> ObjectVersion:
    return ObjectVersion(
        id=row[0],
        bucket_id=row[1],
        key=bytes(row[2]).decode("utf-8"),
        version_id=row[3],
        is_latest=bool(row[4]),
        is_delete_marker=bool(row[5]),
        size=row[6],
        etag=row[7],
        last_modified=row[8],
        storage_class=row[9],
        content_type=row[10],
        headers=json.loads(row[11]) if row[11] else {},
        user_meta=json.loads(row[12]) if row[12] else {},
        checksums=json.loads(row[13]) if row[13] else {},
        inline_data=row[14],
        segments=tuple((b, s) for b, s in json.loads(row[15])) if row[15] else (),
    )


@dataclass(frozen=True)
class ListEntry:
    key: str
    size: int
    etag: str
    last_modified: float
    storage_class: str


@dataclass
class ListPage:
    entries: list[ListEntry]
    common_prefixes: list[str]
    is_truncated: bool
    # The last key or common prefix returned: where the next page starts after.
    last_item: str | None
