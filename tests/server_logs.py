"""Reading server logs for tracebacks and 500s (issue 13): the end-of-run test
(tests/test_zz_server_logs.py) and, when the suite runs in several worker processes
(pytest-xdist), the controller's check of every worker's servers once all have stopped
(tests/conftest.py, pytest_sessionfinish)."""

from __future__ import annotations

import re
from pathlib import Path

# A 500 as an access line shows it (`"GET / HTTP/1.1" 500`, `"GET / 1.1" 500`) or as a
# status: not any count that happens to be 500 ("pruned 500 events").
PROBLEM = re.compile(
    r'Traceback \(most recent call last\)|InternalError|" 500\b|\b500 Internal Server Error|status[ =:]+500\b'
)
# Folio's own outbound requests (webhook deliveries, document fetches) as httpx logs them:
# a receiver's 500 is that receiver's answer, not Folio's.
OUTBOUND = re.compile(r" httpx: HTTP Request: ")
# A log record starts with its timestamp; a traceback's lines do not.
RECORD = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")
EXCERPT_LINES = 24


def problems(text: str) -> list[str]:
    """Each traceback or 500 with the record before it (which names the request) and the
    traceback's own lines, up to the next log record."""
    lines = text.splitlines()
    found: list[str] = []
    index = 0
    while index < len(lines):
        if not PROBLEM.search(lines[index]) or OUTBOUND.search(lines[index]):
            index += 1
            continue
        start = index
        while start > 0 and not RECORD.match(lines[start]) and index - start < 3:
            start -= 1  # back to the record the traceback belongs to
        end = index + 1
        while end < len(lines) and not RECORD.match(lines[end]):
            end += 1
        excerpt = lines[start:end]
        if len(excerpt) > EXCERPT_LINES:
            # The head names the request, the tail the exception: the frames between can go.
            excerpt = [*excerpt[:3], "  ...", *excerpt[-(EXCERPT_LINES - 4) :]]
        found.append("\n".join(excerpt))
        index = end
    return found


# Written beside a server's log by tests/folio_process.py when the server breaks on purpose.
EXPECTED_SUFFIX = ".expect-tracebacks"


def log_report(path: Path) -> str | None:
    """The problems of one log file, or None when it is clean or its server was expected
    to log tracebacks."""
    if path.with_suffix(EXPECTED_SUFFIX).exists():
        return None
    found = problems(path.read_text(errors="replace"))
    if not found:
        return None
    shown = "\n---\n".join(found[:5])
    return f"{path}: {len(found)} problem(s)\n{shown}"
