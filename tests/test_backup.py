"""`folio backup` and `folio restore` against a real server under a load of PUTs:
every object acknowledged before the backup started comes back identical on a second
server started on the restored directory (boto3, bytes compared); the restored store
verifies clean; a backup of an unchanged store copies no blob; S3 targets (moto's
server) work both ways; a blob freed between the snapshot and its copy, a blob lost
before the backup, a damaged backup and bad arguments are each handled."""

from __future__ import annotations

import hashlib
import json
import os
import random
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from botocore.config import Config

from server.backup import backup as run_backup
from server.backup_targets import DirectoryTarget, blob_name
from server.backup_verify import verify_builtin
from tests.conftest import TEST_CONFIG, make_s3_client, moto_client
from tests.folio_process import FolioProcess

pytestmark = pytest.mark.sqlite_only(
    reason="folio backup and restore copy the SQLite file and blobs/ (a PostgreSQL deployment backs up with "
    "PostgreSQL's own tools)"
)

KIB = 1024
MIB = 1024 * KIB
# Unversioned buckets: an overwrite frees the old blob at once, so files vanish while the
# backup runs (the case its consistency rule is about).
CONFIG = TEST_CONFIG + '\n[versioning]\nnew_buckets = "Off"\n'
MOTO_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def folio_command(
    *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "server", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def report_of(done: subprocess.CompletedProcess) -> dict:
    assert done.returncode == 0, f"exit {done.returncode}\nstdout: {done.stdout}\nstderr: {done.stderr}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def body(key: str, size: int) -> bytes:
    return random.Random(key).randbytes(size)


def blob_files(root: Path) -> dict[str, tuple[int, int]]:
    """Every blob file under root/blobs: name -> (inode, mtime in ns)."""
    found = {}
    for dirpath, _dirs, files in os.walk(root / "blobs"):
        for name in files:
            stat = (Path(dirpath) / name).stat()
            found[name] = (stat.st_ino, stat.st_mtime_ns)
    return found


@dataclass
class Load:
    """PUTs from a thread: new keys (recorded when acknowledged) and overwrites of a few
    keys (each frees the blob it replaces)."""

    server: FolioProcess
    acknowledged: dict[str, tuple[float, bytes]] = field(default_factory=dict)
    churned: int = 0
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    error: BaseException | None = None

    def run(self) -> None:
        s3 = make_s3_client(self.server, config=Config(max_pool_connections=4))
        rng = random.Random(17)
        n = 0
        try:
            while not self.stop.is_set():
                n += 1
                key = f"load/{n:05d}"
                # Half inline (in the database), half blobs of 70-300 KiB.
                data = body(key, rng.choice([rng.randint(0, 4 * KIB), rng.randint(70 * KIB, 300 * KIB)]))
                s3.put_object(Bucket="load", Key=key, Body=data)
                with self.lock:
                    self.acknowledged[key] = (time.monotonic(), data)
                churn_key = f"churn/{n % 8}"
                s3.put_object(Bucket="load", Key=churn_key, Body=body(f"{churn_key}#{n}", 100 * KIB))
                self.churned += 1
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc

    def acknowledged_before(self, moment: float) -> dict[str, bytes]:
        with self.lock:
            return {key: data for key, (at, data) in self.acknowledged.items() if at < moment}


def seed(s3) -> dict[tuple[str, str], bytes]:
    """Objects of every shape: inline, blob, empty, multipart, a copy sharing a blob,
    versions of one key in a versioned bucket. Returns (bucket, key) -> bytes."""
    expected: dict[tuple[str, str], bytes] = {}
    s3.create_bucket(Bucket="load")
    s3.create_bucket(Bucket="seed")
    for key, size in [("small.txt", 100), ("empty", 0), ("blob.bin", 200 * KIB), ("dir/é ü &.bin", 90 * KIB)]:
        data = body(key, size)
        s3.put_object(Bucket="seed", Key=key, Body=data)
        expected[("seed", key)] = data
    parts = [body("mp1", 5 * MIB), body("mp2", 1 * MIB + 7)]
    upload = s3.create_multipart_upload(Bucket="seed", Key="multipart.bin")
    etags = [
        s3.upload_part(Bucket="seed", Key="multipart.bin", UploadId=upload["UploadId"], PartNumber=i, Body=p)[
            "ETag"
        ]
        for i, p in enumerate(parts, start=1)
    ]
    s3.complete_multipart_upload(
        Bucket="seed",
        Key="multipart.bin",
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"ETag": e, "PartNumber": i} for i, e in enumerate(etags, start=1)]},
    )
    expected[("seed", "multipart.bin")] = b"".join(parts)
    s3.copy_object(Bucket="seed", Key="copy-of-blob.bin", CopySource={"Bucket": "seed", "Key": "blob.bin"})
    expected[("seed", "copy-of-blob.bin")] = expected[("seed", "blob.bin")]
    s3.create_bucket(Bucket="history")
    s3.put_bucket_versioning(Bucket="history", VersioningConfiguration={"Status": "Enabled"})
    for generation in range(3):
        s3.put_object(Bucket="history", Key="doc", Body=body(f"doc#{generation}", 80 * KIB))
    expected[("history", "doc")] = body("doc#2", 80 * KIB)
    return expected


def read_all(s3, expected: dict[tuple[str, str], bytes]) -> None:
    for (bucket, key), data in expected.items():
        got = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert got == data, f"{bucket}/{key}: {len(got)} bytes back, {len(data)} expected"


@dataclass
class FirstBackup:
    source: FolioProcess
    backup_dir: Path
    report: dict
    acknowledged_before: dict[str, bytes]
    seeded: dict[tuple[str, str], bytes]
    written_during: int
    load: Load


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FolioProcess]:
    server = FolioProcess(data_dir=tmp_path_factory.mktemp("backup-source") / "data", config_text=CONFIG)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def first_backup(source: FolioProcess, tmp_path_factory: pytest.TempPathFactory) -> FirstBackup:
    """`folio backup DIR` as a subprocess while a thread keeps PUTting."""
    s3 = make_s3_client(source)
    seeded = seed(s3)
    load = Load(source)
    writer = threading.Thread(target=load.run, daemon=True)
    writer.start()
    deadline = time.monotonic() + 60
    while len(load.acknowledged) < 60 and time.monotonic() < deadline and load.error is None:
        time.sleep(0.05)
    backup_dir = tmp_path_factory.mktemp("backups") / "folio"
    started = time.monotonic()
    before = load.acknowledged_before(started)
    done = folio_command(
        "backup", str(backup_dir), "--data-dir", str(source.data_dir), "--config", str(source.config_path)
    )
    finished = time.monotonic()
    time.sleep(0.3)
    load.stop.set()
    writer.join(30)
    assert load.error is None, load.error
    written_during = sum(1 for at, _ in load.acknowledged.values() if started <= at <= finished)
    return FirstBackup(source, backup_dir, report_of(done), before, seeded, written_during, load)


def test_backup_under_load_restores_every_acknowledged_object(
    first_backup: FirstBackup, tmp_path_factory: pytest.TempPathFactory
) -> None:
    report = first_backup.report
    assert first_backup.written_during > 0, "the load must run while the backup does"
    assert len(first_backup.acknowledged_before) >= 60
    assert report["blobs"] > 0 and report["missingBlobs"] == []
    # Same filesystem: blobs are hard links of the store's own files, not copies.
    assert report["blobsLinked"] == report["blobs"] and report["blobsCopied"] == 0
    manifest_names = os.listdir(first_backup.backup_dir / "manifests")
    assert manifest_names == [f"{report['id']}.json"]
    manifest = json.loads((first_backup.backup_dir / "manifests" / manifest_names[0]).read_text())
    backup_files = blob_files(first_backup.backup_dir)
    assert set(backup_files) == set(manifest["blobs"]) and len(backup_files) == report["blobs"]
    # Blobs the store still has (the load's overwrites freed some since) share its inodes.
    source_files = blob_files(first_backup.source.data_dir)
    linked = [name for name in backup_files if name in source_files]
    assert linked and all(backup_files[name][0] == source_files[name][0] for name in linked)
    assert (first_backup.backup_dir / manifest["database"]["name"]).is_file()
    assert (first_backup.backup_dir / "master.key").read_bytes() == (
        first_backup.source.data_dir / "master.key"
    ).read_bytes()
    # What the backup holds is its owner's alone: it decrypts every secret of the instance.
    assert oct((first_backup.backup_dir / "master.key").stat().st_mode & 0o777) == "0o600"
    assert oct((first_backup.backup_dir / manifest["database"]["name"]).stat().st_mode & 0o777) == "0o600"
    assert oct(first_backup.backup_dir.stat().st_mode & 0o777) == "0o700"

    restored_dir = tmp_path_factory.mktemp("restored") / "data"
    restored = report_of(
        folio_command("restore", str(first_backup.backup_dir), "--data-dir", str(restored_dir))
    )
    assert restored["id"] == report["id"] and restored["blobs"] == report["blobs"]
    # `folio check` verified it (server/check.py); the built-in verification agrees.
    assert restored["verification"]["verifier"] == "folio check"
    assert restored["verification"]["clean"] is True, restored["verification"]
    builtin = verify_builtin(restored_dir)
    assert builtin["clean"] is True, builtin
    assert builtin["verifiedByEtag"] == builtin["objects"] > len(first_backup.acknowledged_before)
    assert oct((restored_dir / "master.key").stat().st_mode & 0o777) == "0o600"

    # A second server on the restored directory: the same account and keys (the database
    # and master.key came back), every object acknowledged before the backup identical.
    second = FolioProcess(data_dir=restored_dir, config_text=CONFIG)
    second.start()
    try:
        s3 = make_s3_client(second)
        read_all(s3, first_backup.seeded)
        read_all(s3, {("load", key): data for key, data in first_backup.acknowledged_before.items()})
        versions = s3.list_object_versions(Bucket="history", Prefix="doc")["Versions"]
        assert len(versions) == 3
        for version in versions:
            got = s3.get_object(Bucket="history", Key="doc", VersionId=version["VersionId"])["Body"].read()
            assert hashlib.md5(got).hexdigest() == version["ETag"].strip('"')
        # Objects written during the backup may be in it or not; those in it are whole.
        listed = s3.get_paginator("list_objects_v2").paginate(Bucket="load")
        keys = [item["Key"] for page in listed for item in page.get("Contents", [])]
        assert set(first_backup.acknowledged_before) <= set(keys)
        for key in keys:
            got = s3.get_object(Bucket="load", Key=key)["Body"].read()
            if key.startswith("load/"):
                assert got == first_backup.load.acknowledged[key][1]
            else:
                assert len(got) == 100 * KIB
    finally:
        second.stop()


def test_second_backup_of_unchanged_store_copies_no_blob(first_backup: FirstBackup) -> None:
    args = ("backup", str(first_backup.backup_dir), "--data-dir", str(first_backup.source.data_dir))
    # The load went on after the first backup ended: this one takes only what it wrote.
    catch_up = report_of(folio_command(*args))
    assert catch_up["blobsCopied"] == 0 and 0 < catch_up["blobsLinked"] < catch_up["blobs"]
    before = blob_files(first_backup.backup_dir)
    report = report_of(folio_command(*args))
    assert report["blobsCopied"] == 0 and report["blobsLinked"] == 0 and report["bytesCopied"] == 0
    assert report["blobsReused"] == report["blobs"] > 0
    assert report["snapshots"] == 1
    # Not one blob file made, replaced or touched; one more snapshot and manifest.
    assert blob_files(first_backup.backup_dir) == before
    assert len(os.listdir(first_backup.backup_dir / "manifests")) == 3
    assert len(os.listdir(first_backup.backup_dir / "db")) == 3


def test_copy_backup_holds_bytes_of_its_own_and_a_damaged_one_fails_restore(
    first_backup: FirstBackup, tmp_path: Path
) -> None:
    backup_dir = tmp_path / "copied"
    source = first_backup.source
    report = report_of(folio_command("backup", str(backup_dir), "--copy", "--data-dir", str(source.data_dir)))
    assert report["blobsCopied"] == report["blobs"] > 0 and report["blobsLinked"] == 0
    source_files, copied = blob_files(source.data_dir), blob_files(backup_dir)
    assert all(copied[name][0] != source_files[name][0] for name in copied if name in source_files)

    # One byte flipped in the backup's copy of the seeded blob (never the store's file).
    conn_db = (
        backup_dir / json.loads(next((backup_dir / "manifests").iterdir()).read_text())["database"]["name"]
    )
    with sqlite3.connect(conn_db) as conn:
        segments = conn.execute(
            "SELECT o.segments FROM objects o JOIN buckets b ON b.id = o.bucket_id"
            " WHERE b.name = 'seed' AND o.key = CAST('blob.bin' AS BLOB)"
        ).fetchone()[0]
    blob_id = json.loads(segments)[0][0]
    path = backup_dir / blob_name(blob_id)
    data = bytearray(path.read_bytes())
    data[1000] ^= 0x01
    path.write_bytes(bytes(data))

    restored_dir = tmp_path / "restored"
    done = folio_command("restore", str(backup_dir), "--data-dir", str(restored_dir))
    assert done.returncode == 1, done.stdout + done.stderr
    verification = json.loads(done.stdout.strip().splitlines()[-1])["verification"]
    assert verification["clean"] is False
    assert "did not verify clean" in done.stderr
    assert "blob.bin" in json.dumps(verification)
    # The built-in verification (for a Folio without `folio check`) finds it too.
    builtin = verify_builtin(restored_dir)
    assert builtin["clean"] is False
    assert [p["key"] for p in builtin["problems"]] == ["blob.bin", "copy-of-blob.bin"]


def test_blob_freed_after_the_snapshot_takes_a_fresh_snapshot(
    first_backup: FirstBackup, tmp_path: Path
) -> None:
    """Overwrite an object right after the snapshot: its old blob is freed and deleted
    before the copy reaches it. The backup takes a fresh snapshot, which no longer
    references it, and restores clean."""
    source = first_backup.source
    s3 = make_s3_client(source)
    s3.put_object(Bucket="load", Key="doomed", Body=body("doomed#1", 120 * KIB))
    doomed_blob = _blob_of(source.data_dir, "load", "doomed")
    doomed_path = source.data_dir / blob_name(doomed_blob)
    assert doomed_path.is_file()

    def free_it(attempt: int) -> None:
        if attempt == 1:
            s3.put_object(Bucket="load", Key="doomed", Body=body("doomed#2", 120 * KIB))
            deadline = time.monotonic() + 10
            while doomed_path.exists() and time.monotonic() < deadline:
                time.sleep(0.01)
            assert not doomed_path.exists()

    report = run_backup(source.data_dir, DirectoryTarget(tmp_path / "bk"), after_snapshot=free_it)
    assert report.snapshots == 2 and report.missingBlobs == []
    manifest = json.loads((tmp_path / "bk" / "manifests" / f"{report.id}.json").read_text())
    assert doomed_blob not in manifest["blobs"]
    assert _blob_of(source.data_dir, "load", "doomed") in manifest["blobs"]
    restored = report_of(
        folio_command("restore", str(tmp_path / "bk"), "--data-dir", str(tmp_path / "restored"))
    )
    assert restored["verification"]["clean"] is True, restored["verification"]


def _blob_of(data_dir: Path, bucket: str, key: str) -> str:
    with sqlite3.connect(f"file:{data_dir / 'folio.db'}?mode=ro", uri=True) as conn:
        segments = conn.execute(
            "SELECT o.segments FROM objects o JOIN buckets b ON b.id = o.bucket_id"
            " WHERE b.name = ? AND o.key = CAST(? AS BLOB) AND o.is_latest = 1",
            (bucket, key),
        ).fetchone()[0]
    return json.loads(segments)[0][0]


def test_backup_to_s3_and_restore_from_it(first_backup: FirstBackup, moto_url: str, tmp_path: Path) -> None:
    moto = moto_client(moto_url)
    moto.create_bucket(Bucket="folio-backups")
    location = "s3://folio-backups/nightly/folio"
    source = first_backup.source
    args = ["--endpoint-url", moto_url, "--data-dir", str(source.data_dir)]
    report = report_of(folio_command("backup", location, *args, env=MOTO_ENV))
    assert report["blobsCopied"] == report["blobs"] > 0 and report["blobsLinked"] == 0
    listed = moto.get_paginator("list_objects_v2").paginate(Bucket="folio-backups", Prefix="nightly/folio/")
    keys = {item["Key"] for page in listed for item in page.get("Contents", [])}
    assert f"nightly/folio/manifests/{report['id']}.json" in keys
    assert f"nightly/folio/db/folio-{report['id']}.db" in keys
    assert "nightly/folio/master.key" in keys
    assert sum(1 for key in keys if key.startswith("nightly/folio/blobs/")) == report["blobs"]

    again = report_of(folio_command("backup", location, *args, env=MOTO_ENV))
    assert again["blobsCopied"] == 0 and again["blobsReused"] == again["blobs"] == report["blobs"]

    listing = folio_command("restore", location, "--list", "--endpoint-url", moto_url, env=MOTO_ENV)
    assert [b["id"] for b in json.loads(listing.stdout)] == [report["id"], again["id"]]
    restored_dir = tmp_path / "restored"
    restored = report_of(
        folio_command(
            "restore",
            location,
            "--backup-id",
            report["id"],
            "--endpoint-url",
            moto_url,
            "--data-dir",
            str(restored_dir),
            env=MOTO_ENV,
        )
    )
    assert restored["id"] == report["id"]
    assert restored["verification"]["clean"] is True, restored["verification"]
    second = FolioProcess(data_dir=restored_dir, config_text=CONFIG)
    second.start()
    try:
        s3 = make_s3_client(second)
        read_all(s3, first_backup.seeded)
        read_all(s3, {("load", key): data for key, data in first_backup.acknowledged_before.items()})
    finally:
        second.stop()


def test_keep_prunes_old_backups_and_the_blobs_only_they_used(
    first_backup: FirstBackup, tmp_path: Path
) -> None:
    source = first_backup.source
    s3 = make_s3_client(source)
    s3.put_object(Bucket="load", Key="short-lived", Body=body("short-lived", 150 * KIB))
    short_lived = _blob_of(source.data_dir, "load", "short-lived")
    target = tmp_path / "kept"
    data_dir = ["--data-dir", str(source.data_dir)]
    first = report_of(folio_command("backup", str(target), *data_dir))
    s3.delete_object(Bucket="load", Key="short-lived")
    report_of(folio_command("backup", str(target), *data_dir))
    assert (target / blob_name(short_lived)).exists()
    last = report_of(folio_command("backup", str(target), "--keep", "1", *data_dir))
    assert first["id"] in last["prunedBackups"] and len(last["prunedBackups"]) == 2
    assert last["prunedBlobs"] >= 1
    assert not (target / blob_name(short_lived)).exists()
    assert os.listdir(target / "manifests") == [f"{last['id']}.json"]
    assert os.listdir(target / "db") == [f"folio-{last['id']}.db"]
    restored = report_of(folio_command("restore", str(target), "--data-dir", str(tmp_path / "restored")))
    assert restored["verification"]["clean"] is True, restored["verification"]


def test_restore_refuses_a_non_empty_directory_unless_forced(
    first_backup: FirstBackup, tmp_path: Path
) -> None:
    target = tmp_path / "occupied"
    target.mkdir()
    (target / "folio.db-wal").write_bytes(b"stale write-ahead log of another database")
    (target / "notes.txt").write_text("mine")
    done = folio_command("restore", str(first_backup.backup_dir), "--data-dir", str(target))
    assert done.returncode == 1 and "is not empty" in done.stderr and "--force" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (target / "folio.db").exists()
    forced = report_of(
        folio_command("restore", str(first_backup.backup_dir), "--data-dir", str(target), "--force")
    )
    assert forced["verification"]["clean"] is True
    # The stale WAL is gone (it would have been replayed into the restored database); other files stay.
    assert not (target / "folio.db-wal").exists()
    assert (target / "notes.txt").read_text() == "mine"


def test_bad_locations_and_arguments_get_one_clear_line(first_backup: FirstBackup, tmp_path: Path) -> None:
    data_dir = ["--data-dir", str(first_backup.source.data_dir)]
    cases = [
        (["backup", "ftp://host/path", *data_dir], "a directory or s3://bucket/prefix"),
        (["backup", str(tmp_path / "x"), "--data-dir", str(tmp_path / "nothing")], "does not exist"),
        (["backup", str(first_backup.source.data_dir / "inside"), *data_dir], "cannot be inside"),
        (["backup", str(tmp_path / "y"), "--jobs", "0", *data_dir], "--jobs must be 1 or more"),
        (
            ["restore", str(tmp_path / "no-backups"), "--data-dir", str(tmp_path / "r")],
            "is empty or does not exist",
        ),
        (
            ["restore", str(tmp_path / "interrupted"), "--data-dir", str(tmp_path / "r")],
            "holds no completed backup",
        ),
        (
            [
                "restore",
                str(first_backup.backup_dir),
                "--backup-id",
                "19990101T000000.000Z",
                "--data-dir",
                str(tmp_path / "r2"),
            ],
            "no backup 19990101T000000.000Z",
        ),
    ]
    (tmp_path / "interrupted" / "blobs").mkdir(parents=True)  # a first backup that never finished
    (tmp_path / "interrupted" / "folio-backup.json").write_text('{"format": 1}')
    (tmp_path / "not-a-backup").mkdir()
    (tmp_path / "not-a-backup" / "holiday.jpg").write_bytes(b"\xff\xd8")
    cases.append((["backup", str(tmp_path / "not-a-backup"), *data_dir], "holds no Folio backup"))
    for args, message in cases:
        done = folio_command(*args)
        assert done.returncode == 1, (args, done.stdout, done.stderr)
        assert message in done.stderr and "Traceback" not in done.stderr, (args, done.stderr)
    assert os.listdir(tmp_path / "not-a-backup") == ["holiday.jpg"]
    # Unreachable S3 endpoint: one line, no traceback.
    done = folio_command(
        "backup",
        "s3://b/p",
        "--endpoint-url",
        "http://127.0.0.1:9",
        *data_dir,
        env={**MOTO_ENV, "AWS_MAX_ATTEMPTS": "1"},
    )
    assert done.returncode == 1 and "cannot" in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_a_blob_lost_before_the_backup_is_reported_not_hidden(tmp_path: Path) -> None:
    """Damage already in the store (a blob file deleted behind its back) is not papered
    over: the backup completes, names the missing blob in its manifest and exits 1."""
    server = FolioProcess(data_dir=tmp_path / "data", config_text=CONFIG)
    server.start()
    try:
        s3 = make_s3_client(server)
        s3.create_bucket(Bucket="fragile")
        s3.put_object(Bucket="fragile", Key="kept", Body=body("kept", 100 * KIB))
        s3.put_object(Bucket="fragile", Key="lost", Body=body("lost", 100 * KIB))
        lost = _blob_of(server.data_dir, "fragile", "lost")
        (server.data_dir / blob_name(lost)).unlink()
        done = folio_command("backup", str(tmp_path / "bk"), "--data-dir", str(server.data_dir))
    finally:
        server.stop()
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["missingBlobs"] == [lost] and report["snapshots"] == 2
    assert "already missing" in done.stderr and "folio check" in done.stderr
    manifest = json.loads((tmp_path / "bk" / "manifests" / f"{report['id']}.json").read_text())
    assert manifest["missingBlobs"] == [lost] and lost not in manifest["blobs"]
    # It restores as it was: everything else whole, the lost object named by folio check.
    done = folio_command("restore", str(tmp_path / "bk"), "--data-dir", str(tmp_path / "restored"))
    assert done.returncode == 1 and "did not verify clean" in done.stderr, done.stderr
    verification = json.loads(done.stdout.strip().splitlines()[-1])["verification"]
    assert verification["verifier"] == "folio check" and verification["clean"] is False
    lost_objects = verification["summary"]["lost_objects"]
    assert [(o["bucket"], o["key"]) for o in lost_objects] == [("fragile", "lost")]
