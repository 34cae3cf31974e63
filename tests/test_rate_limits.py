"""Request rate limits against the real server (issue 4): per access key and per class
(write, read, list), per client address for anonymous requests, answered with
429 TooManyRequests, Retry-After and x-amz-retry-after, and survived by boto3's default
retry mode.

These tests are about the refusal itself, so their server lets no request wait for its
token ([limits] max_rate_wait_seconds = 0, the behaviour before shaping); shaping (the
default, a wait of up to 2 s before any 429) is tested in tests/test_rate_shaping.py.
Its `tiny` plan allows 5 list requests a second (writes and reads unlimited), so nothing
else in the session shares their budgets. Every throttled account is fresh: a budget is
never left half spent by an earlier test.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import httpx
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tests.conftest import empty_bucket, make_s3_client
from tests.folio_process import FolioProcess, running_server

NO_RETRIES = Config(retries={"total_max_attempts": 1})

# The dedicated server: anonymous requests get the `anon` plan (5 reads a second per
# address), `slow` accounts may write twice a second, the admin is unlimited.
LIMITED_CONFIG = """
[limits]
max_rate_wait_seconds = 0.0

[accounts]
anonymous_plan = "anon"

[plans.default]
max_buckets = 1000
write_per_second = 0
read_per_second = 0
list_per_second = 0

[plans.anon]
read_per_second = 5
write_per_second = 5
list_per_second = 5

[plans.slow]
write_per_second = 2
read_per_second = 0
list_per_second = 0

[plans.tiny]
max_buckets = 100
write_per_second = 0
read_per_second = 0
list_per_second = 5
"""


# ---------------------------------------------------------------- helpers


def error_status(exc: ClientError) -> tuple[int, str]:
    return exc.response["ResponseMetadata"]["HTTPStatusCode"], exc.response["Error"]["Code"]


def attempt(call: Callable[[], Any]) -> tuple[int, Any]:
    """Run a boto3 call: (200, response) or (status, the ClientError)."""
    try:
        return 200, call()
    except ClientError as exc:
        return exc.response["ResponseMetadata"]["HTTPStatusCode"], exc


def assert_retry_headers(headers: dict[str, str] | httpx.Headers, max_wait_ms: int) -> None:
    """Retry-After is whole seconds (>= 1); x-amz-retry-after is the real wait in ms.
    A token bucket never makes a client wait longer than one token's worth."""
    retry_after = headers["retry-after"]
    assert retry_after.isdigit() and int(retry_after) >= 1, retry_after
    wait_ms = headers["x-amz-retry-after"]
    assert wait_ms.isdigit(), wait_ms
    assert 1 <= int(wait_ms) <= max_wait_ms, wait_ms
    assert int(retry_after) * 1000 >= int(wait_ms)


def drain_list_budget(client: Any, bucket: str, limit: int = 50) -> int:
    """List until the server says 429; returns how many lists it allowed first."""
    for allowed in range(limit):
        status, result = attempt(lambda: client.list_objects_v2(Bucket=bucket))
        if status == 429:
            assert error_status(result) == (429, "TooManyRequests")
            return allowed
        assert status == 200, result
    raise AssertionError(f"no 429 after {limit} lists")


def signed(
    server: FolioProcess, account: dict, method: str, path: str, body: bytes = b"", **kwargs: Any
) -> httpx.Response:
    """A SigV4-signed request sent by httpx, to see the raw answer (boto3 parses it away)."""
    url = f"{server.s3_url}{path}"
    request = AWSRequest(
        method=method, url=url, data=body, headers={"x-amz-content-sha256": hashlib.sha256(body).hexdigest()}
    )
    S3SigV4Auth(Credentials(account["accessKey"], account["secretKey"]), "s3", "us-east-1").add_auth(request)
    return httpx.request(
        method, url, content=body, headers=dict(request.headers.items()), trust_env=False, **kwargs
    )


def files_under(directory: Path) -> set[Path]:
    return {p for p in directory.rglob("*") if p.is_file()} if directory.exists() else set()


# ---------------------------------------------------------------- fixtures


@pytest.fixture
def tiny_account(limited: FolioProcess) -> dict:
    """A fresh account on the tiny plan (5 lists a second), so its budget is untouched."""
    return limited.create_account(f"rate-{uuid.uuid4().hex[:8]}@example.com", plan="tiny")


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FolioProcess]:
    yield from running_server(tmp_path_factory, "folio-rate", LIMITED_CONFIG)


# ---------------------------------------------------------------- the list class


def test_list_burst_is_429_without_retries_and_default_boto3_recovers(
    limited: FolioProcess, tiny_account: dict
) -> None:
    strict = make_s3_client(limited, tiny_account["accessKey"], tiny_account["secretKey"], config=NO_RETRIES)
    bucket = f"rate-{uuid.uuid4().hex[:16]}"
    strict.create_bucket(Bucket=bucket)

    results = []
    started = time.monotonic()
    for _ in range(30):
        results.append(attempt(lambda: strict.list_objects_v2(Bucket=bucket)))
    elapsed = time.monotonic() - started
    statuses = [status for status, _ in results]

    # A burst of one second's worth (5) goes through, then the bucket is empty.
    assert statuses[:5] == [200] * 5
    refused = [result for status, result in results if status != 200]
    assert refused, statuses
    assert statuses.count(200) <= 5 + int(elapsed * 5) + 1
    for exc in refused:
        assert error_status(exc) == (429, "TooManyRequests")
        assert exc.response["ResponseMetadata"]["RetryAttempts"] == 0
    assert_retry_headers(refused[0].response["ResponseMetadata"]["HTTPHeaders"], max_wait_ms=200)

    # The same workload with boto3's default configuration just takes longer: the
    # standard retry mode backs off on 429 (honouring x-amz-retry-after) and succeeds.
    default = make_s3_client(limited, tiny_account["accessKey"], tiny_account["secretKey"])
    started = time.monotonic()
    responses = [default.list_objects_v2(Bucket=bucket) for _ in range(30)]
    elapsed = time.monotonic() - started
    assert all(r["KeyCount"] == 0 for r in responses)
    assert sum(r["ResponseMetadata"]["RetryAttempts"] for r in responses) > 0
    # 30 lists at 5 a second from an empty bucket cannot take much less than 6 s.
    assert elapsed >= 4.0, elapsed
    strict.delete_bucket(Bucket=bucket)


def test_every_list_operation_spends_the_list_budget(limited: FolioProcess, tiny_account: dict) -> None:
    strict = make_s3_client(limited, tiny_account["accessKey"], tiny_account["secretKey"], config=NO_RETRIES)
    bucket = f"rate-{uuid.uuid4().hex[:16]}"
    strict.create_bucket(Bucket=bucket)
    upload_id = strict.create_multipart_upload(Bucket=bucket, Key="mpu")["UploadId"]
    operations: dict[str, Callable[[], Any]] = {
        "ListBuckets": strict.list_buckets,
        "ListObjects": lambda: strict.list_objects(Bucket=bucket),
        "ListObjectsV2": lambda: strict.list_objects_v2(Bucket=bucket),
        "ListObjectVersions": lambda: strict.list_object_versions(Bucket=bucket),
        "ListMultipartUploads": lambda: strict.list_multipart_uploads(Bucket=bucket),
        "ListParts": lambda: strict.list_parts(Bucket=bucket, Key="mpu", UploadId=upload_id),
    }
    for name, call in operations.items():
        # Right after a refused ListObjectsV2 (a token takes 200 ms to come back), any
        # other List* operation is refused as well: they share one budget. On a loaded
        # machine the next call may only start after a token came back; an answer of
        # 200 is a failure only when it came within those 200 ms.
        for _ in range(5):
            drain_list_budget(strict, bucket)
            refused_at = time.monotonic()
            status, result = attempt(call)
            if status == 429 or time.monotonic() - refused_at < 0.2:
                break
        assert status == 429, name
        assert error_status(result) == (429, "TooManyRequests"), name
    strict.abort_multipart_upload(Bucket=bucket, Key="mpu", UploadId=upload_id)
    strict.delete_bucket(Bucket=bucket)


def test_exhausted_list_budget_leaves_reads_writes_and_other_accounts_alone(
    limited: FolioProcess, tiny_account: dict
) -> None:
    other = limited.create_account(f"rate-other-{uuid.uuid4().hex[:8]}@example.com", plan="tiny")
    strict = make_s3_client(limited, tiny_account["accessKey"], tiny_account["secretKey"], config=NO_RETRIES)
    other_strict = make_s3_client(limited, other["accessKey"], other["secretKey"], config=NO_RETRIES)
    bucket = f"rate-{uuid.uuid4().hex[:16]}"
    other_bucket = f"rate-{uuid.uuid4().hex[:16]}"
    strict.create_bucket(Bucket=bucket)
    other_strict.create_bucket(Bucket=other_bucket)

    assert drain_list_budget(strict, bucket) == 5
    # Same access key, other classes: each has a budget of its own.
    strict.put_object(Bucket=bucket, Key="k", Body=b"written while lists are throttled")
    assert strict.get_object(Bucket=bucket, Key="k")["Body"].read() == b"written while lists are throttled"
    assert strict.head_object(Bucket=bucket, Key="k")["ContentLength"] == 33
    # ...while its list budget is still spent.
    status, result = attempt(lambda: strict.list_objects_v2(Bucket=bucket))
    assert (status, error_status(result)) == (429, (429, "TooManyRequests"))

    # Another account's key has its own full list budget.
    for _ in range(5):
        assert other_strict.list_objects_v2(Bucket=other_bucket)["KeyCount"] == 0

    # Clean up with default clients: their retries wait out the spent list budget.
    for account, name in ((tiny_account, bucket), (other, other_bucket)):
        client = make_s3_client(limited, account["accessKey"], account["secretKey"])
        empty_bucket(client, name)
        client.delete_bucket(Bucket=name)


# ---------------------------------------------------------------- anonymous requests


def test_anonymous_reads_are_limited_per_client_address(limited: FolioProcess) -> None:
    # The owner is on the same rates as anonymous callers and reads from the same address.
    account = limited.create_account(f"anon-peer-{uuid.uuid4().hex[:8]}@example.com", plan="anon")
    owner = make_s3_client(limited, account["accessKey"], account["secretKey"], config=NO_RETRIES)
    bucket = f"anon-{uuid.uuid4().hex[:16]}"
    owner.create_bucket(Bucket=bucket)
    owner.put_object(Bucket=bucket, Key="pub", Body=b"public", ACL="public-read")
    url = f"{limited.s3_url}/{bucket}/pub"

    with httpx.Client(trust_env=False, timeout=30) as anonymous:
        sent_at: list[float] = []  # when each request of the burst was sent
        burst: list[httpx.Response] = []
        for _ in range(20):
            sent_at.append(time.monotonic())
            burst.append(anonymous.get(url))
        statuses = [r.status_code for r in burst]
        assert statuses[:5] == [200] * 5
        assert all(r.content == b"public" for r in burst[:5])
        assert set(statuses) == {200, 429}, statuses
        throttled = next(r for r in burst if r.status_code == 429)
        assert ElementTree.fromstring(throttled.content).findtext("Code") == "TooManyRequests"
        assert b"public" not in throttled.content
        assert_retry_headers(throttled.headers, max_wait_ms=200)

        # This address is throttled for anonymous reads, yet a signed client on the same
        # address reads at once: it spends its own access key's budget (untouched so far).
        # A refusal says when the address's next token is due (x-amz-retry-after): an
        # anonymous read may pass again only once that much time has gone by since the
        # refused request was sent (a signed read slowed by a loaded machine lets one).
        last = burst[-1]
        refused_sent = sent_at[-1]
        wait = int(last.headers["x-amz-retry-after"]) / 1000 if last.status_code == 429 else 0.2
        for _ in range(5):
            assert owner.get_object(Bucket=bucket, Key="pub")["Body"].read() == b"public"
            sent = time.monotonic()
            response = anonymous.get(url)
            if response.status_code == 429:
                refused_sent, wait = sent, int(response.headers["x-amz-retry-after"]) / 1000
                continue
            assert response.status_code == 200, response.text
            assert time.monotonic() - refused_sent >= wait - 0.001, (
                "an anonymous read passed before its token was due"
            )
            refused_sent, wait = sent, 0.2  # it took the token due: the next is 1/5 s later

    # Another client address (all of 127/8 is loopback) starts with a full budget of its
    # own; HEAD is a read and spends it too.
    transport = httpx.HTTPTransport(local_address="127.0.0.2")
    with httpx.Client(transport=transport, trust_env=False, timeout=30) as elsewhere:
        assert [elsewhere.get(url).status_code for _ in range(5)] == [200] * 5
        # Its budget is spent: HEADs in a row are refused at once (or after one more token
        # came due, should the machine be slow).
        heads = [elsewhere.head(url) for _ in range(20)]
        head = next((r for r in heads if r.status_code == 429), None)
        assert head is not None, [r.status_code for r in heads]
        assert_retry_headers(head.headers, max_wait_ms=200)


# ---------------------------------------------------------------- the 429 answer itself


def test_throttled_put_is_well_formed_s3_xml_and_stores_nothing(limited: FolioProcess) -> None:
    account = limited.create_account(f"slow-{uuid.uuid4().hex[:8]}@example.com", plan="slow")
    bucket = f"slow-{uuid.uuid4().hex[:16]}"
    assert signed(limited, account, "PUT", f"/{bucket}").status_code == 200  # one of 2 write tokens

    # Spend the rest of the write budget with PUTs past the inline threshold (each would be
    # a blob file); remember what was accepted, and what the store held before the refused one.
    blobs = limited.data_dir / "blobs"
    accepted: dict[str, bytes] = {}
    for n in range(10):
        body = bytes([n]) * (256 * 1024)
        blobs_before = files_under(blobs)
        response = signed(limited, account, "PUT", f"/{bucket}/keep-{n}", body)
        if response.status_code == 429:
            refused, refused_key = response, f"keep-{n}"
            break
        assert response.status_code == 200, response.text
        accepted[f"keep-{n}"] = body
    else:
        raise AssertionError("two writes a second, yet ten PUTs in a row went through")

    assert refused.status_code == 429
    assert refused.headers["content-type"].startswith("application/xml")
    assert_retry_headers(refused.headers, max_wait_ms=500)
    root = ElementTree.fromstring(refused.content)
    assert root.tag == "Error"
    assert root.findtext("Code") == "TooManyRequests"
    assert root.findtext("Message")
    assert root.findtext("RequestId") == refused.headers["x-amz-request-id"]
    assert root.findtext("Resource") == f"/{bucket}/{refused_key}"

    # Nothing of the refused PUT exists: no key, no blob, nothing left in tmp/.
    reader = make_s3_client(limited, account["accessKey"], account["secretKey"])  # reads are unlimited here
    with pytest.raises(ClientError) as exc:
        reader.head_object(Bucket=bucket, Key=refused_key)
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    listed = reader.list_objects_v2(Bucket=bucket).get("Contents", [])
    assert sorted(o["Key"] for o in listed) == sorted(accepted)
    for key, body in accepted.items():
        assert reader.get_object(Bucket=bucket, Key=key)["Body"].read() == body
    assert files_under(blobs) == blobs_before
    assert files_under(limited.data_dir / "tmp") == set()

    # The default boto3 client gets the same PUT in by retrying after the 429s.
    big = b"\xab" * (256 * 1024)
    started = time.monotonic()
    for n in range(4):
        reader.put_object(Bucket=bucket, Key=f"retried-{n}", Body=big)
    assert time.monotonic() - started >= 1.0  # 4 writes at 2 a second, from an empty budget
    assert reader.get_object(Bucket=bucket, Key="retried-3")["Body"].read() == big
