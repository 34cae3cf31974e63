"""The pixel work of one transform, run in a worker thread (Pillow releases the GIL
while it decodes, resizes and encodes): decode no more than the output needs (or
rasterize a PDF page at that size), orient, resize, crop, convert to sRGB, pad, apply
effects, encode without metadata."""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass

from PIL import Image, ImageCms, ImageFile, ImageFilter, ImageOps, UnidentifiedImageError

from imgtransform import geometry, pdf_pages, smartcrop
from imgtransform.errors import Deadline, ImageError
from imgtransform.negotiate import SOURCE
from imgtransform.params import Transform
from imgtransform.pdf_pages import PdfPages

# No SVG, no PostScript, no exotic decoders: only what a web image is.
DECODERS = ("JPEG", "PNG", "WEBP", "GIF", "AVIF", "BMP", "TIFF")
CONTENT_TYPES = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp", "avif": "image/avif"}
DEFAULT_QUALITY = {"jpeg": 80, "webp": 80, "avif": 60}
_SOURCE_FORMATS = {"JPEG": "jpeg", "PNG": "png", "WEBP": "webp"}
_ALPHA_FORMATS = ("png", "webp", "avif")
_ORIENTATION = 0x0112
# rotate (clockwise) as Pillow transposes (counter-clockwise).
_ROTATIONS = {90: Image.Transpose.ROTATE_270, 180: Image.Transpose.ROTATE_180, 270: Image.Transpose.ROTATE_90}
_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
# Pillow's decompression-bomb warning is an error here (the limits are checked from
# the header first; this also covers frames and decoders that grow later).
warnings.simplefilter("error", Image.DecompressionBombWarning)


def set_pixel_limit(pixels: int) -> None:
    """Pillow's own bomb check (a process-wide setting) at the configured limit; and
    truncated files are errors (another library may have relaxed that for the process)."""
    Image.MAX_IMAGE_PIXELS = pixels
    ImageFile.LOAD_TRUNCATED_IMAGES = False


@dataclass(frozen=True)
class Limits:
    max_source_pixels: int
    max_source_side: int
    max_output_side: int
    avif_max_pixels: int
    avif_speed: int = 8
    webp_method: int = 2


@dataclass(frozen=True)
class Rendered:
    data: bytes
    format: str

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.format]


def _open(data: bytes, limits: Limits) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data), formats=DECODERS)
    except UnidentifiedImageError as exc:
        raise ImageError(
            415, "UnsupportedImage", "The object is not an image or a PDF Folio can transform."
        ) from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _too_large(limits) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(422, "CorruptImage", "The image could not be decoded.") from exc
    width, height = image.size
    if width * height > limits.max_source_pixels or max(width, height) > limits.max_source_side:
        raise _too_large(limits)
    return image


def _too_large(limits: Limits) -> ImageError:
    return ImageError(
        422,
        "ImageTooLarge",
        f"The image is over {limits.max_source_pixels:,} pixels or {limits.max_source_side:,} px on a side.",
    )


def _turns_sideways(image: Image.Image, t: Transform) -> bool:
    """Whether EXIF orientation and `rotate` together swap width and height."""
    try:
        orientation = image.getexif().get(_ORIENTATION, 1)
    except Exception:  # noqa: BLE001 - a damaged EXIF block is as good as none
        orientation = 1
    return (orientation in (5, 6, 7, 8)) != (t.rotate in (90, 270))


def _normalised_mode(image: Image.Image) -> Image.Image:
    """Modes the resampler and encoders share: L, LA, RGB, RGBA (CMYK kept until the
    colour conversion, after the resize, where it is cheap)."""
    mode = image.mode
    if mode in ("L", "LA", "RGB", "RGBA", "CMYK"):
        return image
    if mode in ("P", "PA"):
        return image.convert("RGBA" if "transparency" in image.info or mode == "PA" else "RGB")
    if mode.startswith("I") or mode == "F":
        # 16-bit and float greys: to 8 bits.
        return image.convert("I").point(lambda value: value / 256).convert("L")
    if mode == "1":
        return image.convert("L")
    return image.convert("RGBA" if "A" in mode else "RGB")


def _to_srgb(image: Image.Image, icc: bytes | None) -> Image.Image:
    if icc and image.mode in ("RGB", "RGBA", "CMYK", "L"):
        try:
            out_mode = "RGBA" if image.mode == "RGBA" else "L" if image.mode == "L" else "RGB"
            profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            converted = ImageCms.profileToProfile(image, profile, _SRGB, outputMode=out_mode)
            if converted is not None:
                return converted
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass  # a broken profile: fall back to the plain conversion
    if image.mode == "CMYK":
        return image.convert("RGB")
    return image


def _has_alpha(image: Image.Image) -> bool:
    if image.mode not in ("RGBA", "LA"):
        return False
    low, _high = image.getchannel("A").getextrema()
    return low < 255


def _output_format(
    fmt_class: str, source_format: str | None, alpha: bool, pixels: int, limits: Limits
) -> str:
    if fmt_class == "avif":
        return "avif" if pixels <= limits.avif_max_pixels else "webp"
    if fmt_class != SOURCE:
        return fmt_class
    fmt = _SOURCE_FORMATS.get(source_format or "", "jpeg")
    return "png" if alpha and fmt == "jpeg" else fmt


def _flatten(image: Image.Image) -> Image.Image:
    """An image with transparency on white (for JPEG)."""
    background = Image.new("RGB", image.size, (255, 255, 255))
    background.paste(image.convert("RGBA"), mask=image.getchannel("A"))
    return background


def _encode(image: Image.Image, fmt: str, quality: int | None, limits: Limits) -> bytes:
    if fmt == "jpeg" and image.mode not in ("L", "RGB"):
        image = _flatten(image) if "A" in image.mode else image.convert("RGB")
    elif fmt in ("webp", "avif") and image.mode not in ("RGB", "RGBA"):
        image = image.convert("RGBA" if "A" in image.mode else "RGB")
    image.info = {}  # metadata (EXIF, XMP, ICC) stays behind
    out = io.BytesIO()
    q = quality or DEFAULT_QUALITY.get(fmt)
    if fmt == "jpeg":
        image.save(out, "JPEG", quality=q)
    elif fmt == "webp":
        image.save(out, "WEBP", quality=q, method=limits.webp_method)
    elif fmt == "avif":
        # One thread: the pool already keeps every core busy.
        image.save(out, "AVIF", quality=q, speed=limits.avif_speed, max_threads=1)
    else:
        image.save(out, "PNG", compress_level=6)
    return out.getvalue()


def _cut_and_resize(
    image: Image.Image, plan: geometry.Layout, gravity: str, oriented: geometry.Size
) -> Image.Image:
    """The layout's region (at the gravity, or found by the smart crop) resized to its
    size, in one resample. The image may be smaller than `oriented` (JPEG draft)."""
    factor_x, factor_y = image.width / oriented[0], image.height / oriented[1]
    region = (min(image.width, plan.region[0] * factor_x), min(image.height, plan.region[1] * factor_y))
    window = (max(1, round(region[0])), max(1, round(region[1])))
    if window == image.size:
        box = (0.0, 0.0, float(image.width), float(image.height))
    else:
        x, y = (
            smartcrop.best_offset(image, window)
            if gravity == "sm"
            else geometry.anchor(gravity, image.size, window)
        )
        box = (float(x), float(y), x + region[0], y + region[1])
    if plan.size == window:
        # No scaling: a plain cut (or nothing at all).
        return (
            image
            if window == image.size
            else image.crop((int(box[0]), int(box[1]), int(box[0]) + window[0], int(box[1]) + window[1]))
        )
    shrinking = plan.size[0] < region[0]
    # Bicubic with a reducing gap of 2: Pillow's thumbnail() settings.
    return image.resize(plan.size, Image.Resampling.BICUBIC, box=box, reducing_gap=2.0 if shrinking else None)


@dataclass
class Decoded:
    """A decoded source, before `rotate`: its pixels (possibly fewer than its size: JPEG
    draft, a PDF page rendered at the output's resolution), its size oriented as the
    output sees it, the layout on that size, and what the encoder needs of the file."""

    image: Image.Image
    oriented: geometry.Size
    plan: geometry.Layout
    format: str | None = None
    icc: bytes | None = None


def _decoded_image(data: bytes, t: Transform, limits: Limits) -> Decoded:
    image = _open(data, limits)
    if t.page != 1:
        raise ImageError(
            400,
            "InvalidParameter",
            f"page {t.page} asked of an image: page is for PDF sources, and an image has one page.",
            {"parameter": "page", "pages": 1},
        )
    source_format = image.format
    sideways = _turns_sideways(image, t)
    oriented = (image.height, image.width) if sideways else image.size
    plan = geometry.layout(oriented, t, limits.max_output_side)
    try:
        if source_format == "JPEG":
            # Decode at the smallest 1/2, 1/4 or 1/8 scale that still gives the
            # region at least the output's resolution.
            need = (
                min(oriented[0], math.ceil(oriented[0] * plan.size[0] / plan.region[0])),
                min(oriented[1], math.ceil(oriented[1] * plan.size[1] / plan.region[1])),
            )
            if need != oriented:
                image.draft(None, need[::-1] if sideways else need)
        # The whole source in one decoder call: one release of the GIL instead of one
        # per 64 KiB block, each of which would queue for it behind the other threads.
        image.decodermaxblock = max(image.decodermaxblock, len(data))
        image.load()
        icc = image.info.get("icc_profile")
        ImageOps.exif_transpose(image, in_place=True)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _too_large(limits) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(
            422, "CorruptImage", "The image could not be decoded (truncated or damaged)."
        ) from exc
    return Decoded(image, oriented, plan, source_format, icc)


def _pdf_page(data: bytes, t: Transform, limits: Limits, pages: PdfPages, deadline: Deadline) -> Decoded:
    """The page at the resolution the layout uses; its natural size (CSS pixels) is
    the source size the parameters apply to, as an image's pixel size is."""

    def size_for(natural: geometry.Size) -> geometry.Size:
        return pdf_pages.bitmap_size(
            natural, t, limits.max_output_side, limits.max_source_pixels, limits.max_source_side
        )

    image, natural = pages.rasterize(data, t.page, size_for, deadline)
    oriented = (natural[1], natural[0]) if t.rotate in (90, 270) else natural
    return Decoded(image, oriented, geometry.layout(oriented, t, limits.max_output_side))


def render(
    data: bytes, t: Transform, fmt_class: str, limits: Limits, timeout: float, pdf: PdfPages | None = None
) -> Rendered:
    """`pdf`: the rasterizers PDF sources go to; without it a PDF is not a source."""
    deadline = Deadline(timeout)
    if pdf is not None and pdf_pages.is_pdf(data):
        source = _pdf_page(data, t, limits, pdf, deadline)
    else:
        source = _decoded_image(data, t, limits)
    image, oriented, plan = source.image, source.oriented, source.plan
    deadline.check()
    if t.rotate:
        image = image.transpose(_ROTATIONS[t.rotate])
    image = _normalised_mode(image)
    image = _cut_and_resize(image, plan, t.gravity, oriented)
    deadline.check()
    image = _to_srgb(image, source.icc)
    alpha = _has_alpha(image)
    if not alpha and image.mode in ("RGBA", "LA"):
        image = image.convert(image.mode[:-1])
    output = plan.output
    fmt = _output_format(fmt_class, source.format, alpha, output[0] * output[1], limits)
    if plan.canvas is not None and plan.canvas != image.size:
        transparent = fmt in _ALPHA_FORMATS
        canvas = Image.new(
            "RGBA" if transparent else "RGB", plan.canvas, (255, 255, 255, 0 if transparent else 255)
        )
        gravity = "ce" if t.gravity == "sm" else t.gravity
        placed = image.convert("RGBA")
        canvas.paste(placed, geometry.anchor(gravity, plan.canvas, image.size), mask=placed.getchannel("A"))
        image = canvas
    if t.blur:
        image = image.filter(ImageFilter.GaussianBlur(t.blur))
    if t.sharpen:
        image = image.filter(ImageFilter.UnsharpMask(radius=1, percent=round(t.sharpen * 100), threshold=0))
    deadline.check()
    return Rendered(_encode(image, fmt, t.q, limits), fmt)
