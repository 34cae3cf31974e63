"""The aws-chunked body decoder: framing, per-chunk signatures, trailing headers and
their signature, for the three STREAMING-* payload modes.

Bodies of any size pass through in constant memory: data bytes are handed out as
memoryview slices of the caller's buffers, only chunk-header and trailer lines are
buffered (and those are capped).
"""

from __future__ import annotations

import enum
import hashlib
import re

from s3proxy.api.errors import S3Error
from s3proxy.auth.sigv4 import (
    AuthResult,
    PayloadMode,
    chunk_string_to_sign,
    sign,
    signatures_equal,
    trailer_string_to_sign,
)

# A chunk header is "hex-size;chunk-signature=<64 hex>" (~90 bytes) and a trailer line is a
# checksum header; anything longer is garbage we refuse to buffer.
MAX_LINE_BYTES = 4096
MAX_TRAILER_BYTES = 16384
TRAILER_SIGNATURE = "x-amz-trailer-signature"
_HEX_SIZE = re.compile(rb"[0-9a-fA-F]{1,16}")


class _State(enum.Enum):
    CHUNK_HEADER = 1
    CHUNK_DATA = 2
    CHUNK_END = 3  # the CRLF after a chunk's data
    TRAILER = 4  # after the zero-size chunk: trailer lines up to an empty line
    DONE = 5


def _malformed(message: str) -> S3Error:
    return S3Error("InvalidArgument", f"Malformed aws-chunked encoding: {message}")


class ChunkedDecoder:
    """Decode an aws-chunked body fed in arbitrary pieces.

    Data is handed out before its chunk's signature is checked (the check needs the whole
    chunk): nothing may be committed until finish() returns.
    """

    def __init__(self, auth: AuthResult) -> None:
        if not auth.payload_mode.is_streaming:
            raise ValueError(f"not a streaming payload mode: {auth.payload_mode}")
        self._auth = auth
        self._signed = auth.payload_mode in (
            PayloadMode.STREAMING_SIGNED,
            PayloadMode.STREAMING_SIGNED_TRAILER,
        )
        self._trailers_allowed = auth.payload_mode in (
            PayloadMode.STREAMING_UNSIGNED_TRAILER,
            PayloadMode.STREAMING_SIGNED_TRAILER,
        )
        self._declared = auth.decoded_content_length
        self._previous_signature = auth.seed_signature
        self._state = _State.CHUNK_HEADER
        self._line = bytearray()  # a partial header/trailer line carried between feeds
        self._chunk_remaining = 0
        self._chunk_signature = ""
        self._chunk_hash: hashlib._Hash | None = None  # only for signed streams
        self._end_seen = 0  # bytes of the post-data CRLF already consumed
        self._last_chunk_seen = False
        self._trailers: dict[str, str] = {}
        self._trailer_lines: list[str] = []
        self._trailer_bytes = 0
        self._trailer_signature: str | None = None
        self.decoded_length = 0

    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes | memoryview]:
        """Decode the next piece of the body; returns payload pieces (slices of `data`)."""
        view = memoryview(data)
        if view.ndim != 1 or view.itemsize != 1:
            view = view.cast("B")
        out: list[bytes | memoryview] = []
        pos = 0
        end = len(view)
        while pos < end:
            state = self._state
            if state is _State.CHUNK_DATA:
                take = min(self._chunk_remaining, end - pos)
                piece = view[pos : pos + take]
                pos += take
                self._chunk_remaining -= take
                if self._chunk_hash is not None:
                    self._chunk_hash.update(piece)
                out.append(piece)
                if self._chunk_remaining == 0:
                    if self._chunk_hash is not None:
                        self._check_chunk_signature(self._chunk_hash.hexdigest())
                        self._chunk_hash = None
                    self._state = _State.CHUNK_END
                    self._end_seen = 0
            elif state is _State.CHUNK_END:
                pos = self._consume_crlf(view, pos, end)
            elif state is _State.DONE:
                raise _malformed("data after the end of the stream")
            else:
                line, pos = self._read_line(view, pos, end)
                if line is None:
                    break
                if state is _State.CHUNK_HEADER:
                    self._start_chunk(line)
                else:
                    self._trailer_line(line)
        return out

    def finish(self) -> dict[str, str]:
        """Check the stream ended cleanly; returns the trailers {lowercase name: value}."""
        if self._state is _State.TRAILER and self._line:
            # Some clients end the last trailer line at EOF without its CRLF.
            line = bytes(self._line).rstrip(b"\r")
            self._line.clear()
            self._trailer_line(line)
            if self._state is not _State.DONE:
                self._end_trailers()
        elif self._state is _State.TRAILER:
            # A missing final empty line at EOF is tolerated.
            self._end_trailers()
        elif self._state is _State.CHUNK_END and self._chunk_remaining == 0 and self._after_last_chunk():
            self._state = _State.DONE
        if self._state is not _State.DONE:
            raise S3Error("IncompleteBody", "The request body ended before the final aws-chunked chunk.")
        if self._declared is not None and self.decoded_length != self._declared:
            raise S3Error(
                "IncompleteBody",
                "You did not provide the number of bytes specified by the x-amz-decoded-content-length header.",
            )
        for name in self._auth.trailer_names:
            if name not in self._trailers:
                raise S3Error("InvalidRequest", f"The trailer {name} declared in x-amz-trailer was not sent.")
        return dict(self._trailers)

    # -- framing -------------------------------------------------------------------------

    def _read_line(self, view: memoryview, pos: int, end: int) -> tuple[bytes | None, int]:
        """The next CRLF (or LF) terminated line without its terminator, or None if incomplete."""
        newline = _find_newline(view, pos, end)
        if newline < 0:
            if len(self._line) + end - pos > MAX_LINE_BYTES:
                raise _malformed("line too long")
            self._line += view[pos:end]
            if len(self._line) > MAX_LINE_BYTES:
                raise _malformed("line too long")
            return None, end
        if self._line:
            self._line += view[pos:newline]
            line = bytes(self._line)
            self._line.clear()
        else:
            line = bytes(view[pos:newline])
        if len(line) > MAX_LINE_BYTES:
            raise _malformed("line too long")
        if line.endswith(b"\r"):
            line = line[:-1]
        return line, newline + 1

    def _consume_crlf(self, view: memoryview, pos: int, end: int) -> int:
        expected = b"\r\n"
        while pos < end and self._end_seen < 2:
            byte = view[pos]
            if byte != expected[self._end_seen]:
                if self._end_seen == 0 and byte == 0x0A:  # a bare LF: tolerated
                    self._end_seen = 2
                    pos += 1
                    break
                raise _malformed("chunk data is not followed by CRLF")
            self._end_seen += 1
            pos += 1
        if self._end_seen == 2:
            self._state = _State.DONE if self._after_last_chunk() else _State.CHUNK_HEADER
        return pos

    def _after_last_chunk(self) -> bool:
        # True only for the CRLF after the zero-size chunk in STREAMING_SIGNED mode: the
        # trailer modes go to TRAILER straight after that chunk's header line.
        return self._last_chunk_seen

    def _start_chunk(self, line: bytes) -> None:
        size_field, _, extensions = line.partition(b";")
        size_text = size_field.strip()
        # int(x, 16) alone would also take "-1", "0x10" and "1_0".
        if not _HEX_SIZE.fullmatch(size_text):
            raise _malformed("bad chunk size")
        size = int(size_text, 16)
        signature = ""
        if extensions:
            for extension in extensions.split(b";"):
                name, _, value = extension.partition(b"=")
                if name.strip() == b"chunk-signature":
                    signature = value.strip().decode("ascii", "replace")
        if self._signed and not signature:
            raise S3Error(
                "SignatureDoesNotMatch", "A chunk of a signed aws-chunked stream carries no signature."
            )
        if self._declared is not None and self.decoded_length + size > self._declared:
            raise S3Error(
                "InvalidArgument",
                "The aws-chunked body carries more bytes than x-amz-decoded-content-length declares.",
            )
        self.decoded_length += size
        self._chunk_signature = signature
        if size == 0:
            self._last_chunk_seen = True
            if self._signed:
                self._check_chunk_signature(hashlib.sha256(b"").hexdigest())
            if self._trailers_allowed:
                self._state = _State.TRAILER
            else:
                # The zero-size chunk is followed by the (empty) data's CRLF.
                self._state = _State.CHUNK_END
                self._end_seen = 0
            return
        self._chunk_remaining = size
        self._chunk_hash = hashlib.sha256() if self._signed else None
        self._state = _State.CHUNK_DATA

    def _check_chunk_signature(self, chunk_sha256_hex: str) -> None:
        auth = self._auth
        expected = sign(
            auth.signing_key,
            chunk_string_to_sign(auth.amz_date, auth.scope, self._previous_signature, chunk_sha256_hex),
        )
        if not signatures_equal(expected, self._chunk_signature):
            raise S3Error("SignatureDoesNotMatch", "The chunk signature does not match.")
        self._previous_signature = expected

    # -- trailers ------------------------------------------------------------------------

    def _trailer_line(self, line: bytes) -> None:
        if not line.strip():
            self._end_trailers()
            return
        self._trailer_bytes += len(line)
        if self._trailer_bytes > MAX_TRAILER_BYTES:
            raise _malformed("trailers too long")
        text = line.decode("latin-1")
        name, sep, value = text.partition(":")
        if not sep:
            raise _malformed("bad trailer line")
        name = name.strip().lower()
        value = value.strip()
        if name == TRAILER_SIGNATURE:
            self._trailer_signature = value
            return
        if self._trailer_signature is not None:
            raise _malformed("trailer after the trailer signature")
        self._trailers[name] = value
        self._trailer_lines.append(f"{name}:{value}\n")

    def _end_trailers(self) -> None:
        if self._auth.payload_mode is PayloadMode.STREAMING_SIGNED_TRAILER:
            if self._trailer_signature is None:
                raise S3Error(
                    "SignatureDoesNotMatch", "The trailing headers carry no x-amz-trailer-signature."
                )
            auth = self._auth
            trailer_hash = hashlib.sha256("".join(self._trailer_lines).encode("latin-1")).hexdigest()
            expected = sign(
                auth.signing_key,
                trailer_string_to_sign(auth.amz_date, auth.scope, self._previous_signature, trailer_hash),
            )
            if not signatures_equal(expected, self._trailer_signature):
                raise S3Error("SignatureDoesNotMatch", "The trailer signature does not match.")
        self._state = _State.DONE


def _find_newline(view: memoryview, pos: int, end: int) -> int:
    # memoryview has no find(); header lines are short, so searching a small window of
    # bytes keeps this cheap even when the feed is a 1 MiB piece.
    window = bytes(view[pos : min(end, pos + MAX_LINE_BYTES + 2)])
    index = window.find(b"\n")
    return -1 if index < 0 else pos + index
