"""Multipart uploads against the real server, through boto3, the aws CLI and raw signed
requests: big transfers, 1,000 parts, a SIGKILL in the middle of an upload, the S3 errors
of UploadPart and CompleteMultipartUpload (none of them touching the object already at
the key), re-uploaded parts, UploadPartCopy, ListMultipartUploads (against moto as far as
moto implements it), COMPOSITE and FULL_OBJECT checksums, and the blobs freed by Abort,
by completion and by DeleteBucket."""

from __future__ import annotations

import base64
import filecmp
import hashlib
import json
import os
import random
import re
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from awscrt import checksums as crt_checksums
from boto3.s3.transfer import TransferConfig
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.conftest import AwsRunner, make_s3_client, moto_client
from tests.folio_process import FolioProcess
from tests.server_db import server_db
from tests.test_crash_recovery import NO_RETRIES
from tests.test_malformed_input import assert_s3_error, sign, signed
from tests.test_s3_objects import local_checksum, s3_error

KIB = 1024
MIB = 1024 * KIB
MIN_PART = 5 * MIB  # the shared server's minimum part size (the default)
# A dedicated server whose parts may be as small as 1 KiB.
SMALL_PARTS_CONFIG = (
    "[limits]\nmin_part_size = 1024\n[plans.default]\nmax_buckets = 1000\n"
    "write_per_second = 0\nread_per_second = 0\nlist_per_second = 0\n"
)
CHECKSUM_ALGORITHMS = ("CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256")


# ---------------------------------------------------------------- helpers


def md5_etag(data: bytes) -> str:
    return f'"{hashlib.md5(data).hexdigest()}"'


def multipart_etag(parts: Iterable[bytes]) -> str:
    """S3's ETag of a multipart object: the MD5 of the concatenated part MD5s, then -<count>."""
    digests = [hashlib.md5(part).digest() for part in parts]
    return f'"{hashlib.md5(b"".join(digests)).hexdigest()}-{len(digests)}"'


def composite_checksum(algorithm: str, parts: Iterable[bytes]) -> str:
    """S3's COMPOSITE checksum: the algorithm over the concatenated binary part checksums,
    base64, then -<count>."""
    digests = [base64.b64decode(local_checksum(algorithm, part)) for part in parts]
    return f"{local_checksum(algorithm, b''.join(digests))}-{len(digests)}"


def assert_object_checksum_matches(head: dict, parts: list[bytes]) -> None:
    """HeadObject with checksum mode returned one object checksum, of whatever algorithm
    the client chose, and it is the one S3 computes for these parts."""
    returned = [a for a in CHECKSUM_ALGORITHMS if f"Checksum{a}" in head]
    assert len(returned) == 1, f"expected one object checksum, got {head}"
    algorithm = returned[0]
    if head["ChecksumType"] == "COMPOSITE":
        expected = composite_checksum(algorithm, parts)
    else:
        assert head["ChecksumType"] == "FULL_OBJECT", head
        expected = local_checksum(algorithm, b"".join(parts))
    assert head[f"Checksum{algorithm}"] == expected, f"{algorithm} {head['ChecksumType']}"


def read(s3, bucket: str, key: str, **kwargs) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key, **kwargs)["Body"].read()


def split(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def upload_parts(s3, bucket: str, key: str, upload_id: str, parts: list[bytes], **kwargs) -> list[str]:
    """Upload parts 1..n (in parallel); returns their ETags in part order."""

    def one(number: int) -> str:
        response = s3.upload_part(
            Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=parts[number - 1], **kwargs
        )
        return response["ETag"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(one, range(1, len(parts) + 1)))


def part_list(etags: list[str], numbers: Iterable[int] | None = None) -> dict:
    numbers = range(1, len(etags) + 1) if numbers is None else numbers
    return {"Parts": [{"PartNumber": n, "ETag": etags[n - 1]} for n in numbers]}


def listed_parts(s3, bucket: str, key: str, upload_id: str, page_size: int = 1000) -> list[dict]:
    paginator = s3.get_paginator("list_parts")
    pages = paginator.paginate(
        Bucket=bucket, Key=key, UploadId=upload_id, PaginationConfig={"PageSize": page_size}
    )
    return [part for page in pages for part in page.get("Parts", [])]


def listed_uploads(page: dict) -> list[tuple[str, str]]:
    return [(u["Key"], u["UploadId"]) for u in page.get("Uploads", [])]


def listed_prefixes(page: dict) -> list[str]:
    return [p["Prefix"] for p in page.get("CommonPrefixes", [])]


def blob_files(data_dir: Path) -> set[str]:
    """The blobs the store of the server on `data_dir` holds: files under blobs/, or the
    objects of its upstream bucket (FOLIO_TEST_BLOBS=s3)."""
    from tests.seaweedfs import stored_blob_ids

    return stored_blob_ids(data_dir)


def check_blobs_match_their_references(server: FolioProcess) -> None:
    """With the server stopped: blobs/ holds exactly the blobs the table lists, and each
    row's refcount is the number of segments naming it in objects and in upload parts
    (as tests/test_crash_recovery.py checks for plain objects)."""
    with server_db(server) as db:
        rows = dict(db.execute("SELECT id, refcount FROM blobs").fetchall())
        uses: Counter[str] = Counter()
        for table in ("objects", "upload_parts"):
            for (segments,) in db.execute(f"SELECT segments FROM {table} WHERE segments IS NOT NULL"):
                uses.update(blob_id for blob_id, *_ in json.loads(segments))
    on_disk = blob_files(server.data_dir)
    assert not on_disk - set(rows), f"blob files no row references: {sorted(on_disk - set(rows))}"
    assert not set(rows) - on_disk, f"blob rows whose file is gone: {sorted(set(rows) - on_disk)}"
    assert set(uses) <= set(rows), f"segments naming blobs with no row: {sorted(set(uses) - set(rows))}"
    wrong = {
        blob_id: (refcount, uses[blob_id]) for blob_id, refcount in rows.items() if refcount != uses[blob_id]
    }
    assert not wrong, f"blob (refcount, references): {wrong}"


@pytest.fixture
def small_parts_server(tmp_path: Path) -> Iterator[FolioProcess]:
    """A dedicated server with the minimum part size lowered to 1 KiB."""
    server = FolioProcess(data_dir=tmp_path / "data", config_text=SMALL_PARTS_CONFIG)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def file_200_mib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("multipart-files") / "200MiB.bin"
    path.write_bytes(random.Random(200).randbytes(200 * MIB))
    return path


@pytest.fixture(scope="module")
def file_100_mib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("multipart-files") / "100MiB.bin"
    path.write_bytes(random.Random(100).randbytes(100 * MIB))
    return path


# ---------------------------------------------------------------- big transfers


def test_upload_file_of_200_mib_in_8_mib_parts_round_trips_with_multipart_etag_and_checksum(
    s3, bucket: str, file_200_mib: Path, tmp_path: Path
) -> None:
    config = TransferConfig(multipart_threshold=8 * MIB, multipart_chunksize=8 * MIB, max_concurrency=8)
    s3.upload_file(str(file_200_mib), bucket, "big.bin", Config=config)
    back = tmp_path / "back.bin"
    s3.download_file(bucket, "big.bin", str(back), Config=config)
    assert filecmp.cmp(file_200_mib, back, shallow=False), "downloaded bytes differ"

    parts = split(file_200_mib.read_bytes(), 8 * MIB)
    head = s3.head_object(Bucket=bucket, Key="big.bin", ChecksumMode="ENABLED")
    assert re.fullmatch(r'"[0-9a-f]{32}-25"', head["ETag"]), head["ETag"]
    assert head["ETag"] == multipart_etag(parts)
    assert s3.head_object(Bucket=bucket, Key="big.bin", PartNumber=1)["PartsCount"] == 25
    assert_object_checksum_matches(head, parts)


def test_aws_cli_cp_of_100_mib_up_and_down_is_byte_identical(
    aws: AwsRunner,
    s3,
    bucket: str,
    file_100_mib: Path,
    tmp_path: Path,
) -> None:
    aws("s3", "cp", str(file_100_mib), f"s3://{bucket}/cli/100MiB.bin")
    back = tmp_path / "back.bin"
    aws("s3", "cp", f"s3://{bucket}/cli/100MiB.bin", str(back))
    assert filecmp.cmp(file_100_mib, back, shallow=False), "downloaded bytes differ"
    # The CLI uploads in 8 MiB parts with its default checksum: a multipart object with
    # the multipart ETag and an object checksum.
    head = s3.head_object(Bucket=bucket, Key="cli/100MiB.bin", ChecksumMode="ENABLED")
    parts = split(file_100_mib.read_bytes(), 8 * MIB)
    assert head["ETag"] == multipart_etag(parts)
    assert_object_checksum_matches(head, parts)


# ---------------------------------------------------------------- 1,000 parts


def test_1000_part_upload_completes_lists_in_pages_and_serves_each_part(
    small_parts_server: FolioProcess,
) -> None:
    s3 = make_s3_client(small_parts_server, config=Config(max_pool_connections=16))
    bucket, key = "thousand", "parts/1000.bin"
    s3.create_bucket(Bucket=bucket)
    parts = [os.urandom(KIB) for _ in range(1000)]
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    etags = upload_parts(s3, bucket, key, upload_id, parts)
    assert etags == [md5_etag(part) for part in parts]

    pages = list(
        s3.get_paginator("list_parts").paginate(
            Bucket=bucket, Key=key, UploadId=upload_id, PaginationConfig={"PageSize": 100}
        )
    )
    assert [len(page["Parts"]) for page in pages] == [100] * 10
    assert [page["IsTruncated"] for page in pages] == [True] * 9 + [False]
    listed = [part for page in pages for part in page["Parts"]]
    assert [p["PartNumber"] for p in listed] == list(range(1, 1001))
    assert [p["ETag"] for p in listed] == etags
    assert {p["Size"] for p in listed} == {KIB}

    middle = s3.list_parts(Bucket=bucket, Key=key, UploadId=upload_id, PartNumberMarker=500, MaxParts=100)
    assert [p["PartNumber"] for p in middle["Parts"]] == list(range(501, 601))
    assert middle["IsTruncated"] is True
    assert middle["NextPartNumberMarker"] == 600

    done = s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload=part_list(etags)
    )
    assert done["ETag"] == multipart_etag(parts)
    data = b"".join(parts)
    assert read(s3, bucket, key) == data
    assert read(s3, bucket, key, Range="bytes=1000-300999") == data[1000:301000]  # across 294 parts

    total = 1000 * KIB
    for number in (1, 500, 1000):
        got = s3.get_object(Bucket=bucket, Key=key, PartNumber=number)
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
        assert got["Body"].read() == parts[number - 1]
        assert got["PartsCount"] == 1000
        assert got["ContentRange"] == f"bytes {(number - 1) * KIB}-{number * KIB - 1}/{total}"
    head = s3.head_object(Bucket=bucket, Key=key, PartNumber=500)
    assert (head["ContentLength"], head["PartsCount"]) == (KIB, 1000)
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key=key, PartNumber=1001)
    assert s3_error(exc) == (416, "InvalidPartNumber")
    # S3 sends x-amz-mp-parts-count only when partNumber was asked for.
    whole = s3.head_object(Bucket=bucket, Key=key)
    assert (whole["ContentLength"], whole.get("PartsCount")) == (total, None)


def test_get_with_both_a_range_and_a_part_number_is_invalid_request(s3, bucket: str) -> None:
    """As AWS answers (quoted in ceph/ceph#66780): the two ways of asking for bytes exclude each other."""
    parts = [os.urandom(MIN_PART), os.urandom(KIB)]
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="two-parts.bin")["UploadId"]
    etags = upload_parts(s3, bucket, "two-parts.bin", upload_id, parts)
    s3.complete_multipart_upload(
        Bucket=bucket, Key="two-parts.bin", UploadId=upload_id, MultipartUpload=part_list(etags)
    )
    assert read(s3, bucket, "two-parts.bin", PartNumber=2) == parts[1]
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="two-parts.bin", PartNumber=2, Range="bytes=0-10")
    assert s3_error(exc) == (400, "InvalidRequest")
    assert "Range" in exc.value.response["Error"]["Message"]


# ---------------------------------------------------------------- crash safety


def test_sigkill_during_part_uploads_keeps_every_acknowledged_part_and_the_upload_completes(
    small_parts_server: FolioProcess,
) -> None:
    server = small_parts_server
    s3 = make_s3_client(server, config=NO_RETRIES)
    bucket, key = "crash-multipart", "resumable.bin"
    s3.create_bucket(Bucket=bucket)
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    parts = {number: os.urandom(256 * KIB) for number in range(1, 121)}
    acknowledged: dict[int, str] = {}
    lock = threading.Lock()
    enough = threading.Event()

    def upload(number: int) -> None:
        response = s3.upload_part(
            Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=parts[number]
        )
        with lock:
            acknowledged[number] = response["ETag"]
            if len(acknowledged) >= 40:
                enough.set()

    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(upload, number) for number in parts]
        assert enough.wait(60), "40 parts were never acknowledged"
        server.kill()
        for future in futures:
            future.exception()  # parts in flight or not yet sent fail: the server is gone
    assert len(acknowledged) < len(parts), "the kill came too late to interrupt the upload"

    if server.upstream_blobs:
        # An upstream bucket (FOLIO_TEST_BLOBS=s3) keeps a part's blob that the kill cut off
        # from its row until the start-up sweep finds it older than the grace (2 s in tests):
        # an upload of another node in flight is that young. Past it, the restart sweeps it.
        time.sleep(3)
    server.start()
    s3 = make_s3_client(server, config=NO_RETRIES)
    listed = {p["PartNumber"]: p for p in listed_parts(s3, bucket, key, upload_id, page_size=50)}
    lost = sorted(set(acknowledged) - set(listed))
    assert not lost, f"acknowledged parts missing after the restart: {lost}"
    for number, part in listed.items():  # acknowledged, or in flight and finished: never torn
        assert (part["ETag"], part["Size"]) == (md5_etag(parts[number]), 256 * KIB), f"part {number}"
    for number in sorted(set(parts) - set(listed)):
        s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=parts[number])
    etags = [md5_etag(parts[number]) for number in sorted(parts)]
    s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload=part_list(etags))
    assert read(s3, bucket, key) == b"".join(parts[number] for number in sorted(parts))

    server.stop()
    check_blobs_match_their_references(server)


# ---------------------------------------------------------------- errors leave the old object alone


@dataclass
class UploadOverAnObject:
    """An upload in progress (parts 5 MiB, 5 MiB, 1 KiB) at a key that already holds an object."""

    bucket: str
    key: str
    upload_id: str
    parts: list[bytes]
    etags: list[str]
    old_body: bytes
    old_etag: str

    def assert_object_and_upload_untouched(self, s3) -> None:
        got = s3.get_object(Bucket=self.bucket, Key=self.key)
        assert got["ETag"] == self.old_etag
        assert got["Body"].read() == self.old_body, "the object at the key changed"
        listed = listed_parts(s3, self.bucket, self.key, self.upload_id)
        assert [(p["PartNumber"], p["ETag"]) for p in listed] == list(enumerate(self.etags, start=1))


@pytest.fixture
def pending(s3, bucket: str) -> UploadOverAnObject:
    key = "reports/annual.pdf"
    old_body = os.urandom(100 * KIB)
    old_etag = s3.put_object(Bucket=bucket, Key=key, Body=old_body)["ETag"]
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    parts = [os.urandom(MIN_PART), os.urandom(MIN_PART), os.urandom(KIB)]
    etags = upload_parts(s3, bucket, key, upload_id, parts)
    return UploadOverAnObject(bucket, key, upload_id, parts, etags, old_body, old_etag)


def complete_error(s3, pending: UploadOverAnObject, parts: list[dict]) -> tuple[int, str]:
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(
            Bucket=pending.bucket,
            Key=pending.key,
            UploadId=pending.upload_id,
            MultipartUpload={"Parts": parts},
        )
    return s3_error(exc)


@pytest.mark.parametrize("order", [[2, 1, 3], [1, 1, 2, 3]], ids=["descending", "repeated"])
def test_complete_with_parts_out_of_order_is_invalid_part_order_and_keeps_the_old_object(
    s3, pending: UploadOverAnObject, order: list[int]
) -> None:
    assert complete_error(s3, pending, part_list(pending.etags, order)["Parts"]) == (400, "InvalidPartOrder")
    pending.assert_object_and_upload_untouched(s3)


@pytest.mark.parametrize("case", ["part-never-uploaded", "wrong-etag"])
def test_complete_naming_a_missing_part_or_a_wrong_etag_is_invalid_part_and_keeps_the_old_object(
    s3, pending: UploadOverAnObject, case: str
) -> None:
    parts = part_list(pending.etags)["Parts"]
    if case == "part-never-uploaded":
        parts[2] = {"PartNumber": 4, "ETag": pending.etags[2]}
    else:
        parts[1] = {"PartNumber": 2, "ETag": md5_etag(b"some other bytes")}
    assert complete_error(s3, pending, parts) == (400, "InvalidPart")
    pending.assert_object_and_upload_untouched(s3)


def test_unknown_upload_id_is_no_such_upload_for_every_upload_operation(
    s3, pending: UploadOverAnObject
) -> None:
    b, k = pending.bucket, pending.key
    bogus = "no-such-upload-" + uuid.uuid4().hex
    calls = {
        "UploadPart": lambda u, key: s3.upload_part(Bucket=b, Key=key, UploadId=u, PartNumber=1, Body=b"x"),
        "UploadPartCopy": lambda u, key: s3.upload_part_copy(
            Bucket=b, Key=key, UploadId=u, PartNumber=1, CopySource={"Bucket": b, "Key": k}
        ),
        "CompleteMultipartUpload": lambda u, key: s3.complete_multipart_upload(
            Bucket=b, Key=key, UploadId=u, MultipartUpload=part_list(pending.etags)
        ),
        "AbortMultipartUpload": lambda u, key: s3.abort_multipart_upload(Bucket=b, Key=key, UploadId=u),
        "ListParts": lambda u, key: s3.list_parts(Bucket=b, Key=key, UploadId=u),
    }
    # An id that never existed, and a real id used with another key.
    for upload_id, key in ((bogus, k), (pending.upload_id, "reports/other.pdf")):
        for name, call in calls.items():
            with pytest.raises(ClientError) as exc:
                call(upload_id, key)
            assert s3_error(exc) == (404, "NoSuchUpload"), f"{name} with upload id {upload_id} on {key}"
    pending.assert_object_and_upload_untouched(s3)
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=b, Key="reports/other.pdf")
    assert s3_error(exc)[0] == 404


@pytest.mark.parametrize("number", ["0", "10001", "-1", "abc"])
def test_part_number_not_an_integer_from_1_to_10000_is_invalid_argument(
    folio: FolioProcess, s3, pending: UploadOverAnObject, number: str
) -> None:
    reply = signed(
        folio,
        "PUT",
        f"/{pending.bucket}/{pending.key}",
        query=f"partNumber={number}&uploadId={pending.upload_id}",
        body=b"part bytes",
    )
    fields = assert_s3_error(reply, 400, "InvalidArgument")
    assert (fields.get("ArgumentName"), fields.get("ArgumentValue")) == ("partNumber", number)
    pending.assert_object_and_upload_untouched(s3)
    # The bounds themselves are valid part numbers.
    for valid in (1, 10000):
        reply = signed(
            folio,
            "PUT",
            f"/{pending.bucket}/{pending.key}",
            query=f"partNumber={valid}&uploadId={pending.upload_id}",
            body=pending.parts[0] if valid == 1 else b"last",
        )
        assert reply.status == 200, reply


def test_part_under_the_minimum_that_is_not_last_is_entity_too_small(s3, bucket: str) -> None:
    key = "small-parts.bin"
    old_body = b"the object already there"
    old_etag = s3.put_object(Bucket=bucket, Key=key, Body=old_body)["ETag"]
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    parts = [os.urandom(MIB), os.urandom(MIB)]
    etags = upload_parts(s3, bucket, key, upload_id, parts)
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload=part_list(etags)
        )
    assert s3_error(exc) == (400, "EntityTooSmall")
    got = s3.get_object(Bucket=bucket, Key=key)
    assert (got["Body"].read(), got["ETag"]) == (old_body, old_etag)
    # The last part may be small: the same 1 MiB part alone completes.
    s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload=part_list(etags, [1])
    )
    assert read(s3, bucket, key) == parts[0]


MALFORMED_COMPLETE_BODIES = {
    "not-xml": b"this is not xml",
    "truncated": b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber>",
    "wrong-root": b"<DeleteObjects><Part><PartNumber>1</PartNumber><ETag>x</ETag></Part></DeleteObjects>",
    "no-parts": b'<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/"/>',
    "empty-element": b"<CompleteMultipartUpload></CompleteMultipartUpload>",
}


@pytest.mark.parametrize("body", MALFORMED_COMPLETE_BODIES.values(), ids=MALFORMED_COMPLETE_BODIES.keys())
def test_malformed_or_empty_complete_xml_is_malformed_xml_and_keeps_the_old_object(
    folio: FolioProcess, s3, pending: UploadOverAnObject, body: bytes
) -> None:
    reply = signed(
        folio, "POST", f"/{pending.bucket}/{pending.key}", query=f"uploadId={pending.upload_id}", body=body
    )
    assert_s3_error(reply, 400, "MalformedXML")
    pending.assert_object_and_upload_untouched(s3)


def test_complete_with_an_empty_part_list_from_boto3_is_malformed_xml(
    s3, pending: UploadOverAnObject
) -> None:
    assert complete_error(s3, pending, []) == (400, "MalformedXML")
    pending.assert_object_and_upload_untouched(s3)


def test_failed_completes_keep_the_upload_so_a_corrected_complete_succeeds(
    s3, pending: UploadOverAnObject
) -> None:
    swapped = part_list(pending.etags, [2, 1, 3])["Parts"]
    wrong_etag = [{"PartNumber": 1, "ETag": pending.etags[0]}, {"PartNumber": 3, "ETag": pending.etags[0]}]
    assert complete_error(s3, pending, swapped) == (400, "InvalidPartOrder")
    assert complete_error(s3, pending, wrong_etag) == (400, "InvalidPart")
    pending.assert_object_and_upload_untouched(s3)
    done = s3.complete_multipart_upload(
        Bucket=pending.bucket,
        Key=pending.key,
        UploadId=pending.upload_id,
        MultipartUpload=part_list(pending.etags),
    )
    assert done["ETag"] == multipart_etag(pending.parts)
    assert read(s3, pending.bucket, pending.key) == b"".join(pending.parts)
    with pytest.raises(ClientError) as exc:
        s3.list_parts(Bucket=pending.bucket, Key=pending.key, UploadId=pending.upload_id)
    assert s3_error(exc) == (404, "NoSuchUpload")
    assert listed_uploads(s3.list_multipart_uploads(Bucket=pending.bucket)) == []


# ---------------------------------------------------------------- replacing and freeing parts


def test_reuploading_a_part_number_replaces_the_earlier_bytes(s3, bucket: str) -> None:
    key = "replaced.bin"
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    first, second, last = os.urandom(MIN_PART), os.urandom(MIN_PART), os.urandom(KIB)
    first_etag = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=first)["ETag"]
    second_etag = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=second)[
        "ETag"
    ]
    last_etag = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=2, Body=last)["ETag"]
    listed = listed_parts(s3, bucket, key, upload_id)
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in listed] == [
        (1, second_etag, MIN_PART),
        (2, last_etag, KIB),
    ]
    with pytest.raises(ClientError) as exc:  # the first version of part 1 is gone
        s3.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload=part_list([first_etag, last_etag])
        )
    assert s3_error(exc) == (400, "InvalidPart")
    s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload=part_list([second_etag, last_etag])
    )
    assert read(s3, bucket, key) == second + last


def test_abort_and_complete_free_the_blob_files_of_parts_not_used(small_parts_server: FolioProcess) -> None:
    server = small_parts_server
    s3 = make_s3_client(server)
    bucket = "freeing"
    s3.create_bucket(Bucket=bucket)
    kept = os.urandom(200 * KIB)
    s3.put_object(Bucket=bucket, Key="kept.bin", Body=kept)

    before = blob_files(server.data_dir)
    aborted_id = s3.create_multipart_upload(Bucket=bucket, Key="aborted.bin")["UploadId"]
    upload_parts(s3, bucket, "aborted.bin", aborted_id, [os.urandom(100 * KIB) for _ in range(3)])
    aborted_blobs = blob_files(server.data_dir) - before
    assert len(aborted_blobs) == 3, "each part is a blob file"
    aborted = s3.abort_multipart_upload(Bucket=bucket, Key="aborted.bin", UploadId=aborted_id)
    assert aborted["ResponseMetadata"]["HTTPStatusCode"] == 204
    for call in (s3.list_parts, s3.abort_multipart_upload):
        with pytest.raises(ClientError) as exc:
            call(Bucket=bucket, Key="aborted.bin", UploadId=aborted_id)
        assert s3_error(exc) == (404, "NoSuchUpload")

    # Completing with parts 1 and 3 frees part 2.
    before = blob_files(server.data_dir)
    used_id = s3.create_multipart_upload(Bucket=bucket, Key="used.bin")["UploadId"]
    parts = [os.urandom(100 * KIB) for _ in range(3)]
    etags = upload_parts(s3, bucket, "used.bin", used_id, parts)
    part_blobs = blob_files(server.data_dir) - before
    assert len(part_blobs) == 3
    s3.complete_multipart_upload(
        Bucket=bucket, Key="used.bin", UploadId=used_id, MultipartUpload=part_list(etags, [1, 3])
    )
    assert read(s3, bucket, "used.bin") == parts[0] + parts[2]
    assert read(s3, bucket, "kept.bin") == kept
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []

    server.stop()
    check_blobs_match_their_references(server)
    remaining = blob_files(server.data_dir)
    assert not aborted_blobs & remaining, "the aborted upload's parts are still on disk"
    assert len(part_blobs & remaining) == 2, "the part left out of the completion is still on disk"


def test_single_empty_part_completes_to_an_empty_object(s3, bucket: str) -> None:
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="empty.bin")["UploadId"]
    etag = s3.upload_part(Bucket=bucket, Key="empty.bin", UploadId=upload_id, PartNumber=1, Body=b"")["ETag"]
    assert etag == md5_etag(b"")
    done = s3.complete_multipart_upload(
        Bucket=bucket, Key="empty.bin", UploadId=upload_id, MultipartUpload=part_list([etag])
    )
    assert done["ETag"] == multipart_etag([b""])
    got = s3.get_object(Bucket=bucket, Key="empty.bin")
    assert (got["ContentLength"], got["Body"].read(), got["ETag"]) == (0, b"", multipart_etag([b""]))


def test_multipart_upload_to_a_key_with_spaces_unicode_and_plus_round_trips_with_its_metadata(
    s3, bucket: str
) -> None:
    key = "dossiers/été 2024/rapport+annexe (v2) ü.pdf"
    parts = [os.urandom(MIN_PART), os.urandom(KIB)]
    upload_id = s3.create_multipart_upload(
        Bucket=bucket, Key=key, ContentType="application/pdf", Metadata={"owner": "finance"}
    )["UploadId"]
    assert listed_uploads(s3.list_multipart_uploads(Bucket=bucket)) == [(key, upload_id)]
    etags = upload_parts(s3, bucket, key, upload_id, parts)
    assert [p["ETag"] for p in listed_parts(s3, bucket, key, upload_id)] == etags
    done = s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload=part_list(etags)
    )
    assert done["Key"] == key
    got = s3.get_object(Bucket=bucket, Key=key)
    assert (got["ContentType"], got["Metadata"]) == ("application/pdf", {"owner": "finance"})
    assert got["Body"].read() == b"".join(parts)
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == [key]


def test_part_finishing_after_its_upload_was_aborted_is_no_such_upload_and_leaves_no_blob_file(
    small_parts_server: FolioProcess,
) -> None:
    server = small_parts_server
    s3 = make_s3_client(server)
    s3.create_bucket(Bucket="aborting")
    upload_id = s3.create_multipart_upload(Bucket="aborting", Key="late.bin")["UploadId"]
    body = os.urandom(MIB)
    path, query = "/aborting/late.bin", f"partNumber=1&uploadId={upload_id}"
    headers = sign(server, "PUT", path, query=query, body=body, headers={"Content-Length": str(len(body))})
    head = f"PUT {path}?{query} HTTP/1.1\r\nHost: 127.0.0.1:{server.s3_port}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items()) + "\r\n"
    before = blob_files(server.data_dir)
    with socket.create_connection(("127.0.0.1", server.s3_port), timeout=15) as sock:
        sock.sendall(head.encode() + body[: MIB // 2])  # the part is under way...
        time.sleep(0.3)
        s3.abort_multipart_upload(Bucket="aborting", Key="late.bin", UploadId=upload_id)
        sock.sendall(body[MIB // 2 :])  # ...and ends after the abort
        reply = b""
        while b"</Error>" not in reply and (chunk := sock.recv(65536)):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 404 "), reply[:300]
    assert b"<Code>NoSuchUpload</Code>" in reply, reply
    server.stop()
    check_blobs_match_their_references(server)
    assert blob_files(server.data_dir) == before, "the late part left a blob file"


# ---------------------------------------------------------------- UploadPartCopy


def copy_part(
    s3, bucket: str, key: str, upload_id: str, number: int, source: str, byte_range: str | None
) -> str:
    extra = {"CopySourceRange": byte_range} if byte_range else {}
    result = s3.upload_part_copy(
        Bucket=bucket,
        Key=key,
        UploadId=upload_id,
        PartNumber=number,
        CopySource={"Bucket": bucket, "Key": source},
        **extra,
    )["CopyPartResult"]
    return result["ETag"]


def test_upload_part_copy_of_whole_objects_and_ranges_from_blob_and_inline_sources_is_byte_identical(
    s3, bucket: str
) -> None:
    blob_source, inline_source = os.urandom(12 * MIB), os.urandom(KIB)
    blob_etag = s3.put_object(Bucket=bucket, Key="src/blob.bin", Body=blob_source)["ETag"]
    s3.put_object(Bucket=bucket, Key="src/inline.bin", Body=inline_source)

    key = "copied.bin"
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    etags = [
        copy_part(s3, bucket, key, upload_id, 1, "src/blob.bin", None),
        copy_part(s3, bucket, key, upload_id, 2, "src/blob.bin", f"bytes={MIB}-{7 * MIB - 1}"),
        copy_part(s3, bucket, key, upload_id, 3, "src/inline.bin", "bytes=100-899"),
    ]
    expected_parts = [blob_source, blob_source[MIB : 7 * MIB], inline_source[100:900]]
    assert etags == [blob_etag, *(md5_etag(p) for p in expected_parts[1:])]
    assert [p["Size"] for p in listed_parts(s3, bucket, key, upload_id)] == [12 * MIB, 6 * MIB, 800]
    s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload=part_list(etags))
    assert read(s3, bucket, key) == b"".join(expected_parts)

    # A whole inline object as the only part.
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="copied-inline.bin")["UploadId"]
    etag = copy_part(s3, bucket, "copied-inline.bin", upload_id, 1, "src/inline.bin", None)
    assert etag == md5_etag(inline_source)
    s3.complete_multipart_upload(
        Bucket=bucket, Key="copied-inline.bin", UploadId=upload_id, MultipartUpload=part_list([etag])
    )
    assert read(s3, bucket, "copied-inline.bin") == inline_source

    # The copies share the sources' blobs: deleting the sources harms neither.
    s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "src/blob.bin"}, {"Key": "src/inline.bin"}]})
    assert read(s3, bucket, key) == b"".join(expected_parts)
    assert read(s3, bucket, "copied-inline.bin") == inline_source


def test_upload_part_copy_of_ranges_across_the_parts_of_a_multipart_source(s3, bucket: str) -> None:
    parts = [os.urandom(6 * MIB), os.urandom(6 * MIB), os.urandom(3 * MIB)]
    source_id = s3.create_multipart_upload(Bucket=bucket, Key="source.bin")["UploadId"]
    etags = upload_parts(s3, bucket, "source.bin", source_id, parts)
    s3.complete_multipart_upload(
        Bucket=bucket, Key="source.bin", UploadId=source_id, MultipartUpload=part_list(etags)
    )
    source = b"".join(parts)

    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="spliced.bin")["UploadId"]
    ranges = [(6 * MIB - 10, 12 * MIB + 5), (5, 15 * MIB - 1)]  # part 1 into part 3; nearly all of it
    copied = [
        copy_part(s3, bucket, "spliced.bin", upload_id, n, "source.bin", f"bytes={first}-{last}")
        for n, (first, last) in enumerate(ranges, start=1)
    ]
    expected = [source[first : last + 1] for first, last in ranges]
    assert copied == [md5_etag(p) for p in expected]
    s3.complete_multipart_upload(
        Bucket=bucket, Key="spliced.bin", UploadId=upload_id, MultipartUpload=part_list(copied)
    )
    assert read(s3, bucket, "spliced.bin") == b"".join(expected)
    s3.delete_object(Bucket=bucket, Key="source.bin")
    assert read(s3, bucket, "spliced.bin") == b"".join(expected)


def test_upload_part_copy_of_an_empty_object_is_an_empty_part(s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="src/empty", Body=b"")
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="from-empty.bin")["UploadId"]
    etag = copy_part(s3, bucket, "from-empty.bin", upload_id, 1, "src/empty", None)
    assert etag == md5_etag(b"")
    s3.complete_multipart_upload(
        Bucket=bucket, Key="from-empty.bin", UploadId=upload_id, MultipartUpload=part_list([etag])
    )
    assert read(s3, bucket, "from-empty.bin") == b""


# What AWS answers (quoted in versity/versitygw#610, fsspec/s3fs#321, gaul/s3proxy#304):
# a well-formed range past the end is "Range specified is not valid for source object of
# size: N", a malformed one "The x-amz-copy-source-range value must be of the form
# bytes=first-last ..."; both 400 InvalidArgument.
@pytest.mark.parametrize("byte_range", ["bytes=0-1024", "bytes=1000-2000", "0-100", "bytes=5-"])
def test_upload_part_copy_range_outside_the_source_or_malformed_is_invalid_argument(
    s3, bucket: str, byte_range: str
) -> None:
    s3.put_object(Bucket=bucket, Key="src/1KiB", Body=os.urandom(KIB))
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="ranged.bin")["UploadId"]
    with pytest.raises(ClientError) as exc:
        copy_part(s3, bucket, "ranged.bin", upload_id, 1, "src/1KiB", byte_range)
    assert s3_error(exc) == (400, "InvalidArgument")
    assert listed_parts(s3, bucket, "ranged.bin", upload_id) == []


# ---------------------------------------------------------------- ListMultipartUploads

# 30 uploads: several per key, keys nested under "/" at different depths.
UPLOAD_KEYS = (
    ["a"] * 3
    + ["b/1"] * 2
    + ["b/2"] * 3
    + ["b/sub/x"] * 2
    + ["c"] * 4
    + ["c/d"] * 2
    + ["d/e/f"] * 3
    + ["photos/2024/jan.jpg"] * 3
    + ["photos/2024/feb.jpg"] * 2
    + ["photos/2025/x.jpg"] * 2
    + ["z"] * 4
)
LISTINGS = [  # (prefix, delimiter)
    ("", None),
    ("", "/"),
    ("b/", "/"),
    ("b/", None),
    ("photos/", "/"),
    ("photos/2024/", None),
    ("c", None),
    ("c", "/"),
    ("nothing-here", "/"),
]


def expected_listing(
    created: list[tuple[str, str]], prefix: str, delimiter: str | None
) -> tuple[list[tuple[str, str]], list[str]]:
    """S3's answer: uploads sorted by key, then by initiation; keys with the delimiter after
    the prefix rolled up into common prefixes."""
    uploads: list[tuple[str, str]] = []
    prefixes: list[str] = []
    for key, upload_id in sorted(created, key=lambda upload: upload[0]):  # stable: initiation order
        if not key.startswith(prefix):
            continue
        at = key.find(delimiter, len(prefix)) if delimiter else -1
        if at < 0:
            uploads.append((key, upload_id))
        elif key[: at + len(delimiter or "")] not in prefixes:
            prefixes.append(key[: at + len(delimiter or "")])
    return uploads, prefixes


@dataclass
class UploadsOnBoth:
    """The same 30 uploads, created in the same shuffled order, on Folio and on moto."""

    folio: BaseClient
    moto: BaseClient
    bucket: str
    created: list[tuple[str, str]]  # Folio's (key, upload id), in creation order


@pytest.fixture(scope="module")
def uploads_on_both(folio: FolioProcess, moto_url: str) -> Iterator[UploadsOnBoth]:
    folio_s3 = make_s3_client(folio)
    moto_s3 = moto_client(moto_url)
    name = f"uploads-{uuid.uuid4().hex[:12]}"
    folio_s3.create_bucket(Bucket=name)
    moto_s3.create_bucket(Bucket=name)
    keys = list(UPLOAD_KEYS)
    random.Random(30).shuffle(keys)
    created = []
    for key in keys:
        created.append((key, folio_s3.create_multipart_upload(Bucket=name, Key=key)["UploadId"]))
        moto_s3.create_multipart_upload(Bucket=name, Key=key)
    yield UploadsOnBoth(folio_s3, moto_s3, name, created)
    for key, upload_id in created:
        folio_s3.abort_multipart_upload(Bucket=name, Key=key, UploadId=upload_id)
    folio_s3.delete_bucket(Bucket=name)


@pytest.mark.parametrize(
    ("prefix", "delimiter"), LISTINGS, ids=[f"{p or '-'}|{d or '-'}" for p, d in LISTINGS]
)
def test_list_multipart_uploads_pages_through_prefixes_and_delimiters_in_s3_order(
    uploads_on_both: UploadsOnBoth, prefix: str, delimiter: str | None
) -> None:
    both = uploads_on_both
    expected = expected_listing(both.created, prefix, delimiter)
    params = {"Prefix": prefix, **({"Delimiter": delimiter} if delimiter else {})}
    for page_size in (1, 4, 7, 1000):
        pages = list(
            both.folio.get_paginator("list_multipart_uploads").paginate(
                Bucket=both.bucket, PaginationConfig={"PageSize": page_size}, **params
            )
        )
        uploads = [u for page in pages for u in listed_uploads(page)]
        prefixes = [p for page in pages for p in listed_prefixes(page)]
        assert (uploads, prefixes) == expected, f"max-uploads {page_size}"
        sizes = [len(listed_uploads(page)) + len(listed_prefixes(page)) for page in pages]
        assert all(size == page_size for size in sizes[:-1]), f"max-uploads {page_size}: pages of {sizes}"
        assert [page["IsTruncated"] for page in pages] == [True] * (len(pages) - 1) + [False]
        assert {page["MaxUploads"] for page in pages} == {page_size}


@pytest.mark.parametrize("prefix", sorted({p for p, _ in LISTINGS}))
def test_list_multipart_uploads_by_prefix_lists_the_keys_moto_lists(
    uploads_on_both: UploadsOnBoth, prefix: str
) -> None:
    """moto (5.x) implements only `prefix` for this call, in creation order: its keys,
    sorted, must be Folio's. Delimiters and markers are checked against S3's rules above."""
    both = uploads_on_both
    ours = both.folio.list_multipart_uploads(Bucket=both.bucket, Prefix=prefix)
    theirs = both.moto.list_multipart_uploads(Bucket=both.bucket, Prefix=prefix)
    assert [key for key, _ in listed_uploads(ours)] == sorted(key for key, _ in listed_uploads(theirs))
    assert (ours["IsTruncated"], listed_prefixes(ours)) == (theirs["IsTruncated"], listed_prefixes(theirs))


def test_list_multipart_uploads_resumes_after_key_marker_and_upload_id_marker(
    uploads_on_both: UploadsOnBoth,
) -> None:
    both = uploads_on_both
    everything, _ = expected_listing(both.created, "", None)
    after_c = [(key, upload_id) for key, upload_id in everything if key > "c"]
    c_ids = [upload_id for key, upload_id in everything if key == "c"]

    page = both.folio.list_multipart_uploads(Bucket=both.bucket, KeyMarker="c")
    assert listed_uploads(page) == after_c, "key-marker alone skips every upload of that key"
    assert page["KeyMarker"] == "c"

    page = both.folio.list_multipart_uploads(Bucket=both.bucket, KeyMarker="c", UploadIdMarker=c_ids[1])
    assert listed_uploads(page) == [("c", upload_id) for upload_id in c_ids[2:]] + after_c
    assert (page["KeyMarker"], page["UploadIdMarker"]) == ("c", c_ids[1])

    page = both.folio.list_multipart_uploads(Bucket=both.bucket, UploadIdMarker=c_ids[1])
    assert listed_uploads(page) == everything, "upload-id-marker without key-marker is ignored"

    page = both.folio.list_multipart_uploads(Bucket=both.bucket, MaxUploads=5)
    assert listed_uploads(page) == everything[:5]
    assert page["IsTruncated"] is True
    assert (page["NextKeyMarker"], page["NextUploadIdMarker"]) == everything[4]


# ---------------------------------------------------------------- checksums


def test_full_object_crc32c_checksum_is_the_crc32c_of_the_whole_object(s3, bucket: str) -> None:
    key = "full-object.bin"
    parts = [os.urandom(MIN_PART), os.urandom(MIN_PART), os.urandom(MIB + 7)]
    data = b"".join(parts)
    created = s3.create_multipart_upload(
        Bucket=bucket, Key=key, ChecksumAlgorithm="CRC32C", ChecksumType="FULL_OBJECT"
    )
    assert (created["ChecksumAlgorithm"], created["ChecksumType"]) == ("CRC32C", "FULL_OBJECT")
    upload_id = created["UploadId"]
    part_sums = [local_checksum("CRC32C", part) for part in parts]
    for number, (part, checksum) in enumerate(zip(parts, part_sums, strict=True), start=1):
        answer = s3.upload_part(
            Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=part, ChecksumCRC32C=checksum
        )
        assert answer["ChecksumCRC32C"] == checksum
    listed = listed_parts(s3, bucket, key, upload_id)
    assert [p["ChecksumCRC32C"] for p in listed] == part_sums
    done = s3.complete_multipart_upload(
        Bucket=bucket,
        Key=key,
        UploadId=upload_id,
        MultipartUpload={
            "Parts": [
                {"PartNumber": n, "ETag": md5_etag(part), "ChecksumCRC32C": checksum}
                for n, (part, checksum) in enumerate(zip(parts, part_sums, strict=True), start=1)
            ]
        },
    )
    whole = base64.b64encode(crt_checksums.crc32c(data).to_bytes(4, "big")).decode()
    assert (done["ChecksumCRC32C"], done["ChecksumType"]) == (whole, "FULL_OBJECT")
    head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert (head["ChecksumCRC32C"], head["ChecksumType"]) == (whole, "FULL_OBJECT")
    got = s3.get_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert got["ChecksumCRC32C"] == whole
    assert got["Body"].read() == data  # boto3 also checks the body against the full-object CRC32C


def test_part_whose_checksum_does_not_match_its_bytes_is_bad_digest_and_not_stored(s3, bucket: str) -> None:
    key = "checked.bin"
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key, ChecksumAlgorithm="CRC32C")["UploadId"]
    part = os.urandom(MIB)
    with pytest.raises(ClientError) as exc:
        s3.upload_part(
            Bucket=bucket,
            Key=key,
            UploadId=upload_id,
            PartNumber=1,
            Body=part,
            ChecksumCRC32C=local_checksum("CRC32C", b"other bytes"),
        )
    assert s3_error(exc) == (400, "BadDigest")
    assert listed_parts(s3, bucket, key, upload_id) == []


def test_composite_sha256_checksum_is_the_sha256_of_the_part_sha256s_with_the_part_count(
    s3, bucket: str
) -> None:
    key = "composite.bin"
    parts = [os.urandom(MIN_PART), os.urandom(MIB)]
    created = s3.create_multipart_upload(Bucket=bucket, Key=key, ChecksumAlgorithm="SHA256")
    assert (created["ChecksumAlgorithm"], created["ChecksumType"]) == ("SHA256", "COMPOSITE")
    upload_id = created["UploadId"]
    part_sums = [base64.b64encode(hashlib.sha256(part).digest()).decode() for part in parts]
    for number, (part, checksum) in enumerate(zip(parts, part_sums, strict=True), start=1):
        s3.upload_part(
            Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=part, ChecksumSHA256=checksum
        )
    done = s3.complete_multipart_upload(
        Bucket=bucket,
        Key=key,
        UploadId=upload_id,
        MultipartUpload={
            "Parts": [
                {"PartNumber": n, "ETag": md5_etag(part), "ChecksumSHA256": checksum}
                for n, (part, checksum) in enumerate(zip(parts, part_sums, strict=True), start=1)
            ]
        },
    )
    digests = b"".join(hashlib.sha256(part).digest() for part in parts)
    expected = base64.b64encode(hashlib.sha256(digests).digest()).decode() + "-2"
    assert (done["ChecksumSHA256"], done["ChecksumType"]) == (expected, "COMPOSITE")
    head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert (head["ChecksumSHA256"], head["ChecksumType"]) == (expected, "COMPOSITE")
    # One part served with partNumber carries that part's own checksum.
    part = s3.get_object(Bucket=bucket, Key=key, PartNumber=2, ChecksumMode="ENABLED")
    assert part["ChecksumSHA256"] == part_sums[1]
    assert part["Body"].read() == parts[1]


# ---------------------------------------------------------------- buckets


def test_delete_bucket_holding_only_an_incomplete_upload_succeeds_and_the_upload_goes_with_it(
    s3, bucket: str
) -> None:
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="left/behind.bin")["UploadId"]
    s3.upload_part(
        Bucket=bucket, Key="left/behind.bin", UploadId=upload_id, PartNumber=1, Body=os.urandom(MIB)
    )
    assert s3.delete_bucket(Bucket=bucket)["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as exc:
        s3.head_bucket(Bucket=bucket)
    assert s3_error(exc)[0] == 404
    s3.create_bucket(Bucket=bucket)  # the same name again: nothing of the old upload remains
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    with pytest.raises(ClientError) as exc:
        s3.list_parts(Bucket=bucket, Key="left/behind.bin", UploadId=upload_id)
    assert s3_error(exc) == (404, "NoSuchUpload")
