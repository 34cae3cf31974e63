"""One warning line, not a traceback, for work that failed because the metadata database is
unreachable (PostgreSQL down or restarting: core.db.DatabaseUnavailable).

Requests are answered 503 by their front door; background loops (webhook rounds, node
heartbeats, sweeps) log their failure and try again on their next round. An outage is a state
of the deployment that /healthz reports, not a bug: a traceback per loop and second would bury
the one line that says it."""

from __future__ import annotations

import logging

from core.db import DatabaseUnavailable
from server.corrupt_log import ENGINE_ERROR_LOGGERS


def _outage_in(exc: BaseException | None) -> DatabaseUnavailable | None:
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, DatabaseUnavailable):
            return exc
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


class OutageLine(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        found = _outage_in(record.exc_info[1] if record.exc_info else None)
        if found is not None:
            record.msg, record.args = "%s: %s", (record.getMessage(), found)
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info, record.exc_text = None, None
        return True


def install() -> None:
    """On the root logger's handlers (every folio.* logger reaches them) and the engines'."""
    outage = OutageLine()
    for handler in logging.getLogger().handlers:
        handler.addFilter(outage)
    for name in ENGINE_ERROR_LOGGERS:
        logging.getLogger(name).addFilter(outage)
