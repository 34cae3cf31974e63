"""HTTP Range parsing shared by the S3 and REST downloads: one `bytes=` range
(RFC 9110), malformed or multiple ranges ignored (the whole body is served), an
unsatisfiable one reported for each API to answer 416 in its own format."""

from __future__ import annotations


class UnsatisfiableRange(ValueError):
    """The range starts past the end (or asks for a suffix of nothing)."""


def parse_byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, end) inclusive, or None for the whole body."""
    if not header:
        return None
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash:
        return None
    first, last = first.strip(), last.strip()
    if (first and not first.isdigit()) or (last and not last.isdigit()) or (not first and not last):
        return None
    if not first:
        length = int(last)
        if length == 0 or size == 0:
            raise UnsatisfiableRange()
        return max(0, size - length), size - 1
    start = int(first)
    if start >= size:
        raise UnsatisfiableRange()
    end = int(last) if last else size - 1
    if end < start:
        return None
    return start, min(end, size - 1)
