"""Time Machine retention set per bucket (`folio admin set-retention`) overrides the
plan's, on write and in the pruning pass, and `--plan-default` returns the bucket
to its plan. The server is real; the operator command runs beside it on the same
data directory, as an operator would."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import make_s3_client
from tests.folio_process import FolioProcess, running_server

# Plan: 5 noncurrent versions, 30 days. The bucket cache lives 10 s; this server's
# writes see a CLI change once the cache entry expires, so the write test waits for it.
CONFIG = """
[plans.default]
keep_versions = 5
keep_days = 30.0
write_per_second = 0
read_per_second = 0
list_per_second = 0
"""
DAY = 86400.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FolioProcess]:
    yield from running_server(tmp_path_factory, "retention", CONFIG)


def _versions(s3, bucket: str, key: str) -> list[str]:
    listed = s3.list_object_versions(Bucket=bucket, Prefix=key).get("Versions", [])
    return [v["VersionId"] for v in listed if v["Key"] == key]


def _write(s3, bucket: str, key: str, count: int) -> list[str]:
    return [s3.put_object(Bucket=bucket, Key=key, Body=f"v{i}".encode())["VersionId"] for i in range(count)]


def test_bucket_retention_overrides_the_plan_in_the_pruning_pass(server: FolioProcess, tmp_path: Path) -> None:
    s3 = make_s3_client(server)
    s3.create_bucket(Bucket="own-retention")
    s3.create_bucket(Bucket="plan-retention")
    for bucket in ("own-retention", "plan-retention"):
        _write(s3, bucket, "k", 5)  # current + 4 noncurrent: within the plan's 5
    out = json.loads(server.admin("set-retention", "--bucket", "own-retention", "--keep-versions", "1"))
    assert out == {"bucket": "own-retention", "own": True, "keepVersions": 1, "keepDays": 30.0}

    pruned = json.loads(server.admin("prune-versions"))
    assert pruned == {"prunedVersions": 3}
    assert len(_versions(s3, "own-retention", "k")) == 2  # current + 1 noncurrent
    assert len(_versions(s3, "plan-retention", "k")) == 5  # the plan's limit still holds there

    # Days, per bucket: keep 2 days; at +3 days the remaining noncurrent version goes.
    json.loads(server.admin("set-retention", "--bucket", "own-retention", "--keep-days", "2"))
    assert json.loads(server.admin("prune-versions", "--now", str(time.time() + 1 * DAY))) == {"prunedVersions": 0}
    assert json.loads(server.admin("prune-versions", "--now", str(time.time() + 3 * DAY))) == {"prunedVersions": 1}
    assert len(_versions(s3, "own-retention", "k")) == 1
    # The plan's 30 days still protect the other bucket at +3 days.
    assert len(_versions(s3, "plan-retention", "k")) == 5

    back = json.loads(server.admin("set-retention", "--bucket", "own-retention", "--plan-default"))
    assert back == {"bucket": "own-retention", "own": False, "keepVersions": 5, "keepDays": 30.0}


def test_bucket_retention_applies_on_write_once_the_server_sees_it(server: FolioProcess) -> None:
    s3 = make_s3_client(server)
    s3.create_bucket(Bucket="write-retention")
    written = _write(s3, "write-retention", "k", 3)
    server.admin("set-retention", "--bucket", "write-retention", "--keep-versions", "2")
    # The server caches a bucket for up to 10 s; then its writes prune with the new limit.
    deadline = time.monotonic() + 15
    while True:
        written.append(s3.put_object(Bucket="write-retention", Key="k", Body=b"next")["VersionId"])
        kept = _versions(s3, "write-retention", "k")
        if len(kept) == 3 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert kept == list(reversed(written))[:3]  # the current version and the 2 newest noncurrent


def test_set_retention_refuses_an_unknown_bucket_and_an_empty_request(server: FolioProcess) -> None:
    with pytest.raises(RuntimeError, match="no bucket"):
        server.admin("set-retention", "--bucket", "no-such-bucket-here", "--keep-versions", "1")
    s3 = make_s3_client(server)
    s3.create_bucket(Bucket="empty-request")
    with pytest.raises(RuntimeError, match="keep-versions"):
        server.admin("set-retention", "--bucket", "empty-request")
