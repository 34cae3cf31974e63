"""`folio migrate` (issue 18): a single-node data directory with versions, multipart objects,
copies, inline objects, webhooks and documents moves into a real PostgreSQL and a real SeaweedFS
bucket; an interrupted run resumes; every object reads back identical through a Folio on the
new backends."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.db_postgres import PostgresDatabase
from server.runtime import MIGRATIONS
from tests import pg, seaweedfs
from tests.conftest import make_s3_client
from tests.docgen_helpers import HELLO_B64, signup, wait_job
from tests.folio_process import FolioProcess

# Explicit backends: this module's source is the embedded default whatever the suite's
# FOLIO_TEST_DATABASE / FOLIO_TEST_BLOBS say.
SOURCE_CONFIG = (
    '[database]\nurl = ""\n\n[blobs]\nbackend = "local"\n\n[webhooks]\nallow_loopback_targets = true\nallow_http = true\n'
)
PART = 5 * 1024 * 1024 + 17


def _migrate(
    server: FolioProcess, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "server", "migrate", "--config", str(server.config_path),
         "--data-dir", str(server.data_dir), *args],
        capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})},
    )  # fmt: skip


def _everything(s3: Any, bucket: str) -> dict[tuple[str, str], tuple[bool, str | None]]:
    """Every version and delete marker of the bucket, with the MD5 of each version's bytes."""
    found: dict[tuple[str, str], tuple[bool, str | None]] = {}
    listing = s3.list_object_versions(Bucket=bucket)
    for marker in listing.get("DeleteMarkers", []):
        found[(marker["Key"], marker["VersionId"])] = (True, None)
    for version in listing.get("Versions", []):
        body = s3.get_object(Bucket=bucket, Key=version["Key"], VersionId=version["VersionId"])["Body"].read()
        found[(version["Key"], version["VersionId"])] = (False, hashlib.md5(body).hexdigest())
    return found


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A stopped single-node Folio holding a bit of everything, and what it held."""
    server = FolioProcess(
        data_dir=tmp_path_factory.mktemp("migrate-source") / "data", config_text=SOURCE_CONFIG
    )
    server.start()
    try:
        s3 = make_s3_client(server)
        bucket = f"mig-{uuid.uuid4().hex[:12]}"
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        for n in range(3):  # versions of a blob-sized object
            s3.put_object(Bucket=bucket, Key="report.bin", Body=os.urandom(100_000 + n))
        s3.put_object(Bucket=bucket, Key="small.txt", Body=b"inline bytes")  # an inline object
        s3.put_object(Bucket=bucket, Key="gone.txt", Body=os.urandom(90_000))
        s3.delete_object(Bucket=bucket, Key="gone.txt")  # a delete marker over a blob version
        s3.copy_object(
            Bucket=bucket, Key="report-copy.bin", CopySource={"Bucket": bucket, "Key": "report.bin"}
        )
        upload = s3.create_multipart_upload(Bucket=bucket, Key="big.bin")["UploadId"]
        parts = []
        for number in (1, 2):
            etag = s3.upload_part(
                Bucket=bucket, Key="big.bin", UploadId=upload, PartNumber=number, Body=os.urandom(PART)
            )["ETag"]
            parts.append({"PartNumber": number, "ETag": etag})
        s3.complete_multipart_upload(
            Bucket=bucket, Key="big.bin", UploadId=upload, MultipartUpload={"Parts": parts}
        )
        # A webhook and a finished document job, through their APIs.
        account = signup(server, "mig")
        hook = httpx.post(
            f"{server.web_url}/api/webhooks",
            headers={"X-API-Key": account.s3_pair},
            json={"url": "http://127.0.0.1:9/hook", "events": ["object.created"]},
        )
        assert hook.status_code == 201, hook.text
        job = account.http.post("/v2/html/pdf", json={"html": HELLO_B64})
        assert job.status_code == 202, job.text
        finished = wait_job(account.http, job.json()["id"])
        assert finished["status"] == "success", finished
        account.close()
        expected = _everything(s3, bucket)
        big = s3.head_object(Bucket=bucket, Key="big.bin", PartNumber=2)
    finally:
        server.stop()
    yield {
        "server": server,
        "bucket": bucket,
        "objects": expected,
        "big_parts": big["PartsCount"],
        "account": account,
        "hook_id": hook.json()["id"],
        "job_id": finished["id"],
    }


def test_migrate_moves_everything_and_resumes(source: dict[str, Any], tmp_path: Path) -> None:
    server: FolioProcess = source["server"]
    url = pg.new_database_url("migrated")
    endpoint, bucket, access_key, secret_key = seaweedfs.new_bucket()
    target = ["--to-database", url, "--to-blobs", f"s3://{bucket}/folio/", "--blobs-endpoint", endpoint]
    credentials = {"FOLIO_BLOBS_ACCESS_KEY": access_key, "FOLIO_BLOBS_SECRET_KEY": secret_key}
    with sqlite3.connect(server.data_dir / "folio.db") as conn:
        blob_rows = conn.execute("SELECT count(*) FROM blobs").fetchone()[0]

    # An interrupted run: the target database already holds a bucket row, so the metadata copy
    # is refused after every blob was uploaded and verified. Nothing of the metadata is there.
    target_db = PostgresDatabase(url, pool_size=1)
    target_db.open(MIGRATIONS)
    target_db.write_blocking(
        lambda c: c.execute(
            "INSERT INTO buckets (name, account_id, region, created_at) VALUES ('in-the-way', 'x', 'us-east-1', 0)"
        )
    )
    first = _migrate(server, *target, env=credentials)
    assert first.returncode == 1, first.stderr
    assert "already holds rows in buckets" in first.stderr
    progress = json.loads((server.data_dir / "migrate-progress.json").read_text())
    uploaded = set(progress["verifiedBlobs"])
    assert len(uploaded) == blob_rows > 0
    keys = {o["Key"] for o in seaweedfs.client().list_objects_v2(Bucket=bucket).get("Contents", [])}
    assert keys == {f"folio/{blob_id}" for blob_id in uploaded}  # opaque keys, never a user's

    target_db.write_blocking(lambda c: c.execute("DELETE FROM buckets"))
    target_db.close()
    second = _migrate(server, *target, env=credentials)
    assert second.returncode == 0, second.stderr
    report = json.loads(second.stdout)
    # The resumed run found every blob verified already and uploaded nothing again.
    assert report["blobs"]["uploaded"] == 0
    assert report["blobs"]["alreadyThere"] == len(uploaded)
    assert report["objectVersionsChecked"] >= len(source["objects"])
    assert report["rows"]["objects"] >= len(source["objects"])

    # A finished migration is not run twice.
    again = _migrate(server, *target, env=credentials)
    assert again.returncode == 1 and "already holds rows" in again.stderr

    # A Folio on the new backends, with the old master.key, serves exactly the same.
    node_dir = tmp_path / "node" / "data"
    node_dir.mkdir(parents=True)
    shutil.copy2(server.data_dir / "master.key", node_dir / "master.key")
    config = f'[database]\nurl = "{url}"\n' + seaweedfs.blobs_section(
        endpoint, bucket, access_key, secret_key, prefix="folio/"
    )
    node = FolioProcess(data_dir=node_dir, config_text=config)
    node.start()
    try:
        s3 = make_s3_client(node)
        assert _everything(s3, source["bucket"]) == source["objects"]
        assert (
            s3.head_object(Bucket=source["bucket"], Key="big.bin", PartNumber=2)["PartsCount"]
            == source["big_parts"]
        )
        account = source["account"]
        pair = {"X-API-Key": account.s3_pair}
        hooks = httpx.get(f"{node.web_url}/api/webhooks", headers=pair).json()["webhooks"]
        assert [h["id"] for h in hooks] == [source["hook_id"]]
        job = httpx.get(f"{node.web_url}/v2/jobs/{source['job_id']}", headers={"X-API-Key": account.key})
        assert job.status_code == 200 and job.json()["status"] == "success", job.text
        # The account's own secret key (encrypted in the rows) still signs requests.
        mine = make_s3_client(node, account.access_key, account.secret_key)
        assert mine.list_buckets()["Buckets"] is not None
        # And the new deployment takes writes.
        s3.put_object(Bucket=source["bucket"], Key="after.bin", Body=b"x" * 100_000)
        assert s3.get_object(Bucket=source["bucket"], Key="after.bin")["Body"].read() == b"x" * 100_000
    finally:
        node.stop()


def test_migrate_refuses_bad_targets(source: dict[str, Any]) -> None:
    server: FolioProcess = source["server"]
    missing = _migrate(server, "--to-database", "postgresql://x@127.0.0.1:1/db")
    assert missing.returncode == 2 and "--to-blobs" in missing.stderr
    wrong = _migrate(server, "--to-database", "mysql://x", "--to-blobs", "s3://b/p/")
    assert wrong.returncode == 2 and "postgresql://" in wrong.stderr
