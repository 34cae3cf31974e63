"""A multipart/form-data upload parsed as it arrives: the `file` part streams
straight into a store writer (memory does not grow with the file), the small text
fields (`key`, `bucket`) are kept. python-multipart does the parsing; its callbacks
are synchronous, so they collect bytes that the async loop then writes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser

from core.formparts import PartHeaders
from core.jsonapi import bad_request
from core.requestbody import multipart_boundary

MAX_FIELD_BYTES = 64 * 1024
# The whole form is bounded, not only each value: a part's headers, and the text fields all
# together (an upload's Content-Length may be gigabytes; only the file may use them).
MAX_PART_HEADER_BYTES = 16 * 1024
MAX_TEXT_BYTES = 256 * 1024
MAX_PARTS = 64
FILE_FIELD = "file"


@dataclass
class ParsedForm:
    fields: dict[str, str] = field(default_factory=dict)
    filename: str | None = None
    content_type: str | None = None
    saw_file: bool = False
    # The closing boundary arrived: a body cut short must never store a truncated file.
    complete: bool = False


def boundary_of(content_type: str) -> bytes:
    # Checked against RFC 2046 (1 to 70 characters) before python-multipart sees it: past
    # 256 bytes it raises its own error mid-parse.
    return multipart_boundary(content_type)


async def stream_form(
    body: AsyncIterator[bytes], boundary: bytes, write_file: Callable[[bytes], Awaitable[None]]
) -> ParsedForm:
    form = ParsedForm()
    pending: list[bytes] = []
    state: dict[str, object] = {}
    counts = {"parts": 0, "text": 0, "header": 0}

    def spend_header(count: int) -> None:
        counts["header"] += count
        if counts["header"] > MAX_PART_HEADER_BYTES:
            raise bad_request(f"A form part's headers are limited to {MAX_PART_HEADER_BYTES} bytes.")

    part = PartHeaders(spend_header)

    def on_part_begin() -> None:
        counts["parts"] += 1
        if counts["parts"] > MAX_PARTS:
            raise bad_request(f"A form takes at most {MAX_PARTS} parts.")
        counts["header"] = 0
        part.begin()
        state.update(name=None, data=bytearray(), is_file=False)

    def on_headers_finished() -> None:
        name, filename = part.disposition()
        state["name"] = name
        if name == FILE_FIELD:
            if form.saw_file:
                raise bad_request("Send one file per upload.")
            form.saw_file = True
            state["is_file"] = True
            form.filename = filename.decode("utf-8", "replace") if filename is not None else None
            content_type = part.headers.get(b"content-type")
            form.content_type = content_type.decode("latin-1") if content_type else None

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if state["is_file"]:
            pending.append(data[start:end])
            return
        value: bytearray = state["data"]  # type: ignore[assignment]
        value += data[start:end]
        counts["text"] += end - start
        if len(value) > MAX_FIELD_BYTES:
            raise bad_request(f"The form field {state['name']!r} is too long.")
        if counts["text"] > MAX_TEXT_BYTES:
            raise bad_request(f"The form's text fields are limited to {MAX_TEXT_BYTES} bytes in all.")

    def on_part_end() -> None:
        if not state["is_file"] and state["name"]:
            value: bytearray = state["data"]  # type: ignore[assignment]
            form.fields[str(state["name"])] = value.decode("utf-8", "replace")

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_header_field": part.on_field,
            "on_header_value": part.on_value,
            "on_header_end": part.on_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
            "on_end": lambda: setattr(form, "complete", True),
        },
    )
    async for chunk in body:
        try:
            parser.write(chunk)
        except FormParserError as exc:  # any of python-multipart's errors is the client's
            raise bad_request("The multipart form is malformed.", reason=str(exc)[:200]) from exc
        for piece in pending:
            await write_file(piece)
        pending.clear()
    try:
        parser.finalize()
    except FormParserError as exc:
        raise bad_request("The multipart form is malformed.", reason=str(exc)[:200]) from exc
    if not form.complete:
        raise bad_request("The multipart form ended before its closing boundary.")
    return form
