"""Shared fixtures: a real Folio server on loopback and clients that talk to it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from tests.folio_process import FolioProcess

# The shared test server allows many buckets: tests each make their own.
TEST_CONFIG = """
[limits]
max_buckets = 100000
"""


@pytest.fixture(scope="session")
def folio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FolioProcess]:
    """One server for the whole session (tests use their own buckets)."""
    server = FolioProcess(data_dir=tmp_path_factory.mktemp("folio") / "data", config_text=TEST_CONFIG)
    server.start()
    yield server
    server.stop()


def make_s3_client(
    server: FolioProcess, access_key: str | None = None, secret_key: str | None = None, **kwargs
):
    """boto3 with its default configuration, pointed at Folio."""
    return boto3.client(
        "s3",
        endpoint_url=server.s3_url,
        region_name="us-east-1",
        aws_access_key_id=access_key or server.access_key,
        aws_secret_access_key=secret_key or server.secret_key,
        **kwargs,
    )


@pytest.fixture(scope="session")
def s3(folio: FolioProcess):
    return make_s3_client(folio)


@pytest.fixture
def bucket(s3) -> Iterator[str]:
    """A fresh empty bucket, emptied and removed after the test."""
    name = f"test-{uuid.uuid4().hex[:16]}"
    s3.create_bucket(Bucket=name)
    yield name
    try:
        paginator = s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=name):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                s3.delete_objects(Bucket=name, Delete={"Objects": keys, "Quiet": True})
        s3.delete_bucket(Bucket=name)
    except Exception:  # noqa: BLE001 - cleanup must not mask the test's own result
        pass


@pytest.fixture
def tmp_files(tmp_path: Path) -> Path:
    return tmp_path
