"""Which engine renders a document the request did not pin to one.

WeasyPrint is the default: warm workers, no JavaScript, ~150 ms for an ordinary
document. Its layout is pure Python, though, and costs about 0.6 ms of CPU per
element: a 20-page report of tables (~2,500 elements) takes 1.5-2 s, where the warm
Chromium browser takes ~0.4 s (docs/benchmarks.md, "Documents"). So when Chromium is
installed, long HTML and template documents go to it, with JavaScript off so that the
result does not depend on which engine took the document (WeasyPrint runs none).
Documents that use paged-media features only WeasyPrint has (running elements,
named strings, target counters for tables of contents, footnotes, leaders) stay
with WeasyPrint whatever their length."""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import islice

from docgen.options import bad

ENGINES = ("weasyprint", "chromium")

_ELEMENT = re.compile(r"<[a-zA-Z]")
# CSS Generated Content for Paged Media that Chromium does not implement. Plain
# substring tests on the lower-cased page: a regex alternation with IGNORECASE took
# over a second on 16 MB of HTML, on the event loop.
_WEASYPRINT_ONLY = (
    "running(", "element(", "string-set", "string(", "target-counter", "target-text", "leader(", "footnote",
    "bookmark-",
)


@dataclass(frozen=True)
class EngineChoice:
    engine: str
    # False when Folio chose Chromium for a static document: its scripts stay unrun,
    # as they would in WeasyPrint.
    javascript: bool = True


def element_count(html: str, stop_after: int | None = None) -> int:
    """Start tags in the markup: a cheap, parser-free measure of layout work. With
    `stop_after`, counting ends past it (this runs on the event loop, and a request
    may carry megabytes of HTML)."""
    tags = _ELEMENT.finditer(html)
    if stop_after is not None:
        tags = islice(tags, stop_after + 1)
    return sum(1 for _tag in tags)


def uses_weasyprint_only_css(html: str) -> bool:
    lowered = html.lower()
    return any(feature in lowered for feature in _WEASYPRINT_ONLY)


def choose_engine(
    requested: object, source: str, html: str | None, chromium_available: bool, long_document_elements: int
) -> EngineChoice:
    """The engine for a request (`requested` is its `engine` field, or None); a 400 for
    an unknown engine or for Chromium when it is not installed."""
    if requested is not None:
        if requested not in ENGINES:
            raise bad("engine", 'engine must be "weasyprint" or "chromium".')
        if requested == "chromium" and not chromium_available:
            raise bad("engine", "The Chromium engine is not installed on this server; use the default engine.")
        return EngineChoice(str(requested))
    if not chromium_available:
        return EngineChoice("weasyprint")
    if source == "url":
        return EngineChoice("chromium")
    if (
        html is not None
        and long_document_elements > 0
        and element_count(html, stop_after=long_document_elements) > long_document_elements
        and not uses_weasyprint_only_css(html)
    ):
        return EngineChoice("chromium", javascript=False)
    return EngineChoice("weasyprint")
