"""A real `folio serve` with its metadata on PostgreSQL (issue 18): the admin account, buckets,
inline and blob-backed objects, delimiter listings, deletes and versions, through boto3; the
rows are PostgreSQL's, and a restart on the same database finds everything again."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.conftest import make_s3_client
from tests.folio_process import FolioProcess
from tests.pg import drop_database, new_database_url


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    url = new_database_url("smoke")
    yield url
    drop_database(url)


@pytest.fixture(scope="module")
def folio_pg(tmp_path_factory: pytest.TempPathFactory, database_url: str) -> Iterator[FolioProcess]:
    server = FolioProcess(
        data_dir=tmp_path_factory.mktemp("folio-pg") / "data",
        config_text=f'[database]\nurl = "{database_url}"\n',
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _bodies() -> dict[str, bytes]:
    """Ten objects under two prefixes: small ones inline, every third above 64 KiB (a blob)."""
    bodies = {}
    for i in range(10):
        size = 200_000 + i if i % 3 == 0 else 100 + i
        bodies[f"dir{i % 2}/obj-{i}"] = hashlib.sha256(str(i).encode()).digest() * (size // 32 + 1)
    return bodies


def test_objects_round_trip_on_postgresql(folio_pg: FolioProcess, database_url: str) -> None:
    s3 = make_s3_client(folio_pg)
    s3.create_bucket(Bucket="pg-smoke")
    bodies = _bodies()
    for key, body in bodies.items():
        s3.put_object(Bucket="pg-smoke", Key=key, Body=body)
    for key, body in bodies.items():
        assert s3.get_object(Bucket="pg-smoke", Key=key)["Body"].read() == body

    top = s3.list_objects_v2(Bucket="pg-smoke", Delimiter="/")
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["dir0/", "dir1/"]
    assert "Contents" not in top
    one = s3.list_objects_v2(Bucket="pg-smoke", Prefix="dir1/", Delimiter="/")
    assert [(o["Key"], o["Size"]) for o in one["Contents"]] == sorted(
        (k, len(b)) for k, b in bodies.items() if k.startswith("dir1/")
    )
    paged = s3.list_objects_v2(Bucket="pg-smoke", MaxKeys=3)
    assert [o["Key"] for o in paged["Contents"]] == sorted(bodies)[:3] and paged["IsTruncated"]

    s3.delete_object(Bucket="pg-smoke", Key="dir0/obj-0")  # versioned by default: a marker
    s3.put_object(Bucket="pg-smoke", Key="dir1/obj-1", Body=b"second version")
    versions = s3.list_object_versions(Bucket="pg-smoke")
    assert [m["Key"] for m in versions["DeleteMarkers"]] == ["dir0/obj-0"]
    of_one = [v for v in versions["Versions"] if v["Key"] == "dir1/obj-1"]
    assert [v["IsLatest"] for v in of_one] == [True, False] and of_one[1]["Size"] == len(bodies["dir1/obj-1"])
    old = s3.get_object(Bucket="pg-smoke", Key="dir1/obj-1", VersionId=of_one[1]["VersionId"])
    assert old["Body"].read() == bodies["dir1/obj-1"]
    assert "dir0/obj-0" not in [o["Key"] for o in s3.list_objects_v2(Bucket="pg-smoke")["Contents"]]

    # The rows are PostgreSQL's: the admin account made at first start, the versions, the usage
    # the triggers keep (every version kept, delete markers size 0).
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT email, is_admin FROM accounts").fetchall() == [("admin@localhost", 1)]
        versions_stored, latest_objects = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE is_latest = 1 AND is_delete_marker = 0) FROM objects"
        ).fetchone()
        bucket_row = conn.execute(
            "SELECT bytes_used, object_count FROM buckets WHERE name = 'pg-smoke'"
        ).fetchone()
    assert (versions_stored, latest_objects) == (12, 9)
    assert bucket_row == (sum(map(len, bodies.values())) + len(b"second version"), 9)


def test_restart_on_the_same_database(folio_pg: FolioProcess, database_url: str) -> None:
    s3 = make_s3_client(folio_pg)
    s3.create_bucket(Bucket="pg-restart")
    s3.put_object(Bucket="pg-restart", Key="kept", Body=b"x" * 70_000)
    folio_pg.stop()
    folio_pg.start()  # migrations already applied, the admin account already there
    s3 = make_s3_client(folio_pg)
    assert s3.get_object(Bucket="pg-restart", Key="kept")["Body"].read() == b"x" * 70_000
    assert folio_pg.log().count("Folio created its admin account") == 1
    usage = folio_pg.usage("admin@localhost")  # `folio admin` on the same database
    assert usage["buckets"]["pg-restart"] == {"bytesUsed": 70_000, "objects": 1}


def test_data_directory_holds_no_sqlite_database(folio_pg: FolioProcess) -> None:
    assert not Path(folio_pg.data_dir, "folio.db").exists()


@pytest.mark.parametrize(
    "command",
    [["backup", "{tmp}/backups"], ["restore", "{tmp}/backups"], ["check", "--repair"]],
    ids=["backup", "restore", "check-repair"],
)
def test_sqlite_file_commands_refuse_with_one_line(
    folio_pg: FolioProcess, tmp_path: Path, command: list[str]
) -> None:
    args = [part.format(tmp=tmp_path) for part in command]
    out = subprocess.run(
        [sys.executable, "-m", "server", *args, *folio_pg._base_args()],
        env=folio_pg._environment(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr, out.stderr
    assert (
        "embedded SQLite store" in out.stderr
        and "pg_dump" in out.stderr
        and "docs/scale-out.md" in out.stderr
    )
    assert not (tmp_path / "backups").exists()
