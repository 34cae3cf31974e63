"""Where pixels go, as arithmetic on sizes only: what each `fit` mode scales the
source to, which region it keeps, and the canvas `pad` extends it to. Kept apart
from the pixels so the rules (docs/image-transforms.md) are plain to read and test."""

from __future__ import annotations

from dataclasses import dataclass

from imgtransform.params import Transform

Size = tuple[int, int]


@dataclass(frozen=True)
class Layout:
    # The part of the (oriented, rotated) source that is kept, in source pixels, placed
    # at the transform's gravity; the source's own size: all of it. Cutting it before
    # resizing keeps extreme crops (a thin strip covering a square) small in memory.
    region: tuple[float, float]
    # What that region is resized to.
    size: Size
    # pad: then placed (at the gravity) on a canvas of this size.
    canvas: Size | None = None

    @property
    def output(self) -> Size:
        return self.canvas or self.size


def _scaled(size: Size, scale: float) -> Size:
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def _capped(size: Size, max_side: int) -> Size:
    longest = max(size)
    return size if longest <= max_side else _scaled(size, max_side / longest)


def requested(source: Size, t: Transform, max_side: int) -> Size | None:
    """The box asked for, in output pixels (after dpr, capped); None: no size given."""
    width, height = source
    if t.w is None and t.h is None:
        return None
    w = t.w * t.dpr if t.w is not None else None
    h = t.h * t.dpr if t.h is not None else None
    # Only one side: the other follows the source's aspect.
    if w is None:
        assert h is not None
        w = h * width / height
    if h is None:
        h = w * height / width
    return _capped((max(1, round(w)), max(1, round(h))), max_side)


def _aspect_region(source: Size, box: Size) -> Size:
    """The largest region of the source with the aspect of `box`."""
    width, height = source
    if width * box[1] > height * box[0]:  # the source is wider than the box
        return max(1, min(width, round(height * box[0] / box[1]))), height
    return width, max(1, min(height, round(width * box[1] / box[0])))


def layout(source: Size, t: Transform, max_side: int) -> Layout:
    box = requested(source, t, max_side)
    width, height = source
    whole = (float(width), float(height))
    if box is None:
        # No size: the source as it is (still capped at the output limit).
        fitted = _capped(source, max_side)
        return Layout(whole, fitted, canvas=fitted if t.fit == "pad" else None)
    w, h = box
    if t.fit in ("fit", "pad", "contain"):
        if t.w is None or t.h is None:
            # One side given: the box has the source's aspect already (requested() derived
            # the other side), and is the size. Fitting the source into it again would
            # round twice and could lose the given side a pixel (w=111 of 1123x793: 110).
            scale = w / width if t.h is None else h / height
            fitted = box
        else:
            scale = min(w / width, h / height)
            fitted = _scaled(source, scale)
        if t.fit == "contain":
            return Layout(whole, _capped(fitted, max_side))
        if scale > 1.0:
            fitted = source  # fit and pad never upscale
        return Layout(whole, fitted, canvas=box if t.fit == "pad" else None)
    if t.fit == "crop":
        kept = (min(w, width), min(h, height))
        return Layout((float(kept[0]), float(kept[1])), kept)
    scale = max(w / width, h / height)
    if t.fit == "fill" and scale > 1.0:
        # Never upscaled: the largest region of the requested aspect, at source size.
        kept = _aspect_region(source, box)
        return Layout((float(kept[0]), float(kept[1])), kept)
    # cover (and fill when shrinking): the part of the source that, scaled, covers the box.
    return Layout((min(float(width), w / scale), min(float(height), h / scale)), box)


def anchor(gravity: str, outer: Size, inner: Size) -> tuple[int, int]:
    """Top-left corner of `inner` inside `outer` for the gravities ce, no, so, ea, we
    (also where a padded image sits on its canvas)."""
    free_x, free_y = outer[0] - inner[0], outer[1] - inner[1]
    x = 0 if gravity == "we" else free_x if gravity == "ea" else free_x // 2
    y = 0 if gravity == "no" else free_y if gravity == "so" else free_y // 2
    return x, y
