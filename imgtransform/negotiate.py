"""The output format: the `format` parameter, else what the `Accept` header allows
(AVIF, then WebP, then the source's own). The cache is keyed by the resulting
format class, never by the raw header, so browsers share entries."""

from __future__ import annotations

# The class a request falls in when it names no format: decided from Accept alone.
SOURCE = "source"


def accepted(accept: str, media_type: str) -> bool:
    """Whether `media_type` is listed in Accept with a quality above zero (wildcards
    do not count: browsers send */* for formats they cannot show)."""
    for item in accept.split(","):
        name, *params = item.strip().split(";")
        if name.strip().lower() != media_type:
            continue
        for param in params:
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    return float(value) > 0
                except ValueError:
                    return False
        return True
    return False


def format_class(explicit: str | None, accept: str | None) -> str:
    if explicit is not None:
        return explicit
    accept = accept or ""
    if accepted(accept, "image/avif"):
        return "avif"
    if accepted(accept, "image/webp"):
        return "webp"
    return SOURCE
