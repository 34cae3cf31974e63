"""The background sweep of multipart uploads left incomplete, on a dedicated server whose
expiry age is about a second: the upload disappears by itself, its parts' blobs are freed,
and completed objects are left alone."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.conftest import make_s3_client
from tests.folio_process import FolioProcess
from tests.test_s3_multipart import (
    blob_files,
    check_blobs_match_their_references,
    listed_uploads,
    md5_etag,
    part_list,
)
from tests.test_s3_objects import s3_error

EXPIRY_DAYS = 0.00001  # 0.864 s
SWEEP_DEADLINE_SECONDS = 10.0


@pytest.fixture
def expiring_server(tmp_path: Path) -> Iterator[FolioProcess]:
    server = FolioProcess(
        data_dir=tmp_path / "data", config_text=f"[limits]\nmultipart_expiry_days = {EXPIRY_DAYS}\n"
    )
    try:
        server.start()
        yield server
    finally:
        server.stop()


def test_incomplete_upload_older_than_the_expiry_is_aborted_by_the_background_sweep(
    expiring_server: FolioProcess,
) -> None:
    server = expiring_server
    s3 = make_s3_client(server)
    bucket = "sweep"
    s3.create_bucket(Bucket=bucket)
    # A multipart object completed at once: the sweep must never touch it.
    done_id = s3.create_multipart_upload(Bucket=bucket, Key="completed.bin")["UploadId"]
    done_body = os.urandom(100 * 1024)
    etag = s3.upload_part(Bucket=bucket, Key="completed.bin", UploadId=done_id, PartNumber=1, Body=done_body)[
        "ETag"
    ]
    s3.complete_multipart_upload(
        Bucket=bucket, Key="completed.bin", UploadId=done_id, MultipartUpload=part_list([etag])
    )

    before = blob_files(server.data_dir)
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="abandoned.bin")["UploadId"]
    part = os.urandom(100 * 1024)
    assert s3.upload_part(Bucket=bucket, Key="abandoned.bin", UploadId=upload_id, PartNumber=1, Body=part)[
        "ETag"
    ] == md5_etag(part)
    part_blobs = blob_files(server.data_dir) - before
    assert len(part_blobs) == 1

    deadline = time.monotonic() + SWEEP_DEADLINE_SECONDS
    listed = listed_uploads(s3.list_multipart_uploads(Bucket=bucket))
    while listed and time.monotonic() < deadline:
        time.sleep(0.2)
        listed = listed_uploads(s3.list_multipart_uploads(Bucket=bucket))
    assert listed == [], f"still listed {SWEEP_DEADLINE_SECONDS:.0f} s after expiry: {listed}"
    with pytest.raises(ClientError) as exc:
        s3.list_parts(Bucket=bucket, Key="abandoned.bin", UploadId=upload_id)
    assert s3_error(exc) == (404, "NoSuchUpload")
    assert s3.get_object(Bucket=bucket, Key="completed.bin")["Body"].read() == done_body

    server.stop()
    check_blobs_match_their_references(server)
    assert not part_blobs & blob_files(server.data_dir), "the swept upload's part is still on disk"
