"""What a rendering produces, and the pixel and markup helpers both engines share.
Kept apart from render.py so the server process never imports WeasyPrint (which
changes Pillow's process-wide settings when imported): only the workers do."""

from __future__ import annotations

import io
from dataclasses import dataclass

import cssselect2
import lxml.html
import pypdfium2 as pdfium
from PIL import Image, ImageChops

from docgen.options import PdfOptions

PREVIEW_SIDE = 400


class RenderError(Exception):
    """A document that cannot be rendered (reported on the job, not a crash)."""


@dataclass(frozen=True)
class Rendered:
    data: bytes
    content_type: str
    ext: str
    pages: int
    preview: bytes | None = None  # a PNG thumbnail of page 1


def lift_extracted(page_html: str, pdf: PdfOptions) -> tuple[str, dict[str, str]]:
    """With method "extract", the elements matched by the selectors taken out of the
    page; returns the page without them and their HTML by box name."""
    boxes = {"folioHeader": pdf.header, "folioFooter": pdf.footer}
    wanted = {name: box for name, box in boxes.items() if box is not None and box.method == "extract"}
    if not wanted:
        return page_html, {}
    root = lxml.html.document_fromstring(page_html or "<html></html>")
    wrapper = cssselect2.ElementWrapper.from_html_root(root)
    lifted = {}
    for name, box in wanted.items():
        found = next(iter(wrapper.query_all(box.selector or "")), None)
        if found is None:
            lifted[name] = ""
            continue
        element = found.etree_element
        lifted[name] = lxml.html.tostring(element, encoding="unicode", with_tail=False)
        element.drop_tree()
    return lxml.html.tostring(root, encoding="unicode", doctype="<!DOCTYPE html>"), lifted


def rasterize(pdf_bytes: bytes, scale: float, transparent: bool) -> Image.Image:
    document = pdfium.PdfDocument(pdf_bytes)
    try:
        page = document[0]
        # PDF points are 1/72 in; CSS pixels 1/96 in.
        bitmap = page.render(scale=scale * 96 / 72, fill_color=(255, 255, 255, 0 if transparent else 255))
        return bitmap.to_pil().convert("RGBA" if transparent else "RGB")
    finally:
        document.close()


def trimmed(image: Image.Image) -> Image.Image:
    """Without the uniform border (the colour of the top-left pixel)."""
    background = Image.new(image.mode, image.size, image.getpixel((0, 0)))
    box = ImageChops.difference(image, background).getbbox()
    return image.crop(box) if box else image


def encode_image(image: Image.Image, image_type: str, quality: int) -> bytes:
    out = io.BytesIO()
    if image_type == "jpg":
        image.convert("RGB").save(out, "JPEG", quality=quality)
    elif image_type == "webp":
        image.save(out, "WEBP", quality=quality)
    else:
        image.save(out, "PNG")
    return out.getvalue()


def preview_of(pdf_bytes: bytes) -> bytes:
    image = rasterize(pdf_bytes, 1.0, False)
    image.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE))
    return encode_image(image, "png", 80)
