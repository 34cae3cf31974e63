"""The end-of-run check on server logs (issue 13): no request a test sent may have
cost a traceback in the server, whatever status it was answered with.

Every Folio a test starts (tests/folio_process.py, FolioProcess.start) writes its log to
`<data_dir.parent>/<name>-server.log` and registers it in `folio_process.STARTED`. This
test runs last (tests/conftest.py moves it to the end of the collection) and fails the
run, naming the log file and quoting the lines, if any of those logs holds a Python
traceback, an `InternalError` or a ` 500 ` line (except the lines httpx logs for Folio's own
outbound requests: a webhook receiver's 500 is not Folio's). Servers are unbuffered
(PYTHONUNBUFFERED=1), so the logs of session servers still running are complete.

Tests that break a server on purpose (a crash, a killed worker) set
`FolioProcess(expect_tracebacks=True)`; their server's log is skipped, every other is
read whole. Run with no server started, the check starts one itself and reads its log.
"""

from __future__ import annotations

import re

import httpx
import pytest

from tests.folio_process import STARTED, running_server

PROBLEM = re.compile(r"Traceback \(most recent call last\)|InternalError| 500 ")
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


def test_no_server_log_of_this_run_has_a_traceback_or_a_500(tmp_path_factory: pytest.TempPathFactory) -> None:
    if not any(path.exists() for path in STARTED):
        # Run on its own (or with tests that start no server): check a server's start,
        # one request and its shutdown, so the check always reads a real log.
        for server in running_server(tmp_path_factory, "log-check"):
            assert httpx.get(f"{server.web_url}/healthz", timeout=10).status_code == 200
    logs = [server for path, server in STARTED.items() if path.exists()]
    assert logs, "no server log to check"
    report = []
    for server in logs:
        if server.expect_tracebacks:
            continue
        found = problems(server.log())
        if found:
            shown = "\n---\n".join(found[:5])
            report.append(f"{server.log_path}: {len(found)} problem(s)\n{shown}")
    assert not report, "server logs with tracebacks or 500s:\n\n" + "\n\n".join(report)
