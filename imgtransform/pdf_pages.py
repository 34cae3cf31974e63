"""PDF sources: told by their first bytes, one page rasterized at the resolution the
output needs (never more pixels than the source limits allow), then handed to the
image pipeline as if it had been decoded.

PDFium runs in rasterizer processes (imgtransform/pdf_worker.py), one job at a time
each, driven from the transform's worker thread: PDFium is not thread-safe, a
hostile content stream can take gigabytes and minutes, and PDFium aborts its
process when an allocation fails. A rasterizer's address space is capped; one that
overruns the transform's deadline is killed, so its slot in the pool is free again."""

from __future__ import annotations

import json
import logging
import math
import os
import select
import struct
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image

from imgtransform import geometry
from imgtransform.errors import Deadline, ImageError, timed_out
from imgtransform.params import Transform

log = logging.getLogger("folio.img")

MAGIC = b"%PDF-"
# The natural size of a page: its points (1/72 in) as CSS pixels (1/96 in), as a
# browser's PDF viewer shows it at 100% (A4: 794 x 1123).
PX_PER_POINT = 96 / 72
# What PDFium may use besides the file and the bitmap: parsed content, decoded
# images (a 600 dpi A4 scan is ~100 MB of pixels), fonts.
WORKING_MEMORY = 256 * 1024 * 1024
# A rasterizer is replaced after this many pages (PDFium's caches, a fragmented heap).
RECYCLE_AFTER = 50
WORKER = Path(__file__).with_name("pdf_worker.py")
_LENGTH = struct.Struct(">I")
_MAX_HEADER = 64 * 1024

Size = tuple[int, int]


def is_pdf(data: bytes) -> bool:
    """By content, as `file` does: a PDF starts with `%PDF-`, whatever its name or type."""
    return data.startswith(MAGIC)


def memory_for(max_source_bytes: int, max_source_pixels: int) -> int:
    """A rasterizer's address-space allowance beyond what it has at start: the file,
    the largest bitmap (3 bytes a pixel, rows padded), and PDFium's working memory."""
    return max_source_bytes + 4 * max_source_pixels + WORKING_MEMORY


def bitmap_size(natural: Size, t: Transform, max_output_side: int, max_pixels: int, max_side: int) -> Size:
    """The bitmap a page is rendered at: as many pixels as the transform's layout uses
    from it (a 200 px thumbnail of an A4 page is a 200 px render, an enlargement of a
    vector page is rendered large, not upscaled), within `max_pixels` and `max_side`."""
    sideways = t.rotate in (90, 270)
    oriented = (natural[1], natural[0]) if sideways else natural
    plan = geometry.layout(oriented, t, max_output_side)
    # Each axis at the layout's own scale: the kept region then renders at exactly the
    # output size, and the pipeline has nothing left to resample.
    width = oriented[0] * plan.size[0] / plan.region[0]
    height = oriented[1] * plan.size[1] / plan.region[1]
    if sideways:
        width, height = height, width
    shrink = min(1.0, math.sqrt(max_pixels / (width * height)), max_side / max(width, height))
    if shrink < 1.0:
        # Rounded down: the limits hold exactly.
        return max(1, math.floor(width * shrink)), max(1, math.floor(height * shrink))
    return max(1, round(width)), max(1, round(height))


class _Overran(Exception):
    """The deadline passed while waiting on the rasterizer."""


class _Died(Exception):
    """The rasterizer ended mid-job or broke the protocol."""


class _Rasterizer:
    """One worker process and its pipes (non-blocking: every wait has the deadline)."""

    def __init__(self, memory_bytes: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-I", str(WORKER), str(memory_bytes)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            # Its own session: a Ctrl-C at the server's terminal is the server's to handle.
            start_new_session=True,
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self.to_worker = self.process.stdin.fileno()
        self.from_worker = self.process.stdout.fileno()
        os.set_blocking(self.to_worker, False)
        os.set_blocking(self.from_worker, False)
        self.jobs = 0

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        self.process.kill()
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                pipe.close()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            pass  # unkillable for now (a stuck disk); the kernel reaps it when it ends

    def _wait(self, fd: int, event: int, deadline: Deadline) -> None:
        remaining = deadline.remaining()
        if remaining <= 0:
            raise _Overran
        poller = select.poll()
        poller.register(fd, event)
        if not poller.poll(math.ceil(remaining * 1000)):
            raise _Overran

    def send(self, header: dict[str, Any], payload: bytes | None, deadline: Deadline) -> None:
        text = json.dumps(header).encode()
        for piece in (_LENGTH.pack(len(text)) + text, payload or b""):
            view = memoryview(piece)
            while view:
                self._wait(self.to_worker, select.POLLOUT, deadline)
                try:
                    view = view[os.write(self.to_worker, view) :]
                except BlockingIOError:
                    continue
                except OSError as exc:  # BrokenPipeError: it is gone
                    raise _Died from exc

    def _read_into(self, buffer: bytearray, deadline: Deadline) -> None:
        view = memoryview(buffer)
        while view:
            self._wait(self.from_worker, select.POLLIN, deadline)
            try:
                count = os.readv(self.from_worker, [view])
            except BlockingIOError:
                continue
            except OSError as exc:
                raise _Died from exc
            if count == 0:
                raise _Died
            view = view[count:]

    def receive(self, deadline: Deadline, max_payload: int) -> tuple[dict[str, Any], bytearray]:
        """A frame, its payload no larger than the caller expects."""
        length = bytearray(_LENGTH.size)
        self._read_into(length, deadline)
        size = _LENGTH.unpack(length)[0]
        if size > _MAX_HEADER:
            raise _Died
        text = bytearray(size)
        self._read_into(text, deadline)
        try:
            header = json.loads(text)
        except ValueError as exc:
            raise _Died from exc
        if not isinstance(header, dict):
            raise _Died
        count = header.get("bytes", 0)
        if not isinstance(count, int) or not 0 <= count <= max_payload:
            raise _Died
        payload = bytearray(count)
        self._read_into(payload, deadline)
        return header, payload


def _natural(opened: dict[str, Any]) -> Size:
    sides = (opened.get("width"), opened.get("height"))
    points = [float(side) for side in sides if isinstance(side, int | float)]
    if len(points) != 2 or not all(math.isfinite(side) and side > 0 for side in points):
        raise _damaged()
    return max(1, round(points[0] * PX_PER_POINT)), max(1, round(points[1] * PX_PER_POINT))


def _damaged() -> ImageError:
    return ImageError(422, "CorruptImage", "The PDF could not be read (damaged, or no page to show).")


def _refusal(problem: object, page: int, pages: object) -> ImageError:
    if problem == "password":
        return ImageError(
            422,
            "PdfEncrypted",
            "The PDF is protected by a password (or an unsupported encryption): not rendered.",
        )
    if problem == "range" and isinstance(pages, int):
        return ImageError(
            400,
            "InvalidParameter",
            f"page {page} is past the last page of this PDF, which has {pages}.",
            {"parameter": "page", "pages": pages},
        )
    return _damaged()


class PdfPages:
    """The rasterizer processes: started on the first PDF (a Folio that serves none
    keeps none), at most `keep` idle ones kept warm; at most one per transform thread
    runs, since each is driven from one."""

    def __init__(self, memory_bytes: int, keep: int) -> None:
        self.memory_bytes = memory_bytes
        self.keep = keep
        self._lock = threading.Lock()
        self._idle: list[_Rasterizer] = []
        self._closed = False
        self.started = 0  # processes started (a hook for tests and stats)

    def _take(self) -> _Rasterizer:
        with self._lock:
            while self._idle:
                rasterizer = self._idle.pop()
                if rasterizer.alive():
                    return rasterizer
                rasterizer.stop()
            self.started += 1
        return _Rasterizer(self.memory_bytes)

    def _give_back(self, rasterizer: _Rasterizer, reusable: bool) -> None:
        rasterizer.jobs += 1
        if reusable and rasterizer.jobs < RECYCLE_AFTER:
            with self._lock:
                if not self._closed and len(self._idle) < self.keep:
                    self._idle.append(rasterizer)
                    return
        rasterizer.stop()

    def rasterize(
        self, data: bytes, page: int, size_for: Callable[[Size], Size], deadline: Deadline
    ) -> tuple[Image.Image, Size]:
        """Page `page` (1-based) as RGB on white, at the size `size_for` picks from the
        page's natural size; and that natural size. Raises ImageError (400 a page past
        the last, 422 damaged, encrypted or too much for the memory cap, 503 timeout)."""
        rasterizer = self._take()
        reusable = False  # only a rasterizer that finished its job cleanly is used again
        try:
            header = {"op": "open", "page": page, "seconds": deadline.remaining(), "bytes": len(data)}
            rasterizer.send(header, data, deadline)
            opened, _ = rasterizer.receive(deadline, 0)
            if "error" in opened:
                reusable = True
                raise _refusal(opened["error"], page, opened.get("pages"))
            natural = _natural(opened)
            width, height = size_for(natural)
            rasterizer.send({"op": "render", "width": width, "height": height}, None, deadline)
            # pdfium pads rows to 4 bytes: at most 3 more than the pixels.
            done, pixels = rasterizer.receive(deadline, (3 * width + 3) * height)
            if "error" in done:
                reusable = True
                raise _damaged()
            stride = done.get("stride")
            if (
                (done.get("width"), done.get("height")) != (width, height)
                or not isinstance(stride, int)
                or not 3 * width <= stride <= 3 * width + 3
                or len(pixels) != stride * height
            ):
                raise _Died
            reusable = True
            return Image.frombuffer("RGB", (width, height), pixels, "raw", "RGB", stride, 1), natural
        except _Overran as exc:
            log.warning("a PDF page overran the transform's deadline; its rasterizer is killed")
            raise timed_out() from exc
        except _Died as exc:
            try:  # its output ended: it is exiting (-6: PDFium aborted on a failed allocation)
                status: int | None = rasterizer.process.wait(1)
            except subprocess.TimeoutExpired:
                status = None  # alive, but it broke the protocol: killed below
            log.warning("a PDF rasterizer ended mid-page (exit status %s)", status)
            raise ImageError(
                422,
                "PdfTooComplex",
                "The PDF page could not be rendered within the memory a transform may use "
                "(or the file broke the renderer).",
            ) from exc
        finally:
            self._give_back(rasterizer, reusable)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for rasterizer in idle:
            rasterizer.stop()
