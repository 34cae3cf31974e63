"""Integrity on every read, and `folio check` (issue 17).

A real server; bytes damaged on disk (one byte of a blob flipped, found through the
database) or in the database (an inline object's row) are never served: boto3's GET, a
ranged GET, the REST file GET and /api/img's source read all fail instead. `folio check`
(run as the operator would, a subprocess) names the damaged objects and exits 1; a clean
store checks clean; `--repair` fixes a reference count set wrong in SQLite and removes an
orphan blob file; blobs written before checksums were kept get theirs from the check (and
one whose bytes no longer match its MD5 is caught); the background scrub runs on its own,
throttled, and /healthz shows what it found.

An aborted read is one log line (the store's, and the server engine's "response aborted"),
never a traceback: these servers' logs go through the end-of-run check like any other.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from botocore.exceptions import ClientError, IncompleteReadError, ResponseStreamingError
from PIL import Image

from restapi.ids import file_id
from tests.conftest import TEST_CONFIG, make_s3_client
from tests.folio_process import FolioProcess, running_server
from tests.server_db import server_db

MIB = 1024 * 1024
BODY_ERRORS = (ResponseStreamingError, IncompleteReadError)


# ---------------------------------------------------------------- helpers


def database(server: FolioProcess) -> AbstractContextManager[Any]:
    """The server's database on either engine, writable; committed when the block ends."""
    return server_db(server, write=True)


def blobs_of(server: FolioProcess, bucket: str, key: str) -> list[str]:
    """The blob ids of the key's current version, in order."""
    with database(server) as db:
        row = db.execute(
            "SELECT o.segments FROM objects o JOIN buckets b ON b.id = o.bucket_id"
            " WHERE b.name = ? AND o.key = ? AND o.is_latest = 1",
            (bucket, key.encode()),
        ).fetchone()
    assert row is not None and row[0], f"{bucket}/{key} is not a blob-backed object"
    return [segment[0] for segment in json.loads(row[0])]


def blob_path(server: FolioProcess, blob_id: str) -> Path:
    return server.data_dir / "blobs" / blob_id[:2] / blob_id[2:4] / blob_id


def flip_byte(path: Path, offset: int) -> None:
    """Bit rot: one bit of one byte, written in place (same size, same name)."""
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0x01]))


def folio_check(server: FolioProcess, *args: str) -> subprocess.CompletedProcess[str]:
    """`folio check` against the server's data directory, as an operator runs it."""
    return subprocess.run(
        [sys.executable, "-m", "server", "check", *args, *server._base_args()],
        env=server._environment(),
        capture_output=True,
        text=True,
        timeout=300,
    )


def check_json(server: FolioProcess, *args: str) -> tuple[int, dict]:
    out = folio_check(server, "--json", *args)
    assert out.returncode in (0, 1), f"folio check failed to run: {out.stderr}"
    return out.returncode, json.loads(out.stdout)


def health(server: FolioProcess) -> dict:
    got = httpx.get(f"{server.web_url}/healthz", timeout=10)
    assert got.status_code == 200
    body = got.json()
    assert body["status"] == "ok"
    return body["integrity"]


def web(server: FolioProcess) -> httpx.Client:
    return httpx.Client(
        base_url=server.web_url,
        headers={"X-API-Key": f"{server.access_key}:{server.secret_key}"},
        trust_env=False,
        timeout=60,
    )


def read_until_it_breaks(chunks: Iterator[bytes]) -> tuple[bytes, BaseException | None]:
    """What a client received before the response broke off (and the error)."""
    received = bytearray()
    try:
        for chunk in chunks:
            received += chunk
    except (*BODY_ERRORS, httpx.HTTPError) as exc:
        return bytes(received), exc
    return bytes(received), None


def noise_png(size: int = 700) -> bytes:
    """A PNG well over 1 MiB (noise does not compress): a blob of two pieces or more."""
    pixels = np.random.default_rng(17).integers(0, 256, (size, size, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG")
    return out.getvalue()


# ---------------------------------------------------------------- a running server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FolioProcess]:
    yield from running_server(tmp_path_factory, "integrity", TEST_CONFIG)


@pytest.fixture(scope="module")
def s3(server: FolioProcess):
    return make_s3_client(server)


@pytest.fixture
def bucket(s3) -> str:
    name = f"integrity-{secrets.token_hex(6)}"
    s3.create_bucket(Bucket=name)
    return name


def test_a_clean_store_checks_clean_beside_the_running_server(server: FolioProcess, s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="blob.bin", Body=os.urandom(3 * MIB + 77))
    s3.put_object(Bucket=bucket, Key="small.txt", Body=b"inline and checked")
    s3.copy_object(Bucket=bucket, Key="copy.bin", CopySource={"Bucket": bucket, "Key": "blob.bin"})
    upload = s3.create_multipart_upload(Bucket=bucket, Key="parts.bin")["UploadId"]
    etags = [
        s3.upload_part(Bucket=bucket, Key="parts.bin", UploadId=upload, PartNumber=n, Body=os.urandom(size))[
            "ETag"
        ]
        for n, size in ((1, 5 * MIB), (2, MIB + 3))
    ]
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="parts.bin",
        UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": n + 1, "ETag": e} for n, e in enumerate(etags)]},
    )
    # An unfinished upload's part is a blob the check reads and counts too.
    pending = s3.create_multipart_upload(Bucket=bucket, Key="unfinished.bin")["UploadId"]
    s3.upload_part(
        Bucket=bucket, Key="unfinished.bin", UploadId=pending, PartNumber=1, Body=os.urandom(200_000)
    )

    out = folio_check(server)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.rstrip().endswith("clean"), out.stdout
    code, report = check_json(server)
    assert code == 0 and not report["damaged"], report
    # Every blob written by this server had its checksums from the start.
    assert report["checksums_added"] == 0
    assert report["blobs_checked"] >= 4 and report["inline_checked"] >= 1
    assert report["refcount_mismatches"] == [] and report["orphan_files"] == []
    last = health(server)["lastScrub"]
    assert last["kind"] == "check" and last["damaged"] is False and last["complete"] is True


def test_a_flipped_byte_in_a_blob_is_never_served_and_check_names_the_object(
    server: FolioProcess, s3, bucket: str
) -> None:
    payload = os.urandom(3 * MIB + 500)
    s3.put_object(Bucket=bucket, Key="docs/report.bin", Body=payload)
    s3.copy_object(
        Bucket=bucket, Key="docs/copy.bin", CopySource={"Bucket": bucket, "Key": "docs/report.bin"}
    )
    (blob_id,) = blobs_of(server, bucket, "docs/report.bin")
    damaged_at = MIB + MIB // 2  # in piece 1 (bytes 1 MiB .. 2 MiB - 1)
    flip_byte(blob_path(server, blob_id), damaged_at)
    before = health(server)["corruptReads"]

    # boto3, whole object: the response breaks off; what arrived is intact piece 0 at most.
    body = s3.get_object(Bucket=bucket, Key="docs/report.bin")["Body"]
    received, error = read_until_it_breaks(body.iter_chunks(64 * 1024))
    assert isinstance(error, BODY_ERRORS), f"the damaged object was read whole ({len(received)} bytes)"
    assert len(received) <= MIB and payload.startswith(received)

    # A range inside the damaged piece that does not even contain the flipped byte: the
    # whole piece is checked, so it is refused too. A range in an intact piece is served.
    ranged = s3.get_object(Bucket=bucket, Key="docs/report.bin", Range=f"bytes={MIB + 10}-{MIB + 4000}")[
        "Body"
    ]
    received, error = read_until_it_breaks(ranged.iter_chunks(4096))
    assert isinstance(error, BODY_ERRORS) and received == b""
    intact = s3.get_object(Bucket=bucket, Key="docs/report.bin", Range=f"bytes={2 * MIB}-{2 * MIB + 999}")
    assert intact["Body"].read() == payload[2 * MIB : 2 * MIB + 1000]

    # The copy shares the blob: as damaged, as refused (download_file included).
    with pytest.raises(BODY_ERRORS):
        s3.get_object(Bucket=bucket, Key="docs/copy.bin")["Body"].read()

    # The REST file API's download: the same abort.
    with (
        web(server) as client,
        client.stream("GET", f"/api/v1/files/{file_id(bucket, 'docs/report.bin')}") as got,
    ):
        assert got.status_code == 200
        received, error = read_until_it_breaks(got.iter_bytes())
    assert isinstance(error, httpx.RemoteProtocolError), f"REST served {len(received)} bytes whole"
    assert len(received) < len(payload) and payload.startswith(received)

    counted = health(server)
    assert counted["corruptReads"] >= before + 4
    assert counted["damagedBlobs"] >= 1
    # The server logged which object it refused.
    assert f"refused to serve {bucket}/docs/report.bin" in server.log()

    out = folio_check(server)
    assert out.returncode == 1, out.stdout + out.stderr
    assert f"{bucket}/docs/report.bin" in out.stdout and f"{bucket}/docs/copy.bin" in out.stdout
    assert f"corrupt: blob {blob_id}" in out.stdout and "piece 1" in out.stdout
    assert out.stdout.rstrip().splitlines()[-1].startswith("DAMAGED")

    # The byte put back (a restore): served again, and the next check clears the mark.
    flip_byte(blob_path(server, blob_id), damaged_at)
    assert s3.get_object(Bucket=bucket, Key="docs/report.bin")["Body"].read() == payload
    assert folio_check(server).returncode == 0
    assert health(server)["damagedBlobs"] == 0


def test_an_image_whose_blob_is_damaged_is_not_transformed(server: FolioProcess, s3, bucket: str) -> None:
    png = noise_png()
    assert len(png) > MIB
    s3.put_object(Bucket=bucket, Key="photo.png", Body=png, ContentType="image/png")
    with web(server) as client:
        fine = client.get(f"/api/img/{bucket}/photo.png?w=64")
        assert fine.status_code == 200 and fine.headers["content-type"].startswith("image/")
        (blob_id,) = blobs_of(server, bucket, "photo.png")
        flip_byte(blob_path(server, blob_id), 100)  # piece 0: the PNG's first bytes
        refused = client.get(f"/api/img/{bucket}/photo.png?w=65")  # another size: not from the cache
        assert refused.status_code == 500, refused.status_code
        assert refused.json()["error"]["code"] == "InternalError"
        assert not refused.headers["content-type"].startswith("image/")
    out = folio_check(server)
    assert out.returncode == 1 and f"{bucket}/photo.png" in out.stdout
    flip_byte(blob_path(server, blob_id), 100)  # put back: the rest of the module checks clean
    assert folio_check(server).returncode == 0


# ---------------------------------------------------------------- a stopped server


@pytest.fixture
def stopped(tmp_path: Path) -> Iterator[FolioProcess]:
    """A server for tests that change its files with the server stopped (started and
    stopped by the test)."""
    server = FolioProcess(data_dir=tmp_path / "data", config_text=TEST_CONFIG)
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.sqlite_only(
    reason="folio check --repair works on the embedded store's files (refused on PostgreSQL)"
)
def test_repair_fixes_a_wrong_reference_count_and_removes_an_orphan(stopped: FolioProcess) -> None:
    stopped.start()
    s3 = make_s3_client(stopped)
    s3.create_bucket(Bucket="repairs")
    payload = os.urandom(2 * MIB + 9)
    s3.put_object(Bucket="repairs", Key="a.bin", Body=payload)
    s3.copy_object(Bucket="repairs", Key="b.bin", CopySource={"Bucket": "repairs", "Key": "a.bin"})
    (blob_id,) = blobs_of(stopped, "repairs", "a.bin")
    stopped.stop()

    # Two rows name the blob; the count says one: deleting one copy would free the other's bytes.
    with database(stopped) as db:
        db.execute("UPDATE blobs SET refcount = 1 WHERE id = ?", (blob_id,))
    orphan = secrets.token_hex(16)
    orphan_file = blob_path(stopped, orphan)
    orphan_file.parent.mkdir(parents=True, exist_ok=True)
    orphan_file.write_bytes(os.urandom(5000))
    hours_ago = time.time() - 2 * 3600  # older than the gc grace period (an hour)
    os.utime(orphan_file, (hours_ago, hours_ago))
    young = secrets.token_hex(16)  # an upload between its rename and its commit, as it looks
    blob_path(stopped, young).parent.mkdir(parents=True, exist_ok=True)
    blob_path(stopped, young).write_bytes(b"in flight")

    code, report = check_json(stopped)
    assert code == 1 and report["damaged"]
    assert report["refcount_mismatches"] == [{"blobId": blob_id, "recorded": 1, "expected": 2}]
    assert report["orphan_files"] == [orphan] and report["pending_files"] == 1
    assert report["lost_objects"] == []
    text = folio_check(stopped)
    assert text.returncode == 1
    assert f"blob {blob_id}: recorded 1, rows name it 2 times" in text.stdout

    repaired = folio_check(stopped, "--repair")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert "1 fixed" in repaired.stdout and "1 removed" in repaired.stdout
    with database(stopped) as db:
        assert db.execute("SELECT refcount FROM blobs WHERE id = ?", (blob_id,)).fetchone() == (2,)
    assert not orphan_file.exists()
    assert blob_path(stopped, young).exists(), "a file younger than the grace period is left alone"
    assert folio_check(stopped).returncode == 0

    # With the count right, deleting one copy keeps the other's bytes.
    stopped.start()
    s3 = make_s3_client(stopped)
    s3.delete_object(Bucket="repairs", Key="a.bin")
    s3.delete_object(Bucket="repairs", Key="a.bin", VersionId=_only_version(s3, "repairs", "a.bin"))
    assert s3.get_object(Bucket="repairs", Key="b.bin")["Body"].read() == payload


def _only_version(s3, bucket: str, key: str) -> str:
    versions = s3.list_object_versions(Bucket=bucket, Prefix=key)["Versions"]
    (version,) = [v for v in versions if v["Key"] == key]
    return version["VersionId"]


def test_a_damaged_inline_object_is_reported_and_never_served(stopped: FolioProcess) -> None:
    stopped.start()
    s3 = make_s3_client(stopped)
    s3.create_bucket(Bucket="inline")
    s3.put_object(Bucket="inline", Key="notes/small.txt", Body=b"a small object lives in its row")
    s3.put_object(Bucket="inline", Key="notes/other.txt", Body=b"and this one stays sound")
    stopped.stop()
    with database(stopped) as db:
        (data,) = db.execute(
            "SELECT inline_data FROM objects WHERE key = ?", (b"notes/small.txt",)
        ).fetchone()
        damaged = bytes([data[0] ^ 0x20]) + data[1:]  # "a" -> "A": same length, plausible text
        db.execute("UPDATE objects SET inline_data = ? WHERE key = ?", (damaged, b"notes/small.txt"))

    out = folio_check(stopped)
    assert out.returncode == 1
    assert "corrupt inline objects: 1" in out.stdout and "inline/notes/small.txt" in out.stdout
    assert "notes/other.txt" not in out.stdout

    stopped.start()
    s3 = make_s3_client(stopped)
    with pytest.raises(ClientError) as refused:
        s3.get_object(Bucket="inline", Key="notes/small.txt")
    assert refused.value.response["Error"]["Code"] == "InternalError"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    with web(stopped) as client:
        got = client.get(f"/api/v1/files/{file_id('inline', 'notes/small.txt')}")
        assert got.status_code == 500 and damaged not in got.content
    assert s3.get_object(Bucket="inline", Key="notes/other.txt")["Body"].read() == b"and this one stays sound"
    integrity = health(stopped)
    assert integrity["corruptReads"] >= 2 and integrity["damagedObjects"] == 1


def test_blobs_written_before_checksums_get_them_from_the_check_unless_their_md5_fails(
    stopped: FolioProcess,
) -> None:
    stopped.start()
    s3 = make_s3_client(stopped)
    s3.create_bucket(Bucket="legacy")
    sound, rotten = os.urandom(MIB + 1000), os.urandom(2 * MIB)
    s3.put_object(Bucket="legacy", Key="sound.bin", Body=sound)
    s3.put_object(Bucket="legacy", Key="rotten.bin", Body=rotten)
    (sound_blob,) = blobs_of(stopped, "legacy", "sound.bin")
    (rotten_blob,) = blobs_of(stopped, "legacy", "rotten.bin")
    stopped.stop()
    # As a store upgraded from before migration 7 has them: no checksums, no inline CRC.
    with database(stopped) as db:
        db.execute("UPDATE blobs SET crc32c = NULL")
        db.execute("UPDATE objects SET crc32c = NULL")
    flip_byte(blob_path(stopped, rotten_blob), 1234)

    code, report = check_json(stopped)
    assert code == 1
    assert report["corrupt_blobs"] == [rotten_blob]
    assert report["checksums_added"] >= 1
    assert [item["key"] for item in report["lost_objects"]] == ["rotten.bin"]
    assert "MD5" in report["lost_objects"][0]["reason"]
    with database(stopped) as db:
        sums = dict(db.execute("SELECT id, crc32c FROM blobs").fetchall())
    assert sums[sound_blob] is not None and len(sums[sound_blob]) == 8  # two pieces
    assert sums[rotten_blob] is None, "damaged bytes are never blessed with checksums"

    stopped.start()
    s3 = make_s3_client(stopped)
    assert s3.get_object(Bucket="legacy", Key="sound.bin")["Body"].read() == sound
    # No checksums to check it against, but marked damaged by the check: refused whole.
    received, error = read_until_it_breaks(
        s3.get_object(Bucket="legacy", Key="rotten.bin")["Body"].iter_chunks()
    )
    assert isinstance(error, BODY_ERRORS) and received == b""


def test_the_background_scrub_runs_throttled_and_reports_in_healthz(tmp_path: Path) -> None:
    rate = 4 * MIB
    config = TEST_CONFIG + f"\n[storage]\nscrub_interval_seconds = 1.0\nscrub_bytes_per_second = {rate}\n"
    server = FolioProcess(data_dir=tmp_path / "data", config_text=config)
    server.start()
    try:
        s3 = make_s3_client(server)
        s3.create_bucket(Bucket="scrubbed")
        s3.put_object(Bucket="scrubbed", Key="big.bin", Body=os.urandom(8 * MIB))
        written = time.time()
        clean = _wait_for_scrub(server, after=written)
        assert clean["damaged"] is False and clean["bytesChecked"] >= 8 * MIB
        # 8 MiB at 4 MiB/s: about two seconds, never much less.
        assert clean["finishedAt"] - clean["startedAt"] >= 1.5

        (blob_id,) = blobs_of(server, "scrubbed", "big.bin")
        flip_byte(blob_path(server, blob_id), 5 * MIB + 3)
        flipped = time.time()
        found = _wait_for_scrub(server, after=flipped)
        assert found["damaged"] is True and found["corruptBlobs"] == 1 and found["lostObjects"] == 1
        assert health(server)["damagedBlobs"] == 1
        assert "integrity scrub:" in server.log() and "DAMAGED" in server.log()
    finally:
        server.stop()


def _wait_for_scrub(server: FolioProcess, *, after: float, timeout: float = 60.0) -> dict:
    """The first background scrub that started after `after`, once it has finished."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        last = health(server)["lastScrub"]
        if last is not None and last["kind"] == "scrub" and last["startedAt"] > after:
            return last
        time.sleep(0.2)
    raise AssertionError(f"no scrub started after {after} finished within {timeout} s")
