"""Upgrading a data directory from before bucket policies (issue 14).

tests/fixtures/datadir-before-policies/data was written by commit 1d8b701, whose "public
bucket" was a boolean (set by the dashboard's switch or by CreateBucket with ACL
public-read) and whose public-read objects were a per-object flag. The current server
starts on a copy of it, and whatever an anonymous client could read before it can still
read, over S3 and `/api/img`; what it could not, it still cannot, and no listing opens up.
The boolean has become the public-read policy statement that GetBucketPolicy shows.

fixture.json beside the data records what the old server answered anonymously before
it stopped (see the fixture's README.md for how it was made).
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.conftest import make_s3_client
from tests.folio_process import ROOT_ACCESS_KEY, ROOT_SECRET_KEY, FolioProcess
from tests.test_s3_bucket_policy import grants_public_read, s3_error

pytestmark = pytest.mark.sqlite_only(
    reason="upgrades a SQLite data directory an old version wrote (PostgreSQL deployments start from folio migrate)"
)

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "datadir-before-policies"
META: dict[str, Any] = json.loads((FIXTURE / "fixture.json").read_text())
DASH_PUBLIC = "legacy-dash-public"  # made public with PATCH /api/buckets
ACL_PUBLIC = "legacy-acl-public"  # created over S3 with ACL public-read
PRIVATE = "legacy-private"  # private, with one public-read object (shared.png)
PUBLIC_BUCKETS = (DASH_PUBLIC, ACL_PUBLIC)


def _readable() -> list[tuple[str, str]]:
    return [(b, k) for b, info in META["buckets"].items() for k in info["anonymousReadable"]]


def _denied() -> list[tuple[str, str]]:
    return [(b, k) for b, info in META["buckets"].items() for k in info["anonymousDenied"]]


def _pngs(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(b, k) for b, k in pairs if k.endswith(".png")]


def test_fixture_is_what_the_old_server_made() -> None:
    # The fixture's own record: both public buckets and the one public-read object were
    # anonymously readable, the rest was not, and nothing could be listed.
    assert META["madeBy"] == "1d8b701"
    assert (META["root"]["accessKey"], META["root"]["secretKey"]) == (ROOT_ACCESS_KEY, ROOT_SECRET_KEY)
    assert sorted(_readable()) == sorted(
        [(DASH_PUBLIC, "notes.txt"), (DASH_PUBLIC, "photo.png")]
        + [(ACL_PUBLIC, "notes.txt"), (ACL_PUBLIC, "photo.png")]
        + [(PRIVATE, "shared.png")]
    )
    assert sorted(_denied()) == [(PRIVATE, "notes.txt"), (PRIVATE, "photo.png")]
    assert {b: info["anonymousList"] for b, info in META["buckets"].items()} == dict.fromkeys(
        META["buckets"], 403
    )
    assert (FIXTURE / "data" / "folio.db").is_file() and (FIXTURE / "data" / "master.key").is_file()
    assert not (FIXTURE / "data" / "folio.db-wal").exists()


@pytest.fixture(scope="module")
def upgraded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FolioProcess]:
    """The current server on a copy of the old data directory (the harness's root keys
    are the fixture's admin keys: the server finds its accounts and creates none)."""
    data = tmp_path_factory.mktemp("upgrade") / "data"
    shutil.copytree(FIXTURE / "data", data)
    (data / "master.key").chmod(0o600)
    server = FolioProcess(data_dir=data)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def owner_s3(upgraded: FolioProcess):
    owner = META["owner"]
    return make_s3_client(upgraded, owner["accessKey"], owner["secretKey"])


@pytest.fixture(scope="module")
def anon() -> Iterator[httpx.Client]:
    with httpx.Client(trust_env=False, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def dashboard(upgraded: FolioProcess) -> Iterator[httpx.Client]:
    owner = META["owner"]
    with httpx.Client(
        base_url=upgraded.web_url,
        trust_env=False,
        timeout=30,
        headers={"X-API-Key": f"{owner['accessKey']}:{owner['secretKey']}"},
    ) as client:
        yield client


def dashboard_flags(dashboard: httpx.Client) -> dict[str, bool]:
    listed = dashboard.get("/api/buckets")
    assert listed.status_code == 200, listed.text
    return {b["name"]: b["publicRead"] for b in listed.json()["buckets"]}


# ---------------------------------------------------------------- anonymous reads keep working


@pytest.mark.parametrize(("bucket", "key"), _readable())
def test_formerly_readable_objects_are_still_anonymously_readable_over_s3(
    upgraded: FolioProcess, anon: httpx.Client, bucket: str, key: str
) -> None:
    expected = META["buckets"][bucket]["objects"][key]
    got = anon.get(f"{upgraded.s3_url}/{bucket}/{key}")
    assert got.status_code == 200, got.text[:300]
    assert hashlib.sha256(got.content).hexdigest() == expected["sha256"]
    assert got.headers["content-type"] == expected["contentType"]
    head = anon.head(f"{upgraded.s3_url}/{bucket}/{key}")
    assert head.status_code == 200 and int(head.headers["content-length"]) == expected["size"]


@pytest.mark.parametrize(("bucket", "key"), _pngs(_readable()))
def test_formerly_readable_images_are_still_anonymously_transformed(
    upgraded: FolioProcess, anon: httpx.Client, bucket: str, key: str
) -> None:
    got = anon.get(f"{upgraded.web_url}/api/img/{bucket}/{key}?w=10")
    assert got.status_code == 200, got.text[:300]
    assert Image.open(io.BytesIO(got.content)).size[0] == 10


@pytest.mark.parametrize(("bucket", "key"), _denied())
def test_formerly_private_objects_are_still_refused(
    upgraded: FolioProcess, owner_s3, anon: httpx.Client, bucket: str, key: str
) -> None:
    for method in ("GET", "HEAD"):
        assert anon.request(method, f"{upgraded.s3_url}/{bucket}/{key}").status_code == 403, method
    if key.endswith(".png"):
        assert anon.get(f"{upgraded.web_url}/api/img/{bucket}/{key}?w=10").status_code == 403
    # Still there for their owner, intact.
    body = owner_s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == META["buckets"][bucket]["objects"][key]["sha256"]


def test_nothing_became_listable(upgraded: FolioProcess, anon: httpx.Client) -> None:
    # The old public switch opened objects, never the listing: the policy it became
    # must not widen that.
    listed = anon.get(f"{upgraded.s3_url}/{DASH_PUBLIC}", params={"list-type": "2"})
    assert listed.status_code == 403, listed.text
    assert anon.get(f"{upgraded.s3_url}/{DASH_PUBLIC}").status_code == 403
    assert anon.get(f"{upgraded.s3_url}/{PRIVATE}", params={"list-type": "2"}).status_code == 403


def test_owner_still_sees_every_bucket_and_object(owner_s3) -> None:
    names = {b["Name"] for b in owner_s3.list_buckets()["Buckets"]}
    assert names == set(META["buckets"])
    for bucket, info in META["buckets"].items():
        keys = {o["Key"] for o in owner_s3.list_objects_v2(Bucket=bucket).get("Contents", [])}
        assert keys == set(info["objects"]), bucket


# ---------------------------------------------------------------- the boolean became a policy


def test_dashboard_still_reports_which_buckets_are_public(dashboard: httpx.Client) -> None:
    flags = dashboard_flags(dashboard)
    assert flags == {DASH_PUBLIC: True, ACL_PUBLIC: True, PRIVATE: False}


@pytest.mark.parametrize("bucket", PUBLIC_BUCKETS)
def test_formerly_public_bucket_has_the_public_read_policy(owner_s3, bucket: str) -> None:
    policy = json.loads(owner_s3.get_bucket_policy(Bucket=bucket)["Policy"])
    statements = policy["Statement"]
    assert any(grants_public_read(s, bucket) for s in statements), policy
    assert owner_s3.get_bucket_policy_status(Bucket=bucket)["PolicyStatus"]["IsPublic"] is True


def test_private_bucket_got_no_policy(owner_s3) -> None:
    assert s3_error(lambda: owner_s3.get_bucket_policy(Bucket=PRIVATE)) == (404, "NoSuchBucketPolicy")


def test_migration_runs_once_a_restart_changes_nothing(
    upgraded: FolioProcess, owner_s3, anon: httpx.Client
) -> None:
    before = {b: owner_s3.get_bucket_policy(Bucket=b)["Policy"] for b in PUBLIC_BUCKETS}
    assert upgraded.stop() == 0
    upgraded.start()
    after = {b: owner_s3.get_bucket_policy(Bucket=b)["Policy"] for b in PUBLIC_BUCKETS}
    assert after == before
    assert s3_error(lambda: owner_s3.get_bucket_policy(Bucket=PRIVATE)) == (404, "NoSuchBucketPolicy")
    assert anon.get(f"{upgraded.s3_url}/{DASH_PUBLIC}/notes.txt").status_code == 200


def test_the_dashboard_switch_turns_a_migrated_bucket_private(
    upgraded: FolioProcess, owner_s3, anon: httpx.Client, dashboard: httpx.Client
) -> None:
    # The migrated statement is the one the switch manages: switching off removes it.
    patched = dashboard.patch("/api/buckets", json={"name": ACL_PUBLIC, "publicRead": False})
    assert patched.status_code == 200 and patched.json()["publicRead"] is False, patched.text
    assert s3_error(lambda: owner_s3.get_bucket_policy(Bucket=ACL_PUBLIC)) == (404, "NoSuchBucketPolicy")
    for key in META["buckets"][ACL_PUBLIC]["objects"]:
        assert anon.get(f"{upgraded.s3_url}/{ACL_PUBLIC}/{key}").status_code == 403, key
    assert dashboard_flags(dashboard)[ACL_PUBLIC] is False
    # The other migrated bucket is untouched.
    assert anon.get(f"{upgraded.s3_url}/{DASH_PUBLIC}/notes.txt").status_code == 200
