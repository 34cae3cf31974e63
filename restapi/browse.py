"""The object browser's model, below the dashboard page and any JSON API that wants it:
one page of a bucket's listing at a prefix (folders are the listing's common prefixes
for the delimiter "/", one keyset page at a time, so a prefix of any size costs one
page), what each object can be previewed as, the first bytes of a text object, a
folder marker, and the selection's delete and ZIP members."""

from __future__ import annotations

import asyncio
import mimetypes
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass

from core.jsonapi import bad_request
from restapi.zipstream import ZipMember
from s3proxy.store.engine import Store
from s3proxy.store.errors import StoreError
from s3proxy.store.models import Bucket, ObjectMeta
from s3proxy.store.reader import ObjectReader

DELIMITER = "/"
PAGE_SIZE = 100
TEXT_PREVIEW_BYTES = 1024 * 1024
# Keys deleted in one go: the writer commits them as one group (as DeleteObjects does).
DELETE_BATCH = 500
FOLDER_PAGE = 1000
FOLDER_TYPE = "application/x-directory"

# What /api/img decodes (Pillow), and what a browser plays or shows as text.
_IMAGE_TYPES = {"image/jpeg", "image/png", "image/gif", "image/webp", "image/avif", "image/bmp", "image/tiff"}
_TEXT_TYPES = {
    "application/json", "application/xml", "application/x-yaml", "application/yaml", "application/toml",
    "application/javascript", "application/x-sh", "application/sql", "application/x-ndjson",
    "image/svg+xml",
}  # fmt: skip
# Types mimetypes does not know everywhere (or calls something else).
_EXTENSIONS = {
    "md": "text/markdown", "markdown": "text/markdown", "csv": "text/csv", "json": "application/json",
    "yaml": "application/yaml", "yml": "application/yaml", "toml": "application/toml", "log": "text/plain",
    "ndjson": "application/x-ndjson", "avif": "image/avif", "webp": "image/webp", "opus": "audio/ogg",
    "m4a": "audio/mp4", "flac": "audio/flac", "mkv": "video/x-matroska", "webm": "video/webm",
}  # fmt: skip


@dataclass(frozen=True)
class Crumb:
    name: str
    prefix: str


@dataclass(frozen=True)
class FolderRow:
    prefix: str
    name: str


@dataclass(frozen=True)
class ObjectRow:
    key: str
    name: str
    size: int
    last_modified: float
    etag: str
    kind: str  # preview_kind(): "image", "pdf", "text", "audio", "video" or ""


@dataclass
class BrowsePage:
    prefix: str
    name_filter: str
    after: str | None
    folders: list[FolderRow]
    objects: list[ObjectRow]
    # Where the next page starts (the last key or folder shown); None on the last page.
    next_after: str | None

    @property
    def empty(self) -> bool:
        return not self.folders and not self.objects


def guess_type(key: str) -> str | None:
    name = key.rsplit("/", 1)[-1]
    ext = name.rpartition(".")[2].lower() if "." in name else ""
    return _EXTENSIONS.get(ext) or (mimetypes.guess_type(name, strict=False)[0] if ext else None)


def preview_kind(key: str, content_type: str | None = None) -> str:
    """How the dashboard can show an object: from its stored type, or its name when
    the type says nothing (the listing has only names)."""
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    if not kind or kind in ("application/octet-stream", "binary/octet-stream"):
        kind = (guess_type(key) or "").lower()
    if kind in _IMAGE_TYPES:
        return "image"
    if kind == "application/pdf":
        return "pdf"
    if kind.startswith("text/") or kind in _TEXT_TYPES or kind.endswith(("+json", "+xml")):
        return "text"
    if kind.startswith("audio/"):
        return "audio"
    if kind.startswith("video/"):
        return "video"
    return ""


def clean_prefix(prefix: str) -> str:
    """A folder prefix as the listing wants it: ending in "/" (a leading "/" is kept:
    S3 keys may start with one, and their folder must stay reachable)."""
    return prefix if not prefix or prefix.endswith(DELIMITER) else prefix + DELIMITER


def crumbs(prefix: str) -> list[Crumb]:
    """The folders from the bucket's root down to `prefix`, each with its own prefix."""
    out: list[Crumb] = []
    at = 0
    while True:
        end = prefix.find(DELIMITER, at)
        if end < 0:
            return out
        out.append(Crumb(prefix[at:end], prefix[: end + 1]))
        at = end + 1


async def browse(
    store: Store,
    bucket: Bucket,
    prefix: str = "",
    name_filter: str = "",
    after: str | None = None,
    page_size: int = PAGE_SIZE,
) -> BrowsePage:
    """One page of folders and objects directly under `prefix` whose names start with
    `name_filter`, after the key or folder `after` (the previous page's next_after)."""
    listed = await store.list_objects(
        bucket, prefix=prefix + name_filter, delimiter=DELIMITER, after=after or None, max_keys=page_size
    )
    folders = [FolderRow(p, p[len(prefix) :].removesuffix(DELIMITER)) for p in listed.common_prefixes]
    objects = [
        ObjectRow(e.key, e.key[len(prefix) :], e.size, e.last_modified, e.etag, preview_kind(e.key))
        for e in listed.entries
        if e.key != prefix  # the folder's own marker object ("photos/") is the folder itself
    ]
    next_after = listed.last_item if listed.is_truncated else None
    return BrowsePage(prefix, name_filter, after, folders, objects, next_after)


SORTS = ("name", "size", "date")


def sort_objects(objects: list[ObjectRow], sort: str, descending: bool) -> list[ObjectRow]:
    """The page's objects by name (the listing's byte order), size or date. Size and
    date order only what one page holds: the store lists in key order."""
    if sort == "size":
        return sorted(objects, key=lambda row: (row.size, row.key), reverse=descending)
    if sort == "date":
        return sorted(objects, key=lambda row: (row.last_modified, row.key), reverse=descending)
    return list(reversed(objects)) if descending else objects


async def read_head(
    store: Store, bucket: Bucket, key: str, limit: int = TEXT_PREVIEW_BYTES
) -> tuple[bytes, bool]:
    """The first `limit` bytes of the object, and whether there is more."""
    reader = store.open_object(bucket, key)
    size = reader.version.size
    if size == 0:
        reader.close()
        return b"", False
    data = bytearray()
    async for chunk in reader.iter_range(0, min(size, limit) - 1):
        data += chunk
    return bytes(data), size > limit


def as_text(data: bytes) -> str:
    """Bytes shown as text: UTF-8, with a cut multi-byte character or stray bytes
    replaced rather than refused."""
    return data.decode("utf-8", "replace")


def folder_key(prefix: str, name: str) -> str:
    """The marker key of a new folder `name` in `prefix`, as the S3 consoles make it."""
    name = name.strip()
    if not name or DELIMITER in name or name in (".", ".."):
        raise bad_request('A folder name is one level: not empty, no "/", not "." or "..".', name=name[:100])
    key = prefix + name + DELIMITER
    if len(key.encode("utf-8")) > 1024:
        raise bad_request("The folder's key would be over 1,024 bytes.")
    return key


async def create_folder(store: Store, bucket: Bucket, prefix: str, name: str) -> str:
    """An empty "name/" object: what makes a folder exist before anything is in it."""
    key = folder_key(prefix, name)
    await store.put_bytes(bucket, key, b"", ObjectMeta(content_type=FOLDER_TYPE))
    return key


async def keys_under(store: Store, bucket: Bucket, folder: str) -> AsyncIterator[str]:
    """Every current key under `folder`, a page at a time (never the whole set at once)."""
    after: str | None = None
    while True:
        listed = await store.list_objects(bucket, prefix=folder, after=after, max_keys=FOLDER_PAGE)
        for entry in listed.entries:
            yield entry.key
        if not listed.is_truncated or listed.last_item is None:
            return
        after = listed.last_item


async def selected_keys(
    store: Store, bucket: Bucket, keys: Iterable[str], folders: Iterable[str]
) -> AsyncIterator[str]:
    """The selected keys, then every key under each selected folder."""
    for key in keys:
        yield key
    for folder in folders:
        async for key in keys_under(store, bucket, clean_prefix(folder)):
            yield key


async def delete_selection(store: Store, bucket: Bucket, keys: Iterable[str], folders: Iterable[str]) -> int:
    """Delete the selected objects and everything under the selected folders, as
    DeleteObject does (in a versioned bucket each gets a delete marker and its versions
    stay). The number of keys deleted."""
    deleted = 0
    batch: list[str] = []

    async def flush() -> None:
        nonlocal deleted
        results = await asyncio.gather(
            *(store.delete_object(bucket, key) for key in batch), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, StoreError):
                raise result
        deleted += sum(not isinstance(result, BaseException) for result in results)
        batch.clear()

    async for key in selected_keys(store, bucket, keys, folders):
        batch.append(key)
        if len(batch) >= DELETE_BATCH:
            await flush()
    if batch:
        await flush()
    return deleted


async def zip_members(
    store: Store, bucket: Bucket, prefix: str, keys: Iterable[str], folders: Iterable[str]
) -> AsyncIterator[ZipMember]:
    """The selection as ZIP members named by their keys relative to `prefix`; each
    object is opened only when its turn comes, and one that is gone by then is left out."""
    async for key in selected_keys(store, bucket, keys, folders):
        name = key[len(prefix) :] if key.startswith(prefix) else key
        try:
            reader = store.open_object(bucket, key)
        except StoreError:
            continue
        try:
            version = reader.version
            yield ZipMember(name, version.size, version.last_modified, _chunks_of(reader))
        finally:
            reader.close()  # read to its end already, or abandoned


def _chunks_of(reader: ObjectReader) -> Callable[[], AsyncIterator[bytes]]:
    async def chunks() -> AsyncIterator[bytes]:
        if reader.version.size:
            async for chunk in reader.iter_range(0, reader.version.size - 1):
                yield chunk

    return chunks
