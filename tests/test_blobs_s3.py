"""Blobs on an upstream S3 (`[blobs] backend = "s3"`, issue 18), against a real Folio on a real
SeaweedFS and on moto (tests/seaweedfs.py), looked at from both sides: boto3 through Folio, and
boto3 on the upstream bucket behind Folio's back.

What is checked: bytes of every size class read back whole and by range (inline ones never reach
the upstream); upstream keys are `<prefix><32 hex>` and never a user's key; a blob larger than
one part goes up as a multipart upload; copies and multipart Completes share blobs (no new
upstream object); a blob whose count reaches zero is deleted upstream after the grace; `folio gc`
sweeps unreferenced upstream blobs and stale multipart uploads older than the grace and keeps the
rest; an upstream object changed behind Folio's back is never served (the response breaks off)
and `folio check` names it; a 200 MiB PUT and GET keep the server's memory bounded; /healthz
reports the upstream.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError

from tests.conftest import TEST_CONFIG, make_s3_client
from tests.folio_process import FolioProcess
from tests.seaweedfs import UPSTREAMS, blobs_section, client, new_bucket
from tests.test_integrity import BODY_ERRORS, folio_check, read_until_it_breaks

MIB = 1024 * 1024
PREFIX = "folio-blobs/"
GRACE = 4  # [storage] gc_grace_seconds of these servers
BLOB_KEY = re.compile(rf"^{re.escape(PREFIX)}[0-9a-f]{{32}}$")
# Unversioned buckets: a delete frees the blob at once (versioned ones keep it as history).
CONFIG = TEST_CONFIG + f'\n[storage]\ngc_grace_seconds = {GRACE}\n\n[versioning]\nnew_buckets = "Off"\n'


@dataclass
class Setup:
    """A Folio whose blobs live in `bucket` on the upstream `name`, and boto3 on both."""

    name: str
    server: FolioProcess
    bucket: str
    upstream: object  # boto3 on the upstream bucket itself

    @property
    def s3(self):  # noqa: ANN201 - boto3's client type
        return make_s3_client(self.server)

    def upstream_objects(self) -> dict[str, dict]:
        found: dict[str, dict] = {}
        for page in self.upstream.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            for item in page.get("Contents", []):
                found[item["Key"]] = item
        return found

    def blob_keys(self) -> set[str]:
        keys = set(self.upstream_objects())
        assert all(BLOB_KEY.match(key) for key in keys), f"unexpected upstream keys: {sorted(keys)}"
        return keys

    def run_gc(self, grace: int = GRACE) -> str:
        """`folio gc` as an operator runs it beside the live server (with this grace: the
        process alone takes seconds to start on a loaded machine)."""
        args = self.server._base_args()
        config = self.server.config_path.with_name(f"gc-{grace}.toml")
        text = self.server.config_path.read_text()
        config.write_text(text.replace(f"gc_grace_seconds = {GRACE}\n", f"gc_grace_seconds = {grace}\n"))
        out = subprocess.run(
            [sys.executable, "-m", "server", "gc", "--config", str(config), *args[2:]],
            env=self.server._environment(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stdout + out.stderr
        return out.stdout


def start_server(tmp_path_factory: pytest.TempPathFactory, name: str, label: str) -> tuple[FolioProcess, str]:
    endpoint, bucket, access_key, secret_key = new_bucket(name)
    server = FolioProcess(
        data_dir=tmp_path_factory.mktemp(label) / "data",
        config_text=CONFIG + blobs_section(endpoint, bucket, access_key, secret_key, PREFIX),
    )
    return server.start(), bucket


@pytest.fixture(scope="module", params=UPSTREAMS)
def setup(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    server, bucket = start_server(tmp_path_factory, request.param, f"blobs-{request.param}")
    try:
        yield Setup(request.param, server, bucket, client(request.param))
    finally:
        server.stop()


@pytest.fixture
def bucket(setup: Setup) -> str:
    name = f"blobs-{secrets.token_hex(4)}"
    setup.s3.create_bucket(Bucket=name)
    return name


def wait_until(condition, timeout: float = 20.0, what: str = "") -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f} s: {what}")
        time.sleep(0.2)


def new_blob_of(setup: Setup, before: set[str]) -> str:
    """The one upstream key that appeared since `before`."""
    (added,) = setup.blob_keys() - before
    return added


# ---------------------------------------------------------------- bytes, keys, ranges


SIZES = [0, 1024, 100 * 1024, 5 * MIB, 40 * MIB]


def test_objects_of_every_size_read_back_and_upstream_keys_are_opaque(setup: Setup, bucket: str) -> None:
    s3 = setup.s3
    before = setup.blob_keys()
    payloads = {f"holiday photos/{size}-bytes/é.bin": os.urandom(size) for size in SIZES}
    for key, payload in payloads.items():
        s3.put_object(Bucket=bucket, Key=key, Body=payload)
    for key, payload in payloads.items():
        got = s3.get_object(Bucket=bucket, Key=key)
        assert got["ContentLength"] == len(payload)
        assert got["Body"].read() == payload, key

    upstream = setup.upstream_objects()
    added = set(upstream) - before
    # Inline objects (0 B, 1 KiB) live in their rows; the three others are one blob each.
    assert len(added) == 3, sorted(added)
    for key in upstream:
        assert BLOB_KEY.match(key), key
        assert "holiday" not in key and bucket not in key
    sizes = sorted(upstream[key]["Size"] for key in added)
    assert sizes == [100 * 1024, 5 * MIB, 40 * MIB]
    # Past one 8 MiB part, a blob goes up as a multipart upload (its ETag says so).
    (large,) = [key for key in added if upstream[key]["Size"] == 40 * MIB]
    assert "-" in upstream[large]["ETag"]
    (small,) = [key for key in added if upstream[key]["Size"] == 5 * MIB]
    assert "-" not in upstream[small]["ETag"]


def test_ranged_gets_are_the_local_slices(setup: Setup, bucket: str) -> None:
    s3 = setup.s3
    payload = os.urandom(12 * MIB + 321)
    s3.put_object(Bucket=bucket, Key="ranges.bin", Body=payload)
    size = len(payload)
    ranges = {
        "bytes=0-99": payload[:100],
        "bytes=0-0": payload[:1],
        f"bytes={MIB - 10}-{MIB + 10}": payload[MIB - 10 : MIB + 11],  # across a piece boundary
        f"bytes={3 * MIB + 7}-{9 * MIB + 5}": payload[3 * MIB + 7 : 9 * MIB + 6],  # across a part
        f"bytes={size // 2}-{size // 2 + 4095}": payload[size // 2 : size // 2 + 4096],
        "bytes=-12345": payload[-12345:],
        f"bytes={size - 1}-": payload[-1:],
        f"bytes={12 * MIB}-": payload[12 * MIB :],
    }
    for header, expected in ranges.items():
        got = s3.get_object(Bucket=bucket, Key="ranges.bin", Range=header)
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 206, header
        assert got["Body"].read() == expected, header


# ---------------------------------------------------------------- sharing


def test_copies_share_the_upstream_blob(setup: Setup, bucket: str) -> None:
    s3 = setup.s3
    payload = os.urandom(9 * MIB + 17)
    s3.put_object(Bucket=bucket, Key="original.bin", Body=payload)
    count = len(setup.blob_keys())
    for name in ("copy-1.bin", "nested/copy-2.bin"):
        s3.copy_object(Bucket=bucket, Key=name, CopySource={"Bucket": bucket, "Key": "original.bin"})
    assert len(setup.blob_keys()) == count
    for name in ("original.bin", "copy-1.bin", "nested/copy-2.bin"):
        assert s3.get_object(Bucket=bucket, Key=name)["Body"].read() == payload
    # The original deleted: the copies still hold the blob, upstream and readable.
    s3.delete_object(Bucket=bucket, Key="original.bin")
    time.sleep(GRACE + 1.5)
    assert len(setup.blob_keys()) == count
    assert s3.get_object(Bucket=bucket, Key="copy-1.bin")["Body"].read() == payload


def test_a_multipart_upload_completes_on_its_parts_blobs(setup: Setup, bucket: str) -> None:
    s3 = setup.s3
    parts = [os.urandom(5 * MIB), os.urandom(5 * MIB + 3), os.urandom(MIB // 2)]
    before = setup.blob_keys()
    upload = s3.create_multipart_upload(Bucket=bucket, Key="movie/parts.bin")["UploadId"]
    done = []
    for number, data in enumerate(parts, start=1):
        etag = s3.upload_part(
            Bucket=bucket, Key="movie/parts.bin", UploadId=upload, PartNumber=number, Body=data
        )
        done.append({"PartNumber": number, "ETag": etag["ETag"]})
    assert len(setup.blob_keys() - before) == 3  # one blob per part
    s3.complete_multipart_upload(
        Bucket=bucket, Key="movie/parts.bin", UploadId=upload, MultipartUpload={"Parts": done}
    )
    # The Complete makes no new upstream object: the object is its parts' blobs.
    assert len(setup.blob_keys() - before) == 3
    whole = b"".join(parts)
    assert s3.get_object(Bucket=bucket, Key="movie/parts.bin")["Body"].read() == whole
    ranged = s3.get_object(Bucket=bucket, Key="movie/parts.bin", Range=f"bytes={5 * MIB - 5}-{5 * MIB + 5}")
    assert ranged["Body"].read() == whole[5 * MIB - 5 : 5 * MIB + 6]  # across two parts' blobs


# ---------------------------------------------------------------- deletes and the sweep


def test_a_freed_blob_is_deleted_upstream_after_the_grace(setup: Setup, bucket: str) -> None:
    s3 = setup.s3
    before = setup.blob_keys()
    s3.put_object(Bucket=bucket, Key="doomed.bin", Body=os.urandom(200 * 1024))
    doomed = new_blob_of(setup, before)
    deleted_at = time.monotonic()
    s3.delete_object(Bucket=bucket, Key="doomed.bin")
    # Not at once: a reader on any node may still be streaming it.
    if time.monotonic() - deleted_at < GRACE - 1:
        assert doomed in setup.blob_keys()
    wait_until(lambda: doomed not in setup.blob_keys(), what=f"{doomed} deleted upstream")
    assert time.monotonic() - deleted_at >= GRACE - 0.5
    # An overwrite frees the old blob the same way.
    s3.put_object(Bucket=bucket, Key="replaced.bin", Body=os.urandom(300 * 1024))
    first = new_blob_of(setup, before)
    s3.put_object(Bucket=bucket, Key="replaced.bin", Body=os.urandom(300 * 1024))
    wait_until(lambda: first not in setup.blob_keys(), what="the overwritten blob deleted upstream")
    assert len(setup.blob_keys() - before) == 1


def test_folio_gc_sweeps_unreferenced_upstream_blobs_after_the_grace(setup: Setup, bucket: str) -> None:
    s3, upstream = setup.s3, setup.upstream
    payload = os.urandom(150 * 1024)
    s3.put_object(Bucket=bucket, Key="kept.bin", Body=payload)
    referenced = setup.blob_keys()
    orphan = PREFIX + secrets.token_hex(16)  # what a node that died after its PUT leaves
    upstream.put_object(Bucket=setup.bucket, Key=orphan, Body=os.urandom(70 * 1024))
    setup.run_gc(grace=120)  # younger than the grace: an upload between its PUT and its commit
    keys = set(setup.upstream_objects())
    assert orphan in keys and referenced <= keys

    # Not ours: other names under the prefix, and other prefixes, are never touched.
    foreign = [PREFIX + "notes.txt", "elsewhere/" + secrets.token_hex(16)]
    for key in foreign:
        upstream.put_object(Bucket=setup.bucket, Key=key, Body=b"someone else's")
    # A multipart upload a node began and never finished.
    stale = PREFIX + secrets.token_hex(16)
    upload_id = upstream.create_multipart_upload(Bucket=setup.bucket, Key=stale)["UploadId"]
    upstream.upload_part(
        Bucket=setup.bucket, Key=stale, UploadId=upload_id, PartNumber=1, Body=os.urandom(5 * MIB)
    )
    time.sleep(GRACE + 1.5)
    setup.run_gc()
    keys = set(setup.upstream_objects())
    assert orphan not in keys
    assert referenced <= keys and set(foreign) <= keys
    uploads = upstream.list_multipart_uploads(Bucket=setup.bucket).get("Uploads", [])
    assert upload_id not in [u["UploadId"] for u in uploads]
    assert s3.get_object(Bucket=bucket, Key="kept.bin")["Body"].read() == payload
    for key in foreign:
        upstream.delete_object(Bucket=setup.bucket, Key=key)


# ---------------------------------------------------------------- integrity


def test_an_upstream_object_changed_behind_folio_is_never_served(setup: Setup, bucket: str) -> None:
    s3, upstream = setup.s3, setup.upstream
    payload = os.urandom(3 * MIB + 500)
    before = setup.blob_keys()
    s3.put_object(Bucket=bucket, Key="rotten.bin", Body=payload)
    blob = new_blob_of(setup, before)
    # Same size, piece 1 (bytes 1..2 MiB) different: what a faulty upstream could hand back.
    rotten = bytearray(payload)
    rotten[MIB + MIB // 2] ^= 0x01
    upstream.put_object(Bucket=setup.bucket, Key=blob, Body=bytes(rotten))

    body = s3.get_object(Bucket=bucket, Key="rotten.bin")["Body"]
    received, error = read_until_it_breaks(body.iter_chunks(64 * 1024))
    assert isinstance(error, BODY_ERRORS), f"the changed object was read whole ({len(received)} bytes)"
    assert len(received) <= MIB and payload.startswith(received)
    # A range inside the changed piece is refused; one in an intact piece is served.
    ranged = s3.get_object(Bucket=bucket, Key="rotten.bin", Range=f"bytes={MIB + 10}-{MIB + 4000}")["Body"]
    received, error = read_until_it_breaks(ranged.iter_chunks(4096))
    assert isinstance(error, BODY_ERRORS) and received == b""
    intact = s3.get_object(Bucket=bucket, Key="rotten.bin", Range=f"bytes={2 * MIB}-{2 * MIB + 999}")
    assert intact["Body"].read() == payload[2 * MIB : 2 * MIB + 1000]

    # Replaced whole by other bytes of the same size: not one of them is served.
    s3.put_object(Bucket=bucket, Key="swapped.bin", Body=payload)
    swapped = new_blob_of(setup, before | {blob})
    other = os.urandom(len(payload))
    upstream.put_object(Bucket=setup.bucket, Key=swapped, Body=other)
    once = make_s3_client(setup.server, config=BotoConfig(retries={"max_attempts": 1}))
    try:
        got = once.get_object(Bucket=bucket, Key="swapped.bin")["Body"]
        received, error = read_until_it_breaks(got.iter_chunks(64 * 1024))
        assert isinstance(error, BODY_ERRORS) and received == b""
    except ClientError as refused:  # refused before the first byte
        assert refused.response["ResponseMetadata"]["HTTPStatusCode"] == 500

    # `folio check` reads the upstream objects too, and names both.
    out = folio_check(setup.server)
    assert out.returncode == 1, out.stdout + out.stderr
    assert f"{bucket}/rotten.bin" in out.stdout and f"{bucket}/swapped.bin" in out.stdout
    assert f"corrupt: blob {blob.removeprefix(PREFIX)}" in out.stdout
    # Put back (restored from elsewhere): served again.
    upstream.put_object(Bucket=setup.bucket, Key=blob, Body=payload)
    assert s3.get_object(Bucket=bucket, Key="rotten.bin")["Body"].read() == payload
    s3.delete_object(Bucket=bucket, Key="swapped.bin")


# ---------------------------------------------------------------- health


def test_healthz_reports_the_upstream(setup: Setup) -> None:
    blobs = httpx.get(f"{setup.server.web_url}/healthz", timeout=10).json()["blobs"]
    assert blobs["backend"] == "s3" and blobs["bucket"] == setup.bucket
    assert blobs["ok"] is True and 0 <= blobs["latencyMs"] < 2000


# ---------------------------------------------------------------- memory


def peak_rss_reset(pid: int) -> None:
    """Reset the process's peak RSS (VmHWM) to its current RSS (Linux: clear_refs 5)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def test_a_200_mib_put_and_get_keep_the_server_memory_bounded(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    server, _bucket = start_server(tmp_path_factory, "seaweedfs", "blobs-memory")
    try:
        s3 = make_s3_client(server)
        s3.create_bucket(Bucket="big")
        source = tmp_path / "big.bin"
        digest = hashlib.md5()
        with open(source, "wb") as out:
            for _ in range(200):
                chunk = os.urandom(MIB)
                digest.update(chunk)
                out.write(chunk)
        s3.put_object(Bucket="big", Key="warm-up.bin", Body=os.urandom(9 * MIB))  # pools, threads
        s3.get_object(Bucket="big", Key="warm-up.bin")["Body"].read()
        pid = server.proc.pid  # type: ignore[union-attr]
        peak_rss_reset(pid)
        before = status_kib(pid, "VmRSS")
        with open(source, "rb") as body:
            s3.put_object(Bucket="big", Key="large.bin", Body=body)
        after_put = status_kib(pid, "VmHWM")
        got = hashlib.md5()
        size = 0
        for chunk in s3.get_object(Bucket="big", Key="large.bin")["Body"].iter_chunks(MIB):
            got.update(chunk)
            size += len(chunk)
        assert size == 200 * MIB and got.hexdigest() == digest.hexdigest()
        peak = status_kib(pid, "VmHWM")
        growth_mib = (peak - before) / 1024
        print(
            f"server RSS {before / 1024:.0f} MiB; peak after PUT {after_put / 1024:.0f}, after GET {peak / 1024:.0f}"
        )
        assert growth_mib < 100, f"the server's peak RSS grew by {growth_mib:.0f} MiB for a 200 MiB object"
    finally:
        server.stop()


def test_folio_backup_and_restore_refuse_with_one_line_when_blobs_are_upstream(
    setup: Setup, tmp_path: Path
) -> None:
    # A backup copies blob files out of the data directory; upstream ones are not there, so a
    # backup would hold a database naming blobs it lacks. The upstream's replication covers them.
    for command in (["backup", str(tmp_path / "backups")], ["restore", str(tmp_path / "backups")]):
        out = subprocess.run(
            [sys.executable, "-m", "server", *command, *setup.server._base_args()],
            env=setup.server._environment(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode != 0
        assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr, out.stderr
        assert "upstream S3" in out.stderr and "docs/scale-out.md" in out.stderr, out.stderr
        assert not (tmp_path / "backups").exists()
