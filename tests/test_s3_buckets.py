"""Bucket operations through boto3 against the real server: naming rules, ownership of the
global name space, location, head, delete, listing, the per-account bucket limit, and the
501 answer for every operation Folio does not implement."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.conftest import make_s3_client
from tests.folio_process import FolioProcess


def s3_error(exc: pytest.ExceptionInfo[ClientError]) -> tuple[int, str]:
    """(HTTP status, S3 error code) of a failed boto3 call."""
    response = exc.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]


def status_of(response: dict) -> int:
    return response["ResponseMetadata"]["HTTPStatusCode"]


def unique_name(prefix: str = "bkt") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


def bucket_names(client) -> list[str]:
    return [b["Name"] for b in client.list_buckets()["Buckets"]]


@pytest.fixture(scope="module")
def other_account(folio: FolioProcess) -> dict:
    return folio.create_account(f"buckets-{uuid.uuid4().hex[:8]}@example.com")


@pytest.fixture(scope="module")
def other_s3(folio: FolioProcess, other_account: dict):
    return make_s3_client(folio, other_account["accessKey"], other_account["secretKey"])


@pytest.fixture
def make_bucket(s3) -> Iterator[Callable[..., str]]:
    """Creates buckets with any CreateBucket arguments and removes them afterwards."""
    made: list[str] = []

    def create(name: str | None = None, **kwargs) -> str:
        name = name or unique_name()
        s3.create_bucket(Bucket=name, **kwargs)
        made.append(name)
        return name

    yield create
    for name in made:
        try:
            for o in s3.list_objects_v2(Bucket=name).get("Contents", []):
                s3.delete_object(Bucket=name, Key=o["Key"])
            s3.delete_bucket(Bucket=name)
        except ClientError:
            pass


# ---------------------------------------------------------------- create


def test_create_bucket_answers_200_with_location(s3) -> None:
    name = unique_name()
    response = s3.create_bucket(Bucket=name)
    try:
        assert status_of(response) == 200
        assert response["Location"] == f"/{name}"
        assert name in bucket_names(s3)
    finally:
        s3.delete_bucket(Bucket=name)


BAD_NAMES = [
    "ab",
    "UPPER",
    "Mixed-case",
    "has_underscore",
    "-start",
    "end-",
    ".dot-start",
    "dot-end.",
    "192.168.1.1",
    "a..b",
    "a.-b",
    "a-.b",
    "a" * 64,
    "xn--punycode",
    "name-s3alias",
]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_bucket_name_is_invalid_bucket_name(s3, name: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3.create_bucket(Bucket=name)
    assert s3_error(exc) == (400, "InvalidBucketName")
    assert name not in bucket_names(s3)


# Names are global per server: each shape gets a random part.
GOOD_NAME_SHAPES: dict[str, Callable[[str], str]] = {
    "three-chars": lambda rnd: rnd[:3],
    "sixty-three-chars": lambda rnd: rnd[:8] + "a" * 55,
    "dots": lambda rnd: f"with.dots.{rnd[:8]}",
    "digits-at-both-ends": lambda rnd: f"0-{rnd[:8]}-9",
    "dots-and-hyphens": lambda rnd: f"a-b.c-d.{rnd[:8]}",
}


@pytest.mark.parametrize("shape", GOOD_NAME_SHAPES)
def test_good_bucket_names_at_the_edges_are_accepted(s3, make_bucket: Callable[..., str], shape: str) -> None:
    name = GOOD_NAME_SHAPES[shape](uuid.uuid4().hex)
    make_bucket(name)
    assert name in bucket_names(s3)


def test_another_accounts_bucket_name_is_bucket_already_exists(
    s3, other_s3, make_bucket: Callable[..., str]
) -> None:
    name = make_bucket()
    with pytest.raises(ClientError) as exc:
        other_s3.create_bucket(Bucket=name)
    assert s3_error(exc) == (409, "BucketAlreadyExists")
    assert name not in bucket_names(other_s3)
    assert name in bucket_names(s3)


def test_own_bucket_again_in_us_east_1_answers_200(s3, make_bucket: Callable[..., str]) -> None:
    name = make_bucket()
    s3.put_object(Bucket=name, Key="survives", Body=b"x")
    assert status_of(s3.create_bucket(Bucket=name)) == 200
    # Re-creating is a no-op: the contents are untouched.
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=name)["Contents"]] == ["survives"]
    assert bucket_names(s3).count(name) == 1


def test_own_bucket_again_in_another_region_is_bucket_already_owned_by_you(
    s3, make_bucket: Callable[..., str]
) -> None:
    name = make_bucket()
    with pytest.raises(ClientError) as exc:
        s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-central-1"})
    assert s3_error(exc) == (409, "BucketAlreadyOwnedByYou")


def test_location_constraint_is_kept_and_reported(s3, make_bucket: Callable[..., str]) -> None:
    name = make_bucket(CreateBucketConfiguration={"LocationConstraint": "eu-central-1"})
    assert s3.get_bucket_location(Bucket=name)["LocationConstraint"] == "eu-central-1"
    assert s3.head_bucket(Bucket=name)["BucketRegion"] == "eu-central-1"


def test_default_bucket_location_is_us_east_1_reported_as_empty(s3, make_bucket: Callable[..., str]) -> None:
    name = make_bucket()
    # AWS reports us-east-1 as a null LocationConstraint.
    assert s3.get_bucket_location(Bucket=name)["LocationConstraint"] is None
    assert s3.head_bucket(Bucket=name)["BucketRegion"] == "us-east-1"


def test_malformed_create_bucket_configuration_is_malformed_xml(folio: FolioProcess, s3) -> None:
    name = unique_name()
    client = make_s3_client(folio)

    def send_truncated_xml(params: dict, **_: object) -> None:
        # before-call: the checksum boto3 adds next is computed over these bytes.
        params["body"] = b"<CreateBucketConfiguration><LocationConstraint>eu-"

    client.meta.events.register("before-call.s3.CreateBucket", send_truncated_xml)
    with pytest.raises(ClientError) as exc:
        client.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    assert s3_error(exc) == (400, "MalformedXML")
    assert name not in bucket_names(s3)


# ---------------------------------------------------------------- head


def test_head_bucket_answers_200_for_own_bucket(s3, make_bucket: Callable[..., str]) -> None:
    assert status_of(s3.head_bucket(Bucket=make_bucket())) == 200


def test_head_of_missing_bucket_is_404(s3) -> None:
    with pytest.raises(ClientError) as exc:
        s3.head_bucket(Bucket=unique_name("missing"))
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_head_of_another_accounts_bucket_is_403(other_s3, make_bucket: Callable[..., str]) -> None:
    with pytest.raises(ClientError) as exc:
        other_s3.head_bucket(Bucket=make_bucket())
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


# ---------------------------------------------------------------- delete


def test_delete_empty_bucket_answers_204_and_frees_the_name(s3) -> None:
    name = unique_name()
    s3.create_bucket(Bucket=name)
    assert status_of(s3.delete_bucket(Bucket=name)) == 204
    assert name not in bucket_names(s3)
    with pytest.raises(ClientError) as exc:
        s3.head_bucket(Bucket=name)
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    # The name is free for anyone again.
    s3.create_bucket(Bucket=name)
    s3.delete_bucket(Bucket=name)


def test_delete_non_empty_bucket_is_bucket_not_empty(s3, make_bucket: Callable[..., str]) -> None:
    name = make_bucket()
    s3.put_object(Bucket=name, Key="dir/file", Body=b"x")
    with pytest.raises(ClientError) as exc:
        s3.delete_bucket(Bucket=name)
    assert s3_error(exc) == (409, "BucketNotEmpty")
    assert s3.get_object(Bucket=name, Key="dir/file")["Body"].read() == b"x"


def test_delete_missing_bucket_is_no_such_bucket(s3) -> None:
    with pytest.raises(ClientError) as exc:
        s3.delete_bucket(Bucket=unique_name("missing"))
    assert s3_error(exc) == (404, "NoSuchBucket")


def test_another_account_cannot_delete_a_bucket(s3, other_s3, make_bucket: Callable[..., str]) -> None:
    name = make_bucket()
    with pytest.raises(ClientError) as exc:
        other_s3.delete_bucket(Bucket=name)
    assert s3_error(exc) == (403, "AccessDenied")
    assert name in bucket_names(s3)


# ---------------------------------------------------------------- list


def test_list_buckets_shows_own_buckets_sorted_with_owner_and_dates(
    other_s3, other_account: dict, s3
) -> None:
    names = sorted(unique_name("listed") for _ in range(3))
    for name in reversed(names):
        other_s3.create_bucket(Bucket=name)
    try:
        response = other_s3.list_buckets()
        listed = [b["Name"] for b in response["Buckets"]]
        assert [n for n in listed if n in names] == names
        assert listed == sorted(listed)
        assert response["Owner"]["ID"] == other_account["canonicalId"]
        assert all(b["CreationDate"] is not None for b in response["Buckets"])
        assert not set(names) & set(bucket_names(s3))
    finally:
        for name in names:
            other_s3.delete_bucket(Bucket=name)


# ---------------------------------------------------------------- the bucket limit


@pytest.fixture(scope="module")
def limited_folio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FolioProcess]:
    """A server of its own whose accounts may hold 3 buckets."""
    data: Path = tmp_path_factory.mktemp("folio-limited") / "data"
    server = FolioProcess(data_dir=data, config_text="[plans.default]\nmax_buckets = 3\n")
    server.start()
    yield server
    server.stop()


def test_fourth_bucket_over_a_limit_of_three_is_too_many_buckets(limited_folio: FolioProcess) -> None:
    s3 = make_s3_client(limited_folio)
    names = [unique_name("lim") for _ in range(4)]
    for name in names[:3]:
        s3.create_bucket(Bucket=name)
    with pytest.raises(ClientError) as exc:
        s3.create_bucket(Bucket=names[3])
    assert s3_error(exc) == (400, "TooManyBuckets")
    assert sorted(bucket_names(s3)) == sorted(names[:3])

    # Re-creating one you own is not a new bucket.
    assert status_of(s3.create_bucket(Bucket=names[0])) == 200
    # Deleting one makes room again.
    s3.delete_bucket(Bucket=names[0])
    s3.create_bucket(Bucket=names[3])
    assert sorted(bucket_names(s3)) == sorted(names[1:])


def test_bucket_limit_is_per_account(limited_folio: FolioProcess) -> None:
    account = limited_folio.create_account(f"limit-{uuid.uuid4().hex[:8]}@example.com")
    s3 = make_s3_client(limited_folio, account["accessKey"], account["secretKey"])
    names = [unique_name("per") for _ in range(3)]
    for name in names:
        s3.create_bucket(Bucket=name)
    assert sorted(bucket_names(s3)) == sorted(names)


# ---------------------------------------------------------------- not implemented

UNIMPLEMENTED: list[tuple[str, dict]] = [
    ("put_bucket_tagging", {"Tagging": {"TagSet": [{"Key": "k", "Value": "v"}]}}),
    ("get_bucket_tagging", {}),
    ("get_bucket_lifecycle_configuration", {}),
    ("get_bucket_website", {}),
    ("get_bucket_replication", {}),
    ("get_bucket_logging", {}),
    ("get_bucket_request_payment", {}),
    ("get_bucket_accelerate_configuration", {}),
    ("get_bucket_notification_configuration", {}),
    ("get_object_lock_configuration", {}),
    ("list_bucket_inventory_configurations", {}),
]


@pytest.mark.parametrize(("operation", "kwargs"), UNIMPLEMENTED, ids=[op for op, _ in UNIMPLEMENTED])
def test_unimplemented_bucket_operation_is_501_not_implemented(
    s3, make_bucket: Callable[..., str], operation: str, kwargs: dict
) -> None:
    name = make_bucket()
    with pytest.raises(ClientError) as exc:
        getattr(s3, operation)(Bucket=name, **kwargs)
    assert s3_error(exc) == (501, "NotImplemented")
    response = exc.value.response
    assert response["Error"]["Message"]
    assert response["ResponseMetadata"]["RequestId"]
    assert response["ResponseMetadata"]["HTTPHeaders"]["content-type"].startswith("application/xml")
    # The bucket is still there and still works.
    assert status_of(s3.head_bucket(Bucket=name)) == 200


UNIMPLEMENTED_OBJECT: list[tuple[str, dict]] = [
    ("put_object_tagging", {"Tagging": {"TagSet": [{"Key": "k", "Value": "v"}]}}),
    ("get_object_tagging", {}),
    ("get_object_torrent", {}),
    ("get_object_legal_hold", {}),
    ("get_object_retention", {}),
]


@pytest.mark.parametrize(
    ("operation", "kwargs"), UNIMPLEMENTED_OBJECT, ids=[op for op, _ in UNIMPLEMENTED_OBJECT]
)
def test_unimplemented_object_operation_is_501_not_implemented(
    s3, make_bucket: Callable[..., str], operation: str, kwargs: dict
) -> None:
    name = make_bucket()
    s3.put_object(Bucket=name, Key="obj", Body=b"x")
    with pytest.raises(ClientError) as exc:
        getattr(s3, operation)(Bucket=name, Key="obj", **kwargs)
    assert s3_error(exc) == (501, "NotImplemented")
    assert s3.get_object(Bucket=name, Key="obj")["Body"].read() == b"x"
