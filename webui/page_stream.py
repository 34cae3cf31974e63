"""A dashboard page sent in parts: its frame at once, then one block of it once the
slow data that block shows is ready, rendered and sent a piece at a time.

The page is rendered by webui.render.page (so the same context and the same headers:
no-store, no framing, the CSP) with the block standing for itself as STREAM_MARK; the
body is cut there. The browser gets the part before at once and draws it (header, the
page's title, what the block will show); `produce` then runs in a worker thread and
returns what the block needs; the block is rendered from the template's own block
(Jinja's `Template.blocks`, each block's render function) in worker threads too, sent
in pieces of about CHUNK characters, and the rest of the page follows. So a block of
many rows never exists whole as one string, and the event loop never renders it.

The template's block shows `{{ stream_mark }}` when what `produce` returns is not in
its context yet (the first pass), and its content when it is."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from jinja2 import Template
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from core.accounts import Account
from webui.render import page

log = logging.getLogger("folio.web")

STREAM_MARK = Markup("<!-- folio: the streamed block goes here -->")
CHUNK = 64 * 1024
FAILED = (
    '<p class="error" role="alert">This part of the page could not be made: reload to try again '
    "(the server's log says what went wrong).</p>"
)


def streamed_page(
    request: Request,
    template: str,
    account: Account | None,
    *,
    block: str,
    produce: Callable[[], dict[str, Any]],
    section: str = "",
    **context: Any,
) -> Response:
    """The page `template` with its block `block` filled from `produce()`'s names, sent
    as described above. Without the mark in the page (the block was not rendered) the
    page goes as it is, and `produce` is not called."""
    framed = page(request, template, account, section=section, stream_mark=STREAM_MARK, **context)
    head, mark, tail = bytes(framed.body).decode("utf-8").partition(STREAM_MARK)
    if not mark:
        return framed
    jinja: Template = framed.template  # type: ignore[attr-defined]  # a Starlette TemplateResponse
    names: dict[str, Any] = framed.context  # type: ignore[attr-defined]
    headers = {name: value for name, value in framed.headers.items() if name != "content-length"}
    parts = _parts(head, tail, jinja, block, names, produce, request.url.path)
    return StreamingResponse(parts, status_code=framed.status_code, headers=headers)


async def _parts(
    head: str,
    tail: str,
    template: Template,
    block: str,
    names: dict[str, Any],
    produce: Callable[[], dict[str, Any]],
    path: str,
) -> AsyncIterator[str]:
    yield head
    try:
        made = await run_in_threadpool(produce)
    except Exception:  # a bug: the page still ends, and says so
        log.exception("%s: the page's %r block could not be made", path, block)
        yield FAILED + tail
        return
    pieces = template.blocks[block](template.new_context({**names, **made}))
    try:
        while chunk := await run_in_threadpool(_take, pieces, CHUNK):
            yield chunk
    except Exception:
        log.exception("%s: the page's %r block failed while it was sent", path, block)
        yield FAILED
    finally:
        pieces.close()
    yield tail


def _take(pieces: Iterator[str], size: int) -> str:
    """The next `size` characters or so of the rendering ("" at its end): Jinja yields
    many small strings, and each hop to a worker thread costs more than one of them."""
    taken: list[str] = []
    length = 0
    for piece in pieces:
        taken.append(piece)
        length += len(piece)
        if length >= size:
            break
    return "".join(taken)
