"""The aws CLI (v1, from PyPI) against Folio through `--endpoint-url`: the high-level
`s3` commands and `s3api head-object`, with exit codes and bytes compared exactly. Every
test runs over plain HTTP and over HTTPS (tests/transport.py; the CLI gets the test CA as
AWS_CA_BUNDLE)."""

from __future__ import annotations

import filecmp
import hashlib
import json
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import AwsRunner, new_bucket
from tests.folio_process import FolioProcess
from tests.transport import folio_over_both, s3_over_both  # noqa: F401 - every test: http and https


@pytest.fixture
def cli_bucket(s3) -> Iterator[str]:
    """A fresh bucket (made with boto3: `s3 mb` has its own test), removed afterwards if still there."""
    yield from new_bucket(s3, "cli")


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _make_tree(root: Path, count: int) -> None:
    for i in range(count):
        sub = root / f"dir{i % 5}" / ("deep" if i % 3 == 0 else "")
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"file-{i:03d}.txt").write_bytes(f"file {i}\n".encode() * (i % 17 + 1) + os.urandom(i % 50))


def test_mb_creates_a_bucket_that_ls_lists_and_rb_force_removes_with_its_objects(
    aws: AwsRunner, s3, tmp_path: Path
) -> None:
    name = f"cli-{uuid.uuid4().hex[:16]}"
    out = aws("s3", "mb", f"s3://{name}")
    assert f"make_bucket: {name}" in out.stdout
    try:
        assert name in aws("s3", "ls").stdout.split()
        for i in range(12):
            s3.put_object(Bucket=name, Key=f"d{i % 3}/k{i}", Body=b"x" * i)
        out = aws("s3", "rb", "--force", f"s3://{name}")
        assert f"remove_bucket: {name}" in out.stdout
        assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    finally:
        try:
            s3.delete_bucket(Bucket=name)
        except Exception:  # noqa: BLE001 - already removed when the test passed
            pass


def test_cp_round_trips_a_3mib_file_and_a_small_file_byte_for_byte(
    aws: AwsRunner, cli_bucket: str, tmp_path: Path
) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(3 * 1024 * 1024))
    small = tmp_path / "small.txt"
    small.write_bytes(b"hello from the aws cli\n")
    aws("s3", "cp", str(big), f"s3://{cli_bucket}/in/big.bin")
    aws("s3", "cp", str(small), f"s3://{cli_bucket}/in/small.txt")

    big_back = tmp_path / "big-back.bin"
    small_back = tmp_path / "small-back.txt"
    aws("s3", "cp", f"s3://{cli_bucket}/in/big.bin", str(big_back))
    aws("s3", "cp", f"s3://{cli_bucket}/in/small.txt", str(small_back))
    assert big_back.read_bytes() == big.read_bytes()
    assert small_back.read_bytes() == small.read_bytes()


def test_ls_lists_objects_and_common_prefixes_under_a_prefix(aws: AwsRunner, cli_bucket: str, s3) -> None:
    for key in ("photos/2024/a.jpg", "photos/2024/b.jpg", "photos/top.jpg", "docs/readme.md"):
        s3.put_object(Bucket=cli_bucket, Key=key, Body=b"0123456789")

    root = aws("s3", "ls", f"s3://{cli_bucket}")
    assert "PRE photos/" in root.stdout
    assert "PRE docs/" in root.stdout

    under = aws("s3", "ls", f"s3://{cli_bucket}/photos/")
    lines = [line.split() for line in under.stdout.splitlines() if line.strip()]
    assert ["PRE", "2024/"] in lines
    files = [parts[-1] for parts in lines if parts[0] != "PRE"]
    assert files == ["top.jpg"]
    assert [parts[-2] for parts in lines if parts[0] != "PRE"] == ["10"]

    recursive = aws("s3", "ls", "--recursive", f"s3://{cli_bucket}/photos/2")
    assert [line.split()[-1] for line in recursive.stdout.splitlines()] == [
        "photos/2024/a.jpg",
        "photos/2024/b.jpg",
    ]


def test_sync_of_200_files_up_and_back_down_is_byte_identical(
    aws: AwsRunner, cli_bucket: str, s3, tmp_path: Path
) -> None:
    up = tmp_path / "up"
    _make_tree(up, 200)
    aws("s3", "sync", str(up), f"s3://{cli_bucket}/tree")

    keys = [
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=cli_bucket, Prefix="tree/")
        for o in page.get("Contents", [])
    ]
    assert sorted(keys) == sorted(f"tree/{name}" for name in _tree(up))

    # A second sync has nothing to do: sizes and times match what the server reports.
    again = aws("s3", "sync", str(up), f"s3://{cli_bucket}/tree")
    assert "upload:" not in again.stdout

    down = tmp_path / "down"
    aws("s3", "sync", f"s3://{cli_bucket}/tree", str(down))
    assert _tree(down) == _tree(up)
    comparison = filecmp.dircmp(up, down)
    assert not comparison.left_only and not comparison.right_only


def test_rm_recursive_removes_every_object_under_the_prefix(aws: AwsRunner, cli_bucket: str, s3) -> None:
    for i in range(30):
        s3.put_object(Bucket=cli_bucket, Key=f"gone/d{i % 4}/k{i}", Body=os.urandom(i))
    s3.put_object(Bucket=cli_bucket, Key="kept.txt", Body=b"kept")
    s3.put_object(Bucket=cli_bucket, Key="gone-not-under-the-prefix", Body=b"kept")

    aws("s3", "rm", "--recursive", f"s3://{cli_bucket}/gone")
    left = s3.list_objects_v2(Bucket=cli_bucket)
    assert [o["Key"] for o in left.get("Contents", [])] == ["gone-not-under-the-prefix", "kept.txt"]


def test_s3api_head_object_reports_size_etag_and_metadata(
    aws: AwsRunner, cli_bucket: str, tmp_path: Path
) -> None:
    src = tmp_path / "meta.bin"
    data = os.urandom(70_000)
    src.write_bytes(data)
    aws(
        "s3",
        "cp",
        str(src),
        f"s3://{cli_bucket}/meta.bin",
        "--content-type",
        "application/x-folio",
        "--metadata",
        "colour=blue",
    )
    out = aws("s3api", "head-object", "--bucket", cli_bucket, "--key", "meta.bin")
    head = json.loads(out.stdout)
    assert head["ContentLength"] == len(data)
    assert head["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    assert head["ContentType"] == "application/x-folio"
    assert head["Metadata"] == {"colour": "blue"}

    missing = aws("s3api", "head-object", "--bucket", cli_bucket, "--key", "absent", check=False)
    assert missing.returncode != 0
    assert "404" in missing.stderr


def test_cp_sends_its_bodies_in_the_payload_mode_of_the_transport(
    aws: AwsRunner, folio: FolioProcess, cli_bucket: str, tmp_path: Path
) -> None:
    # Over HTTPS the CLI, like boto3, sends bodies aws-chunked and unsigned with a trailing
    # checksum; over HTTP it signs them. Its --debug log shows the header it sent.
    src = tmp_path / "mode.bin"
    src.write_bytes(os.urandom(200_000))
    out = aws("--debug", "s3", "cp", str(src), f"s3://{cli_bucket}/mode.bin")
    sent = re.findall(r"'x-amz-content-sha256': b'([^']+)'", out.stderr, flags=re.IGNORECASE)
    assert sent, out.stderr[-2000:]
    if folio.tls:
        assert set(sent) == {"STREAMING-UNSIGNED-PAYLOAD-TRAILER"}
    else:
        assert "STREAMING-UNSIGNED-PAYLOAD-TRAILER" not in sent
    assert f"{folio.scheme}://127.0.0.1:{folio.s3_port}/{cli_bucket}/mode.bin" in out.stderr
    back = tmp_path / "back.bin"
    aws("s3", "cp", f"s3://{cli_bucket}/mode.bin", str(back))
    assert back.read_bytes() == src.read_bytes()
