"""S3 XML in and out. Responses are built as strings (a 1,000-key listing is on
the hot path); requests are parsed with lxml, entities and DTDs refused."""

from __future__ import annotations

import functools
import re
import time
from email.utils import formatdate
from urllib.parse import quote

from lxml import etree

from s3proxy.api.errors import S3Error

S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"
XML_DECL = '<?xml version="1.0" encoding="UTF-8"?>\n'

_ESCAPES = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;", "\r": "&#13;"}
)


_NEEDS_ESCAPE = re.compile(r"[&<>\"'\x00-\x1f]")


def escape(text: str) -> str:
    if not _NEEDS_ESCAPE.search(text):  # the common case, checked in C
        return text
    escaped = text.translate(_ESCAPES)
    if any(ord(ch) < 0x20 and ch not in "\t\n\r" for ch in escaped):
        # XML 1.0 has no raw control characters; S3 writes them as character references.
        escaped = "".join(
            f"&#x{ord(ch):x};" if ord(ch) < 0x20 and ch not in "\t\n\r" else ch for ch in escaped
        )
    return escaped


def url_encode(text: str) -> str:
    """encoding-type=url: what AWS returns, which is form encoding (Java's URLEncoder)
    with '/' kept: a space is '+' (a literal '+' is '%2B', so nothing is ambiguous), '*'
    is kept and '~' is escaped. Observed on AWS (moto differs: '%20', '~' kept, '*'
    escaped); see docs/s3-compatibility.md."""
    return quote(text, safe="/*").replace("%20", "+").replace("~", "%7E")


@functools.lru_cache(maxsize=65536)
def _iso8601(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(seconds))


def iso8601(ts: float) -> str:
    """2009-10-12T17:50:30.000Z, as S3 writes timestamps in XML: whole seconds, the
    same instant as the Last-Modified header (which has no fractions). Cached: a
    listing formats a thousand of them."""
    return _iso8601(int(ts))


@functools.lru_cache(maxsize=4096)
def _http_date(seconds: int) -> str:
    return formatdate(seconds, usegmt=True)


def http_date(ts: float) -> str:
    """RFC 7231 date (Last-Modified). Cached: formatting costs more than a small GET."""
    return _http_date(int(ts))


def element(name: str, value: str | int | bool | None) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        value = "true" if value else "false"
    return f"<{name}>{escape(str(value))}</{name}>"


def document(root: str, inner: str, *, namespace: bool = True) -> bytes:
    ns = f' xmlns="{S3_NS}"' if namespace else ""
    return (f"{XML_DECL}<{root}{ns}>{inner}</{root}>").encode()


_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, remove_comments=True
)


def parse(body: bytes) -> etree._Element:
    """Parse a request body; anything malformed (or with a DTD) is MalformedXML."""
    if not body.strip():
        raise S3Error("MalformedXML")
    try:
        root = etree.fromstring(body, _PARSER)
    except (etree.XMLSyntaxError, ValueError) as exc:
        raise S3Error("MalformedXML") from exc
    if root is None or root.getroottree().docinfo.doctype:
        raise S3Error("MalformedXML")
    return root


def local_name(node: etree._Element) -> str:
    tag = node.tag
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def children(node: etree._Element, name: str) -> list[etree._Element]:
    return [child for child in node if local_name(child) == name]


def child_text(node: etree._Element, name: str) -> str | None:
    found = children(node, name)
    if not found:
        return None
    return found[0].text or ""
