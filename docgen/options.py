"""A document request (cloudlayer's JSON body) parsed and validated into plain,
picklable options before any work starts: bad input is a 400 naming the field,
never a failed job. The worker processes receive `RenderJob`s built from these."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from typing import Any

from core.jsonapi import ApiError

# Page sizes as CSS lengths (width, height), portrait: ISO A sizes in mm, US sizes in inches.
PAGE_FORMATS = {
    "letter": ("8.5in", "11in"),
    "legal": ("8.5in", "14in"),
    "tabloid": ("11in", "17in"),
    "ledger": ("17in", "11in"),
    "a0": ("841mm", "1189mm"),
    "a1": ("594mm", "841mm"),
    "a2": ("420mm", "594mm"),
    "a3": ("297mm", "420mm"),
    "a4": ("210mm", "297mm"),
    "a5": ("148mm", "210mm"),
    "a6": ("105mm", "148mm"),
}
IMAGE_TYPES = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "webp": "image/webp"}
_LENGTH = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(px|in|cm|mm|pt)?\s*")
# At most nine digits a page: int() refuses strings of over 4,300 digits (a 500 before this).
_PAGE_RANGE = re.compile(r"\s*([0-9]{1,9})\s*(?:-\s*([0-9]{1,9})\s*)?")
DEFAULT_TIMEOUT_MS = 30000
MAX_TIMEOUT_MS = 300000
MAX_DELAY_MS = 30000


def bad(field_name: str, message: str) -> ApiError:
    return ApiError(400, "BadRequest", message, {"field": field_name})


def css_length(field_name: str, value: object) -> str:
    """A CSS length from cloudlayer's forms: a number of px, or "12px", "1in", "2cm", "10mm"."""
    if isinstance(value, bool):
        raise bad(field_name, f"{field_name} must be a length such as 10, '10px', '1in', '2cm' or '10mm'.")
    if isinstance(value, int | float):
        if value < 0 or value > 20000:
            raise bad(field_name, f"{field_name} must be from 0 to 20000 px.")
        return f"{value}px"
    if isinstance(value, str):
        found = _LENGTH.fullmatch(value)
        if found and float(found.group(1)) <= 20000:
            return f"{found.group(1)}{found.group(2) or 'px'}"
    raise bad(field_name, f"{field_name} must be a length such as 10, '10px', '1in', '2cm' or '10mm', not {value!r}.")


def parse_page_ranges(value: object) -> list[tuple[int, int]] | None:
    """"1-5, 8" as [(1, 5), (8, 8)] (1-based, inclusive); empty: every page."""
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise bad("pageRanges", 'pageRanges is a string such as "1-5, 8".')
    ranges = []
    for part in value.split(","):
        found = _PAGE_RANGE.fullmatch(part)
        if not found:
            raise bad("pageRanges", f'pageRanges must look like "1-5, 8", not {value!r}.')
        first = int(found.group(1))
        last = int(found.group(2) or first)
        if first < 1 or last < first:
            raise bad("pageRanges", f"pageRanges has an empty or reversed range: {part.strip()!r}.")
        ranges.append((first, last))
    return ranges


@dataclass(frozen=True)
class HeaderFooter:
    method: str = "template"  # "template" or "extract"
    selector: str | None = None
    margin: dict[str, str] = field(default_factory=dict)
    style: str = ""
    image_style: str = ""
    template: str = ""


@dataclass(frozen=True)
class PdfOptions:
    width: str
    height: str
    margin: dict[str, str]
    scale: float = 1.0
    page_ranges: list[tuple[int, int]] | None = None
    prefer_css_page_size: bool = False
    print_background: bool = True
    header: HeaderFooter | None = None
    footer: HeaderFooter | None = None


@dataclass(frozen=True)
class ImageOptions:
    image_type: str = "png"
    quality: int = 80
    transparent: bool = False
    trim: bool = False
    width: int = 1280
    height: int = 1024
    device_scale_factor: float = 1.0


@dataclass(frozen=True)
class RenderJob:
    """Everything a worker needs: the HTML (already templated), where relative links
    resolve, and the output options."""

    kind: str  # "pdf" or "image"
    html: str | None = None
    url: str | None = None
    pdf: PdfOptions | None = None
    image: ImageOptions | None = None
    generate_preview: bool = False
    delay_ms: int = 0
    # "weasyprint" (worker processes) or "chromium" (the shared browser).
    engine: str = "weasyprint"
    # Chromium only (JavaScript pages); WeasyPrint ignores them.
    wait_until: str = "load"
    wait_for_selector: str | None = None
    auto_scroll: bool = False
    cookies: tuple[dict[str, Any], ...] = ()
    authentication: tuple[str, str] | None = None
    # False when Folio sent a static (html/template) document to Chromium on its own.
    javascript: bool = True
    # Outbound guard for the page and its resources.
    allow_private: bool = False
    allow_loopback: bool = False
    max_resource_bytes: int = 20 * 1000 * 1000


def _bool(body: dict[str, Any], name: str, default: bool) -> bool:
    value = body.get(name, default)
    if not isinstance(value, bool):
        raise bad(name, f"{name} must be true or false.")
    return value


def _number(body: dict[str, Any], name: str, default: float, low: float, high: float) -> float:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise bad(name, f"{name} must be a number from {low:g} to {high:g}.")
    return float(value)


def base64_text(name: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise bad(name, f"{name} must be a Base64-encoded string.")
    try:
        raw = base64.b64decode(value.strip(), validate=True)
        return raw.decode("utf-8")
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise bad(name, f"{name} is not valid Base64 of UTF-8 text.") from exc


def _header_footer(name: str, value: object) -> HeaderFooter | None:
    if value in (None, ""):
        return None
    if isinstance(value, str):
        return HeaderFooter(template=value)
    if not isinstance(value, dict):
        raise bad(name, f"{name} must be an object with method, selector, margin, style, imageStyle, template.")
    method = value.get("method", "template")
    if method not in ("template", "extract"):
        raise bad(name, f'{name}.method must be "template" or "extract".')
    selector = value.get("selector")
    if method == "extract" and not (isinstance(selector, str) and selector.strip()):
        raise bad(name, f"{name}.selector is required with method extract.")
    margin = value.get("margin") or {}
    if not isinstance(margin, dict):
        raise bad(name, f"{name}.margin must be an object.")
    template = value.get("template", "")
    if not isinstance(template, str):
        raise bad(name, f"{name}.template must be a string of HTML.")
    return HeaderFooter(
        method=method,
        selector=selector,
        margin={side: css_length(f"{name}.margin.{side}", v) for side, v in margin.items() if side in _SIDES},
        style=str(value.get("style", "") or ""),
        image_style=str(value.get("imageStyle", "") or ""),
        template=template,
    )


_SIDES = ("top", "bottom", "left", "right")


def pdf_options(body: dict[str, Any]) -> PdfOptions:
    fmt = body.get("format", "letter")
    if not isinstance(fmt, str) or fmt.lower() not in PAGE_FORMATS:
        raise bad("format", f"format must be one of {', '.join(PAGE_FORMATS)}.")
    width, height = PAGE_FORMATS[fmt.lower()]
    if body.get("width") is not None:
        width = css_length("width", body["width"])
    if body.get("height") is not None:
        height = css_length("height", body["height"])
    if _bool(body, "landscape", False):
        width, height = height, width
    margin_raw = body.get("margin") or {}
    if not isinstance(margin_raw, dict):
        raise bad("margin", "margin must be an object with top, bottom, left and right.")
    unknown = set(margin_raw) - set(_SIDES)
    if unknown:
        raise bad("margin", f"margin takes top, bottom, left and right, not {', '.join(sorted(unknown))}.")
    margin = {side: css_length(f"margin.{side}", value) for side, value in margin_raw.items()}
    return PdfOptions(
        width=width,
        height=height,
        margin=margin,
        scale=_number(body, "scale", 1.0, 0.1, 2.0),
        page_ranges=parse_page_ranges(body.get("pageRanges")),
        prefer_css_page_size=_bool(body, "preferCSSPageSize", False),
        print_background=_bool(body, "printBackground", True),
        header=_header_footer("headerTemplate", body.get("headerTemplate")),
        footer=_header_footer("footerTemplate", body.get("footerTemplate")),
    )


def image_options(body: dict[str, Any]) -> ImageOptions:
    image_type = body.get("imageType", "png")
    if not isinstance(image_type, str) or image_type.lower() not in IMAGE_TYPES:
        raise bad("imageType", "imageType must be png, jpg or webp.")
    viewport = body.get("viewPort") or {}
    if not isinstance(viewport, dict):
        raise bad("viewPort", "viewPort must be an object with width, height and deviceScaleFactor.")
    return ImageOptions(
        image_type="jpg" if image_type.lower() == "jpeg" else image_type.lower(),
        quality=int(_number(body, "quality", 80, 1, 100)),
        transparent=_bool(body, "transparent", False),
        trim=_bool(body, "trim", False),
        width=int(_number(viewport, "width", 1280, 1, 8000)),
        height=int(_number(viewport, "height", 1024, 1, 8000)),
        device_scale_factor=_number(viewport, "deviceScaleFactor", 1.0, 0.1, 4.0),
    )


WAIT_UNTIL = {
    "load": "load",
    "domcontentloaded": "domcontentloaded",
    "networkidle": "networkidle",
    "networkidle0": "networkidle",
    "networkidle2": "networkidle",
    "commit": "commit",
}


def chromium_options(body: dict[str, Any]) -> dict[str, Any]:
    """The JavaScript-page parameters (Puppeteer's names, as cloudlayer takes them)."""
    wait_until = body.get("waitUntil", "load")
    if not isinstance(wait_until, str) or wait_until not in WAIT_UNTIL:
        raise bad("waitUntil", f"waitUntil must be one of {', '.join(WAIT_UNTIL)}.")
    selector = body.get("waitForSelector")
    if isinstance(selector, dict):  # {"selector": "...", "options": {...}}
        selector = selector.get("selector")
    if selector is not None and (not isinstance(selector, str) or not selector.strip()):
        raise bad("waitForSelector", "waitForSelector must be a CSS selector.")
    cookies = body.get("cookies") or []
    if not isinstance(cookies, list) or not all(
        isinstance(c, dict) and isinstance(c.get("name"), str) and isinstance(c.get("value"), str) for c in cookies
    ):
        raise bad("cookies", "cookies must be a list of {name, value, url or domain, path} objects.")
    auth = body.get("authentication")
    credentials = None
    if auth is not None:
        if not isinstance(auth, dict) or not isinstance(auth.get("username"), str):
            raise bad("authentication", "authentication must be {username, password}.")
        credentials = (auth["username"], str(auth.get("password", "")))
    return {
        "wait_until": WAIT_UNTIL[wait_until],
        "wait_for_selector": selector,
        "auto_scroll": _bool(body, "autoScroll", False),
        "cookies": tuple(cookies),
        "authentication": credentials,
    }


def timeout_ms(body: dict[str, Any]) -> int:
    return int(_number(body, "timeout", DEFAULT_TIMEOUT_MS, 1000, MAX_TIMEOUT_MS))


def delay_ms(body: dict[str, Any]) -> int:
    return int(_number(body, "delay", 0, 0, MAX_DELAY_MS))
