"""The process that turns one PDF page into pixels with pypdfium2, one job at a time
over its stdin and stdout. PDFium is not thread-safe (the docgen engine calls it in the
server process too), a hostile content stream can take gigabytes and minutes to parse,
and PDFium aborts the whole process when an allocation fails: so it runs here, under
an address-space cap and an alarm, and the server kills it at the transform's deadline.

Started by imgtransform/pdf_pages.py as `python -I pdf_worker.py MEMORY_BYTES`: it
imports nothing of Folio's, only the standard library and pypdfium2.

A frame, both ways: a 4-byte big-endian length, that many bytes of JSON, then the
header's "bytes" bytes of payload (none when absent).
  server: {"op": "open", "page": n, "seconds": s, "bytes": size} + the PDF
  worker: {"pages": N, "width": w, "height": h}  (the page's size in points, /Rotate applied)
          or {"error": "password" | "damaged" | "range", "pages": N}
  server: {"op": "render", "width": W, "height": H}  (or anything else: the job ends)
  worker: {"width": W, "height": H, "stride": S, "bytes": S * H} + RGB rows (S >= 3 W)
          or {"error": "damaged"}
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import signal
import struct
import sys
from typing import Any, BinaryIO

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

LENGTH = struct.Struct(">I")
MAX_HEADER = 64 * 1024
WHITE = (255, 255, 255, 255)


def _read_exact(stream: BinaryIO, size: int) -> bytearray | None:
    buffer = bytearray(size)
    view = memoryview(buffer)
    got = 0
    while got < size:
        count = stream.readinto(view[got:])  # type: ignore[attr-defined]
        if not count:
            return None
        got += count
    return buffer


def _receive(stream: BinaryIO) -> tuple[dict[str, Any], bytearray] | None:
    """The next frame; None when the server closed the pipe or broke the protocol."""
    length = _read_exact(stream, LENGTH.size)
    if length is None or LENGTH.unpack(length)[0] > MAX_HEADER:
        return None
    text = _read_exact(stream, LENGTH.unpack(length)[0])
    if text is None:
        return None
    header = json.loads(text)
    payload = _read_exact(stream, int(header.get("bytes", 0)))
    if payload is None:
        return None
    return header, payload


def _send(stream: BinaryIO, header: dict[str, Any], payload: Any = None) -> None:
    text = json.dumps(header).encode()
    for piece in (LENGTH.pack(len(text)) + text, payload):
        if piece is None:
            continue
        view = memoryview(piece).cast("B")
        while view:
            view = view[stream.write(view) :]


def _open(data: bytearray) -> tuple[pdfium.PdfDocument | None, str]:
    try:
        # Handed to PDFium in place: no second copy of a file of up to max_source_bytes.
        return pdfium.PdfDocument((ctypes.c_char * len(data)).from_buffer(data)), ""
    except pdfium.PdfiumError as exc:
        # FPDF_ERR_SECURITY: an encryption scheme PDFium does not support; for the
        # caller that is as closed as one that needs a password.
        locked = exc.err_code in (pdfium_c.FPDF_ERR_PASSWORD, pdfium_c.FPDF_ERR_SECURITY)
        return None, "password" if locked else "damaged"


def _job(reader: BinaryIO, writer: BinaryIO, request: dict[str, Any], data: bytearray) -> bool:
    """One page; False when the server went away."""
    document, problem = _open(data)
    if document is None:
        _send(writer, {"error": problem})
        return True
    try:
        pages = len(document)
        index = int(request["page"]) - 1
        size = pdfium_c.FS_SIZEF()
        if not 0 <= index < pages:
            _send(writer, {"error": "range", "pages": pages})
            return True
        if not pdfium_c.FPDF_GetPageSizeByIndexF(document, index, ctypes.byref(size)):
            _send(writer, {"error": "damaged", "pages": pages})
            return True
        _send(writer, {"pages": pages, "width": size.width, "height": size.height})
        received = _receive(reader)
        if received is None:
            return False
        render = received[0]
        if render.get("op") != "render":
            return True
        width, height = int(render["width"]), int(render["height"])
        try:
            page = document[index]  # parses the content stream: the expensive, hostile part
        except pdfium.PdfiumError:
            _send(writer, {"error": "damaged", "pages": pages})
            return True
        bitmap = pdfium.PdfBitmap.new_native(
            width, height, format=pdfium_c.FPDFBitmap_BGR, rev_byteorder=True
        )
        bitmap.fill_rect(WHITE, 0, 0, width, height)
        flags = pdfium_c.FPDF_ANNOT | pdfium_c.FPDF_REVERSE_BYTE_ORDER  # RGB, annotations drawn
        pdfium_c.FPDF_RenderPageBitmap(bitmap, page, 0, 0, width, height, 0, flags)
        stride = bitmap.stride
        header = {"width": width, "height": height, "stride": stride, "bytes": stride * height}
        _send(writer, header, bitmap.buffer)
        page.close()
        return True
    finally:
        document.close()


def _address_space() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server's Ctrl-C is the server's to handle
    # The protocol gets its own descriptor; fd 1 goes to /dev/null, so nothing a library
    # prints can corrupt a frame.
    writer = open(os.dup(1), "wb", buffering=0)  # noqa: SIM115 - the process's lifetime
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    reader = open(0, "rb", buffering=0)  # noqa: SIM115
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # PDFium aborting is an answer, not a core file
    extra = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    if extra:
        try:
            ceiling = _address_space() + extra
            resource.setrlimit(resource.RLIMIT_AS, (ceiling, ceiling))
        except OSError:
            pass  # no /proc: no cap rather than a wrong one
    while True:
        received = _receive(reader)
        if received is None:
            return  # the server closed the pipe (or is gone)
        request, data = received
        # A job that outlives the server's patience dies on its own too (SIGALRM's
        # default action), even if the server went away without killing it.
        signal.alarm(max(1, int(float(request.get("seconds", 60))) + 1))
        if not _job(reader, writer, request, data):
            return
        signal.alarm(0)
        del data, received


if __name__ == "__main__":
    main()
