"""PostgreSQL goes away under a running Folio and comes back (issue 18, docs/scale-out.md):
requests are answered 503 at once in each front door's own format (S3 XML ServiceUnavailable,
JSON elsewhere), the event loop never waits out the pool's timeout, and everything works
again once the database is back, with nothing lost."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError

from bench.pg_cluster import PgCluster, bin_dir
from tests import pg
from tests.conftest import make_s3_client
from tests.folio_process import FolioProcess

NO_RETRIES = BotoConfig(retries={"max_attempts": 1, "mode": "standard"})


class OwnCluster(PgCluster):
    """A cluster of this module's own (the shared one serves other tests), stopped and started
    again on the same directory and port."""

    def pg_ctl(self, *args: str) -> None:
        assert self.dir is not None
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1"
        self._run([str(bin_dir() / "pg_ctl"), "-D", str(self.dir / "data"), "-l", str(self.dir / "server.log"),
                   "-o", options, "-w", *args])  # fmt: skip
        pid_file = self.dir / "data" / "postmaster.pid"
        # stop() ends the server by the PID it started with: keep it current.
        self.pid = int(pid_file.read_text().split("\n", 1)[0]) if pid_file.exists() else None


@pytest.fixture(scope="module")
def cluster() -> Iterator[OwnCluster]:
    started = OwnCluster(pg.SETTINGS, initdb_args=("--locale=C",))
    started.start()
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="module")
def server(cluster: OwnCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FolioProcess]:
    with psycopg.connect(cluster.dsn, autocommit=True) as conn:
        conn.execute("CREATE DATABASE folio_outage")
    url = f"postgresql://postgres@127.0.0.1:{cluster.port}/folio_outage"
    folio = FolioProcess(
        data_dir=tmp_path_factory.mktemp("pg-outage") / "data",
        config_text=f'[database]\nurl = "{url}"\n\n[blobs]\nbackend = "local"\n',
    )
    folio.start()
    yield folio
    folio.stop()


def _status(call: Any) -> tuple[int, str]:
    try:
        call()
    except ClientError as exc:
        return exc.response["ResponseMetadata"]["HTTPStatusCode"], exc.response["Error"]["Code"]
    return 200, ""


def test_database_outage_is_503_at_once_and_recovers(cluster: OwnCluster, server: FolioProcess) -> None:
    s3 = make_s3_client(server, config=NO_RETRIES)
    s3.create_bucket(Bucket="outage")
    s3.put_object(Bucket="outage", Key="before", Body=b"kept" * 30000)

    cluster.pg_ctl("stop", "-m", "fast")
    try:
        for call in (
            lambda: s3.get_object(Bucket="outage", Key="before"),
            lambda: s3.put_object(Bucket="outage", Key="during", Body=b"refused"),
            lambda: s3.list_objects_v2(Bucket="outage"),
        ):
            started = time.monotonic()
            assert _status(call) == (503, "ServiceUnavailable")
            # Well under the pool's own 30 s: the loop is not held while the server is down.
            assert time.monotonic() - started < 5
        for _ in range(5):
            started = time.monotonic()
            health = httpx.get(f"{server.web_url}/healthz", timeout=10)
            assert health.status_code == 503, health.text
            database = health.json()["database"]
            assert database["engine"] == "postgresql" and database["ok"] is False, database
            # The web API's JSON error for any other request.
            keys = httpx.get(f"{server.web_url}/api/keys", headers={"X-API-Key": "a:b"}, timeout=10)
            assert keys.status_code == 503 and keys.json()["error"]["code"] == "ServiceUnavailable"
            assert time.monotonic() - started < 3.5
    finally:
        cluster.pg_ctl("start")

    deadline = time.monotonic() + 20
    while _status(lambda: s3.head_object(Bucket="outage", Key="before"))[0] != 200:
        assert time.monotonic() < deadline, "Folio did not recover after PostgreSQL came back"
        time.sleep(0.2)
    assert s3.get_object(Bucket="outage", Key="before")["Body"].read() == b"kept" * 30000
    # The write refused during the outage left nothing; a new one works.
    assert _status(lambda: s3.head_object(Bucket="outage", Key="during"))[0] == 404
    s3.put_object(Bucket="outage", Key="after", Body=b"new")
    assert s3.get_object(Bucket="outage", Key="after")["Body"].read() == b"new"
    health = httpx.get(f"{server.web_url}/healthz", timeout=10)
    assert health.status_code == 200 and health.json()["database"]["ok"] is True, health.text
