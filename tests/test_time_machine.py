"""Time Machine (issue 4): buckets Folio creates keep previous versions by default.

Against the real server with boto3 (and the aws CLI for `s3 rb --force`): a new bucket
answers GetBucketVersioning Enabled; overwrites read back by VersionId; delete markers
and undelete; Suspended writes the `null` version; retention keeps the newest N
noncurrent versions on every write and drops versions noncurrent for more than D days
(the clock is injected with `folio admin prune-versions --now`, never slept); the
background pruning task; deleting a Time Machine bucket discards its history while an
explicitly versioned bucket follows S3's BucketNotEmpty; versions count toward quota.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import AwsRunner, empty_bucket, make_s3_client, new_bucket
from tests.folio_process import FolioProcess, running_server

DAY = 86400.0
ROOT_EMAIL = "admin@localhost"  # the account FolioProcess's root keys belong to

# The tiny plan of the session server (tests/conftest.py): what the tests rely on.
TINY_QUOTA = 1_000_000
TINY_KEEP_VERSIONS = 3

# A server of our own for the injected clock: `prune-versions` prunes every bucket of
# its data dir, so running it on the session server would reach other tests' buckets.
CLOCK_CONFIG = """
[plans.default]
keep_versions = 10
keep_days = 30.0
write_per_second = 0
read_per_second = 0
list_per_second = 0
"""
KEEP_DAYS = 30.0

# keep_days = 0.00002 is about 1.7 s: short enough to watch the background task prune
# within a test, long enough that the writes themselves do not prune anything.
BACKGROUND_CONFIG = """
[plans.default]
keep_versions = 10
keep_days = 0.00002
write_per_second = 0
read_per_second = 0
list_per_second = 0

[versioning]
prune_interval_seconds = 0.5
"""


# ---------------------------------------------------------------- helpers


def s3_error(exc: pytest.ExceptionInfo[ClientError]) -> tuple[int, str]:
    """(HTTP status, S3 error code) of a failed boto3 call."""
    response = exc.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]


def body_of(s3, bucket: str, key: str, **kwargs: Any) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key, **kwargs)["Body"].read()


def history(s3, bucket: str, prefix: str | None = None) -> list[tuple[str, str, bool, int]]:
    """(kind, version id, is latest, size) of every version and marker under `prefix`, by
    key, newest first (one ListObjectVersions page: the tests stay far below 1000)."""
    page = s3.list_object_versions(Bucket=bucket, **({"Prefix": prefix} if prefix else {}))
    assert not page.get("IsTruncated")
    entries = [
        (v["Key"], "version", v["VersionId"], v["IsLatest"], v["Size"]) for v in page.get("Versions", [])
    ]
    entries += [(m["Key"], "marker", m["VersionId"], m["IsLatest"], 0) for m in page.get("DeleteMarkers", [])]
    # boto3 splits versions and markers into two lists, each in the server's newest-first
    # order. In these tests a marker is only ever the latest entry of its key, so a stable
    # sort by (key, latest first) restores the server's order.
    entries.sort(key=lambda e: (e[0], not e[3]))
    return [(kind, vid, latest, size) for _, kind, vid, latest, size in entries]


def bucket_bytes(server: FolioProcess, email: str, bucket: str) -> int:
    """The bucket's stored bytes as `folio admin usage` reports them."""
    return server.usage(email)["buckets"][bucket]["bytesUsed"]


def prune(server: FolioProcess, now: float) -> int:
    """`folio admin prune-versions --now NOW`: retention as if the clock read NOW."""
    return json.loads(server.admin("prune-versions", "--now", repr(now)))["prunedVersions"]


# ---------------------------------------------------------------- fixtures


@pytest.fixture
def tiny(folio: FolioProcess) -> Iterator[tuple[Any, str, str]]:
    """(boto3 client, account email, bucket) of a fresh account on the tiny plan
    (1,000,000 bytes, keep_versions 3), so quota and retention are its own."""
    email = f"tm-{uuid.uuid4().hex[:12]}@example.com"
    account = folio.create_account(email, plan="tiny")
    client = make_s3_client(folio, account["accessKey"], account["secretKey"])
    for name in new_bucket(client, "tiny"):
        yield client, email, name


@pytest.fixture(scope="module")
def clock_folio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FolioProcess]:
    yield from running_server(tmp_path_factory, "folio-clock", CLOCK_CONFIG)


# ---------------------------------------------------------------- versions by default


def test_new_bucket_is_enabled_and_every_overwrite_reads_back_by_version_id(s3, bucket: str) -> None:
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    bodies = [b"first", b"second, longer", b"third" * 3, b"fourth and current"]
    ids = [s3.put_object(Bucket=bucket, Key="doc.txt", Body=body)["VersionId"] for body in bodies]
    assert len(set(ids)) == 4 and "null" not in ids

    # Newest first, only the last write is latest, sizes are each write's.
    expected = [("version", vid, vid == ids[-1], len(body)) for vid, body in zip(ids, bodies, strict=True)]
    assert history(s3, bucket, "doc.txt") == expected[::-1]
    for vid, body in zip(ids, bodies, strict=True):
        got = s3.get_object(Bucket=bucket, Key="doc.txt", VersionId=vid)
        assert got["Body"].read() == body
        assert got["VersionId"] == vid
        assert s3.head_object(Bucket=bucket, Key="doc.txt", VersionId=vid)["ContentLength"] == len(body)
    latest = s3.get_object(Bucket=bucket, Key="doc.txt")
    assert latest["Body"].read() == bodies[-1] and latest["VersionId"] == ids[-1]


def test_delete_leaves_a_marker_and_deleting_the_marker_undeletes(s3, bucket: str) -> None:
    v1 = s3.put_object(Bucket=bucket, Key="k", Body=b"keep me")["VersionId"]
    deleted = s3.delete_object(Bucket=bucket, Key="k")
    assert deleted["DeleteMarker"] is True
    marker = deleted["VersionId"]
    assert marker not in (v1, "null")
    assert history(s3, bucket, "k") == [("marker", marker, True, 0), ("version", v1, False, 7)]
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)

    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="k")
    assert s3_error(exc) == (404, "NoSuchKey")
    headers = exc.value.response["ResponseMetadata"]["HTTPHeaders"]
    assert headers.get("x-amz-delete-marker") == "true"
    assert headers.get("x-amz-version-id") == marker
    # The old version is still readable by id while the key is deleted.
    assert body_of(s3, bucket, "k", VersionId=v1) == b"keep me"

    undeleted = s3.delete_object(Bucket=bucket, Key="k", VersionId=marker)
    assert undeleted["VersionId"] == marker and undeleted["DeleteMarker"] is True
    assert body_of(s3, bucket, "k") == b"keep me"
    assert history(s3, bucket, "k") == [("version", v1, True, 7)]


def test_suspending_a_time_machine_bucket_writes_the_null_version(s3, bucket: str) -> None:
    v1 = s3.put_object(Bucket=bucket, Key="k", Body=b"v1")["VersionId"]
    v2 = s3.put_object(Bucket=bucket, Key="k", Body=b"v2")["VersionId"]
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    # The S3 API sees the state it changed.
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Suspended"

    s3.put_object(Bucket=bucket, Key="k", Body=b"null one")
    assert history(s3, bucket, "k") == [
        ("version", "null", True, 8),
        ("version", v2, False, 2),
        ("version", v1, False, 2),
    ]
    # A second write while suspended replaces the null version instead of adding one.
    s3.put_object(Bucket=bucket, Key="k", Body=b"null two!")
    assert history(s3, bucket, "k") == [
        ("version", "null", True, 9),
        ("version", v2, False, 2),
        ("version", v1, False, 2),
    ]
    assert body_of(s3, bucket, "k") == b"null two!"
    assert body_of(s3, bucket, "k", VersionId="null") == b"null two!"
    assert s3.head_object(Bucket=bucket, Key="k")["VersionId"] == "null"
    assert body_of(s3, bucket, "k", VersionId=v1) == b"v1"
    assert body_of(s3, bucket, "k", VersionId=v2) == b"v2"

    # Enabled again: new writes get real ids above the null version.
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    v3 = s3.put_object(Bucket=bucket, Key="k", Body=b"v3")["VersionId"]
    assert v3 not in (v1, v2, "null")
    assert [vid for _, vid, _, _ in history(s3, bucket, "k")] == [v3, "null", v2, v1]


# ---------------------------------------------------------------- retention


def test_writes_keep_only_the_newest_n_noncurrent_versions_and_usage_follows(
    folio: FolioProcess, tiny: tuple[Any, str, str]
) -> None:
    s3, email, bucket = tiny
    n = TINY_KEEP_VERSIONS
    # Distinct sizes, so the usage check tells which versions were freed.
    bodies = [bytes([65 + i]) * (1000 * (i + 1)) for i in range(n + 3)]
    ids = [s3.put_object(Bucket=bucket, Key="k", Body=body)["VersionId"] for body in bodies]

    kept = list(range(len(bodies) - 1 - n, len(bodies)))  # the newest n noncurrent + current
    assert (
        history(s3, bucket, "k")
        == [("version", ids[i], i == len(bodies) - 1, len(bodies[i])) for i in kept][::-1]
    )
    for i in range(len(bodies) - 1 - n):
        with pytest.raises(ClientError) as exc:
            s3.get_object(Bucket=bucket, Key="k", VersionId=ids[i])
        assert s3_error(exc) == (404, "NoSuchVersion")
    for i in kept:
        assert body_of(s3, bucket, "k", VersionId=ids[i]) == bodies[i]
    current = s3.get_object(Bucket=bucket, Key="k")
    assert current["VersionId"] == ids[-1] and current["Body"].read() == bodies[-1]

    # Pruning freed exactly the dropped versions' bytes.
    usage = folio.usage(email)
    assert usage["bytesUsed"] == sum(len(bodies[i]) for i in kept)
    assert usage["objects"] == 1


def test_injected_clock_drops_versions_noncurrent_for_more_than_keep_days(clock_folio: FolioProcess) -> None:
    s3 = make_s3_client(clock_folio)
    for bucket in new_bucket(s3, "clock"):
        doc = [b"d" * 100, b"d" * 200, b"d" * 300]
        doc_ids = [s3.put_object(Bucket=bucket, Key="doc", Body=doc[0])["VersionId"]]
        after_first = time.time()
        # One second between v1 and its successor, so a clock can fall between them:
        # a short real wait to tell LastModified apart, not a wait for days.
        time.sleep(1.0)
        before_second = time.time()
        doc_ids += [s3.put_object(Bucket=bucket, Key="doc", Body=body)["VersionId"] for body in doc[1:]]
        gone = [s3.put_object(Bucket=bucket, Key="gone", Body=b"g" * n)["VersionId"] for n in (50, 60)]
        marker = s3.delete_object(Bucket=bucket, Key="gone")["VersionId"]
        lonely = s3.put_object(Bucket=bucket, Key="lonely", Body=b"l" * 70)["VersionId"]
        everything = history(s3, bucket)
        assert len(everything) == 7
        assert bucket_bytes(clock_folio, ROOT_EMAIL, bucket) == 100 + 200 + 300 + 50 + 60 + 70

        # Just under keep_days after the writes: nothing has been noncurrent that long.
        assert prune(clock_folio, time.time() + KEEP_DAYS * DAY - 60) == 0
        # Retention counts from when a version stopped being current (its successor's
        # LastModified, like S3's NoncurrentDays), not from its own LastModified: with
        # the clock between the two, doc v1 is older than keep_days but stays.
        assert prune(clock_folio, (after_first + before_second) / 2 + KEEP_DAYS * DAY) == 0
        assert history(s3, bucket) == everything

        # 31 days on: every noncurrent version goes; current versions stay however old,
        # a delete marker included.
        assert prune(clock_folio, time.time() + 31 * DAY) == 4
        assert history(s3, bucket, "doc") == [("version", doc_ids[2], True, 300)]
        assert history(s3, bucket, "gone") == [("marker", marker, True, 0)]
        assert history(s3, bucket, "lonely") == [("version", lonely, True, 70)]
        assert body_of(s3, bucket, "doc") == doc[2]
        assert body_of(s3, bucket, "lonely") == b"l" * 70
        with pytest.raises(ClientError) as exc:
            s3.get_object(Bucket=bucket, Key="gone")
        assert s3_error(exc) == (404, "NoSuchKey")
        for vid in (*doc_ids[:2], *gone):
            with pytest.raises(ClientError) as exc:
                s3.head_object(Bucket=bucket, Key="doc" if vid in doc_ids else "gone", VersionId=vid)
            assert s3_error(exc)[0] == 404
        assert bucket_bytes(clock_folio, ROOT_EMAIL, bucket) == 300 + 70

        # Nothing left to prune, however far the clock goes: current versions are never touched.
        assert prune(clock_folio, time.time() + 3650 * DAY) == 0
        assert len(history(s3, bucket)) == 3


def test_background_task_prunes_without_any_write(tmp_path: Path) -> None:
    server = FolioProcess(data_dir=tmp_path / "data", config_text=BACKGROUND_CONFIG)
    server.start()
    try:
        s3 = make_s3_client(server)
        s3.create_bucket(Bucket="background")
        ids = [
            s3.put_object(Bucket="background", Key="k", Body=body)["VersionId"]
            for body in (b"a", b"bb", b"ccc")
        ]
        s3.put_object(Bucket="background", Key="m", Body=b"mmmm")
        marker = s3.delete_object(Bucket="background", Key="m")["VersionId"]
        # Written within keep_days (~1.7 s) of each other: the writes prune nothing.
        assert len(history(s3, "background")) == 5

        # No more writes: only the background task (every 0.5 s) can prune. Poll with a deadline.
        deadline = time.monotonic() + 10
        while len(entries := history(s3, "background")) > 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert history(s3, "background", "k") == [("version", ids[2], True, 3)]
        assert history(s3, "background", "m") == [("marker", marker, True, 0)]
        assert len(entries) == 2
        assert body_of(s3, "background", "k") == b"ccc"
        assert bucket_bytes(server, ROOT_EMAIL, "background") == 3
    finally:
        server.stop()


# ---------------------------------------------------------------- deleting buckets


def test_rb_force_discards_a_time_machine_bucket_with_its_history(
    folio: FolioProcess, s3, aws: AwsRunner, bucket: str
) -> None:
    for body in (b"one", b"two", b"three"):
        s3.put_object(Bucket=bucket, Key="a.txt", Body=body)
    s3.put_object(Bucket=bucket, Key="dir/b.txt", Body=b"b")
    s3.put_object(Bucket=bucket, Key="gone.txt", Body=b"x")
    s3.delete_object(Bucket=bucket, Key="gone.txt")
    # With current objects it is not empty, as in S3.
    with pytest.raises(ClientError) as exc:
        s3.delete_bucket(Bucket=bucket)
    assert s3_error(exc) == (409, "BucketNotEmpty")

    aws("s3", "rb", f"s3://{bucket}", "--force")
    with pytest.raises(ClientError) as exc:
        s3.head_bucket(Bucket=bucket)
    assert s3_error(exc)[0] == 404
    assert bucket not in folio.usage(ROOT_EMAIL)["buckets"]
    # The history went with it: a new bucket of the same name starts empty.
    s3.create_bucket(Bucket=bucket)
    page = s3.list_object_versions(Bucket=bucket)
    assert "Versions" not in page and "DeleteMarkers" not in page


@pytest.mark.parametrize("status", ["Enabled", "Suspended"])
def test_bucket_versioned_with_put_bucket_versioning_follows_s3_bucket_not_empty(
    s3, aws: AwsRunner, bucket: str, status: str
) -> None:
    s3.put_object(Bucket=bucket, Key="a.txt", Body=b"one")  # a real version (Time Machine)
    # PutBucketVersioning makes it an S3 versioned bucket, no longer Time Machine's default.
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": status})
    s3.put_object(Bucket=bucket, Key="a.txt", Body=b"two")

    out = aws("s3", "rb", f"s3://{bucket}", "--force", check=False)
    assert out.returncode != 0
    assert "BucketNotEmpty" in out.stderr
    # rb --force deleted the current object (a marker now) but the bucket and history stay.
    s3.head_bucket(Bucket=bucket)
    kinds = [(kind, latest) for kind, _, latest, _ in history(s3, bucket)]
    assert kinds[0] == ("marker", True)
    assert kinds[1:] == [("version", False)] * (2 if status == "Enabled" else 1)
    with pytest.raises(ClientError) as exc:
        s3.delete_bucket(Bucket=bucket)
    assert s3_error(exc) == (409, "BucketNotEmpty")

    # Once every version and marker is gone it can be deleted.
    empty_bucket(s3, bucket)
    s3.delete_bucket(Bucket=bucket)
    with pytest.raises(ClientError) as exc:
        s3.head_bucket(Bucket=bucket)
    assert s3_error(exc)[0] == 404


# ---------------------------------------------------------------- quota


def test_versions_count_toward_the_quota(folio: FolioProcess, tiny: tuple[Any, str, str]) -> None:
    s3, email, bucket = tiny
    size = 400_000
    v1 = s3.put_object(Bucket=bucket, Key="big", Body=b"1" * size)["VersionId"]
    assert folio.usage(email)["bytesUsed"] == size
    v2 = s3.put_object(Bucket=bucket, Key="big", Body=b"2" * size)["VersionId"]
    # The overwritten version still takes space.
    usage = folio.usage(email)
    assert (usage["bytesUsed"], usage["objects"], usage["quotaBytes"]) == (2 * size, 1, TINY_QUOTA)

    # A third copy would need 1,200,000 bytes: refused, and nothing changes.
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="big", Body=b"3" * size)
    assert s3_error(exc) == (403, "QuotaExceeded")
    assert folio.usage(email)["bytesUsed"] == 2 * size
    assert history(s3, bucket, "big") == [("version", v2, True, size), ("version", v1, False, size)]
    assert body_of(s3, bucket, "big") == b"2" * size

    # Deleting the old version by id frees exactly its bytes, and the write fits again.
    s3.delete_object(Bucket=bucket, Key="big", VersionId=v1)
    assert folio.usage(email)["bytesUsed"] == size
    v3 = s3.put_object(Bucket=bucket, Key="big", Body=b"3" * size)["VersionId"]
    assert folio.usage(email)["bytesUsed"] == 2 * size
    assert history(s3, bucket, "big") == [("version", v3, True, size), ("version", v2, False, size)]


def test_an_overwrite_that_pushes_out_an_old_version_needs_no_extra_quota(
    folio: FolioProcess, tiny: tuple[Any, str, str]
) -> None:
    # docs/versioning-and-quotas.md: pruning runs in the write's own transaction, "so an
    # overwrite that pushes out an old version needs no extra quota".
    s3, email, bucket = tiny
    size = 240_000
    bodies = [bytes([65 + i]) * size for i in range(TINY_KEEP_VERSIONS + 2)]
    ids = [s3.put_object(Bucket=bucket, Key="k", Body=body)["VersionId"] for body in bodies[:-1]]
    full = (TINY_KEEP_VERSIONS + 1) * size  # current + 3 noncurrent: 960,000 of 1,000,000
    assert folio.usage(email)["bytesUsed"] == full
    # A new key pushes nothing out: refused.
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="other", Body=b"o" * size)
    assert s3_error(exc) == (403, "QuotaExceeded")

    # Overwriting "k" drops its oldest version in the same transaction: usage stays put.
    ids.append(s3.put_object(Bucket=bucket, Key="k", Body=bodies[-1])["VersionId"])
    assert folio.usage(email)["bytesUsed"] == full
    assert [vid for _, vid, _, _ in history(s3, bucket, "k")] == ids[:0:-1]
    assert body_of(s3, bucket, "k") == bodies[-1]
