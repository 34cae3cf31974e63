"""core.strictparse and core.byteranges on their own: the one integer parser for outside
input takes ASCII digits only, and the header check refuses what uvicorn would refuse."""

from __future__ import annotations

import pytest

from core.byteranges import UnsatisfiableRange, parse_byte_range
from core.strictparse import MAX_DIGITS, ascii_int, header_safe, is_ascii_int

NOT_ASCII_DIGITS = [
    "\u00b2",  # '²': isdigit() is True, int() raises
    "1\u00b2",
    "\u2460",  # '①'
    "\u0663",  # '٣': int() would take it (a decimal digit of another script)
    "\uff11",  # '１', fullwidth
    "1_000",  # int() takes underscores
    "+1",
    "-1",
    " 1",
    "1 ",
    "0x10",
    "1e3",
    "1.0",
    "",
    "nan",
    "inf",
]


@pytest.mark.parametrize("raw", NOT_ASCII_DIGITS)
def test_anything_but_ascii_digits_is_none(raw: str) -> None:
    assert ascii_int(raw) is None
    assert not is_ascii_int(raw)


@pytest.mark.parametrize(
    ("raw", "value"), [("0", 0), ("7", 7), ("0010", 10), ("9" * MAX_DIGITS, 10**MAX_DIGITS - 1)]
)
def test_ascii_digits_are_their_value(raw: str, value: int) -> None:
    assert ascii_int(raw) == value
    assert ascii_int(raw.encode()) == value
    assert is_ascii_int(raw)


def test_none_and_too_many_digits_are_none() -> None:
    assert ascii_int(None) is None
    assert ascii_int("1" * (MAX_DIGITS + 1)) is None
    assert ascii_int("1" * 5000) is None  # int() itself raises past 4,300 digits


def test_bytes_that_are_not_ascii_are_none() -> None:
    assert ascii_int(b"\xb2") is None
    assert ascii_int("²".encode()) is None


def test_bounds_are_inclusive() -> None:
    assert ascii_int("1", minimum=1, maximum=10000) == 1
    assert ascii_int("10000", minimum=1, maximum=10000) == 10000
    assert ascii_int("0", minimum=1) is None
    assert ascii_int("10001", maximum=10000) is None


def test_strip_takes_only_http_whitespace() -> None:
    assert ascii_int(" 12\t", strip=True) == 12
    assert ascii_int("\r\n12\r\n", strip=True) == 12
    assert ascii_int("\u00a012", strip=True) is None  # a no-break space is not HTTP whitespace
    assert ascii_int(" ", strip=True) is None


@pytest.mark.parametrize("value", ["text/plain", 'attachment; filename="a b"', "a\tb", "caf\u00e9", ""])
def test_header_safe_values(value: str) -> None:
    assert header_safe(value)


@pytest.mark.parametrize("value", ["a\r\nX-Injected: yes", "a\r", "a\nb", "a\x00", "a\x01", "a\x1f", "a\x7f"])
def test_header_unsafe_values(value: str) -> None:
    assert not header_safe(value)


# ---------------------------------------------------------------- Range on top of ascii_int


@pytest.mark.parametrize(
    "header",
    [
        "bytes =10001-1\u00b2",  # was 416 on a 1-byte object: '1²' passed isdigit()
        "bytes=\u00b2-",  # was a 500
        "bytes=-\u00b2",
        "bytes=0-\u00b2",
        "bytes=\u0663-",
        "bytes=1_0-",
        "bytes=+1-",
        "bytes=-",
        "bytes=0-1,2-3",
        "items=0-1",
    ],
)
def test_malformed_ranges_are_ignored(header: str) -> None:
    assert parse_byte_range(header, 1) is None


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        ("bytes=0-0", 10, (0, 0)),
        ("bytes=5-", 10, (5, 9)),
        ("bytes=-3", 10, (7, 9)),
        ("bytes=-30", 10, (0, 9)),
        ("bytes=2-99", 10, (2, 9)),
        ("bytes=" + "0" * 30 + "1-", 10, (1, 9)),  # leading zeros do not make a number long
        ("bytes=0-" + "9" * 30, 10, (0, 9)),  # a very long end is clamped
        ("bytes=-" + "9" * 30, 10, (0, 9)),
        ("bytes=5-2", 10, None),  # last before first: ignored
    ],
)
def test_valid_ranges(header: str, size: int, expected: tuple[int, int] | None) -> None:
    assert parse_byte_range(header, size) == expected


@pytest.mark.parametrize(
    ("header", "size"),
    [("bytes=10-", 10), ("bytes=" + "9" * 30 + "-", 10), ("bytes=-0", 10), ("bytes=-5", 0)],
)
def test_unsatisfiable_ranges(header: str, size: int) -> None:
    with pytest.raises(UnsatisfiableRange):
        parse_byte_range(header, size)
