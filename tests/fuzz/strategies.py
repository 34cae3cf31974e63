"""Hypothesis strategies shared by the fuzz targets: the values attackers try first
(digits that are not ASCII, CR/LF, huge numbers, percent-escapes of invalid UTF-8)
mixed with arbitrary text, so every parser sees both near-valid and junk input."""

from __future__ import annotations

from urllib.parse import quote

from hypothesis import strategies as st

# Values probing found or that broke parsers elsewhere: non-ASCII digits (str.isdigit()
# is true, int() refuses some), signs, spaces, underscores, huge and negative numbers.
TRICKY_NUMBERS = (
    "\u00b2", "\u2460", "\u0661", "\uff11", "1\u00b2", "\u00b21", "-1", "+1", " 1", "1 ", "1_0", "0x10",
    "1e3", "1.5", "", "0", "00", "4294967296", "18446744073709551616", "9" * 25, "9" * 5000, "NaN",
    "Infinity", "\u00bd", "\u0e53", "1\x00", "\U0001d7d9",
)  # fmt: skip
TRICKY_TEXT = (
    "\r\n", "a\r\nX-Injected: yes", "\x00", "\n", "\r", "%", "%%", "%zz", "%C2%B2", "%FF%FE",
    "\u202e", "../..", "//", "?", "#", "&", "=", "*", "\t", " ", "\x7f", "\u00ff", "<", "&amp;", "]]>",
)  # fmt: skip

numbers = st.one_of(
    st.sampled_from(TRICKY_NUMBERS),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.text(alphabet="0123456789\u00b2\u2460 -+_", max_size=24),
)
text = st.one_of(st.sampled_from(TRICKY_TEXT), st.text(max_size=40), numbers)
# Text that can travel in an HTTP/1.1 header value (tab, visible characters and obs-text:
# the client itself refuses control characters), as latin-1 bytes on the wire.
_FIELD_CHARACTERS = st.one_of(st.just("\t"), st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"))
header_text = st.one_of(
    st.sampled_from([t for t in TRICKY_TEXT if t.isascii() and all(ch == "\t" or " " <= ch < "\x7f" for ch in t)]),
    st.text(_FIELD_CHARACTERS, max_size=40),
    numbers.filter(lambda value: all(ch == "\t" or " " <= ch < "\x7f" or "\x80" <= ch <= "\xff" for ch in value)),
)


def wire_header(value: str) -> str:
    """Text as a header value reaches a handler: its UTF-8 bytes decoded as latin-1."""
    return value.encode("utf-8", "surrogatepass").decode("latin-1")


def percent_encode(value: str) -> str:
    """RFC 3986 encoding of any text (UTF-8, surrogates kept as their escape bytes)."""
    return quote(value.encode("utf-8", "surrogatepass"), safe="-_.~")


# A query value as it goes on the wire, canonically encoded (what SigV4 signers send):
# encoded text, or the escapes of bytes that are not UTF-8 at all.
query_value = st.one_of(
    text.map(percent_encode),
    st.binary(max_size=12).map(lambda raw: quote(raw, safe="-_.~")),
)


def json_values(max_leaves: int = 20) -> st.SearchStrategy:
    """JSON of every shape: wrong types, huge and non-finite numbers, deep nesting."""
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**80), max_value=2**80),
        st.floats(allow_nan=False, allow_infinity=False),
        text,
    )
    return st.recursive(
        scalars,
        lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(text, inner, max_size=4)),
        max_leaves=max_leaves,
    )
