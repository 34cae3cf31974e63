"""The query of an image URL, parsed and validated into one frozen `Transform`
before any pixel is touched. Its canonical form keys the cache, so spellings of the
same request (`w=0400`, parameter order, defaults written out) share one entry and
junk never reaches it."""

from __future__ import annotations

import re
from dataclasses import dataclass, fields

from core import urlsign

FITS = ("fit", "contain", "cover", "fill", "crop", "pad")
GRAVITIES = ("ce", "no", "so", "ea", "we", "sm")
FORMATS = {"webp": "webp", "avif": "avif", "jpeg": "jpeg", "jpg": "jpeg", "png": "png"}
ROTATIONS = (0, 90, 180, 270)
# No real PDF has a million pages; a larger `page` is refused from the query alone.
MAX_PAGE = 1_000_000
SIGNATURE_PARAMS = (urlsign.EXPIRES, urlsign.KEY_ID, urlsign.SIGNATURE)

_INTEGER = re.compile(r"[0-9]{1,9}")
_DECIMAL = re.compile(r"[0-9]{1,9}(\.[0-9]{1,6})?")


class InvalidParameter(ValueError):
    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter
        self.message = message


@dataclass(frozen=True)
class Transform:
    w: int | None = None
    h: int | None = None
    fit: str = "fit"
    gravity: str = "ce"
    format: str | None = None
    q: int | None = None
    dpr: float = 1.0
    blur: float = 0.0
    sharpen: float = 0.0
    rotate: int = 0
    # 1-based page of a PDF source (an image is a one-page source).
    page: int = 1

    def canonical(self) -> str:
        """Only what differs from the defaults, in a fixed order."""
        defaults = Transform()
        parts = []
        for f in fields(self):
            value = getattr(self, f.name)
            if value != getattr(defaults, f.name):
                parts.append(f"{f.name}={value:g}" if isinstance(value, float) else f"{f.name}={value}")
        return "&".join(parts)


def _integer(name: str, raw: str, low: int, high: int) -> int:
    if not _INTEGER.fullmatch(raw) or not low <= int(raw) <= high:
        raise InvalidParameter(name, f"{name} must be a whole number from {low} to {high}, not {raw!r}.")
    return int(raw)


def _decimal(name: str, raw: str, low: float, high: float) -> float:
    if not _DECIMAL.fullmatch(raw) or not low <= float(raw) <= high:
        raise InvalidParameter(name, f"{name} must be a number from {low:g} to {high:g}, not {raw!r}.")
    return float(raw)


def _choice(name: str, raw: str, choices: tuple[str, ...]) -> str:
    if raw not in choices:
        raise InvalidParameter(name, f"{name} must be one of {', '.join(choices)}, not {raw!r}.")
    return raw


def parse_query(items: list[tuple[str, str]], max_side: int) -> tuple[Transform, dict[str, str]]:
    """The transform, and the signature parameters (`expires`, `key_id`, `sig`) if any.
    Unknown or repeated parameters and values out of range raise InvalidParameter."""
    seen: dict[str, str] = {}
    for name, raw in items:
        if name in seen:
            raise InvalidParameter(name, f"{name} is given more than once.")
        seen[name] = raw
    values: dict[str, object] = {}
    signature: dict[str, str] = {}
    for name, raw in seen.items():
        if name in ("w", "h"):
            values[name] = _integer(name, raw, 1, max_side)
        elif name == "fit":
            values[name] = _choice(name, raw, FITS)
        elif name == "gravity":
            values[name] = _choice(name, raw, GRAVITIES)
        elif name == "format":
            values[name] = FORMATS[_choice(name, raw.lower(), tuple(FORMATS))]
        elif name == "q":
            values[name] = _integer(name, raw, 1, 100)
        elif name == "dpr":
            values[name] = _decimal(name, raw, 1, 3)
        elif name == "blur":
            values[name] = _decimal(name, raw, 0, 100)
        elif name == "sharpen":
            values[name] = _decimal(name, raw, 0, 10)
        elif name == "rotate":
            if not _INTEGER.fullmatch(raw) or int(raw) not in ROTATIONS:
                raise InvalidParameter(name, f"rotate must be 0, 90, 180 or 270, not {raw!r}.")
            values[name] = int(raw)
        elif name == "page":
            values[name] = _integer(name, raw, 1, MAX_PAGE)
        elif name in SIGNATURE_PARAMS:
            signature[name] = raw
        else:
            raise InvalidParameter(
                name,
                f"Unknown parameter {name!r}. Known: w, h, fit, gravity, format, q, dpr, blur, sharpen, rotate, page.",
            )
    return Transform(**values), signature  # type: ignore[arg-type]
