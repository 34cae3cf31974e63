"""A CompleteMultipartUpload sent again after it succeeded (an SDK retrying after a lost
answer) is answered 200 with the same result while the object it made is still the key's
current version; every other use of a completed upload id is NoSuchUpload."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from botocore.exceptions import ClientError

from tests.conftest import make_s3_client, moto_client, new_bucket
from tests.folio_process import FolioProcess
from tests.server_db import server_db
from tests.test_malformed_input import signed
from tests.test_s3_multipart import part_list, upload_parts
from tests.test_s3_objects import s3_error, status_of

PART = 5 * 1024 * 1024


def completed_upload(s3, bucket: str, key: str, parts: list[bytes]) -> tuple[str, dict, dict]:
    """(upload id, the part list sent, the first Complete's answer)."""
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    etags = upload_parts(s3, bucket, key, upload_id, parts)
    listed = part_list(etags)
    first = s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload=listed)
    return upload_id, listed, first


def no_such_upload(call) -> None:
    with pytest.raises(ClientError) as exc:
        call()
    assert s3_error(exc) == (404, "NoSuchUpload")


def versions_of(s3, bucket: str, key: str) -> list[dict]:
    page = s3.list_object_versions(Bucket=bucket, Prefix=key)
    return [v for v in page.get("Versions", []) if v["Key"] == key]


@pytest.fixture
def moto_bucket(moto_url: str) -> Iterator[tuple[object, str]]:
    client = moto_client(moto_url)
    name = f"ref-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    yield client, name


def test_complete_sent_twice_answers_200_twice_with_the_same_result_and_one_version(s3, bucket: str) -> None:
    parts = [b"a" * PART, b"b" * 1024]
    upload_id, listed, first = completed_upload(s3, bucket, "twice.bin", parts)
    again = s3.complete_multipart_upload(
        Bucket=bucket, Key="twice.bin", UploadId=upload_id, MultipartUpload=listed
    )
    assert status_of(again) == 200
    for field in ("ETag", "Location", "Bucket", "Key", "VersionId"):
        assert again.get(field) == first.get(field), field
    versions = versions_of(s3, bucket, "twice.bin")
    assert len(versions) == 1, versions
    assert versions[0]["ETag"] == first["ETag"] and versions[0]["VersionId"] == first["VersionId"]
    assert s3.get_object(Bucket=bucket, Key="twice.bin")["Body"].read() == b"".join(parts)


def test_complete_sent_twice_in_an_unversioned_bucket_answers_the_same(
    s3_aws_like, unversioned_bucket: str
) -> None:
    s3, bucket = s3_aws_like, unversioned_bucket
    upload_id, listed, first = completed_upload(s3, bucket, "plain.bin", [b"c" * 2048])
    again = s3.complete_multipart_upload(
        Bucket=bucket, Key="plain.bin", UploadId=upload_id, MultipartUpload=listed
    )
    assert again["ETag"] == first["ETag"]
    assert "VersionId" not in again
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["plain.bin"]


def test_retried_complete_carrying_if_none_match_star_still_answers_its_own_result(s3, bucket: str) -> None:
    # An SDK retries with the same headers: the object the first attempt made must not fail it.
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="once.bin")["UploadId"]
    listed = part_list(upload_parts(s3, bucket, "once.bin", upload_id, [b"d" * 1024]))
    kwargs = {"Bucket": bucket, "Key": "once.bin", "UploadId": upload_id, "MultipartUpload": listed}
    first = s3.complete_multipart_upload(**kwargs, IfNoneMatch="*")
    again = s3.complete_multipart_upload(**kwargs, IfNoneMatch="*")
    assert again["ETag"] == first["ETag"] and again["VersionId"] == first["VersionId"]
    assert len(versions_of(s3, bucket, "once.bin")) == 1


def test_complete_sent_twice_answers_200_on_moto_too(moto_bucket: tuple[object, str]) -> None:
    client, name = moto_bucket
    upload_id, listed, first = completed_upload(client, name, "twice.bin", [b"e" * 1024])
    again = client.complete_multipart_upload(
        Bucket=name, Key="twice.bin", UploadId=upload_id, MultipartUpload=listed
    )
    assert status_of(again) == 200 and again["ETag"] == first["ETag"]


def test_retried_complete_after_the_object_was_overwritten_is_no_such_upload(s3, bucket: str) -> None:
    upload_id, listed, _ = completed_upload(s3, bucket, "over.bin", [b"f" * 1024])
    s3.put_object(Bucket=bucket, Key="over.bin", Body=b"newer")
    no_such_upload(
        lambda: s3.complete_multipart_upload(
            Bucket=bucket, Key="over.bin", UploadId=upload_id, MultipartUpload=listed
        )
    )
    assert s3.get_object(Bucket=bucket, Key="over.bin")["Body"].read() == b"newer"
    assert len(versions_of(s3, bucket, "over.bin")) == 2


def test_retried_complete_after_the_object_was_deleted_is_no_such_upload(s3, bucket: str) -> None:
    upload_id, listed, _ = completed_upload(s3, bucket, "gone.bin", [b"g" * 1024])
    s3.delete_object(Bucket=bucket, Key="gone.bin")
    no_such_upload(
        lambda: s3.complete_multipart_upload(
            Bucket=bucket, Key="gone.bin", UploadId=upload_id, MultipartUpload=listed
        )
    )
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bucket, Key="gone.bin")
    assert s3_error(exc)[0] == 404


def test_retried_complete_in_an_unversioned_bucket_after_a_delete_and_a_new_put_is_no_such_upload(
    s3_aws_like, unversioned_bucket: str
) -> None:
    # The deleted row's id may be given to the next row: the retry must not take it for its own.
    s3, bucket = s3_aws_like, unversioned_bucket
    upload_id, listed, _ = completed_upload(s3, bucket, "reused.bin", [b"h" * 1024])
    s3.delete_object(Bucket=bucket, Key="reused.bin")
    s3.put_object(Bucket=bucket, Key="reused.bin", Body=b"another")
    no_such_upload(
        lambda: s3.complete_multipart_upload(
            Bucket=bucket, Key="reused.bin", UploadId=upload_id, MultipartUpload=listed
        )
    )


def test_complete_with_a_different_part_list_after_success_is_no_such_upload(s3, bucket: str) -> None:
    parts = [b"i" * PART, b"j" * 1024]
    upload_id, listed, _ = completed_upload(s3, bucket, "diff.bin", parts)
    fewer = {"Parts": listed["Parts"][:1]}
    no_such_upload(
        lambda: s3.complete_multipart_upload(
            Bucket=bucket, Key="diff.bin", UploadId=upload_id, MultipartUpload=fewer
        )
    )
    assert s3.get_object(Bucket=bucket, Key="diff.bin")["Body"].read() == b"".join(parts)


def test_every_other_use_of_a_completed_upload_id_is_no_such_upload(s3, bucket: str) -> None:
    upload_id, _, first = completed_upload(s3, bucket, "used.bin", [b"k" * 1024])
    no_such_upload(
        lambda: s3.upload_part(Bucket=bucket, Key="used.bin", UploadId=upload_id, PartNumber=2, Body=b"more")
    )
    no_such_upload(lambda: s3.list_parts(Bucket=bucket, Key="used.bin", UploadId=upload_id))
    no_such_upload(lambda: s3.abort_multipart_upload(Bucket=bucket, Key="used.bin", UploadId=upload_id))
    # The same upload id under another key is no upload at all.
    no_such_upload(
        lambda: s3.complete_multipart_upload(
            Bucket=bucket, Key="other.bin", UploadId=upload_id, MultipartUpload=part_list([first["ETag"]])
        )
    )
    assert s3.head_object(Bucket=bucket, Key="used.bin")["ETag"] == first["ETag"]
    assert "Uploads" not in s3.list_multipart_uploads(Bucket=bucket)


def test_retried_complete_is_answered_after_a_restart(tmp_path) -> None:
    server = FolioProcess(data_dir=tmp_path / "data")
    try:
        server.start()
        s3 = make_s3_client(server)
        bucket_iter = new_bucket(s3)
        bucket = next(bucket_iter)
        upload_id, listed, first = completed_upload(s3, bucket, "durable.bin", [b"l" * 1024])
        server.stop()
        server.start()
        s3 = make_s3_client(server)
        again = s3.complete_multipart_upload(
            Bucket=bucket, Key="durable.bin", UploadId=upload_id, MultipartUpload=listed
        )
        assert again["ETag"] == first["ETag"] and again["VersionId"] == first["VersionId"]
    finally:
        server.stop()


def test_retried_complete_as_raw_xml_answers_the_same_document(folio: FolioProcess, s3, bucket: str) -> None:
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="raw.bin")["UploadId"]
    etag = upload_parts(s3, bucket, "raw.bin", upload_id, [b"m" * 1024])[0]
    body = (
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber>"
        f"<ETag>{etag}</ETag></Part></CompleteMultipartUpload>"
    ).encode()
    replies = [
        signed(folio, "POST", f"/{bucket}/raw.bin", query=f"uploadId={upload_id}", body=body)
        for _ in range(2)
    ]
    assert [r.status for r in replies] == [200, 200]
    assert replies[0].body == replies[1].body
    assert replies[0].headers.get("x-amz-version-id") == replies[1].headers.get("x-amz-version-id")


def test_a_data_directory_of_the_previous_schema_upgrades_keeping_objects_and_uploads(tmp_path) -> None:
    server = FolioProcess(data_dir=tmp_path / "data")
    try:
        server.start()
        s3 = make_s3_client(server)
        bucket = next(new_bucket(s3))
        s3.put_object(Bucket=bucket, Key="kept.txt", Body=b"kept")
        upload_id = s3.create_multipart_upload(Bucket=bucket, Key="pending.bin")["UploadId"]
        listed = part_list(upload_parts(s3, bucket, "pending.bin", upload_id, [b"n" * 1024]))
        server.stop()
        # Back to schema 3: the data of a server from before completed uploads were kept.
        with server_db(server, write=True) as db:
            db.execute("DROP TABLE completed_uploads")
            db.execute("DELETE FROM schema_migrations WHERE package = 's3proxy.store' AND version = 4")
        server.start()
        s3 = make_s3_client(server)
        assert s3.get_object(Bucket=bucket, Key="kept.txt")["Body"].read() == b"kept"
        kwargs = {"Bucket": bucket, "Key": "pending.bin", "UploadId": upload_id, "MultipartUpload": listed}
        first = s3.complete_multipart_upload(**kwargs)
        assert s3.complete_multipart_upload(**kwargs)["ETag"] == first["ETag"]
        assert s3.get_object(Bucket=bucket, Key="pending.bin")["Body"].read() == b"n" * 1024
    finally:
        server.stop()


def completed_rows(server: FolioProcess) -> set[str]:
    with server_db(server) as db:
        return {row[0] for row in db.execute("SELECT id FROM completed_uploads")}


def test_the_multipart_sweep_forgets_completed_uploads_whose_object_was_replaced(tmp_path) -> None:
    server = FolioProcess(
        data_dir=tmp_path / "data", config_text="[limits]\nmultipart_expiry_days = 0.00001\n"
    )
    try:
        server.start()
        s3 = make_s3_client(server)
        bucket = next(new_bucket(s3))
        replaced_id, _, _ = completed_upload(s3, bucket, "replaced.bin", [b"o" * 1024])
        current_id, current_parts, first = completed_upload(s3, bucket, "current.bin", [b"p" * 1024])
        assert {replaced_id, current_id} <= completed_rows(server)
        s3.put_object(Bucket=bucket, Key="replaced.bin", Body=b"newer")
        deadline = time.monotonic() + 15
        while replaced_id in completed_rows(server) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert completed_rows(server) == {current_id}
        # The one still current is still answered.
        again = s3.complete_multipart_upload(
            Bucket=bucket, Key="current.bin", UploadId=current_id, MultipartUpload=current_parts
        )
        assert again["ETag"] == first["ETag"]
    finally:
        server.stop()


def test_a_complete_and_its_retry_racing_both_answer_the_one_result(folio: FolioProcess, bucket: str) -> None:
    clients = [make_s3_client(folio), make_s3_client(folio)]
    for round_number in range(10):
        key = f"racing/{round_number}.bin"
        upload_id = clients[0].create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
        listed = part_list(upload_parts(clients[0], bucket, key, upload_id, [b"q" * 1024]))
        barrier = threading.Barrier(2)

        def send(
            client, key: str = key, upload_id: str = upload_id, listed: dict = listed, barrier=barrier
        ) -> dict:
            barrier.wait()
            return client.complete_multipart_upload(
                Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload=listed
            )

        with ThreadPoolExecutor(max_workers=2) as pool:
            answers = list(pool.map(send, clients))
        assert answers[0]["ETag"] == answers[1]["ETag"]
        assert answers[0]["VersionId"] == answers[1]["VersionId"]
        assert len(versions_of(clients[0], bucket, key)) == 1
