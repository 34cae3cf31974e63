"""PDF pages without the server: the render size a transform asks of PDFium
(imgtransform/pdf_pages.bitmap_size), and the rasterizer processes driven in-process
(reused after a clean job or a refusal, killed past the deadline or when they die).
The HTTP behaviour is in tests/test_imgtransform_pdf.py."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest
from PIL import Image

from imgtransform.errors import Deadline, ImageError
from imgtransform.geometry import layout
from imgtransform.params import Transform
from imgtransform.pdf_pages import PdfPages, bitmap_size, is_pdf, memory_for
from tests.test_imgtransform_pdf import A4, A4_LANDSCAPE, GREEN, painted, write_pdf

A4_PX = (793, 1123)
MAX_OUT, MAX_PIXELS, MAX_SIDE = 4096, 50_000_000, 16384


def size(natural: tuple[int, int], **params: object) -> tuple[int, int]:
    return bitmap_size(natural, Transform(**params), MAX_OUT, MAX_PIXELS, MAX_SIDE)  # type: ignore[arg-type]


def test_a_pdf_is_told_by_its_first_bytes() -> None:
    assert is_pdf(b"%PDF-1.7\n...") and is_pdf(b"%PDF-")
    assert not is_pdf(b" %PDF-1.7") and not is_pdf(b"\x89PNG\r\n\x1a\n") and not is_pdf(b"")


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"w": 200}, (200, 283)),  # a thumbnail is a thumbnail-sized render
        ({"w": 100, "dpr": 2}, (200, 283)),
        ({}, A4_PX),  # no size: the natural size
        ({"w": 2000, "fit": "contain"}, (2000, 2832)),  # an enlargement is rendered large
        ({"w": 2000}, A4_PX),  # fit never upscales: no more than the natural size
        ({"w": 100, "h": 100, "fit": "cover"}, (100, 142)),  # the whole page, at the cover scale
        ({"w": 100, "rotate": 90}, (71, 100)),  # rotated after rendering: the page is 100 tall then
    ],
)
def test_the_render_is_the_size_the_output_uses(params: dict, expected: tuple[int, int]) -> None:
    assert size(A4_PX, **params) == expected


def test_the_render_stays_within_the_pixel_and_side_limits() -> None:
    giant = (266_667, 266_667)
    # crop keeps the natural resolution: the whole page would be 71 gigapixels.
    width, height = bitmap_size(giant, Transform(w=100, h=100, fit="crop"), MAX_OUT, 4_000_000, MAX_SIDE)
    assert width * height <= 4_000_000 and width == height and width >= 1990
    # A long strip: the side limit holds.
    width, height = bitmap_size((100_000, 50), Transform(fit="crop", w=10, h=10), MAX_OUT, MAX_PIXELS, 16384)
    assert width <= 16384 and height >= 1
    # No side ever goes below a pixel.
    assert bitmap_size((1, 1_000_000), Transform(w=1), MAX_OUT, MAX_PIXELS, MAX_SIDE)[0] == 1


@pytest.mark.parametrize("fit", ["fit", "pad", "contain"])
def test_a_single_given_side_is_exact_for_any_aspect(fit: str) -> None:
    """w=111 of a 1123x793 source gave 110 px: the derived height was rounded, then the
    source fitted into that box again. Images and PDF pages share the rule."""
    for width in range(300, 1400, 37):
        for height in range(300, 1400, 41):
            for side in range(20, 300, 7):
                wide = layout((width, height), Transform(w=side, fit=fit), MAX_OUT)
                tall = layout((width, height), Transform(h=side, fit=fit), MAX_OUT)
                assert wide.output[0] == side, (width, height, side, wide)
                assert tall.output[1] == side, (width, height, side, tall)
                assert fit != "pad" or wide.canvas == wide.size, (width, height, side, wide)


# ---------------------------------------------------------------- the rasterizers


@pytest.fixture
def pages() -> Iterator[PdfPages]:
    pool = PdfPages(memory_for(50_000_000, 50_000_000), keep=2)
    yield pool
    pool.close()


TWO_PAGES = write_pdf([(A4, painted(A4, (255, 0, 0))), (A4_LANDSCAPE, painted(A4_LANDSCAPE, GREEN))])


def natural_size(natural: tuple[int, int]) -> tuple[int, int]:
    return natural


def test_pages_come_back_at_the_asked_size_from_one_reused_process(pages: PdfPages) -> None:
    image, natural = pages.rasterize(TWO_PAGES, 1, lambda n: (n[0] // 4, n[1] // 4), Deadline(20))
    assert natural == A4_PX and image.size == (198, 280) and image.mode == "RGB"
    assert image.getpixel((99, 140)) == (255, 0, 0)
    image, natural = pages.rasterize(TWO_PAGES, 2, natural_size, Deadline(20))
    assert natural == (1123, 793) and image.size == natural
    red, green, blue = image.getpixel((500, 400))
    assert green > 120 and red < 40 and blue < 40
    # A refusal is a finished job too: the process carries on.
    with pytest.raises(ImageError) as past:
        pages.rasterize(TWO_PAGES, 3, natural_size, Deadline(20))
    assert (past.value.status, past.value.code, past.value.details) == (
        400,
        "InvalidParameter",
        {"parameter": "page", "pages": 2},
    )
    with pytest.raises(ImageError) as damaged:
        pages.rasterize(b"%PDF-1.4\nnot really", 1, natural_size, Deadline(20))
    assert (damaged.value.status, damaged.value.code) == (422, "CorruptImage")
    assert pages.started == 1


def test_a_job_past_its_deadline_kills_its_process(pages: PdfPages) -> None:
    pages.rasterize(TWO_PAGES, 1, natural_size, Deadline(20))
    (warm,) = pages._idle
    pid = warm.process.pid

    def slow(natural: tuple[int, int]) -> tuple[int, int]:
        time.sleep(0.3)  # the deadline passes while the worker waits for the render order
        return natural

    started = time.monotonic()
    with pytest.raises(ImageError) as late:
        pages.rasterize(TWO_PAGES, 1, slow, Deadline(0.2))
    assert (late.value.status, late.value.code) == (503, "TransformTimeout")
    assert time.monotonic() - started < 2
    assert warm.process.returncode is not None and not pages._idle
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # killed and reaped
    # The next page has a fresh process.
    image, _ = pages.rasterize(TWO_PAGES, 1, natural_size, Deadline(20))
    assert isinstance(image, Image.Image) and pages.started == 2


def test_a_process_that_dies_mid_job_is_a_422_and_is_replaced(pages: PdfPages) -> None:
    pages.rasterize(TWO_PAGES, 1, natural_size, Deadline(20))
    (warm,) = pages._idle

    def die(natural: tuple[int, int]) -> tuple[int, int]:
        os.kill(warm.process.pid, signal.SIGKILL)  # as PDFium aborting on a failed allocation
        warm.process.wait(5)
        return natural

    with pytest.raises(ImageError) as died:
        pages.rasterize(TWO_PAGES, 1, die, Deadline(20))
    assert (died.value.status, died.value.code) == (422, "PdfTooComplex")
    # One found dead while idle is not handed out either.
    pages.rasterize(TWO_PAGES, 1, natural_size, Deadline(20))
    (idle,) = pages._idle
    idle.process.kill()
    idle.process.wait(5)
    image, _ = pages.rasterize(TWO_PAGES, 2, natural_size, Deadline(20))
    assert image.size == (1123, 793) and pages.started == 3


def test_close_stops_the_idle_processes(pages: PdfPages) -> None:
    pages.rasterize(TWO_PAGES, 1, natural_size, Deadline(20))
    (idle,) = pages._idle
    pages.close()
    assert idle.process.returncode is not None
