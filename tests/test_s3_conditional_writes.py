"""Conditional writes and deletes as S3 answers them (PutObject / CompleteMultipartUpload /
DeleteObject with If-None-Match: * and If-Match), decided in the write's own transaction:
two racing put-if-absent writers never both win. Compared with moto where moto implements
the behaviour."""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Iterator

import pytest
from botocore.exceptions import ClientError

from tests.conftest import make_s3_client, moto_client, new_bucket
from tests.folio_process import FolioProcess
from tests.test_malformed_input import assert_s3_error, host_header, raw_request_head, read_reply, sign
from tests.test_s3_multipart import md5_etag, part_list
from tests.test_s3_objects import s3_error, status_of

RACE_ROUNDS = 50



@pytest.fixture
def reference(s3, moto_url: str) -> Iterator[list[tuple[object, str]]]:
    """The same scenario on Folio and on moto: [(client, bucket), ...]."""
    moto = moto_client(moto_url)
    moto_bucket = f"ref-{uuid.uuid4().hex[:12]}"
    moto.create_bucket(Bucket=moto_bucket)
    folio_bucket_iter = new_bucket(s3)
    folio_bucket = next(folio_bucket_iter)
    yield [(s3, folio_bucket), (moto, moto_bucket)]
    for _ in folio_bucket_iter:  # cleanup
        pass


def error_of(call) -> tuple[int, str]:
    with pytest.raises(ClientError) as exc:
        call()
    return s3_error(exc)


def versions_of(s3, bucket: str, key: str) -> list[dict]:
    page = s3.list_object_versions(Bucket=bucket, Prefix=key)
    return [v for v in page.get("Versions", []) if v["Key"] == key]


def body_of(s3, bucket: str, key: str) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


# ---------------------------------------------------------------- racing writers


def test_two_clients_racing_put_if_absent_exactly_one_wins_in_each_of_50_rounds(
    folio: FolioProcess, bucket: str
) -> None:
    # Two clients (two connection pools), each in its own thread, released together.
    clients = [make_s3_client(folio), make_s3_client(folio)]
    for round_number in range(RACE_ROUNDS):
        key = f"race/{round_number}-{uuid.uuid4().hex[:8]}"
        bodies = [f"writer {i} of round {round_number}".encode() * 100 for i in range(2)]
        barrier = threading.Barrier(2)
        outcomes: list[tuple[int, str] | None] = [None, None]

        def write(
            i: int, key: str = key, bodies: list[bytes] = bodies, barrier=barrier, outcomes=outcomes
        ) -> None:
            barrier.wait()
            try:
                response = clients[i].put_object(Bucket=bucket, Key=key, Body=bodies[i], IfNoneMatch="*")
                outcomes[i] = (status_of(response), "")
            except ClientError as exc:
                error = exc.response
                outcomes[i] = (error["ResponseMetadata"]["HTTPStatusCode"], error["Error"]["Code"])

        threads = [threading.Thread(target=write, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert sorted(outcomes) == [(200, ""), (412, "PreconditionFailed")], (
            f"round {round_number}: {outcomes}"
        )
        winner = [i for i, outcome in enumerate(outcomes) if outcome == (200, "")][0]
        assert body_of(clients[0], bucket, key) == bodies[winner]
        assert len(versions_of(clients[0], bucket, key)) == 1


# ---------------------------------------------------------------- PutObject


def test_put_if_none_match_star_creates_a_missing_key_and_is_412_on_an_existing_one_as_moto(
    reference: list[tuple[object, str]],
) -> None:
    for client, name in reference:
        first = client.put_object(Bucket=name, Key="k", Body=b"first", IfNoneMatch="*")
        assert status_of(first) == 200
        assert error_of(
            lambda c=client, n=name: c.put_object(Bucket=n, Key="k", Body=b"second", IfNoneMatch="*")
        ) == (412, "PreconditionFailed")
        assert body_of(client, name, "k") == b"first"


def test_put_if_match_with_a_stale_etag_is_412_and_changes_nothing(s3, bucket: str) -> None:
    first = s3.put_object(Bucket=bucket, Key="doc", Body=b"version 1")
    current = s3.put_object(Bucket=bucket, Key="doc", Body=b"version 2", IfMatch=first["ETag"])
    assert current["ETag"] == md5_etag(b"version 2")
    # Another writer's change went in meanwhile: the first ETag is stale now.
    assert error_of(lambda: s3.put_object(Bucket=bucket, Key="doc", Body=b"lost", IfMatch=first["ETag"])) == (
        412,
        "PreconditionFailed",
    )
    assert body_of(s3, bucket, "doc") == b"version 2"
    assert [v["ETag"] for v in versions_of(s3, bucket, "doc")] == [current["ETag"], first["ETag"]]
    # Unquoted, as some clients send it, the current ETag matches.
    replaced = s3.put_object(Bucket=bucket, Key="doc", Body=b"version 3", IfMatch=current["ETag"].strip('"'))
    assert status_of(replaced) == 200
    assert body_of(s3, bucket, "doc") == b"version 3"


def test_put_if_match_on_a_missing_key_is_no_such_key_as_moto(reference: list[tuple[object, str]]) -> None:
    for client, name in reference:
        assert error_of(
            lambda c=client, n=name: c.put_object(Bucket=n, Key="absent", Body=b"x", IfMatch='"0123"')
        ) == (404, "NoSuchKey")
        assert error_of(lambda c=client, n=name: c.head_object(Bucket=n, Key="absent"))[0] == 404


def test_put_if_match_on_a_deleted_key_is_no_such_key_and_if_none_match_writes(s3, bucket: str) -> None:
    etag = s3.put_object(Bucket=bucket, Key="gone", Body=b"x")["ETag"]
    s3.delete_object(Bucket=bucket, Key="gone")  # a delete marker is the current version
    assert error_of(lambda: s3.put_object(Bucket=bucket, Key="gone", Body=b"y", IfMatch=etag)) == (
        404,
        "NoSuchKey",
    )
    assert status_of(s3.put_object(Bucket=bucket, Key="gone", Body=b"z", IfNoneMatch="*")) == 200
    assert body_of(s3, bucket, "gone") == b"z"


def test_put_if_none_match_with_an_etag_is_not_implemented_as_aws_answers(s3, bucket: str) -> None:
    # AWS accepts only '*' for If-None-Match on a write and answers an ETag there with
    # 501 NotImplemented (aws/aws-sdk-ruby#3144 shows the service's answer).
    etag = s3.put_object(Bucket=bucket, Key="n", Body=b"x")["ETag"]
    assert error_of(lambda: s3.put_object(Bucket=bucket, Key="n", Body=b"y", IfNoneMatch=etag)) == (
        501,
        "NotImplemented",
    )
    assert body_of(s3, bucket, "n") == b"x"


def test_put_if_none_match_on_an_existing_key_with_expect_100_continue_is_412_before_the_body(
    folio: FolioProcess, s3, bucket: str
) -> None:
    s3.put_object(Bucket=bucket, Key="taken", Body=b"first")
    body = os.urandom(512 * 1024)
    headers = sign(
        folio, "PUT", f"/{bucket}/taken", body=body, headers={"Expect": "100-continue", "If-None-Match": "*"}
    )
    headers = {**host_header(folio), **headers, "Content-Length": str(len(body))}
    with socket.create_connection(("127.0.0.1", folio.s3_port)) as sock:
        sock.sendall(raw_request_head("PUT", f"/{bucket}/taken", headers))
        reply = read_reply(sock, timeout=10)  # the body is never sent
    assert reply.status != 100, "the server asked for the body of a write whose condition already failed"
    assert_s3_error(reply, 412, "PreconditionFailed")
    assert body_of(s3, bucket, "taken") == b"first"


# ---------------------------------------------------------------- CompleteMultipartUpload


def complete(client, name: str, key: str, upload_id: str, etag: str, **conditions):
    return client.complete_multipart_upload(
        Bucket=name, Key=key, UploadId=upload_id, MultipartUpload=part_list([etag]), **conditions
    )


def start_upload(client, name: str, key: str, body: bytes) -> tuple[str, str]:
    upload_id = client.create_multipart_upload(Bucket=name, Key=key)["UploadId"]
    etag = client.upload_part(Bucket=name, Key=key, UploadId=upload_id, PartNumber=1, Body=body)["ETag"]
    return upload_id, etag


def test_complete_if_none_match_star_on_an_existing_key_is_412_and_keeps_the_object_as_moto(
    reference: list[tuple[object, str]],
) -> None:
    for client, name in reference:
        client.put_object(Bucket=name, Key="mp", Body=b"already here")
        upload_id, etag = start_upload(client, name, "mp", b"p" * 1024)
        assert error_of(
            lambda c=client, n=name, u=upload_id, e=etag: complete(c, n, "mp", u, e, IfNoneMatch="*")
        ) == (412, "PreconditionFailed")
        assert body_of(client, name, "mp") == b"already here"


def test_complete_if_none_match_star_on_a_missing_key_completes(s3, bucket: str) -> None:
    upload_id, etag = start_upload(s3, bucket, "fresh", b"q" * 1024)
    done = complete(s3, bucket, "fresh", upload_id, etag, IfNoneMatch="*")
    assert status_of(done) == 200
    assert body_of(s3, bucket, "fresh") == b"q" * 1024


def test_complete_that_failed_its_condition_leaves_the_upload_to_complete_or_abort(s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="cond", Body=b"old")
    upload_id, etag = start_upload(s3, bucket, "cond", b"r" * 1024)
    assert error_of(lambda: complete(s3, bucket, "cond", upload_id, etag, IfMatch='"not-the-etag"')) == (
        412,
        "PreconditionFailed",
    )
    assert body_of(s3, bucket, "cond") == b"old"
    current = s3.head_object(Bucket=bucket, Key="cond")["ETag"]
    assert status_of(complete(s3, bucket, "cond", upload_id, etag, IfMatch=current)) == 200
    assert body_of(s3, bucket, "cond") == b"r" * 1024


def test_complete_if_match_on_a_missing_key_is_no_such_key(s3, bucket: str) -> None:
    upload_id, etag = start_upload(s3, bucket, "nothing", b"s" * 1024)
    assert error_of(lambda: complete(s3, bucket, "nothing", upload_id, etag, IfMatch='"0123"')) == (
        404,
        "NoSuchKey",
    )
    assert error_of(lambda: s3.head_object(Bucket=bucket, Key="nothing"))[0] == 404


# ---------------------------------------------------------------- DeleteObject


def test_delete_if_match_deletes_only_the_version_it_names(s3, bucket: str) -> None:
    first = s3.put_object(Bucket=bucket, Key="del", Body=b"one")["ETag"]
    second = s3.put_object(Bucket=bucket, Key="del", Body=b"two")["ETag"]
    assert error_of(lambda: s3.delete_object(Bucket=bucket, Key="del", IfMatch=first)) == (
        412,
        "PreconditionFailed",
    )
    assert body_of(s3, bucket, "del") == b"two"
    assert (
        s3.delete_object(Bucket=bucket, Key="del", IfMatch=second)["ResponseMetadata"]["HTTPStatusCode"]
        == 204
    )
    assert error_of(lambda: s3.head_object(Bucket=bucket, Key="del"))[0] == 404


def test_delete_if_match_star_needs_the_key_to_exist(s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="star", Body=b"x")
    assert (
        s3.delete_object(Bucket=bucket, Key="star", IfMatch="*")["ResponseMetadata"]["HTTPStatusCode"] == 204
    )
    # Its current version is a delete marker now: as absent.
    assert error_of(lambda: s3.delete_object(Bucket=bucket, Key="star", IfMatch="*")) == (404, "NoSuchKey")


def test_delete_if_match_on_a_missing_key_is_no_such_key_as_moto(reference: list[tuple[object, str]]) -> None:
    for client, name in reference:
        assert error_of(
            lambda c=client, n=name: c.delete_object(Bucket=n, Key="never", IfMatch='"0123"')
        ) == (
            404,
            "NoSuchKey",
        )
        # Without a condition, deleting a missing key is the usual 204.
        assert client.delete_object(Bucket=name, Key="never")["ResponseMetadata"]["HTTPStatusCode"] == 204


def test_delete_if_match_with_a_stale_etag_is_412_as_moto(reference: list[tuple[object, str]]) -> None:
    for client, name in reference:
        client.put_object(Bucket=name, Key="kept", Body=b"x")
        assert error_of(lambda c=client, n=name: c.delete_object(Bucket=n, Key="kept", IfMatch='"0123"')) == (
            412,
            "PreconditionFailed",
        )
        assert body_of(client, name, "kept") == b"x"


def test_delete_if_match_in_an_unversioned_bucket_removes_the_object(
    s3_aws_like, unversioned_bucket: str
) -> None:
    s3, bucket = s3_aws_like, unversioned_bucket
    etag = s3.put_object(Bucket=bucket, Key="plain", Body=b"x")["ETag"]
    assert error_of(lambda: s3.delete_object(Bucket=bucket, Key="plain", IfMatch='"0123"'))[0] == 412
    s3.delete_object(Bucket=bucket, Key="plain", IfMatch=etag)
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)


def test_delete_objects_with_etags_deletes_the_keys_that_match_and_reports_the_others(
    s3, bucket: str
) -> None:
    kept_etag = s3.put_object(Bucket=bucket, Key="batch/kept", Body=b"kept")["ETag"]
    gone_etag = s3.put_object(Bucket=bucket, Key="batch/gone", Body=b"gone")["ETag"]
    s3.put_object(Bucket=bucket, Key="batch/kept", Body=b"changed")  # kept_etag is stale now
    answer = s3.delete_objects(
        Bucket=bucket,
        Delete={
            "Objects": [
                {"Key": "batch/kept", "ETag": kept_etag},
                {"Key": "batch/gone", "ETag": gone_etag},
                {"Key": "batch/absent", "ETag": gone_etag},
            ]
        },
    )
    assert [d["Key"] for d in answer.get("Deleted", [])] == ["batch/gone"]
    errors = {e["Key"]: e["Code"] for e in answer.get("Errors", [])}
    assert errors == {"batch/kept": "PreconditionFailed", "batch/absent": "NoSuchKey"}
    assert body_of(s3, bucket, "batch/kept") == b"changed"
    assert error_of(lambda: s3.head_object(Bucket=bucket, Key="batch/gone"))[0] == 404
