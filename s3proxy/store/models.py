"""The engine's value types."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import NamedTuple

NULL_VERSION = "null"


class Segment(NamedTuple):
    """`length` bytes of blob `blob_id` from `offset`: an object's bytes are a list of
    them (one for a plain PUT, one or more per part for a multipart upload)."""

    blob_id: str
    length: int
    offset: int = 0


def segments_from_json(text: str | None) -> tuple[Segment, ...]:
    return tuple(Segment(*item) for item in json.loads(text)) if text else ()


def segments_to_json(segments: tuple[Segment, ...]) -> str | None:
    # [blob_id, length], with the offset only when there is one (UploadPartCopy ranges).
    if not segments:
        return None
    return json.dumps(
        [[s.blob_id, s.length, s.offset] if s.offset else [s.blob_id, s.length] for s in segments]
    )


@dataclass(frozen=True)
class PartInfo:
    """One part of a completed multipart object (for GET ?partNumber=)."""

    size: int
    etag: str
    checksums: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Retention:
    """Time Machine: noncurrent versions kept per key and days kept after they stop
    being current (S3's NewerNoncurrentVersions and NoncurrentDays); 0 is no limit."""

    keep_versions: int
    keep_days: float


@dataclass(frozen=True)
class CorsRule:
    allowed_origins: tuple[str, ...]
    allowed_methods: tuple[str, ...]
    allowed_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age_seconds: int | None = None
    id: str | None = None


@dataclass(frozen=True)
class BucketSettings:
    """Bucket sub-resources, stored as JSON in `buckets.settings`."""

    # The bucket ACL in the stored form of s3proxy.access.grants (None: private).
    acl: str | None = None
    # The bucket policy's JSON as the owner put it (None: no policy).
    policy: str | None = None
    # Versioned by Folio's default (Time Machine), not by PutBucketVersioning: deleting
    # the bucket needs no current objects only, and discards the history with it.
    time_machine: bool = False
    cors: tuple[CorsRule, ...] = ()
    # None: the owner's plan decides.
    retention: Retention | None = None

    def to_json(self) -> str:
        data: dict = {}
        if self.acl is not None:
            data["acl"] = self.acl
        if self.policy is not None:
            data["policy"] = self.policy
        if self.time_machine:
            data["time_machine"] = True
        if self.cors:
            data["cors"] = [
                {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(rule).items()}
                for rule in self.cors
            ]
        if self.retention is not None:
            data["retention"] = asdict(self.retention)
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | None) -> BucketSettings:
        data = json.loads(text) if text else {}
        if not data:
            return NO_SETTINGS
        cors = tuple(
            CorsRule(
                allowed_origins=tuple(rule["allowed_origins"]),
                allowed_methods=tuple(rule["allowed_methods"]),
                allowed_headers=tuple(rule.get("allowed_headers", ())),
                expose_headers=tuple(rule.get("expose_headers", ())),
                max_age_seconds=rule.get("max_age_seconds"),
                id=rule.get("id"),
            )
            for rule in data.get("cors", ())
        )
        retention = Retention(**data["retention"]) if "retention" in data else None
        return cls(
            acl=data.get("acl"),
            policy=data.get("policy"),
            time_machine=bool(data.get("time_machine")),
            cors=cors,
            retention=retention,
        )


NO_SETTINGS = BucketSettings()


@dataclass(frozen=True)
class Bucket:
    id: int
    name: str
    account_id: str
    region: str
    versioning: str  # '', 'Enabled' or 'Suspended'
    created_at: float
    settings: BucketSettings = NO_SETTINGS


@dataclass(frozen=True)
class ObjectMeta:
    """What a writer says about an object besides its bytes."""

    content_type: str | None = None
    # Cache-Control, Content-Disposition, Content-Encoding, Content-Language, Expires
    headers: dict[str, str] = field(default_factory=dict)
    user_meta: dict[str, str] = field(default_factory=dict)
    checksums: dict[str, str] = field(default_factory=dict)
    storage_class: str = "STANDARD"
    # The object's ACL in the stored form of s3proxy.access.grants (None: private, the
    # bucket owner's).
    acl: str | None = None


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
    segments: tuple[Segment, ...]
    # Multipart objects: their parts in order; empty for single-PUT objects.
    parts: tuple[PartInfo, ...] = ()
    acl: str | None = None
    # Who wrote it (core.acting): an access key id, "dashboard", "anonymous", or
    # None (Folio itself, or a version older than the column).
    writer: str | None = None
    # Set on a version just written: the key had versions before it (retention has
    # nothing to prune on a key's first write).
    had_history: bool = True
    # CRC32C of `inline_data` (s3proxy.store.integrity); None for blob-backed versions and
    # inline ones written before checksums were kept.
    inline_crc32c: int | None = None

    @property
    def blob_ids(self) -> list[str]:
        return [segment.blob_id for segment in self.segments]

    def part_range(self, part_number: int) -> tuple[int, int] | None:
        """(first, last) byte of a part; a single-PUT object is its own part 1."""
        if not self.parts:
            return (0, self.size - 1) if part_number == 1 else None
        if not 1 <= part_number <= len(self.parts):
            return None
        start = sum(p.size for p in self.parts[: part_number - 1])
        return start, start + self.parts[part_number - 1].size - 1


OBJECT_COLUMNS = (
    "id, bucket_id, key, version_id, is_latest, is_delete_marker, size, etag, last_modified, storage_class,"
    " content_type, headers, user_meta, checksums, inline_data, segments, parts, acl, writer, crc32c"
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
        segments=segments_from_json(row[15]),
        parts=tuple(PartInfo(size, etag, checksums) for size, etag, checksums in json.loads(row[16]))
        if row[16]
        else (),
        acl=row[17],
        writer=row[18],
        inline_crc32c=row[19],
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
