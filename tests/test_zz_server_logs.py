"""The end-of-run check on server logs (issue 13): no request a test sent may have
cost a traceback in the server, whatever status it was answered with.

Every Folio a test starts (tests/folio_process.py, FolioProcess.start) writes its log to
`<data_dir.parent>/<name>-server.log` and registers it in `folio_process.STARTED`. This
test runs last (tests/conftest.py moves it to the end of the collection) and fails the
run, naming the log file and quoting the lines, if any of those logs holds a Python
traceback, an `InternalError` or a 500 status line (an access line's `" 500`, `500 Internal Server Error`, `status=500`; not a count of 500) (except the lines httpx logs for Folio's own
outbound requests: a webhook receiver's 500 is not Folio's). Servers are unbuffered
(PYTHONUNBUFFERED=1), so the logs of session servers still running are complete.

Tests that break a server on purpose (a crash, a killed worker) set
`FolioProcess(expect_tracebacks=True)`; their server's log is skipped, every other is
read whole. Run with no server started, the check starts one itself and reads its log.

Under pytest-xdist (`make test` runs the suite in worker processes) this test sees the
servers of its own worker only; tests/conftest.py's pytest_sessionfinish reads every
worker's logs once all of them have finished, with the same rules (tests/server_logs.py).
"""

from __future__ import annotations

import httpx
import pytest

from tests.folio_process import STARTED, running_server
from tests.server_logs import log_report


def test_no_server_log_of_this_run_has_a_traceback_or_a_500(tmp_path_factory: pytest.TempPathFactory) -> None:
    if not any(path.exists() for path in STARTED):
        # Run on its own (or with tests that start no server): check a server's start,
        # one request and its shutdown, so the check always reads a real log.
        for server in running_server(tmp_path_factory, "log-check"):
            assert httpx.get(f"{server.web_url}/healthz", timeout=10).status_code == 200
    logs = [path for path in STARTED if path.exists()]
    assert logs, "no server log to check"
    report = [found for found in map(log_report, logs) if found]
    assert not report, "server logs with tracebacks or 500s:\n\n" + "\n\n".join(report)
