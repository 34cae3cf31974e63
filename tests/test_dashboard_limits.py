"""The dashboard API's own rate limit (seed 004: "Dashboard API | 30 requests | per
minute"), per account from its plan: over it, 429 JSON with Retry-After; other
accounts and the S3 API are not affected."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import make_s3_client
from tests.folio_process import FolioProcess, running_server

CONFIG = """
[plans.default]
write_per_second = 0
read_per_second = 0
list_per_second = 0
dashboard_per_minute = 5
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FolioProcess]:
    yield from running_server(tmp_path_factory, "dash-limit", CONFIG)


def test_dashboard_calls_over_the_plan_rate_get_429_per_account(server: FolioProcess) -> None:
    first = server.create_account("limited-a@example.com")
    second = server.create_account("limited-b@example.com")
    headers = {"X-API-Key": f"{first['accessKey']}:{first['secretKey']}"}
    answers = [httpx.get(f"{server.web_url}/api/account", headers=headers) for _ in range(7)]
    assert [a.status_code for a in answers[:5]] == [200] * 5  # a burst of one minute's worth
    throttled = answers[5]
    assert throttled.status_code == 429
    assert throttled.json()["error"]["code"] == "TooManyRequests"
    assert 1 <= int(throttled.headers["retry-after"]) <= 12  # a token every 12 s at 5 a minute
    # Another account has its own budget, and the S3 API is limited separately.
    other = httpx.get(
        f"{server.web_url}/api/keys", headers={"X-API-Key": f"{second['accessKey']}:{second['secretKey']}"}
    )
    assert other.status_code == 200
    s3 = make_s3_client(server, first["accessKey"], first["secretKey"])
    assert s3.list_buckets()["ResponseMetadata"]["HTTPStatusCode"] == 200
