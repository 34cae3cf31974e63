"""One log line, not a traceback, when a response is aborted because its stored bytes
are damaged.

The store stops a read with CorruptObject before handing out a byte that fails its
checksum, and has already logged which object and marked it. Mid-stream the exception
must reach the server engine (aborting the connection is the only way to tell an S3 client
after the status line), and uvicorn and Hypercorn log any exception that leaves the app
with its traceback: for this one, the traceback says nothing the store's line did not."""

from __future__ import annotations

import logging

from s3proxy.store.integrity import CorruptObject

# The loggers uvicorn and Hypercorn report an application's exception on.
ENGINE_ERROR_LOGGERS = ("uvicorn.error", "hypercorn.error")


def _corrupt_object_in(exc: BaseException | None) -> CorruptObject | None:
    """The CorruptObject behind `exc`: itself, in an exception group (a streamed body runs
    in a task group), or as its cause."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, CorruptObject):
            return exc
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                found = _corrupt_object_in(inner)
                if found is not None:
                    return found
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


class CorruptReadLine(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        found = _corrupt_object_in(record.exc_info[1] if record.exc_info else None)
        if found is not None:
            record.msg, record.args = "response aborted: %s", (found,)
            record.exc_info, record.exc_text = None, None
        return True


def install() -> None:
    for name in ENGINE_ERROR_LOGGERS:
        logging.getLogger(name).addFilter(CorruptReadLine())
