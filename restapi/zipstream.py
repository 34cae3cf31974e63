"""A ZIP archive written as it is sent: members are read one after another and each
chunk leaves as soon as it is written, so memory holds one chunk (plus the central
directory's few hundred bytes a member), never the set, and nothing is copied to disk.

The stdlib's `zipfile` does the format: given a stream it cannot seek, it writes each
member's CRC and sizes in a data descriptor after its bytes, and switches to ZIP64 by
itself for members over 2 GiB, offsets past 4 GiB and more than 65,535 members.
Members are stored, not deflated: what people download from a bucket (photos, video,
PDFs, archives) is compressed already, and stored members stream at disk speed."""

from __future__ import annotations

import zipfile
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

# Regular file and directory permissions as Unix unzip tools restore them.
_FILE_MODE = 0o100644 << 16
_DIR_MODE = (0o040755 << 16) | 0x10  # the MS-DOS directory bit as well
_EARLIEST = (1980, 1, 1, 0, 0, 0)  # a ZIP's MS-DOS timestamps start in 1980


@dataclass(frozen=True)
class ZipMember:
    """One entry: `name` inside the archive (a name ending in "/" is a directory),
    its size, modification time, and a function that opens its bytes."""

    name: str
    size: int
    modified: float
    chunks: Callable[[], AsyncIterator[bytes]] | None = None


class _Sink:
    """The file zipfile writes into: it keeps what was written until it is taken.
    Without tell() and seek(), zipfile treats it as an unseekable stream."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data


def _timestamp(modified: float) -> tuple[int, int, int, int, int, int]:
    moment = datetime.fromtimestamp(modified, UTC)
    return max(_EARLIEST, (moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second))


def safe_name(name: str) -> str:
    """A member name no unzip tool can turn into a path outside its target folder:
    no leading "/", no empty, "." or ".." parts ("a/../b" becomes "a/__/b"). A
    trailing "/" (a directory) is kept; "" when nothing is left."""
    is_dir = name.endswith("/")
    parts = [("__" if part == ".." else part) for part in name.replace("\\", "/").split("/")]
    parts = [part for part in parts if part not in ("", ".")]
    if not parts:
        return ""
    return "/".join(parts) + ("/" if is_dir else "")


async def stream_zip(members: AsyncIterable[ZipMember]) -> AsyncIterator[bytes]:
    """The archive of `members`, in pieces of at most about one source chunk each."""
    sink = _Sink()
    seen: set[str] = set()
    archive = zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED, allowZip64=True)
    try:
        async for member in members:
            name = _unique(safe_name(member.name), seen)
            if not name:
                continue
            info = zipfile.ZipInfo(name, date_time=_timestamp(member.modified))
            if name.endswith("/"):
                info.external_attr = _DIR_MODE
                info.file_size = info.compress_size = info.CRC = 0
                archive.mkdir(info)
                yield sink.take()
                continue
            info.external_attr = _FILE_MODE
            info.compress_type = zipfile.ZIP_STORED
            # Known up front, so zipfile picks ZIP64 for this member when it needs it.
            info.file_size = member.size
            with archive.open(info, "w") as out:
                if member.chunks is not None and member.size:
                    async for chunk in member.chunks():
                        out.write(chunk)
                        yield sink.take()
            yield sink.take()  # the data descriptor
        archive.close()
        yield sink.take()  # the central directory
    finally:
        if archive.fp is not None:  # abandoned (the client went away): no central directory
            archive.fp = None
        close_members = getattr(members, "aclose", None)
        if close_members is not None:
            await close_members()  # its open object now, not when it is collected


def _unique(name: str, seen: set[str]) -> str:
    """`name`, or `name (2)`... when two keys turned into the same member name."""
    if not name or name not in seen:
        seen.add(name)
        return name
    stem, dot, ext = name.rstrip("/").rpartition(".")
    if not dot or "/" in ext:
        stem, dot, ext = name.rstrip("/"), "", ""
    suffix = "/" if name.endswith("/") else ""
    number = 2
    while True:
        candidate = f"{stem} ({number}){dot}{ext}{suffix}"
        if candidate not in seen:
            seen.add(candidate)
            return candidate
        number += 1
