"""Bucket versioning against the real server with boto3: PutBucketVersioning and
GetBucketVersioning, versionId on GET / HEAD / DELETE / CopyObject source / DeleteObjects,
delete markers, the `null` version of unversioned and Suspended buckets, and
ListObjectVersions (prefix, delimiter, markers, max-keys). The listing of one history of
puts and deletes is also compared with moto's, where moto is a faithful S3: version ids
differ between the servers, so versions are compared by their place in the key's history.

moto is not used for Suspended buckets, for key-marker without version-id-marker, nor for
the interleaving of <Version> and <DeleteMarker> elements: there it departs from S3 (it
deletes the null version instead of writing a null delete marker, starts a key-marker-only
listing inside the key, and writes every Version before every DeleteMarker); those are
asserted directly against S3's documented behaviour."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from lxml import etree

from tests.conftest import moto_client, new_bucket

S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


# ---------------------------------------------------------------- helpers


@pytest.fixture
def s3(s3_aws_like):
    """S3's versioning rules start from an unversioned bucket: this module runs on the
    server whose new buckets are unversioned as in AWS (Time Machine is tested in
    test_time_machine.py)."""
    return s3_aws_like


@pytest.fixture
def bucket(s3_aws_like) -> Iterator[str]:
    yield from new_bucket(s3_aws_like)


def s3_error(exc: pytest.ExceptionInfo[ClientError]) -> tuple[int, str]:
    """(HTTP status, S3 error code) of a failed boto3 call."""
    response = exc.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]


def error_headers(exc: pytest.ExceptionInfo[ClientError]) -> dict[str, str]:
    return exc.value.response["ResponseMetadata"]["HTTPHeaders"]


def enable(s3, bucket: str) -> None:
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})


def suspend(s3, bucket: str) -> None:
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})


def body_of(s3, bucket: str, key: str, **kwargs: Any) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key, **kwargs)["Body"].read()


def versions_of(s3, bucket: str, **kwargs: Any) -> list[tuple[str, str, str, bool]]:
    """Every entry of one ListObjectVersions page as (kind, key, version id, is latest), in the
    order boto3 parsed them: the Versions, then the DeleteMarkers."""
    page = s3.list_object_versions(Bucket=bucket, **kwargs)
    return [("version", v["Key"], v["VersionId"], v["IsLatest"]) for v in page.get("Versions", [])] + [
        ("marker", m["Key"], m["VersionId"], m["IsLatest"]) for m in page.get("DeleteMarkers", [])
    ]


def raw_list_versions(client, bucket: str, **kwargs: Any) -> etree._Element:
    """The ListVersionsResult XML exactly as the server sent it (boto3 splits Version and
    DeleteMarker elements into two lists and loses their relative order)."""
    captured: dict[str, bytes] = {}

    def keep(response_dict: dict, **_: Any) -> None:
        captured["body"] = response_dict["body"]

    client.meta.events.register("before-parse.s3.ListObjectVersions", keep)
    try:
        client.list_object_versions(Bucket=bucket, **kwargs)
    finally:
        client.meta.events.unregister("before-parse.s3.ListObjectVersions", keep)
    return etree.fromstring(captured["body"])


def raw_entries(root: etree._Element) -> list[tuple[str, str, str, bool]]:
    """(kind, key, version id, is latest) of every Version / DeleteMarker, in document order."""
    out = []
    for child in root:
        tag = etree.QName(child).localname
        if tag in ("Version", "DeleteMarker"):
            out.append(
                (
                    "version" if tag == "Version" else "marker",
                    child.findtext(f"{S3_NS}Key"),
                    child.findtext(f"{S3_NS}VersionId"),
                    child.findtext(f"{S3_NS}IsLatest") == "true",
                )
            )
    return out


def purge_versions(s3, bucket: str) -> None:
    """Delete every version and delete marker, so that the bucket can be removed."""
    for _ in range(50):
        page = s3.list_object_versions(Bucket=bucket)
        entries = [
            {"Key": e["Key"], "VersionId": e["VersionId"]}
            for e in page.get("Versions", []) + page.get("DeleteMarkers", [])
        ]
        if not entries:
            return
        s3.delete_objects(Bucket=bucket, Delete={"Objects": entries[:1000], "Quiet": True})


@pytest.fixture
def plain_bucket(s3, bucket: str) -> Iterator[str]:
    """A bucket that never had versioning; all versions are purged afterwards."""
    yield bucket
    try:
        purge_versions(s3, bucket)
    except Exception:  # noqa: BLE001 - cleanup must not mask the test's own result
        pass


@pytest.fixture
def vbucket(s3, bucket: str) -> Iterator[str]:
    """A fresh bucket with versioning Enabled; every version and marker is purged afterwards."""
    enable(s3, bucket)
    yield bucket
    try:
        purge_versions(s3, bucket)
    except Exception:  # noqa: BLE001 - cleanup must not mask the test's own result
        pass


# ---------------------------------------------------------------- bucket configuration


def test_new_bucket_versioning_has_no_status(s3, bucket: str) -> None:
    got = s3.get_bucket_versioning(Bucket=bucket)
    assert "Status" not in got
    assert "MFADelete" not in got


def test_versioning_enabled_then_suspended_round_trips(s3, plain_bucket: str) -> None:
    enable(s3, plain_bucket)
    assert s3.get_bucket_versioning(Bucket=plain_bucket)["Status"] == "Enabled"
    suspend(s3, plain_bucket)
    assert s3.get_bucket_versioning(Bucket=plain_bucket)["Status"] == "Suspended"
    enable(s3, plain_bucket)
    assert s3.get_bucket_versioning(Bucket=plain_bucket)["Status"] == "Enabled"


@pytest.mark.parametrize("status", ["Bogus", "enabled", ""])
def test_put_bucket_versioning_with_invalid_status_is_malformed_xml(s3, bucket: str, status: str) -> None:
    # AWS validates Status against the schema's enum (Enabled | Suspended): MalformedXML.
    with pytest.raises(ClientError) as exc:
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": status})
    assert s3_error(exc) == (400, "MalformedXML")
    assert "Status" not in s3.get_bucket_versioning(Bucket=bucket)


def test_versioning_calls_on_a_missing_bucket_are_no_such_bucket(s3) -> None:
    missing = f"missing-{uuid.uuid4().hex[:12]}"
    for call in (
        lambda: s3.get_bucket_versioning(Bucket=missing),
        lambda: enable(s3, missing),
        lambda: s3.list_object_versions(Bucket=missing),
    ):
        with pytest.raises(ClientError) as exc:
            call()
        assert s3_error(exc) == (404, "NoSuchBucket")


# ---------------------------------------------------------------- versions by id


def test_each_overwrite_in_an_enabled_bucket_gets_a_version_id_and_reads_back(s3, vbucket: str) -> None:
    ids = [s3.put_object(Bucket=vbucket, Key="k", Body=f"body-{i}".encode())["VersionId"] for i in range(3)]
    assert len(set(ids)) == 3 and "null" not in ids and all(ids)
    for i, version_id in enumerate(ids):
        got = s3.get_object(Bucket=vbucket, Key="k", VersionId=version_id)
        assert got["Body"].read() == f"body-{i}".encode()
        assert got["VersionId"] == version_id
        head = s3.head_object(Bucket=vbucket, Key="k", VersionId=version_id)
        assert head["VersionId"] == version_id
        assert head["ContentLength"] == len(f"body-{i}")
    latest = s3.get_object(Bucket=vbucket, Key="k")
    assert latest["Body"].read() == b"body-2"
    assert latest["VersionId"] == ids[-1]
    assert s3.head_object(Bucket=vbucket, Key="k")["VersionId"] == ids[-1]
    assert versions_of(s3, vbucket) == [
        ("version", "k", ids[2], True),
        ("version", "k", ids[1], False),
        ("version", "k", ids[0], False),
    ]
    # Only the current version is an object for ListObjectsV2.
    listed = s3.list_objects_v2(Bucket=vbucket)["Contents"]
    assert [(o["Key"], o["Size"]) for o in listed] == [("k", 6)]


def test_get_and_head_of_a_version_id_that_is_not_the_keys_is_no_such_version(s3, vbucket: str) -> None:
    s3.put_object(Bucket=vbucket, Key="a", Body=b"a")
    other = s3.put_object(Bucket=vbucket, Key="b", Body=b"b")["VersionId"]
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=vbucket, Key="a", VersionId=other)
    assert s3_error(exc) == (404, "NoSuchVersion")
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=vbucket, Key="a", VersionId=other)
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_deleting_the_latest_version_by_id_promotes_the_previous_one(s3, vbucket: str) -> None:
    first = s3.put_object(Bucket=vbucket, Key="k", Body=b"first")["VersionId"]
    second = s3.put_object(Bucket=vbucket, Key="k", Body=b"second")["VersionId"]
    deleted = s3.delete_object(Bucket=vbucket, Key="k", VersionId=second)
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert deleted["VersionId"] == second
    assert not deleted.get("DeleteMarker")
    got = s3.get_object(Bucket=vbucket, Key="k")
    assert got["Body"].read() == b"first"
    assert got["VersionId"] == first
    assert versions_of(s3, vbucket) == [("version", "k", first, True)]
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=vbucket, Key="k", VersionId=second)
    assert s3_error(exc) == (404, "NoSuchVersion")


def test_deleting_a_noncurrent_version_by_id_leaves_the_current_one(s3, vbucket: str) -> None:
    first = s3.put_object(Bucket=vbucket, Key="k", Body=b"first")["VersionId"]
    second = s3.put_object(Bucket=vbucket, Key="k", Body=b"second")["VersionId"]
    s3.delete_object(Bucket=vbucket, Key="k", VersionId=first)
    assert body_of(s3, vbucket, "k") == b"second"
    assert versions_of(s3, vbucket) == [("version", "k", second, True)]


# ---------------------------------------------------------------- delete markers


def test_delete_without_version_id_writes_a_marker_and_get_answers_404_with_marker_headers(
    s3, vbucket: str
) -> None:
    original = s3.put_object(Bucket=vbucket, Key="k", Body=b"kept")["VersionId"]
    deleted = s3.delete_object(Bucket=vbucket, Key="k")
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert deleted["DeleteMarker"] is True
    marker = deleted["VersionId"]
    assert marker and marker not in (original, "null")

    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=vbucket, Key="k")
    assert s3_error(exc) == (404, "NoSuchKey")
    assert error_headers(exc).get("x-amz-delete-marker") == "true"
    assert error_headers(exc).get("x-amz-version-id") == marker

    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=vbucket, Key="k")
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert error_headers(exc).get("x-amz-delete-marker") == "true"
    assert error_headers(exc).get("x-amz-version-id") == marker

    assert versions_of(s3, vbucket) == [("version", "k", original, False), ("marker", "k", marker, True)]
    assert "Contents" not in s3.list_objects_v2(Bucket=vbucket)
    # The data is still there under its version id.
    assert body_of(s3, vbucket, "k", VersionId=original) == b"kept"


def test_a_second_delete_writes_a_second_marker(s3, vbucket: str) -> None:
    s3.put_object(Bucket=vbucket, Key="k", Body=b"x")
    first = s3.delete_object(Bucket=vbucket, Key="k")["VersionId"]
    second = s3.delete_object(Bucket=vbucket, Key="k")
    assert second["DeleteMarker"] is True
    assert second["VersionId"] != first
    root = raw_list_versions(s3, vbucket)
    assert [(kind, vid, latest) for kind, _, vid, latest in raw_entries(root)][:2] == [
        ("marker", second["VersionId"], True),
        ("marker", first, False),
    ]


def test_delete_of_a_key_that_never_existed_still_writes_a_marker(s3, vbucket: str) -> None:
    deleted = s3.delete_object(Bucket=vbucket, Key="ghost")
    assert deleted["DeleteMarker"] is True
    assert versions_of(s3, vbucket) == [("marker", "ghost", deleted["VersionId"], True)]


@pytest.mark.parametrize("method", ["get", "head"])
def test_get_or_head_by_the_version_id_of_a_delete_marker_is_method_not_allowed(
    s3, vbucket: str, method: str
) -> None:
    s3.put_object(Bucket=vbucket, Key="k", Body=b"x")
    marker = s3.delete_object(Bucket=vbucket, Key="k")["VersionId"]
    call = s3.get_object if method == "get" else s3.head_object
    with pytest.raises(ClientError) as exc:
        call(Bucket=vbucket, Key="k", VersionId=marker)
    status, code = s3_error(exc)
    assert status == 405
    if method == "get":
        assert code == "MethodNotAllowed"
    headers = error_headers(exc)
    assert headers.get("x-amz-delete-marker") == "true"
    assert headers.get("x-amz-version-id") == marker
    assert "last-modified" in headers  # documented: "405 ... and the Last-Modified: timestamp header"


def test_deleting_the_delete_marker_restores_the_object(s3, vbucket: str) -> None:
    original = s3.put_object(Bucket=vbucket, Key="k", Body=b"back again")["VersionId"]
    marker = s3.delete_object(Bucket=vbucket, Key="k")["VersionId"]
    undeleted = s3.delete_object(Bucket=vbucket, Key="k", VersionId=marker)
    assert undeleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert undeleted["DeleteMarker"] is True
    assert undeleted["VersionId"] == marker
    got = s3.get_object(Bucket=vbucket, Key="k")
    assert got["Body"].read() == b"back again"
    assert got["VersionId"] == original
    assert versions_of(s3, vbucket) == [("version", "k", original, True)]
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=vbucket)["Contents"]] == ["k"]


def test_delete_objects_with_version_ids_removes_versions_and_markers(s3, vbucket: str) -> None:
    a1 = s3.put_object(Bucket=vbucket, Key="a", Body=b"a1")["VersionId"]
    a2 = s3.put_object(Bucket=vbucket, Key="a", Body=b"a2")["VersionId"]
    s3.put_object(Bucket=vbucket, Key="b", Body=b"b1")
    b_marker = s3.delete_object(Bucket=vbucket, Key="b")["VersionId"]
    s3.put_object(Bucket=vbucket, Key="c", Body=b"c1")

    result = s3.delete_objects(
        Bucket=vbucket,
        Delete={
            "Objects": [
                {"Key": "a", "VersionId": a2},  # the latest version: a1 becomes current
                {"Key": "b", "VersionId": b_marker},  # the marker: b is back
                {"Key": "c"},  # no version: a new marker
            ]
        },
    )
    assert "Errors" not in result
    deleted = {d["Key"]: d for d in result["Deleted"]}
    assert set(deleted) == {"a", "b", "c"}
    assert deleted["a"]["VersionId"] == a2
    assert not deleted["a"].get("DeleteMarker")
    assert deleted["b"]["VersionId"] == b_marker
    assert deleted["b"]["DeleteMarker"] is True
    assert deleted["b"]["DeleteMarkerVersionId"] == b_marker
    assert deleted["c"]["DeleteMarker"] is True
    c_marker = deleted["c"]["DeleteMarkerVersionId"]
    assert c_marker and "VersionId" not in deleted["c"]

    assert body_of(s3, vbucket, "a") == b"a1"
    assert s3.head_object(Bucket=vbucket, Key="a")["VersionId"] == a1
    assert body_of(s3, vbucket, "b") == b"b1"
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=vbucket, Key="c")
    assert s3_error(exc) == (404, "NoSuchKey")
    assert error_headers(exc).get("x-amz-version-id") == c_marker
    markers = [e for e in versions_of(s3, vbucket) if e[0] == "marker"]
    assert markers == [("marker", "c", c_marker, True)]


def test_delete_objects_quiet_with_version_ids_reports_nothing_and_deletes(s3, vbucket: str) -> None:
    ids = [s3.put_object(Bucket=vbucket, Key=f"k{i}", Body=b"x")["VersionId"] for i in range(3)]
    result = s3.delete_objects(
        Bucket=vbucket,
        Delete={"Objects": [{"Key": f"k{i}", "VersionId": v} for i, v in enumerate(ids)], "Quiet": True},
    )
    assert "Deleted" not in result and "Errors" not in result
    assert versions_of(s3, vbucket) == []


# ---------------------------------------------------------------- CopyObject source version


def test_copy_object_with_a_source_version_id_copies_that_old_version(s3, vbucket: str) -> None:
    old = s3.put_object(Bucket=vbucket, Key="src", Body=b"old bytes", ContentType="text/old")["VersionId"]
    s3.put_object(Bucket=vbucket, Key="src", Body=b"new bytes", ContentType="text/new")
    copied = s3.copy_object(
        Bucket=vbucket, Key="dst", CopySource={"Bucket": vbucket, "Key": "src", "VersionId": old}
    )
    assert copied["CopySourceVersionId"] == old
    new_version = copied["VersionId"]
    assert new_version and new_version != old
    got = s3.get_object(Bucket=vbucket, Key="dst")
    assert got["Body"].read() == b"old bytes"
    assert got["ContentType"] == "text/old"
    assert got["VersionId"] == new_version
    # Without a version id the copy takes the current version, and says which one that was.
    current = s3.head_object(Bucket=vbucket, Key="src")["VersionId"]
    latest_copy = s3.copy_object(Bucket=vbucket, Key="dst2", CopySource={"Bucket": vbucket, "Key": "src"})
    assert latest_copy["CopySourceVersionId"] == current
    assert body_of(s3, vbucket, "dst2") == b"new bytes"


def test_copy_object_restoring_an_old_version_over_the_same_key(s3, vbucket: str) -> None:
    old = s3.put_object(Bucket=vbucket, Key="k", Body=b"v1")["VersionId"]
    s3.put_object(Bucket=vbucket, Key="k", Body=b"v2")
    copied = s3.copy_object(
        Bucket=vbucket, Key="k", CopySource={"Bucket": vbucket, "Key": "k", "VersionId": old}
    )
    assert body_of(s3, vbucket, "k") == b"v1"
    assert [e[2] for e in versions_of(s3, vbucket)][0] == copied["VersionId"]
    assert len(versions_of(s3, vbucket)) == 3


def test_copy_object_from_a_delete_marker(s3, vbucket: str) -> None:
    s3.put_object(Bucket=vbucket, Key="src", Body=b"x")
    marker = s3.delete_object(Bucket=vbucket, Key="src")["VersionId"]
    # The current version is a marker: the source does not exist.
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=vbucket, Key="dst", CopySource={"Bucket": vbucket, "Key": "src"})
    assert s3_error(exc) == (404, "NoSuchKey")
    # Naming the marker by version id: InvalidRequest, as AWS answers.
    with pytest.raises(ClientError) as exc:
        s3.copy_object(
            Bucket=vbucket, Key="dst", CopySource={"Bucket": vbucket, "Key": "src", "VersionId": marker}
        )
    assert s3_error(exc) == (400, "InvalidRequest")
    assert "delete marker" in exc.value.response["Error"]["Message"]


# ---------------------------------------------------------------- the null version


def test_unversioned_bucket_objects_are_the_null_version(s3, plain_bucket: str) -> None:
    put = s3.put_object(Bucket=plain_bucket, Key="k", Body=b"one")
    assert "VersionId" not in put
    assert "VersionId" not in s3.head_object(Bucket=plain_bucket, Key="k")
    s3.put_object(Bucket=plain_bucket, Key="k", Body=b"two")  # overwrites: still one version
    assert versions_of(s3, plain_bucket) == [("version", "k", "null", True)]
    assert body_of(s3, plain_bucket, "k", VersionId="null") == b"two"
    assert s3.head_object(Bucket=plain_bucket, Key="k", VersionId="null")["ContentLength"] == 3
    deleted = s3.delete_object(Bucket=plain_bucket, Key="k")
    assert "DeleteMarker" not in deleted and "VersionId" not in deleted
    assert versions_of(s3, plain_bucket) == []  # no marker in an unversioned bucket


def test_delete_by_version_id_null_in_an_unversioned_bucket_deletes_the_object(s3, plain_bucket: str) -> None:
    s3.put_object(Bucket=plain_bucket, Key="k", Body=b"x")
    s3.delete_object(Bucket=plain_bucket, Key="k", VersionId="null")
    assert versions_of(s3, plain_bucket) == []


def test_object_written_before_enabling_keeps_the_null_version(s3, plain_bucket: str) -> None:
    s3.put_object(Bucket=plain_bucket, Key="k", Body=b"before")
    enable(s3, plain_bucket)
    assert versions_of(s3, plain_bucket) == [("version", "k", "null", True)]
    assert s3.head_object(Bucket=plain_bucket, Key="k")["VersionId"] == "null"
    after = s3.put_object(Bucket=plain_bucket, Key="k", Body=b"after")["VersionId"]
    assert after != "null"
    assert versions_of(s3, plain_bucket) == [("version", "k", after, True), ("version", "k", "null", False)]
    got = s3.get_object(Bucket=plain_bucket, Key="k", VersionId="null")
    assert got["Body"].read() == b"before"
    assert got["VersionId"] == "null"
    assert body_of(s3, plain_bucket, "k") == b"after"


def test_suspended_puts_replace_the_null_version_and_keep_real_versions(s3, vbucket: str) -> None:
    v1 = s3.put_object(Bucket=vbucket, Key="k", Body=b"v1")["VersionId"]
    v2 = s3.put_object(Bucket=vbucket, Key="k", Body=b"v2")["VersionId"]
    suspend(s3, vbucket)
    s3.put_object(Bucket=vbucket, Key="k", Body=b"s1")
    assert versions_of(s3, vbucket) == [
        ("version", "k", "null", True),
        ("version", "k", v2, False),
        ("version", "k", v1, False),
    ]
    s3.put_object(Bucket=vbucket, Key="k", Body=b"s2")  # replaces the null version
    assert versions_of(s3, vbucket) == [
        ("version", "k", "null", True),
        ("version", "k", v2, False),
        ("version", "k", v1, False),
    ]
    assert body_of(s3, vbucket, "k") == b"s2"
    assert body_of(s3, vbucket, "k", VersionId="null") == b"s2"
    assert s3.head_object(Bucket=vbucket, Key="k")["VersionId"] == "null"
    assert body_of(s3, vbucket, "k", VersionId=v1) == b"v1"


def test_suspended_put_replaces_a_null_version_that_is_not_the_latest(s3, plain_bucket: str) -> None:
    s3.put_object(Bucket=plain_bucket, Key="k", Body=b"null-old")
    enable(s3, plain_bucket)
    v1 = s3.put_object(Bucket=plain_bucket, Key="k", Body=b"v1")["VersionId"]
    suspend(s3, plain_bucket)
    s3.put_object(Bucket=plain_bucket, Key="k", Body=b"null-new")
    # Only one null version per key: the old one (below v1) is gone.
    assert versions_of(s3, plain_bucket) == [("version", "k", "null", True), ("version", "k", v1, False)]
    assert body_of(s3, plain_bucket, "k", VersionId="null") == b"null-new"


def test_suspended_delete_writes_a_null_marker_that_replaces_the_null_version(s3, vbucket: str) -> None:
    v1 = s3.put_object(Bucket=vbucket, Key="k", Body=b"v1")["VersionId"]
    suspend(s3, vbucket)
    s3.put_object(Bucket=vbucket, Key="k", Body=b"null data")
    deleted = s3.delete_object(Bucket=vbucket, Key="k")
    assert deleted["DeleteMarker"] is True
    assert deleted["VersionId"] == "null"
    assert versions_of(s3, vbucket) == [("version", "k", v1, False), ("marker", "k", "null", True)]
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=vbucket, Key="k")
    assert s3_error(exc) == (404, "NoSuchKey")
    assert error_headers(exc).get("x-amz-delete-marker") == "true"
    assert error_headers(exc).get("x-amz-version-id") == "null"
    # "null" now names the marker, and the null object's data is gone.
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=vbucket, Key="k", VersionId="null")
    assert s3_error(exc) == (405, "MethodNotAllowed")
    # Deleting the null marker brings back v1.
    undeleted = s3.delete_object(Bucket=vbucket, Key="k", VersionId="null")
    assert undeleted["DeleteMarker"] is True
    assert undeleted["VersionId"] == "null"
    assert body_of(s3, vbucket, "k") == b"v1"
    assert versions_of(s3, vbucket) == [("version", "k", v1, True)]


def test_suspended_delete_over_a_real_version_keeps_it_below_a_null_marker(s3, vbucket: str) -> None:
    v1 = s3.put_object(Bucket=vbucket, Key="k", Body=b"v1")["VersionId"]
    suspend(s3, vbucket)
    s3.delete_object(Bucket=vbucket, Key="k")
    s3.delete_object(Bucket=vbucket, Key="k")  # a second null marker replaces the first
    assert versions_of(s3, vbucket) == [("version", "k", v1, False), ("marker", "k", "null", True)]


def test_suspended_delete_by_version_id_removes_that_version(s3, vbucket: str) -> None:
    v1 = s3.put_object(Bucket=vbucket, Key="k", Body=b"v1")["VersionId"]
    v2 = s3.put_object(Bucket=vbucket, Key="k", Body=b"v2")["VersionId"]
    suspend(s3, vbucket)
    deleted = s3.delete_object(Bucket=vbucket, Key="k", VersionId=v2)
    assert deleted["VersionId"] == v2 and not deleted.get("DeleteMarker")
    assert versions_of(s3, vbucket) == [("version", "k", v1, True)]


def test_re_enabling_after_suspend_keeps_the_null_version_among_real_ones(s3, vbucket: str) -> None:
    v1 = s3.put_object(Bucket=vbucket, Key="k", Body=b"v1")["VersionId"]
    suspend(s3, vbucket)
    s3.put_object(Bucket=vbucket, Key="k", Body=b"null")
    enable(s3, vbucket)
    v3 = s3.put_object(Bucket=vbucket, Key="k", Body=b"v3")["VersionId"]
    assert v3 not in (v1, "null")
    assert versions_of(s3, vbucket) == [
        ("version", "k", v3, True),
        ("version", "k", "null", False),
        ("version", "k", v1, False),
    ]
    assert body_of(s3, vbucket, "k", VersionId="null") == b"null"


# ---------------------------------------------------------------- deleting the bucket


def test_versioned_bucket_cannot_be_deleted_until_every_version_and_marker_is_gone(s3, bucket: str) -> None:
    enable(s3, bucket)
    version = s3.put_object(Bucket=bucket, Key="k", Body=b"x")["VersionId"]
    marker = s3.delete_object(Bucket=bucket, Key="k")["VersionId"]
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)
    with pytest.raises(ClientError) as exc:
        s3.delete_bucket(Bucket=bucket)
    assert s3_error(exc) == (409, "BucketNotEmpty")
    s3.delete_object(Bucket=bucket, Key="k", VersionId=version)
    with pytest.raises(ClientError) as exc:  # the marker alone still counts
        s3.delete_bucket(Bucket=bucket)
    assert s3_error(exc) == (409, "BucketNotEmpty")
    s3.delete_object(Bucket=bucket, Key="k", VersionId=marker)
    s3.delete_bucket(Bucket=bucket)
    with pytest.raises(ClientError) as exc:
        s3.head_bucket(Bucket=bucket)
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


# ---------------------------------------------------------------- ListObjectVersions, directly


def test_list_versions_interleaves_markers_and_versions_newest_first(s3, vbucket: str) -> None:
    v1 = s3.put_object(Bucket=vbucket, Key="k", Body=b"1")["VersionId"]
    m1 = s3.delete_object(Bucket=vbucket, Key="k")["VersionId"]
    v2 = s3.put_object(Bucket=vbucket, Key="k", Body=b"2")["VersionId"]
    m2 = s3.delete_object(Bucket=vbucket, Key="k")["VersionId"]
    j1 = s3.put_object(Bucket=vbucket, Key="j", Body=b"j")["VersionId"]
    root = raw_list_versions(s3, vbucket)
    assert raw_entries(root) == [
        ("version", "j", j1, True),
        ("marker", "k", m2, True),
        ("version", "k", v2, False),
        ("marker", "k", m1, False),
        ("version", "k", v1, False),
    ]
    assert root.findtext(f"{S3_NS}Name") == vbucket
    assert root.findtext(f"{S3_NS}IsTruncated") == "false"
    assert root.findtext(f"{S3_NS}MaxKeys") == "1000"
    # Versions carry ETag and Size; markers do not.
    page = s3.list_object_versions(Bucket=vbucket)
    sizes = {(v["Key"], v["VersionId"]): (v["Size"], v["ETag"]) for v in page["Versions"]}
    assert sizes[("k", v2)] == (1, '"c81e728d9d4c2f636f067f89cc14862c"')
    assert all("Size" not in m and "ETag" not in m for m in page["DeleteMarkers"])


def test_list_versions_key_marker_alone_starts_after_that_key(s3, vbucket: str) -> None:
    for key in ("a", "a", "b", "b", "c"):
        s3.put_object(Bucket=vbucket, Key=key, Body=b"x")
    s3.delete_object(Bucket=vbucket, Key="c")
    listed = versions_of(s3, vbucket, KeyMarker="a")
    assert sorted({key for _, key, _, _ in listed}) == ["b", "c"]
    assert len(listed) == 4
    assert versions_of(s3, vbucket, KeyMarker="b") == [e for e in listed if e[1] == "c"]
    assert versions_of(s3, vbucket, KeyMarker="c") == []


def test_list_versions_version_id_marker_starts_after_that_version(s3, vbucket: str) -> None:
    a = [s3.put_object(Bucket=vbucket, Key="a", Body=b"x")["VersionId"] for _ in range(3)]
    b = s3.put_object(Bucket=vbucket, Key="b", Body=b"x")["VersionId"]
    # Newest first: a[2], a[1], a[0]; after a[1] come a[0] then b.
    assert versions_of(s3, vbucket, KeyMarker="a", VersionIdMarker=a[1]) == [
        ("version", "a", a[0], False),
        ("version", "b", b, True),
    ]
    assert versions_of(s3, vbucket, KeyMarker="a", VersionIdMarker=a[0]) == [("version", "b", b, True)]


def test_list_versions_version_id_marker_without_key_marker_is_invalid_argument(s3, vbucket: str) -> None:
    version = s3.put_object(Bucket=vbucket, Key="a", Body=b"x")["VersionId"]
    with pytest.raises(ClientError) as exc:
        s3.list_object_versions(Bucket=vbucket, VersionIdMarker=version)
    assert s3_error(exc) == (400, "InvalidArgument")


def test_list_versions_pagination_through_a_null_version_uses_null_as_the_marker(s3, vbucket: str) -> None:
    v1 = s3.put_object(Bucket=vbucket, Key="p", Body=b"1")["VersionId"]
    suspend(s3, vbucket)
    s3.put_object(Bucket=vbucket, Key="p", Body=b"null")
    enable(s3, vbucket)
    v3 = s3.put_object(Bucket=vbucket, Key="p", Body=b"3")["VersionId"]
    first = s3.list_object_versions(Bucket=vbucket, MaxKeys=2)
    assert [v["VersionId"] for v in first["Versions"]] == [v3, "null"]
    assert first["IsTruncated"] is True
    assert first["NextKeyMarker"] == "p"
    assert first["NextVersionIdMarker"] == "null"
    second = s3.list_object_versions(
        Bucket=vbucket, MaxKeys=2, KeyMarker=first["NextKeyMarker"], VersionIdMarker="null"
    )
    assert [v["VersionId"] for v in second["Versions"]] == [v1]
    assert second["IsTruncated"] is False
    assert second["KeyMarker"] == "p" and second["VersionIdMarker"] == "null"
    assert "NextKeyMarker" not in second and "NextVersionIdMarker" not in second


@pytest.mark.parametrize("max_keys", [1, 2, 3, 5])
def test_list_versions_pages_cover_every_entry_once_in_order(s3, vbucket: str, max_keys: int) -> None:
    for key in ("a", "b", "c"):
        for i in range(3):
            s3.put_object(Bucket=vbucket, Key=key, Body=f"{key}{i}".encode())
        if key != "c":
            s3.delete_object(Bucket=vbucket, Key=key)
    everything = raw_entries(raw_list_versions(s3, vbucket))
    assert len(everything) == 11
    collected: list[tuple[str, str, str, bool]] = []
    params: dict[str, Any] = {"MaxKeys": max_keys}
    for _ in range(20):
        root = raw_list_versions(s3, vbucket, **params)
        entries = raw_entries(root)
        assert len(entries) <= max_keys
        collected += entries
        if root.findtext(f"{S3_NS}IsTruncated") == "false":
            assert root.find(f"{S3_NS}NextKeyMarker") is None
            break
        assert len(entries) == max_keys
        next_key = root.findtext(f"{S3_NS}NextKeyMarker")
        next_version = root.findtext(f"{S3_NS}NextVersionIdMarker")
        assert (next_key, next_version) == entries[-1][1:3]
        params = {"MaxKeys": max_keys, "KeyMarker": next_key, "VersionIdMarker": next_version}
    assert collected == everything


def test_list_versions_prefix_and_delimiter_group_common_prefixes(s3, vbucket: str) -> None:
    for key in ("dir/a", "dir/a", "dir/sub/b", "top", "other/x"):
        s3.put_object(Bucket=vbucket, Key=key, Body=b"x")
    s3.delete_object(Bucket=vbucket, Key="top")
    page = s3.list_object_versions(Bucket=vbucket, Delimiter="/")
    assert [p["Prefix"] for p in page["CommonPrefixes"]] == ["dir/", "other/"]
    assert [(v["Key"], v["IsLatest"]) for v in page["Versions"]] == [("top", False)]
    assert [(m["Key"], m["IsLatest"]) for m in page["DeleteMarkers"]] == [("top", True)]
    page = s3.list_object_versions(Bucket=vbucket, Prefix="dir/", Delimiter="/")
    assert page["Prefix"] == "dir/"
    assert [p["Prefix"] for p in page["CommonPrefixes"]] == ["dir/sub/"]
    assert [(v["Key"], v["IsLatest"]) for v in page["Versions"]] == [("dir/a", True), ("dir/a", False)]
    page = s3.list_object_versions(Bucket=vbucket, Prefix="dir/")
    assert [v["Key"] for v in page["Versions"]] == ["dir/a", "dir/a", "dir/sub/b"]
    assert "CommonPrefixes" not in page
    # A common prefix counts as one entry toward max-keys.
    page = s3.list_object_versions(Bucket=vbucket, Delimiter="/", MaxKeys=1)
    assert [p["Prefix"] for p in page["CommonPrefixes"]] == ["dir/"]
    assert "Versions" not in page and page["IsTruncated"] is True
    assert page["NextKeyMarker"] == "dir/"


# ---------------------------------------------------------------- the same history on moto


Op = tuple[str, str]  # (operation, key); ops: put, delete, delete-version:<label>, enable


HISTORY: list[Op] = [
    ("put", "a"),  # before versioning: the null version of a
    ("put", "dir/x"),  # null version of dir/x
    ("enable", ""),
    ("put", "a"),
    ("put", "a"),
    ("put", "b"),
    ("delete", "b"),
    ("put", "b"),
    ("put", "c"),
    ("delete", "c"),
    ("delete", "c"),
    ("put", "dir/x"),
    ("put", "dir/y"),
    ("put", "dir/sub/z"),
    ("delete-version", "a#1"),  # the first real version of a, noncurrent
    ("delete", "dir/y"),
    ("delete-version", "dir/y#2"),  # dir/y's marker: dir/y is back
    ("put", "e"),
    ("delete-version", "e#1"),  # the only version of e: e is gone without a marker
]


def play(client, bucket: str, history: list[Op]) -> dict[str, str]:
    """Run the history; returns version id -> label ("key#n", n counting the key's writes
    from 1 in the order they happened; null versions keep the label "null")."""
    labels: dict[str, str] = {"null": "null"}
    by_label: dict[str, str] = {}
    counts: dict[str, int] = {}

    def record(key: str, version_id: str | None) -> None:
        if version_id is None or version_id == "null":
            return
        counts[key] = counts.get(key, 0) + 1
        label = f"{key}#{counts[key]}"
        labels[version_id] = label
        by_label[label] = version_id

    for op, key in history:
        if op == "enable":
            enable(client, bucket)
        elif op == "put":
            record(key, client.put_object(Bucket=bucket, Key=key, Body=key.encode() * 2).get("VersionId"))
        elif op == "delete":
            record(key, client.delete_object(Bucket=bucket, Key=key).get("VersionId"))
        elif op == "delete-version":
            name = key.split("#")[0]
            client.delete_object(Bucket=bucket, Key=name, VersionId=by_label[key])
        else:
            raise AssertionError(op)
    return labels


def shape(page: dict, labels: dict[str, str]) -> dict[str, Any]:
    """A ListObjectVersions page with version ids replaced by their labels."""

    def label(version_id: str | None) -> str | None:
        return None if version_id is None else labels.get(version_id, f"unknown:{version_id}")

    return {
        "Versions": [
            (v["Key"], label(v["VersionId"]), v["IsLatest"], v["Size"]) for v in page.get("Versions", [])
        ],
        "DeleteMarkers": [
            (m["Key"], label(m["VersionId"]), m["IsLatest"]) for m in page.get("DeleteMarkers", [])
        ],
        "CommonPrefixes": [p["Prefix"] for p in page.get("CommonPrefixes", [])],
        "IsTruncated": page["IsTruncated"],
        "NextKeyMarker": page.get("NextKeyMarker"),
        "NextVersionIdMarker": label(page.get("NextVersionIdMarker")),
    }


def walk(client, bucket: str, labels: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    """Every page, following NextKeyMarker / NextVersionIdMarker by hand."""
    pages = []
    query = dict(params)
    for _ in range(40):
        page = client.list_object_versions(Bucket=bucket, **query)
        pages.append(shape(page, labels))
        if not page["IsTruncated"]:
            return pages
        query = dict(params, KeyMarker=page["NextKeyMarker"])
        if page.get("NextVersionIdMarker"):
            query["VersionIdMarker"] = page["NextVersionIdMarker"]
    raise AssertionError("listing never ended")


@pytest.fixture
def moto_s3(moto_url: str):
    return moto_client(moto_url)


@pytest.fixture
def both(s3, moto_s3) -> Iterator[dict[str, tuple[Any, str, dict[str, str]]]]:
    """The HISTORY played on Folio and on moto: name -> (client, bucket, version labels)."""
    name = f"vers-{uuid.uuid4().hex[:16]}"
    out: dict[str, tuple[Any, str, dict[str, str]]] = {}
    for client in (s3, moto_s3):
        client.create_bucket(Bucket=name)
    try:
        for server, client in (("folio", s3), ("moto", moto_s3)):
            out[server] = (client, name, play(client, name, HISTORY))
        yield out
    finally:
        for client in (s3, moto_s3):
            try:
                purge_versions(client, name)
                client.delete_bucket(Bucket=name)
            except Exception:  # noqa: BLE001 - cleanup must not mask the test's own result
                pass


LISTINGS: list[dict[str, Any]] = [
    {},
    {"Prefix": "dir/"},
    {"Delimiter": "/"},
    {"Prefix": "dir/", "Delimiter": "/"},
    {"Prefix": "c"},
    {"MaxKeys": 1},
    {"MaxKeys": 2},
    {"MaxKeys": 3},
    {"Prefix": "dir/", "MaxKeys": 2},
]


def test_version_listing_matches_moto_for_the_same_history(
    both: dict[str, tuple[Any, str, dict[str, str]]],
) -> None:
    folio_client, name, folio_labels = both["folio"]
    moto_client, _, moto_labels = both["moto"]
    # Every write got a version id on both servers (the labels agree by construction).
    assert sorted(folio_labels.values()) == sorted(moto_labels.values())
    for params in LISTINGS:
        got = walk(folio_client, name, folio_labels, **params)
        expected = walk(moto_client, name, moto_labels, **params)
        assert got == expected, f"ListObjectVersions {params}"
    # The full listing, spelled out, so that a shared mistake would show too.
    full = walk(folio_client, name, folio_labels)[0]
    assert full["Versions"] == [
        (key, label, latest, 2 * len(key))
        for key, label, latest in [
            ("a", "a#2", True),
            ("a", "null", False),
            ("b", "b#3", True),
            ("b", "b#1", False),
            ("c", "c#1", False),
            ("dir/sub/z", "dir/sub/z#1", True),
            ("dir/x", "dir/x#1", True),
            ("dir/x", "null", False),
            ("dir/y", "dir/y#1", True),
        ]
    ]
    assert full["CommonPrefixes"] == [] and full["IsTruncated"] is False
    assert full["DeleteMarkers"] == [("b", "b#2", False), ("c", "c#3", True), ("c", "c#2", False)]


def test_get_bucket_versioning_matches_moto(s3, moto_s3, bucket: str) -> None:
    name = f"vers-{uuid.uuid4().hex[:16]}"
    moto_s3.create_bucket(Bucket=name)
    try:
        seen: list[tuple[dict, dict]] = []
        for status in (None, "Enabled", "Suspended", "Enabled"):
            if status:
                for client, b in ((s3, bucket), (moto_s3, name)):
                    client.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": status})
            folio_conf = s3.get_bucket_versioning(Bucket=bucket)
            moto_conf = moto_s3.get_bucket_versioning(Bucket=name)
            folio_conf.pop("ResponseMetadata")
            moto_conf.pop("ResponseMetadata")
            seen.append((folio_conf, moto_conf))
        assert [f for f, _ in seen] == [m for _, m in seen]
    finally:
        moto_s3.delete_bucket(Bucket=name)
