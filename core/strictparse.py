"""Strict parsing of the numbers and header values that arrive from outside.

`str.isdigit()` is true for '²' and '①', which `int()` then refuses: every numeric
input (query parameters, headers, XML elements, signed-URL expiries) goes through
`ascii_int` instead, which accepts only ASCII digits. Values that are echoed into a
response header go through `header_safe` first: a CR or LF there makes the HTTP
server drop the connection without an answer (and would be header injection if it
did not)."""

from __future__ import annotations

import re

_ASCII_DIGITS = re.compile(r"[0-9]+")
# RFC 9110 field values: no CR, LF, NUL or other control characters (tab is allowed).
_HEADER_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# A decimal string longer than this is refused before int() sees it (CPython caps
# int() of a string at 4,300 digits and raises ValueError past it).
MAX_DIGITS = 20


def ascii_int(
    raw: str | bytes | None, *, minimum: int | None = None, maximum: int | None = None, strip: bool = False
) -> int | None:
    """The value of a string of ASCII digits (no sign, no spaces unless `strip`), or None
    when it is missing, empty, not all ASCII digits, too long, or outside [minimum, maximum].
    Callers turn None into their own 4xx error."""
    if raw is None:
        return None
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("ascii")
        except UnicodeDecodeError:
            return None
    if strip:
        raw = raw.strip(" \t\r\n")
    if not 0 < len(raw) <= MAX_DIGITS or not _ASCII_DIGITS.fullmatch(raw):
        return None
    value = int(raw)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        return None
    return value


def is_ascii_int(raw: str | None) -> bool:
    """True for a non-empty string of ASCII digits (of any length up to MAX_DIGITS)."""
    return ascii_int(raw) is not None


def header_safe(value: str) -> bool:
    """True when the value can go into an HTTP response header as it is."""
    return _HEADER_CONTROL.search(value) is None
