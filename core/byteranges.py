"""HTTP Range parsing shared by the S3 and REST downloads: one `bytes=` range
(RFC 9110), malformed or multiple ranges ignored (the whole body is served), an
unsatisfiable one reported for each API to answer 416 in its own format."""

from __future__ import annotations

from core.strictparse import MAX_DIGITS, ascii_int

# Stands for a position of more digits than ascii_int takes: past the end of any object.
_BEYOND_ANY_SIZE = 10**MAX_DIGITS


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
    first_pos, last_pos = _position(first.strip()), _position(last.strip())
    # '²' or '①' pass str.isdigit() but are no position: the header is malformed, so
    # it is ignored as S3 ignores it (whole body), never a 416 or a 500.
    if (first.strip() and first_pos is None) or (last.strip() and last_pos is None):
        return None
    if first_pos is None:
        if last_pos is None:
            return None
        if last_pos == 0 or size == 0:
            raise UnsatisfiableRange()
        return max(0, size - last_pos), size - 1
    if first_pos >= size:
        raise UnsatisfiableRange()
    end = last_pos if last_pos is not None else size - 1
    if end < first_pos:
        return None
    return first_pos, min(end, size - 1)


def _position(text: str) -> int | None:
    """A byte position of ASCII digits; None when empty or not ASCII digits. A valid
    position longer than ascii_int accepts is still a position, past any object's end."""
    if not (text.isascii() and text.isdigit()):
        return None
    significant = text.lstrip("0") or "0"
    return _BEYOND_ANY_SIZE if len(significant) > MAX_DIGITS else ascii_int(significant)
