"""Plans and quotas (issue 4) against a real server: usage counts every stored byte
(current objects, noncurrent versions, parts of unfinished uploads), every write path
refuses what would pass the quota with 403 QuotaExceeded and leaves nothing behind,
concurrent uploads never pass it together, and crossing 80% / 100% records events.

The tests run their own server (one for the module) so that pruning, blob counts and
`tmp/` are not disturbed by other test files; each test uses a fresh account, so its
usage starts at 0. Usage is read with `folio admin usage` and, where it must be polled
quickly, straight from the database (tests/server_db.py: SQLite's file or PostgreSQL).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from lxml import etree

from tests.conftest import make_s3_client
from tests.folio_process import FolioProcess, running_server
from tests.seaweedfs import stored_blob_ids
from tests.server_db import server_db

QUOTA = 1_000_000
BIG_QUOTA = 12_000_000  # room for two 5 MiB multipart parts, not for a third
MIB = 1024 * 1024

# Plan `q` is the quota under test without rate limits (20 uploads at once must not be
# throttled); `big` fits a real multipart upload (every part but the last >= 5 MiB).
CONFIG = f"""
[plans.q]
storage_bytes = {QUOTA}
max_buckets = 100
write_per_second = 0
read_per_second = 0
list_per_second = 0
keep_versions = 3
keep_days = 30.0

[plans.big]
storage_bytes = {BIG_QUOTA}
max_buckets = 100
write_per_second = 0
read_per_second = 0
list_per_second = 0
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FolioProcess]:
    yield from running_server(tmp_path_factory, "folio-quota", CONFIG)


@dataclass
class Account:
    email: str
    account_id: str
    access_key: str
    secret_key: str
    s3: object  # a boto3 S3 client with this account's keys
    bucket: str  # a fresh bucket of the account (versioned: Time Machine)


def open_account(server: FolioProcess, plan: str = "q") -> Account:
    email = f"quota-{uuid.uuid4().hex[:12]}@example.com"
    created = server.create_account(email, plan=plan)
    client = make_s3_client(server, created["accessKey"], created["secretKey"])
    bucket = f"quota-{uuid.uuid4().hex[:16]}"
    client.create_bucket(Bucket=bucket)
    return Account(email, created["accountId"], created["accessKey"], created["secretKey"], client, bucket)


@pytest.fixture
def account(server: FolioProcess) -> Account:
    return open_account(server)


# -- helpers ----------------------------------------------------------------------------------


def db_bytes(conn: Any, account_id: str) -> int:
    return conn.execute(
        "SELECT coalesce(sum(bytes_used), 0) FROM buckets WHERE account_id = ?", (account_id,)
    ).fetchone()[0]


def object_rows(server: FolioProcess, bucket: str) -> int:
    with server_db(server) as conn:
        return conn.execute(
            "SELECT count(*) FROM objects o JOIN buckets b ON b.id = o.bucket_id WHERE b.name = ?", (bucket,)
        ).fetchone()[0]


def referenced_blobs(server: FolioProcess, bucket: str) -> set[str]:
    """Blob ids the bucket's versions and unfinished upload parts point at."""
    with server_db(server) as conn:
        rows = conn.execute(
            "SELECT o.segments FROM objects o JOIN buckets b ON b.id = o.bucket_id"
            " WHERE b.name = ? AND o.segments IS NOT NULL"
            " UNION ALL SELECT p.segments FROM upload_parts p JOIN uploads u ON u.id = p.upload_id"
            " JOIN buckets b ON b.id = u.bucket_id WHERE b.name = ?",
            (bucket, bucket),
        ).fetchall()
    return {segment[0] for (text,) in rows for segment in json.loads(text)}


def blob_rows(server: FolioProcess) -> set[str]:
    with server_db(server) as conn:
        return {row[0] for row in conn.execute("SELECT id FROM blobs")}


def blob_files(server: FolioProcess) -> set[str]:
    """The blobs the server's store holds: files under blobs/, or its upstream bucket's."""
    return stored_blob_ids(server)


def tmp_entries(server: FolioProcess) -> list[str]:
    # Blobs on an upstream S3 (FOLIO_TEST_BLOBS=s3) are never staged in tmp/: it may not exist.
    tmp = server.data_dir / "tmp"
    return sorted(os.listdir(tmp)) if tmp.exists() else []


def quota_events(server: FolioProcess, account_id: str) -> list[tuple[str, dict]]:
    with server_db(server) as conn:
        rows = conn.execute(
            "SELECT type, payload FROM events WHERE account_id = ? AND type LIKE 'quota.%' ORDER BY id",
            (account_id,),
        ).fetchall()
    return [(kind, json.loads(payload)) for kind, payload in rows]


def s3_error(exc: pytest.ExceptionInfo[ClientError]) -> tuple[int, str]:
    response = exc.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]


def xml_error(status: int, body: bytes) -> tuple[int, str | None]:
    return status, etree.fromstring(body).findtext("Code")


def read(client, bucket: str, key: str, version_id: str | None = None) -> bytes:
    extra = {"VersionId": version_id} if version_id else {}
    return client.get_object(Bucket=bucket, Key=key, **extra)["Body"].read()


def versions_of(client, bucket: str) -> list[tuple[str, str, int]]:
    listing = client.list_object_versions(Bucket=bucket)
    return sorted((v["Key"], v["VersionId"], v["Size"]) for v in listing.get("Versions", []))


@dataclass
class Snapshot:
    """What a refused write must leave exactly as it was."""

    usage: dict
    versions: list[tuple[str, str, int]]
    rows: int
    files: set[str]


def snapshot(server: FolioProcess, account: Account) -> Snapshot:
    return Snapshot(
        usage=server.usage(account.email),
        versions=versions_of(account.s3, account.bucket),
        rows=object_rows(server, account.bucket),
        files=blob_files(server),
    )


def assert_nothing_left(server: FolioProcess, account: Account, before: Snapshot) -> None:
    after = snapshot(server, account)
    assert after.usage["bytesUsed"] == before.usage["bytesUsed"]
    assert after.usage["objects"] == before.usage["objects"]
    assert after.versions == before.versions, "no version of the refused write"
    assert after.rows == before.rows, "no object row of the refused write"
    assert after.files - before.files == set(), "no blob file of the refused write"
    assert tmp_entries(server) == [], "nothing of the refused write under tmp/"


def assert_quota_exceeded(exc: pytest.ExceptionInfo[ClientError]) -> None:
    assert s3_error(exc) == (403, "QuotaExceeded")


def fill(account: Account, nbytes: int, key: str = "filler") -> None:
    """Use `nbytes` of the account's quota (over one or more objects of <= 400 kB)."""
    index = 0
    while nbytes > 0:
        size = min(nbytes, 400_000)
        account.s3.put_object(Bucket=account.bucket, Key=f"{key}-{index}", Body=os.urandom(size))
        nbytes -= size
        index += 1


def read_http_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response from a raw socket: status, headers (lower-case), body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed before a response: {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(status_line.split()[1]), headers, body


# -- concurrency ------------------------------------------------------------------------------


def test_concurrent_uploads_never_pass_the_quota_and_refusals_leave_nothing(
    server: FolioProcess, account: Account
) -> None:
    size, count = 100_000, 20  # 2,000,000 bytes asked for, 1,000,000 allowed; > 64 KiB: blob files
    bodies = {f"up-{i:02d}": os.urandom(size) for i in range(count)}
    files_before = blob_files(server)
    # One client for all threads: boto3 clients are thread-safe; a pool as wide as the
    # burst so the 20 uploads really are in flight together.
    client = make_s3_client(
        server, account.access_key, account.secret_key, config=Config(max_pool_connections=count)
    )

    # Poll the stored usage all along, straight from the database (fast enough to catch
    # an overshoot that a later write would hide).
    peak = {"bytes": 0, "samples": 0}
    done = threading.Event()

    def poll() -> None:
        with server_db(server) as conn:
            while True:
                peak["bytes"] = max(peak["bytes"], db_bytes(conn, account.account_id))
                peak["samples"] += 1
                if done.wait(0.002):  # a pause between samples: leave the CPU to the server
                    break

    barrier = threading.Barrier(count)

    def upload(key: str) -> str:
        barrier.wait()
        try:
            client.put_object(Bucket=account.bucket, Key=key, Body=bodies[key])
        except ClientError as exc:
            error = exc.response["Error"]["Code"]
            status = exc.response["ResponseMetadata"]["HTTPStatusCode"]
            return f"{status} {error}"
        return "ok"

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        with ThreadPoolExecutor(count) as pool:
            outcomes = dict(zip(bodies, pool.map(upload, bodies), strict=True))
    finally:
        done.set()
        poller.join()

    accepted = sorted(key for key, outcome in outcomes.items() if outcome == "ok")
    refused = sorted(key for key in outcomes if key not in accepted)
    assert {outcomes[key] for key in refused} <= {"403 QuotaExceeded"}, outcomes
    assert refused, "2,000,000 bytes cannot all fit in a 1,000,000-byte quota"
    assert 1 <= len(accepted) <= QUOTA // size, outcomes
    assert peak["samples"] > 0 and peak["bytes"] <= QUOTA, peak

    usage = server.usage(account.email)
    assert usage["quotaBytes"] == QUOTA
    assert usage["bytesUsed"] == len(accepted) * size <= QUOTA
    assert usage["objects"] == len(accepted)
    assert usage["buckets"] == {account.bucket: {"bytesUsed": len(accepted) * size, "objects": len(accepted)}}

    for key in accepted:
        assert read(client, account.bucket, key) == bodies[key], f"{key} reads back intact"
    assert [key for key, _, _ in versions_of(client, account.bucket)] == accepted, "no version of a refused upload"
    for key in refused:
        with pytest.raises(ClientError) as exc:
            client.head_object(Bucket=account.bucket, Key=key)
        assert s3_error(exc)[0] == 404

    # No orphan: the new blob files are exactly the accepted objects' blobs, each a blobs row.
    referenced = referenced_blobs(server, account.bucket)
    assert len(referenced) == len(accepted)
    assert blob_files(server) - files_before == referenced
    assert referenced <= blob_rows(server)
    assert tmp_entries(server) == []

    # Every reservation was released: whatever is left of the quota can be used, not a byte more.
    left = QUOTA - usage["bytesUsed"]
    if left:
        client.put_object(Bucket=account.bucket, Key="rest", Body=os.urandom(left))
    with pytest.raises(ClientError) as exc:
        client.put_object(Bucket=account.bucket, Key="one-more", Body=b"x")
    assert_quota_exceeded(exc)
    assert server.usage(account.email)["bytesUsed"] == QUOTA

    # Ten fit exactly, and only an upload that would not fit may be refused: the burst
    # must not refuse uploads for bytes counted twice (checked last, so that everything
    # above is shown whatever this says).
    assert len(accepted) == QUOTA // size, f"only {len(accepted)} of the 10 uploads that fit were accepted"


# -- what counts, and what frees --------------------------------------------------------------


def test_noncurrent_versions_count_and_deleting_versions_frees_exactly(
    server: FolioProcess, account: Account
) -> None:
    s3, bucket = account.s3, account.bucket
    first = s3.put_object(Bucket=bucket, Key="a", Body=os.urandom(100_000))["VersionId"]
    s3.put_object(Bucket=bucket, Key="b", Body=os.urandom(1_000))  # inline
    assert server.usage(account.email)["bytesUsed"] == 101_000

    # Overwriting keeps the old version (Time Machine): usage grows by the new size.
    second = s3.put_object(Bucket=bucket, Key="a", Body=os.urandom(50_000))["VersionId"]
    usage = server.usage(account.email)
    assert (usage["bytesUsed"], usage["objects"]) == (151_000, 2)

    # A plain delete only adds a delete marker: nothing is freed, one object fewer.
    marker = s3.delete_object(Bucket=bucket, Key="a")["VersionId"]
    usage = server.usage(account.email)
    assert (usage["bytesUsed"], usage["objects"]) == (151_000, 1)

    # Deleting a version by id frees exactly its size.
    s3.delete_object(Bucket=bucket, Key="a", VersionId=first)
    assert server.usage(account.email)["bytesUsed"] == 51_000
    s3.delete_objects(
        Bucket=bucket,
        Delete={"Objects": [{"Key": "a", "VersionId": second}, {"Key": "a", "VersionId": marker}]},
    )
    usage = server.usage(account.email)
    assert (usage["bytesUsed"], usage["objects"]) == (1_000, 1)
    b_version = s3.head_object(Bucket=bucket, Key="b")["VersionId"]
    s3.delete_object(Bucket=bucket, Key="b", VersionId=b_version)
    usage = server.usage(account.email)
    assert (usage["bytesUsed"], usage["objects"]) == (0, 0)
    assert usage["buckets"] == {bucket: {"bytesUsed": 0, "objects": 0}}


def test_deleting_in_a_suspended_bucket_frees_the_object(server: FolioProcess, account: Account) -> None:
    s3, bucket = account.s3, account.bucket
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    s3.put_object(Bucket=bucket, Key="k", Body=os.urandom(200_000))
    s3.put_object(Bucket=bucket, Key="k", Body=os.urandom(70_000))  # replaces the null version
    assert server.usage(account.email)["bytesUsed"] == 70_000
    s3.delete_object(Bucket=bucket, Key="k")
    usage = server.usage(account.email)
    assert (usage["bytesUsed"], usage["objects"]) == (0, 0)


def test_retention_pruning_frees_usage_exactly(server: FolioProcess, account: Account) -> None:
    s3, bucket = account.s3, account.bucket
    sizes = [10_000, 20_000, 30_000, 40_000, 50_000, 60_000]
    for size in sizes:
        s3.put_object(Bucket=bucket, Key="k", Body=os.urandom(size))
    # keep_versions = 3: each write drops the noncurrent versions past the newest three.
    assert server.usage(account.email)["bytesUsed"] == sum(sizes[-4:])
    # 31 days on, keep_days = 30 has expired every noncurrent version: only the current one counts.
    out = server.admin("prune-versions", "--now", str(int(time.time()) + 31 * 86400))
    assert json.loads(out)["prunedVersions"] >= 3
    usage = server.usage(account.email)
    assert (usage["bytesUsed"], usage["objects"]) == (sizes[-1], 1)
    assert [size for _, _, size in versions_of(s3, bucket)] == [sizes[-1]]


# -- refused before the body ------------------------------------------------------------------


def signed_headers_put(account: Account, url: str, headers: dict[str, str]) -> dict[str, str]:
    """SigV4 header auth for a PUT whose body is never sent (x-amz-content-sha256 given)."""
    request = AWSRequest(method="PUT", url=url, headers=headers)
    SigV4Auth(Credentials(account.access_key, account.secret_key), "s3", "us-east-1").add_auth(request)
    return dict(request.headers.items())


@pytest.mark.parametrize("signing", ["presigned-url", "sigv4-aws-chunked"])
def test_expect_100_continue_over_the_quota_is_refused_before_the_body(
    server: FolioProcess, account: Account, signing: str
) -> None:
    s3, bucket = account.s3, account.bucket
    original = os.urandom(300_000)
    s3.put_object(Bucket=bucket, Key="big", Body=original)
    before = snapshot(server, account)
    declared = 2_000_000
    host = f"127.0.0.1:{server.s3_port}"
    if signing == "presigned-url":
        url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "big"}, ExpiresIn=300)
        parts = urlsplit(url)
        target = f"{parts.path}?{parts.query}"
        headers = {"Host": host, "Content-Length": str(declared)}
    else:
        # The declared size is x-amz-decoded-content-length; Content-Length is the encoded body.
        target = f"/{bucket}/big"
        headers = signed_headers_put(
            account,
            f"{server.s3_url}{target}",
            {
                "Host": host,
                "Content-Encoding": "aws-chunked",
                "X-Amz-Content-SHA256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
                "X-Amz-Decoded-Content-Length": str(declared),
                "X-Amz-Trailer": "x-amz-checksum-crc32",
            },
        )
        headers["Content-Length"] = str(declared + 1000)
    headers["Expect"] = "100-continue"
    head = f"PUT {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"

    with socket.create_connection(("127.0.0.1", server.s3_port), timeout=10) as sock:
        sock.sendall(head.encode("latin-1"))
        # No body byte is sent: the answer must come without one, and must not be 100 Continue.
        status, response_headers, body = read_http_response(sock)
    assert status != 100, "the server asked for the body of an upload it must refuse"
    assert xml_error(status, body) == (403, "QuotaExceeded")
    assert "x-amz-request-id" in response_headers
    assert response_headers.get("connection", "").lower() == "close"

    assert_nothing_left(server, account, before)
    assert read(s3, bucket, "big") == original


def test_presigned_put_over_the_quota_is_quota_exceeded(server: FolioProcess, account: Account) -> None:
    s3, bucket = account.s3, account.bucket
    original = os.urandom(200_000)
    s3.put_object(Bucket=bucket, Key="p", Body=original)
    before = snapshot(server, account)
    url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "p"}, ExpiresIn=300)
    # 900,000 more would make 1,100,000: over by a little, with a Content-Length httpx sends.
    response = httpx.put(url, content=os.urandom(900_000), timeout=30)
    assert xml_error(response.status_code, response.content) == (403, "QuotaExceeded")
    assert_nothing_left(server, account, before)
    assert read(s3, bucket, "p") == original

    # Within the quota the same kind of URL works (the refusal was the quota, not the URL).
    response = httpx.put(url, content=b"fits", timeout=30)
    assert response.status_code == 200
    assert read(s3, bucket, "p") == b"fits"


def test_chunked_upload_of_unknown_length_is_refused_while_streaming(
    server: FolioProcess, account: Account
) -> None:
    s3, bucket = account.s3, account.bucket
    original = os.urandom(300_000)
    s3.put_object(Bucket=bucket, Key="stream", Body=original)
    before = snapshot(server, account)
    url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "stream"}, ExpiresIn=300)
    sent = {"bytes": 0}

    def body() -> Iterator[bytes]:
        # 1,600,000 bytes in 64 KiB pieces, no length declared: only the running total
        # can tell the server it is over (700,000 bytes of room are left).
        for _ in range(25):
            piece = os.urandom(64_000)
            sent["bytes"] += len(piece)
            yield piece

    try:
        response = httpx.put(url, content=body(), timeout=30)
    except httpx.TransportError as exc:  # pragma: no cover - the assertion explains it
        raise AssertionError(f"the refusal must be an answer, not a broken connection: {exc!r}") from exc
    assert response.request.headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in response.request.headers
    assert xml_error(response.status_code, response.content) == (403, "QuotaExceeded")

    assert_nothing_left(server, account, before)
    assert read(s3, bucket, "stream") == original
    assert len(versions_of(s3, bucket)) == 1


def test_refused_write_does_not_tie_up_the_quota(server: FolioProcess, account: Account) -> None:
    # A refusal's reservation is released: the full quota is still usable afterwards.
    with pytest.raises(ClientError) as exc:
        account.s3.put_object(Bucket=account.bucket, Key="huge", Body=os.urandom(QUOTA + 1))
    assert_quota_exceeded(exc)
    account.s3.put_object(Bucket=account.bucket, Key="exact", Body=os.urandom(QUOTA))
    assert server.usage(account.email)["bytesUsed"] == QUOTA


# -- overwrite refused ------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1_000, 300_000], ids=["inline", "blob"])
def test_refused_overwrite_leaves_the_previous_version_unchanged(
    server: FolioProcess, account: Account, size: int
) -> None:
    s3, bucket = account.s3, account.bucket
    original = os.urandom(size)
    put = s3.put_object(Bucket=bucket, Key="k", Body=original)
    before = snapshot(server, account)
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="k", Body=os.urandom(QUOTA - size + 1))
    assert_quota_exceeded(exc)

    assert_nothing_left(server, account, before)
    got = s3.get_object(Bucket=bucket, Key="k")
    assert got["Body"].read() == original
    assert (got["ETag"], got["VersionId"]) == (put["ETag"], put["VersionId"])
    assert read(s3, bucket, "k", put["VersionId"]) == original


def test_overwrite_of_a_null_version_counts_only_its_net_growth(server: FolioProcess, account: Account) -> None:
    # In a suspended bucket an overwrite replaces the null version: what it frees makes room.
    s3, bucket = account.s3, account.bucket
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    s3.put_object(Bucket=bucket, Key="k", Body=os.urandom(600_000))
    second = os.urandom(700_000)  # 1,300,000 if both counted; 700,000 is what remains
    s3.put_object(Bucket=bucket, Key="k", Body=second)
    assert server.usage(account.email)["bytesUsed"] == 700_000
    assert read(s3, bucket, "k") == second

    before = snapshot(server, account)
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="k", Body=os.urandom(QUOTA + 1))
    assert_quota_exceeded(exc)
    assert_nothing_left(server, account, before)
    assert read(s3, bucket, "k") == second
    whole = os.urandom(QUOTA)
    s3.put_object(Bucket=bucket, Key="k", Body=whole)
    assert server.usage(account.email)["bytesUsed"] == QUOTA
    assert read(s3, bucket, "k") == whole


def test_overwrite_that_retention_makes_room_for_is_accepted(server: FolioProcess, account: Account) -> None:
    # keep_versions = 3: a fifth version of a full key drops the oldest, so usage stays put.
    s3, bucket = account.s3, account.bucket
    size = 250_000
    for _ in range(4):
        s3.put_object(Bucket=bucket, Key="k", Body=os.urandom(size))
    assert server.usage(account.email)["bytesUsed"] == QUOTA
    newest = os.urandom(size)
    s3.put_object(Bucket=bucket, Key="k", Body=newest)
    assert server.usage(account.email)["bytesUsed"] == QUOTA
    assert len(versions_of(s3, bucket)) == 4
    assert read(s3, bucket, "k") == newest
    # Another key has nothing to free: refused.
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="other", Body=b"x")
    assert_quota_exceeded(exc)


# -- multipart and copies ---------------------------------------------------------------------


def test_multipart_parts_count_until_aborted_and_complete_does_not_double_count(server: FolioProcess) -> None:
    account = open_account(server, plan="big")
    s3, bucket = account.s3, account.bucket
    part = 5 * MIB

    # Parts of an unfinished upload count; aborting frees them.
    upload = s3.create_multipart_upload(Bucket=bucket, Key="aborted")["UploadId"]
    s3.upload_part(Bucket=bucket, Key="aborted", UploadId=upload, PartNumber=1, Body=os.urandom(part))
    assert server.usage(account.email)["bytesUsed"] == part
    s3.abort_multipart_upload(Bucket=bucket, Key="aborted", UploadId=upload)
    assert server.usage(account.email)["bytesUsed"] == 0
    assert referenced_blobs(server, bucket) == set()

    # Two 5 MiB parts (10,485,760) fit in 12,000,000; a third would not.
    bodies = [os.urandom(part), os.urandom(part)]
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    etags = [
        s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload, PartNumber=n, Body=body)["ETag"]
        for n, body in enumerate(bodies, 1)
    ]
    assert server.usage(account.email)["bytesUsed"] == 2 * part
    before = snapshot(server, account)
    with pytest.raises(ClientError) as exc:
        s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload, PartNumber=3, Body=os.urandom(2_000_000))
    assert_quota_exceeded(exc)
    assert_nothing_left(server, account, before)
    listed = s3.list_parts(Bucket=bucket, Key="mp", UploadId=upload)["Parts"]
    assert [p["PartNumber"] for p in listed] == [1, 2]

    # Completing turns the parts into the object: usage stays 2 parts (were they counted
    # twice, 20,971,520 would be over the quota and Complete refused).
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="mp",
        UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, 1)]},
    )
    usage = server.usage(account.email)
    assert (usage["bytesUsed"], usage["objects"]) == (2 * part, 1)
    assert read(s3, bucket, "mp") == b"".join(bodies)


def test_upload_part_copy_past_the_quota_is_refused(server: FolioProcess, account: Account) -> None:
    s3, bucket = account.s3, account.bucket
    source = os.urandom(400_000)  # a blob: the copy would share it, yet its bytes count again
    s3.put_object(Bucket=bucket, Key="src", Body=source)
    upload = s3.create_multipart_upload(Bucket=bucket, Key="dst")["UploadId"]
    copied = s3.upload_part_copy(
        Bucket=bucket, Key="dst", UploadId=upload, PartNumber=1, CopySource={"Bucket": bucket, "Key": "src"}
    )
    assert copied["CopyPartResult"]["ETag"]
    assert server.usage(account.email)["bytesUsed"] == 800_000

    before = snapshot(server, account)
    with pytest.raises(ClientError) as exc:
        s3.upload_part_copy(
            Bucket=bucket, Key="dst", UploadId=upload, PartNumber=2, CopySource={"Bucket": bucket, "Key": "src"}
        )
    assert_quota_exceeded(exc)
    assert_nothing_left(server, account, before)
    assert [p["PartNumber"] for p in s3.list_parts(Bucket=bucket, Key="dst", UploadId=upload)["Parts"]] == [1]

    s3.abort_multipart_upload(Bucket=bucket, Key="dst", UploadId=upload)
    assert server.usage(account.email)["bytesUsed"] == 400_000


def test_copy_object_past_the_quota_is_refused_and_keeps_the_destination(
    server: FolioProcess, account: Account
) -> None:
    s3, bucket = account.s3, account.bucket
    source, destination = os.urandom(400_000), os.urandom(300_000)
    s3.put_object(Bucket=bucket, Key="src", Body=source)
    dest = s3.put_object(Bucket=bucket, Key="dst", Body=destination)
    assert server.usage(account.email)["bytesUsed"] == 700_000

    # The copy would be a new 400,000-byte version of dst (the old one stays noncurrent):
    # 1,100,000 in all, although no byte would be written (the copy shares the blob).
    before = snapshot(server, account)
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"})
    assert_quota_exceeded(exc)
    assert_nothing_left(server, account, before)
    got = s3.get_object(Bucket=bucket, Key="dst")
    assert got["Body"].read() == destination
    assert (got["ETag"], got["VersionId"]) == (dest["ETag"], dest["VersionId"])

    # A copy that fits is accepted and counted.
    s3.put_object(Bucket=bucket, Key="small", Body=b"s" * 1000)
    s3.copy_object(Bucket=bucket, Key="small-copy", CopySource={"Bucket": bucket, "Key": "small"})
    assert server.usage(account.email)["bytesUsed"] == 702_000


# -- events -----------------------------------------------------------------------------------


def test_crossing_80_percent_warns_once_and_reaching_100_percent_is_exceeded(
    server: FolioProcess, account: Account
) -> None:
    s3, bucket = account.s3, account.bucket
    s3.put_object(Bucket=bucket, Key="a", Body=os.urandom(700_000))
    assert quota_events(server, account.account_id) == []

    s3.put_object(Bucket=bucket, Key="b", Body=os.urandom(150_000))  # 85%: crosses 80%
    s3.put_object(Bucket=bucket, Key="c", Body=os.urandom(50_000))  # 90%: still above, no new event
    events = quota_events(server, account.account_id)
    assert [kind for kind, _ in events] == ["quota.warning"]
    assert events[0][1]["bytesUsed"] == 850_000 and events[0][1]["quotaBytes"] == QUOTA

    s3.put_object(Bucket=bucket, Key="d", Body=os.urandom(100_000))  # exactly 100%
    events = quota_events(server, account.account_id)
    assert [kind for kind, _ in events] == ["quota.warning", "quota.exceeded"]
    assert events[1][1]["bytesUsed"] == QUOTA and events[1][1]["quotaBytes"] == QUOTA


def test_refusal_records_quota_exceeded_at_most_once_an_hour(server: FolioProcess, account: Account) -> None:
    s3, bucket = account.s3, account.bucket
    s3.put_object(Bucket=bucket, Key="a", Body=os.urandom(100_000))  # 10%: no event
    for attempt in range(3):
        with pytest.raises(ClientError) as exc:
            s3.put_object(Bucket=bucket, Key=f"too-big-{attempt}", Body=os.urandom(950_000))
        assert_quota_exceeded(exc)
    events = quota_events(server, account.account_id)
    assert [kind for kind, _ in events] == ["quota.exceeded"], "one event for three refusals within the hour"
    assert events[0][1]["quotaBytes"] == QUOTA
    assert events[0][1]["bytesUsed"] == 100_000, "the usage when refused, not what was asked for"


def test_one_write_from_empty_to_full_records_both_events(server: FolioProcess, account: Account) -> None:
    account.s3.put_object(Bucket=account.bucket, Key="all", Body=os.urandom(QUOTA))
    assert [kind for kind, _ in quota_events(server, account.account_id)] == ["quota.warning", "quota.exceeded"]
