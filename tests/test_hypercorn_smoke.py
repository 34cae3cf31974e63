"""Folio under its other server engine, Hypercorn (`[server] engine = "hypercorn"`):
the core bucket and object operations through boto3 with its default configuration."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.conftest import make_s3_client
from tests.folio_process import FolioProcess


@pytest.fixture(scope="module")
def hypercorn_folio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FolioProcess]:
    server = FolioProcess(data_dir=tmp_path_factory.mktemp("folio-hypercorn") / "data", engine="hypercorn")
    server.start()
    yield server
    assert server.stop() == 0, server.log()


def test_hypercorn_engine_serves_create_put_get_list_delete(
    hypercorn_folio: FolioProcess, tmp_path: Path
) -> None:
    log = hypercorn_folio.log()
    assert "hypercorn" in log and "Uvicorn running" not in log, log
    s3 = make_s3_client(hypercorn_folio)
    s3.create_bucket(Bucket="smoke")
    assert "smoke" in [b["Name"] for b in s3.list_buckets()["Buckets"]]

    small = b"hello from hypercorn"
    large = os.urandom(3 * 1024 * 1024)
    put = s3.put_object(Bucket="smoke", Key="dir/small.txt", Body=small, ContentType="text/plain")
    assert put["ETag"] == f'"{hashlib.md5(small).hexdigest()}"'
    s3.put_object(Bucket="smoke", Key="dir/large.bin", Body=large)
    source = tmp_path / "upload.bin"
    source.write_bytes(os.urandom(5 * 1024 * 1024))
    s3.upload_file(str(source), "smoke", "uploaded.bin")

    got = s3.get_object(Bucket="smoke", Key="dir/small.txt")
    assert got["Body"].read() == small
    assert got["ContentType"] == "text/plain"
    assert s3.get_object(Bucket="smoke", Key="dir/large.bin")["Body"].read() == large
    ranged = s3.get_object(Bucket="smoke", Key="dir/large.bin", Range="bytes=100-199")
    assert ranged["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert ranged["Body"].read() == large[100:200]
    target = tmp_path / "download.bin"
    s3.download_file("smoke", "uploaded.bin", str(target))
    assert target.read_bytes() == source.read_bytes()
    assert s3.head_object(Bucket="smoke", Key="dir/large.bin")["ContentLength"] == len(large)

    listed = s3.list_objects_v2(Bucket="smoke", Prefix="dir/")
    assert [o["Key"] for o in listed["Contents"]] == ["dir/large.bin", "dir/small.txt"]
    top = s3.list_objects_v2(Bucket="smoke", Delimiter="/")
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["dir/"]
    assert [o["Key"] for o in top["Contents"]] == ["uploaded.bin"]

    s3.delete_object(Bucket="smoke", Key="dir/small.txt")
    with pytest.raises(ClientError) as missing:
        s3.get_object(Bucket="smoke", Key="dir/small.txt")
    assert missing.value.response["Error"]["Code"] == "NoSuchKey"
    deleted = s3.delete_objects(
        Bucket="smoke", Delete={"Objects": [{"Key": "dir/large.bin"}, {"Key": "uploaded.bin"}]}
    )
    assert sorted(d["Key"] for d in deleted["Deleted"]) == ["dir/large.bin", "uploaded.bin"]
    assert s3.list_objects_v2(Bucket="smoke")["KeyCount"] == 0
    s3.delete_bucket(Bucket="smoke")
    assert "smoke" not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_hypercorn_engine_answers_errors_as_s3_xml(hypercorn_folio: FolioProcess) -> None:
    s3 = make_s3_client(hypercorn_folio)
    with pytest.raises(ClientError) as no_bucket:
        s3.list_objects_v2(Bucket="no-such-bucket-here")
    assert no_bucket.value.response["Error"]["Code"] == "NoSuchBucket"
    assert no_bucket.value.response["ResponseMetadata"]["RequestId"]
    wrong = make_s3_client(hypercorn_folio, secret_key="not-the-secret")
    with pytest.raises(ClientError) as denied:
        wrong.list_buckets()
    assert denied.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
