"""The headers of one part of a multipart/form-data body, as python-multipart's callbacks
report them (in pieces): gathered in bytearrays (never by repeated concatenation), each
byte counted against the caller's budget first, so no part's headers can grow memory
past what the caller allows. Used by the REST upload form and by S3's PostObject."""

from __future__ import annotations

from collections.abc import Callable

from python_multipart.multipart import parse_options_header


class PartHeaders:
    def __init__(self, spend: Callable[[int], None]) -> None:
        # `spend(n)` raises the caller's own error when n more header bytes are too many.
        self._spend = spend
        self.headers: dict[bytes, bytes] = {}
        self._name = bytearray()
        self._value = bytearray()

    def begin(self) -> None:
        """A new part: forget the previous one's headers."""
        self.headers = {}
        self._name, self._value = bytearray(), bytearray()

    def on_field(self, data: bytes, start: int, end: int) -> None:
        self._spend(end - start)
        self._name += data[start:end]

    def on_value(self, data: bytes, start: int, end: int) -> None:
        self._spend(end - start)
        self._value += data[start:end]

    def on_end(self) -> None:
        self.headers[bytes(self._name).lower()] = bytes(self._value)
        self._name, self._value = bytearray(), bytearray()

    def disposition(self) -> tuple[str, bytes | None]:
        """The part's form field name and its filename (None without one)."""
        _kind, options = parse_options_header(self.headers.get(b"content-disposition", b""))
        return options.get(b"name", b"").decode("utf-8", "replace"), options.get(b"filename")
