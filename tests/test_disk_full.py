"""A full disk (issue 13, finding 9): every write answers a clear 507 (S3:
`XMinioStorageFull` as MinIO does; the web listener: `{"error": {"code":
"StorageFull"}}`), nothing of the refused write remains (no temporary file, the
previous version intact), reads and deletes keep working, the log has no traceback,
and writes work again once space is freed.

The data directory is a small tmpfs mounted for the test, filled for real: the
errors are the kernel's own ENOSPC and SQLite's own SQLITE_FULL, not simulated ones.
Mounting needs root, as installing the suite's system packages does (`make test` runs
as root in CI): without it the tests fail with that message rather than skip, since the
finding is only shown fixed when a real full disk was tried.

Those first tests turn the free-space floor off (`min_free_bytes = min_free_percent = 0`)
so that the disk really fills: the kernel's and SQLite's own errors are the last line of
defence. The floor itself (issue 17: writes refused while free space is under the smaller
of `[storage] min_free_bytes` and `min_free_percent`, before the disk is full) has its own
server below, on a 64 MiB tmpfs.
"""

from __future__ import annotations

import base64
import errno
import os
import subprocess
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from s3proxy.store.free_space import RECHECK_SECONDS
from tests.conftest import TEST_CONFIG, make_s3_client
from tests.folio_process import FolioProcess

# The full disk holds the SQLite database too: its own SQLITE_FULL, and the reserve that lets
# deletes through. On PostgreSQL the metadata lives on another disk.
FULL_DISK_IS_SQLITES = pytest.mark.sqlite_only(
    reason="the full disk is the SQLite database's (SQLITE_FULL, the reserve that lets deletes through); "
    "PostgreSQL keeps the metadata on another disk"
)

DISK_BYTES = 16 * 1024 * 1024
RESERVE = 2 * 1024 * 1024
SMALL = 16 * 1024  # inline: stored in the SQLite row
LARGE = 900 * 1024  # a blob file (under the 1 MiB write piece: boto3 sends it whole)
STORAGE_FULL_MESSAGE = (
    "Storage backend has reached its minimum free drive threshold. Please delete a few objects to proceed."
)


def server_on_tmpfs(
    tmp_path_factory: pytest.TempPathFactory, name: str, size: int, storage: str, why: str
) -> Iterator[FolioProcess]:
    """A real server whose data directory is a tmpfs of `size` bytes, mounted (as root) for
    the module and unmounted after; `storage` is its [storage] settings."""
    if os.geteuid() != 0:
        pytest.fail(
            f"{why} mount a {size // 2**20} MiB tmpfs, which needs root: run make test as root", pytrace=False
        )
    data_dir = tmp_path_factory.mktemp(name) / "data"
    data_dir.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(data_dir)], check=True)
    folio = FolioProcess(data_dir=data_dir, config_text=TEST_CONFIG + "\n[storage]\n" + storage)
    try:
        folio.start()
        yield folio
    finally:
        folio.stop()
        subprocess.run(["umount", str(data_dir)], check=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FolioProcess]:
    # No free-space floor: these tests fill the disk to its last byte.
    storage = f"reserve_bytes = {RESERVE}\nmin_free_bytes = 0\nmin_free_percent = 0\n"
    yield from server_on_tmpfs(tmp_path_factory, "disk-full", DISK_BYTES, storage, "the full-disk tests")


@contextmanager
def disk_filled(server: FolioProcess) -> Iterator[None]:
    """Fill the data directory's filesystem to the last byte; free it afterwards."""
    filler = server.data_dir / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        block = b"\0" * 65536
        try:
            while True:
                os.write(fd, block)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
        try:
            while True:  # the last partial block, byte by byte in halves
                os.write(fd, block[:512])
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    try:
        yield
    finally:
        filler.unlink()


def reserve_restored(server: FolioProcess, timeout: float = 5.0) -> bool:
    """The space given up for deletes is taken back once the disk has room again."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reserve = server.data_dir / "reserve"
        if reserve.exists() and reserve.stat().st_size == RESERVE:
            return True
        time.sleep(0.05)
    return False


def tmp_files(server: FolioProcess) -> list[str]:
    return os.listdir(server.data_dir / "tmp")


def no_traceback_since(server: FolioProcess, offset: int) -> None:
    log = server.log()[offset:]
    assert "Traceback" not in log, log
    assert "InternalError" not in log, log


def s3_put(s3, bucket: str, key: str, body: bytes) -> int | str:
    """200, or the S3 error code of the answer (with its status and message checked)."""
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        return 200
    except ClientError as exc:
        error = exc.response["Error"]
        if error["Code"] == "XMinioStorageFull":
            assert exc.response["ResponseMetadata"]["HTTPStatusCode"] == 507
            assert error["Message"] == STORAGE_FULL_MESSAGE
        return error["Code"]


def until_full(write: Callable[[int], int | str], tries: int = 400) -> int:
    """Write until the disk refuses: every answer is a success or StorageFull, and a
    refusal comes before `tries` writes. Returns the index of the last success (-1: none)."""
    last_ok = -1
    for attempt in range(tries):
        outcome = write(attempt)
        if outcome == 200:
            last_ok = attempt
            continue
        assert outcome in ("XMinioStorageFull", "StorageFull"), outcome
        return last_ok
    raise AssertionError(f"{tries} writes on a full disk all succeeded")


def body_of(size: int, seed: int) -> bytes:
    return (f"{seed:08d}".encode() * (size // 8 + 1))[:size]


@FULL_DISK_IS_SQLITES
def test_s3_writes_on_a_full_disk_answer_507_and_keep_what_was_there(server: FolioProcess) -> None:
    s3 = make_s3_client(server)
    bucket = f"full-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="large", Body=body_of(LARGE, 0))
    s3.put_object(Bucket=bucket, Key="doomed", Body=b"delete me")
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="parts")["UploadId"]
    log_offset = len(server.log())

    with disk_filled(server):
        # A blob write meets ENOSPC: 507, no temporary file left, the old bytes served.
        assert s3_put(s3, bucket, "large", body_of(LARGE, 1)) == "XMinioStorageFull"
        assert tmp_files(server) == []
        assert s3.get_object(Bucket=bucket, Key="large")["Body"].read() == body_of(LARGE, 0)

        # A part is a blob too.
        with pytest.raises(ClientError) as refused:
            s3.upload_part(
                Bucket=bucket, Key="parts", UploadId=upload_id, PartNumber=1, Body=body_of(LARGE, 2)
            )
        assert refused.value.response["Error"]["Code"] == "XMinioStorageFull"
        assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 507
        assert tmp_files(server) == []

        # Small objects live in SQLite: its WAL grows into the full disk (SQLITE_FULL).
        last_ok = until_full(lambda i: s3_put(s3, bucket, "small", body_of(SMALL, 100 + i)))
        current = s3.get_object(Bucket=bucket, Key="small")["Body"].read() if last_ok >= 0 else None
        if last_ok >= 0:
            assert current == body_of(SMALL, 100 + last_ok)
        # New keys too. The refused commit may have left WAL frames the next commit reuses
        # (SQLite writes a transaction's frames before it knows the last one does not fit),
        # so one more write can fit: each is a success that reads back, until one is refused.
        last_new = until_full(lambda i: s3_put(s3, bucket, f"small-new-{i}", body_of(SMALL, 7 + i)), tries=20)
        for i in range(last_new + 1):
            assert s3.get_object(Bucket=bucket, Key=f"small-new-{i}")["Body"].read() == body_of(SMALL, 7 + i)

        # Reads and deletes still work.
        assert s3.get_object(Bucket=bucket, Key="large")["Body"].read() == body_of(LARGE, 0)
        assert s3.head_object(Bucket=bucket, Key="doomed")["ContentLength"] == 9
        s3.delete_object(Bucket=bucket, Key="doomed")
        with pytest.raises(ClientError) as gone:
            s3.head_object(Bucket=bucket, Key="doomed")
        assert gone.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404

    # Space again: every kind of write works.
    assert s3_put(s3, bucket, "large", body_of(LARGE, 3)) == 200
    assert s3_put(s3, bucket, "small", body_of(SMALL, 4)) == 200
    part = s3.upload_part(
        Bucket=bucket, Key="parts", UploadId=upload_id, PartNumber=1, Body=body_of(LARGE, 5)
    )
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="parts",
        UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    assert s3.get_object(Bucket=bucket, Key="large")["Body"].read() == body_of(LARGE, 3)
    assert s3.get_object(Bucket=bucket, Key="parts")["Body"].read() == body_of(LARGE, 5)
    assert reserve_restored(server)
    no_traceback_since(server, log_offset)


@FULL_DISK_IS_SQLITES
def test_rest_uploads_on_a_full_disk_answer_507_storage_full(server: FolioProcess) -> None:
    s3 = make_s3_client(server)
    bucket = f"full-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    client = httpx.Client(
        base_url=server.web_url, headers={"X-API-Key": f"{server.access_key}:{server.secret_key}"}, timeout=30
    )
    files = "/api/v1/files"
    created = client.post(files, params={"bucket": bucket, "key": "report.bin"}, content=body_of(LARGE, 0))
    assert created.status_code == 201, created.text
    file_id = created.json()["id"]
    log_offset = len(server.log())

    def storage_full(response: httpx.Response) -> None:
        assert response.status_code == 507, response.text
        error = response.json()["error"]
        assert error["code"] == "StorageFull"
        assert error["message"] and isinstance(error["details"], dict)

    def rest_put(i: int) -> int | str:
        response = client.post(
            files, params={"bucket": bucket, "key": "note.txt"}, content=body_of(SMALL, 100 + i)
        )
        if response.status_code == 201:
            return 200
        storage_full(response)
        return "StorageFull"

    with disk_filled(server):
        storage_full(
            client.post(files, params={"bucket": bucket, "key": "report.bin"}, content=body_of(LARGE, 1))
        )
        assert tmp_files(server) == []
        storage_full(
            client.post(files, params={"bucket": bucket}, files={"file": ("form.bin", body_of(LARGE, 2))})
        )
        assert tmp_files(server) == []
        until_full(rest_put)

        downloaded = client.get(f"{files}/{file_id}")
        assert downloaded.status_code == 200 and downloaded.content == body_of(LARGE, 0)
        deleted = client.delete(f"{files}/{file_id}")
        assert deleted.status_code == 200, deleted.text
        assert client.get(f"{files}/{file_id}").status_code == 404

    again = client.post(files, params={"bucket": bucket, "key": "report.bin"}, content=body_of(LARGE, 3))
    assert again.status_code == 201, again.text
    assert client.get(f"{files}/{again.json()['id']}").content == body_of(LARGE, 3)
    assert reserve_restored(server)
    client.close()
    no_traceback_since(server, log_offset)


# -- the free-space floor (issue 17) -----------------------------------------------------------

FLOOR_DISK = 64 * 1024 * 1024
# min_free_bytes stays at its default (1 GiB): the smaller limit, 25% of 64 MiB, applies.
FLOOR_PERCENT = 25
FLOOR = FLOOR_DISK * FLOOR_PERCENT // 100  # 16 MiB
OBJECT = 3 * 1024 * 1024  # a blob of three write pieces
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def floor_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FolioProcess]:
    storage = f"reserve_bytes = {RESERVE}\nmin_free_percent = {FLOOR_PERCENT}\n"
    yield from server_on_tmpfs(
        tmp_path_factory, "disk-floor", FLOOR_DISK, storage, "the free-space floor tests"
    )


def free_bytes(server: FolioProcess) -> int:
    stats = os.statvfs(server.data_dir)
    return stats.f_bavail * stats.f_frsize


@contextmanager
def free_space_at(server: FolioProcess, target: int) -> Iterator[None]:
    """Take space with a file of the test's own until `target` bytes are free (something
    else filling the disk); give it back afterwards."""
    filler = server.data_dir / "floor-filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.posix_fallocate(fd, 0, free_bytes(server) - target)
    finally:
        os.close(fd)
    # The server asks the filesystem at most every 100 ms (RECHECK_SECONDS) while its
    # writes pass the floor: a change made by someone else is seen after that.
    time.sleep(2 * RECHECK_SECONDS)
    try:
        yield
    finally:
        filler.unlink()


def wait_for_free(server: FolioProcess, at_least: int, timeout: float = 5.0) -> int:
    """Blob files are unlinked just after the delete that dropped them commits."""
    deadline = time.monotonic() + timeout
    while (free := free_bytes(server)) < at_least:
        assert time.monotonic() < deadline, f"only {free} bytes free, {at_least} expected"
        time.sleep(0.02)
    return free


def chunked_put(
    server: FolioProcess,
    bucket: str,
    key: str,
    data: bytes,
    *,
    piece: int = 64 * 1024,
    look_after: int | None = None,
    seen: list[str] | None = None,
) -> httpx.Response:
    """An aws-chunked PUT as the SDKs send it over HTTPS (STREAMING-UNSIGNED-PAYLOAD-TRAILER,
    a CRC32 in the trailer), streamed in `piece`-byte chunks. With `look_after`, once that
    many bytes are sent, the files in tmp/ (the blob being written) are put in `seen`."""
    crc = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    chunks = [
        f"{len(data[i : i + piece]):x}\r\n".encode() + data[i : i + piece] + b"\r\n"
        for i in range(0, len(data), piece)
    ]
    end = f"0\r\nx-amz-checksum-crc32:{crc}\r\n\r\n".encode()
    url = f"{server.s3_url}/{bucket}/{key}"
    request = AWSRequest(
        method="PUT",
        url=url,
        headers={
            "Content-Encoding": "aws-chunked",
            "X-Amz-Content-SHA256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
            "X-Amz-Decoded-Content-Length": str(len(data)),
            "X-Amz-Trailer": "x-amz-checksum-crc32",
            "Content-Length": str(sum(map(len, chunks)) + len(end)),
        },
    )
    SigV4Auth(Credentials(server.access_key, server.secret_key), "s3", "us-east-1").add_auth(request)

    def body() -> Iterator[bytes]:
        sent = 0
        for chunk in chunks:
            yield chunk
            sent += len(chunk)
            if look_after is not None and seen is not None and sent >= look_after and not seen:
                deadline = time.monotonic() + 5
                while not (found := tmp_files(server)) and time.monotonic() < deadline:
                    time.sleep(0.01)
                seen.extend(found)
        yield end

    try:
        return httpx.put(url, content=body(), headers=dict(request.headers.items()), timeout=30)
    except httpx.TransportError as exc:  # pragma: no cover - the assertion explains it
        raise AssertionError(f"a refusal must be an answer, not a broken connection: {exc!r}") from exc


def assert_storage_full_xml(response: httpx.Response) -> None:
    assert response.status_code == 507, response.text
    assert "<Code>XMinioStorageFull</Code>" in response.text


def s3_error_of(call: Callable[[], object]) -> tuple[int, str]:
    with pytest.raises(ClientError) as refused:
        call()
    return refused.value.response["ResponseMetadata"]["HTTPStatusCode"], refused.value.response["Error"][
        "Code"
    ]


def test_writes_are_refused_at_the_free_space_floor_before_the_disk_is_full(
    floor_server: FolioProcess,
) -> None:
    server = floor_server
    pid = server.proc.pid if server.proc else None
    s3 = make_s3_client(server)
    bucket = f"floor-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    log_offset = len(server.log())

    # Uploads that would cross the floor are refused in the middle of their bodies: what
    # fitted above the floor was written to a blob in tmp/, which is then removed.
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="multi")["UploadId"]
    part_one = os.urandom(6 * MiB)
    streamed = os.urandom(8 * MiB)
    with free_space_at(server, FLOOR + 4 * MiB):
        seen: list[str] = []
        refused = chunked_put(server, bucket, "streamed", streamed, look_after=2 * MiB, seen=seen)
        assert_storage_full_xml(refused)
        assert seen, "no partial blob was being written when 2 MiB had been sent"
        assert tmp_files(server) == []
        assert s3_error_of(lambda: s3.head_object(Bucket=bucket, Key="streamed")) == (404, "404")

        # Creating a multipart upload is metadata (allowed); a part that would cross is not.
        refusal = s3_error_of(
            lambda: s3.upload_part(
                Bucket=bucket, Key="multi", UploadId=upload_id, PartNumber=1, Body=part_one
            )
        )
        assert refusal == (507, "XMinioStorageFull")
        assert "Parts" not in s3.list_parts(Bucket=bucket, Key="multi", UploadId=upload_id)
        assert tmp_files(server) == []

        assert s3_put(s3, bucket, "too-big", os.urandom(6 * MiB)) == "XMinioStorageFull"
        assert tmp_files(server) == []

    # boto3 (default configuration) PutObject until refused: the refused one is the write
    # that would have taken free space under the floor, while the disk still had room.
    stored: dict[str, bytes] = {}
    for attempt in range(40):
        body = os.urandom(OBJECT)
        outcome = s3_put(s3, bucket, f"obj-{attempt:02d}", body)
        if outcome != 200:
            assert outcome == "XMinioStorageFull"
            refused_key = f"obj-{attempt:02d}"
            break
        stored[f"obj-{attempt:02d}"] = body
    else:
        raise AssertionError("40 uploads of 3 MiB on a 64 MiB disk were all accepted")
    assert len(stored) >= 8, len(stored)
    assert tmp_files(server) == []  # the refused upload's partial blob is gone
    assert s3_error_of(lambda: s3.head_object(Bucket=bucket, Key=refused_key)) == (404, "404")
    free = free_bytes(server)
    assert FLOOR - MiB < free < FLOOR + OBJECT + MiB, free  # refused near the floor, far from full

    with free_space_at(server, FLOOR - 256 * 1024):
        # Under the floor every write that adds data is refused before its body is read,
        # small (inline, in the database) ones and the web API's uploads too.
        assert s3_put(s3, bucket, "small", b"tiny") == "XMinioStorageFull"
        assert_storage_full_xml(chunked_put(server, bucket, "streamed", streamed[:1000]))
        web = httpx.post(
            f"{server.web_url}/api/v1/files",
            params={"bucket": bucket, "key": "web.bin"},
            content=b"x" * 1000,
            headers={"X-API-Key": f"{server.access_key}:{server.secret_key}"},
            timeout=30,
        )
        assert web.status_code == 507 and web.json()["error"]["code"] == "StorageFull", web.text

        # Reads and listings keep working, every earlier object intact.
        for key, body in stored.items():
            assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body
        listed = s3.list_objects_v2(Bucket=bucket)["Contents"]
        assert [item["Key"] for item in listed] == sorted(stored)

        # Deletes are never refused by the floor (they are how space comes back). In a
        # versioned bucket the versions themselves go, which frees their blobs.
        for key in sorted(stored)[:6]:
            versions = s3.list_object_versions(Bucket=bucket, Prefix=key)["Versions"]
            for version in versions:
                s3.delete_object(Bucket=bucket, Key=key, VersionId=version["VersionId"])
            del stored[key]
        s3.abort_multipart_upload(Bucket=bucket, Key="multi", UploadId=upload_id)
        upload_id = s3.create_multipart_upload(Bucket=bucket, Key="multi")["UploadId"]

    # Space is back (the test's filler gone, six objects deleted): writes are accepted
    # again by the same server process, no restart.
    wait_for_free(server, FLOOR + 5 * OBJECT)
    assert server.proc is not None and server.proc.poll() is None and server.proc.pid == pid
    again = os.urandom(OBJECT)
    assert s3_put(s3, bucket, "again", again) == 200
    stored["again"] = again
    assert s3_put(s3, bucket, "small", b"tiny") == 200
    stored["small"] = b"tiny"
    response = chunked_put(server, bucket, "streamed", streamed[: 4 * MiB])
    assert response.status_code == 200, response.text
    stored["streamed"] = streamed[: 4 * MiB]
    parts = []
    for number, data in ((1, part_one), (2, b"the last part")):
        etag = s3.upload_part(Bucket=bucket, Key="multi", UploadId=upload_id, PartNumber=number, Body=data)[
            "ETag"
        ]
        parts.append({"PartNumber": number, "ETag": etag})
    s3.complete_multipart_upload(
        Bucket=bucket, Key="multi", UploadId=upload_id, MultipartUpload={"Parts": parts}
    )
    stored["multi"] = part_one + b"the last part"
    for key, body in stored.items():
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body

    log = server.log()[log_offset:]
    assert "writes are refused until space is freed" in log
    assert "writes are accepted" in log
    no_traceback_since(server, log_offset)


def test_a_server_started_under_the_floor_says_so_and_refuses_writes(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    # No tmpfs needed: a floor larger than any disk (1 PiB, percent off) is never met.
    storage = "\n[storage]\nmin_free_bytes = 1125899906842624\nmin_free_percent = 0\n"
    server = FolioProcess(
        data_dir=tmp_path_factory.mktemp("floor-start") / "data", config_text=TEST_CONFIG + storage
    )
    server.start()
    try:
        log = server.log()
        assert "under the floor of 1048576.0 GiB" in log, log
        assert "every write will be refused with the disk-full error (507)" in log, log
        s3 = make_s3_client(server)
        s3.create_bucket(Bucket="metadata-still-works")
        assert s3_put(s3, "metadata-still-works", "k", b"data") == "XMinioStorageFull"
        assert s3.list_objects_v2(Bucket="metadata-still-works")["KeyCount"] == 0
        assert tmp_files(server) == []
    finally:
        server.stop()
    assert "Traceback" not in server.log()
