"""Shared fixtures: a real Folio server on loopback, clients that talk to it (boto3,
the aws CLI), and moto as a reference S3."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from tests.folio_process import FolioProcess, free_port, running_server
from tests.server_logs import log_report
from tests.tls_ca import TlsFiles, make_test_ca

# The shared test server allows many buckets (tests each make their own) and
# requests as fast as tests send them; its quota is on but out of reach, so every
# write path still settles against it. Other plans are for the quota and rate tests.
TEST_CONFIG = """
[plans.default]
storage_bytes = 1099511627776
max_buckets = 100000
write_per_second = 0
read_per_second = 0
list_per_second = 0
dashboard_per_minute = 0
docgen_per_minute = 0

[plans.tiny]
storage_bytes = 1000000
max_buckets = 100
list_per_second = 5
keep_versions = 3
keep_days = 30.0
"""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # The server-log check reads the logs of every server the run started: it goes last
    # (stable sort: every other test keeps its place).
    items.sort(key=lambda item: item.path.name == "test_zz_server_logs.py")
    if os.environ.get("FOLIO_TEST_DATABASE") == "postgres":
        _deselect_sqlite_only(config, items)


# (test id, reason) of the tests FOLIO_TEST_DATABASE=postgres left out, for the summary.
SQLITE_ONLY: list[tuple[str, str]] = []


def _deselect_sqlite_only(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests of SQLite's own file (a backup of it, `folio check` on it, a full disk under it)
    are marked `sqlite_only(reason=...)`: with the servers on PostgreSQL they are deselected,
    never skipped in silence, and the summary lists each with its reason."""
    kept = []
    for item in items:
        marker = item.get_closest_marker("sqlite_only")
        if marker is None:
            kept.append(item)
        elif not marker.kwargs.get("reason"):
            raise pytest.UsageError(
                f"{item.nodeid}: sqlite_only needs reason=... (why PostgreSQL cannot run it)"
            )
        else:
            SQLITE_ONLY.append((item.nodeid, marker.kwargs["reason"]))
    if hasattr(config, "workeroutput"):  # a pytest-xdist worker: sent to the controller at its end
        config.workeroutput["sqlite_only"] = SQLITE_ONLY
    if len(kept) < len(items):
        config.hook.pytest_deselected(items=[item for item in items if item not in kept])
        items[:] = kept


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """Under pytest-xdist the workers collect: each hands its list to the controller."""
    for found in getattr(node, "workeroutput", {}).get("sqlite_only", []):
        if tuple(found) not in SQLITE_ONLY:
            SQLITE_ONLY.append(tuple(found))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if SQLITE_ONLY:
        terminalreporter.write_sep(
            "-", f"{len(SQLITE_ONLY)} sqlite_only tests deselected (FOLIO_TEST_DATABASE=postgres)"
        )
        for nodeid, reason in SQLITE_ONLY:
            terminalreporter.write_line(f"{nodeid}: {reason}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Under pytest-xdist, on the controller once every worker has stopped its servers:
    the server-log check of tests/test_zz_server_logs.py over every worker's servers (each
    worker's own run of that test sees only its own). Workers keep their temporary
    directories under the controller's, so one walk finds every log."""
    config = session.config
    if hasattr(config, "workerinput") or not getattr(config.option, "numprocesses", None):
        return
    root = config._tmp_path_factory.getbasetemp()  # type: ignore[attr-defined]
    logs = sorted(root.rglob("*-server.log"))
    report = [found for found in map(log_report, logs) if found]
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if report:
        reporter.write_sep("=", "server logs with tracebacks or 500s", red=True)
        reporter.write_line("\n\n".join(report))
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    else:
        reporter.write_line(f"server logs: {len(logs)} read, no traceback or 500")


@pytest.fixture(scope="session")
def folio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FolioProcess]:
    """One server for the whole session (tests use their own buckets)."""
    yield from running_server(tmp_path_factory, "folio", TEST_CONFIG)


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A test CA and a server certificate for 127.0.0.1 signed by it (tests/tls_ca.py)."""
    return make_test_ca(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def folio_https(tmp_path_factory: pytest.TempPathFactory, tls_files: TlsFiles) -> Iterator[FolioProcess]:
    """The same as `folio`, over HTTPS on both listeners (tests/transport.py runs whole
    modules against both)."""
    yield from running_server(tmp_path_factory, "folio-https", TEST_CONFIG, tls=tls_files)


# The same, with new buckets unversioned as in AWS (`[versioning] new_buckets = "Off"`):
# for tests of S3's own versioning rules and comparisons with moto.
AWS_LIKE_CONFIG = TEST_CONFIG + '\n[versioning]\nnew_buckets = "Off"\n'


@pytest.fixture(scope="session")
def folio_aws_like(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FolioProcess]:
    yield from running_server(tmp_path_factory, "folio-aws", AWS_LIKE_CONFIG)


@pytest.fixture(scope="session")
def s3_aws_like(folio_aws_like: FolioProcess):
    return make_s3_client(folio_aws_like)


@pytest.fixture
def unversioned_bucket(s3_aws_like) -> Iterator[str]:
    """A bucket on the AWS-like server (use with `s3_aws_like`)."""
    yield from new_bucket(s3_aws_like)


def make_s3_client(
    server: FolioProcess, access_key: str | None = None, secret_key: str | None = None, **kwargs
):
    """boto3 with its default configuration, pointed at Folio (trusting its test CA when
    it serves HTTPS)."""
    if server.tls:
        kwargs.setdefault("verify", str(server.tls.ca))
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


def sign_up_with_versioned_bucket(
    server: FolioProcess, tag: str, password: str, web: httpx.Client | None = None
) -> tuple[str, str, Any]:
    """A new account through the dashboard API's sign-up (with `web`, that client keeps
    the session cookie), and a versioned bucket of its own made through S3 with its first
    key: (email, bucket, boto3 client)."""
    email = f"{tag}-{uuid.uuid4().hex[:10]}@example.com"
    body = {"email": email, "password": password}
    answer = (web or httpx).post(f"{server.web_url}/api/auth/signup", json=body)
    assert answer.status_code == 201, answer.text
    s3 = make_s3_client(server, answer.json()["accessKey"], answer.json()["secretKey"])
    bucket = f"{tag}-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    return email, bucket, s3


def new_bucket(s3, prefix: str = "test") -> Iterator[str]:
    """A fresh empty bucket, emptied and removed afterwards if it is still there."""
    name = f"{prefix}-{uuid.uuid4().hex[:16]}"
    s3.create_bucket(Bucket=name)
    yield name
    try:
        empty_bucket(s3, name)
        s3.delete_bucket(Bucket=name)
    except Exception:  # noqa: BLE001 - cleanup must not mask the test's own result
        pass


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium (Playwright) for one test module of the dashboard. Module-scoped,
    not session-scoped: Playwright's sync API holds an event loop on its thread while a
    browser is open (tests/browser.py)."""
    from tests.browser import running_chromium

    with running_chromium() as launched:
        yield launched


# Where the browser tests put their screenshots of the dashboard (README: "Testing").
SCREENSHOTS = Path(
    os.environ.get("FOLIO_SCREENSHOTS") or Path(__file__).resolve().parent.parent / "test-screenshots"
)


def make_objects_public(s3, name: str) -> None:
    """The usual website bucket policy: anyone may GET every object of the bucket (a
    bucket ACL of public-read only lets anyone list it, as on AWS)."""
    statement = {
        "Sid": "PublicRead",
        "Effect": "Allow",
        "Principal": "*",
        "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{name}/*",
    }
    s3.put_bucket_policy(Bucket=name, Policy=json.dumps({"Version": "2012-10-17", "Statement": [statement]}))


def empty_bucket(s3, name: str) -> None:
    """Delete every version and delete marker (buckets keep versions by default)."""
    paginator = s3.get_paginator("list_object_versions")
    for page in paginator.paginate(Bucket=name):
        doomed = [
            {"Key": v["Key"], "VersionId": v["VersionId"]}
            for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
        ]
        if doomed:
            s3.delete_objects(Bucket=name, Delete={"Objects": doomed, "Quiet": True})


@pytest.fixture
def bucket(s3) -> Iterator[str]:
    yield from new_bucket(s3)


@pytest.fixture
def tmp_files(tmp_path: Path) -> Path:
    return tmp_path


AWS = Path(sys.executable).with_name("aws")

AwsRunner = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def aws(folio: FolioProcess, tmp_path: Path) -> AwsRunner:
    """Run `aws <args> --endpoint-url <folio>` with only our credentials in its environment."""
    config_dir = tmp_path / "aws-config"
    config_dir.mkdir()
    (config_dir / "config").write_text("")
    (config_dir / "credentials").write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        {
            "AWS_ACCESS_KEY_ID": folio.access_key,
            "AWS_SECRET_ACCESS_KEY": folio.secret_key,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": str(config_dir / "config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(config_dir / "credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_PAGER": "",
        }
    )
    if folio.tls:
        env["AWS_CA_BUNDLE"] = str(folio.tls.ca)

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        out = subprocess.run(
            [str(AWS), *args, "--endpoint-url", folio.s3_url],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check:
            assert out.returncode == 0, (
                f"aws {' '.join(args)} exited {out.returncode}\nstdout: {out.stdout}\nstderr: {out.stderr}"
            )
        return out

    return run


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"moto_server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("moto_server did not start listening")


def moto_client(moto_url: str):
    """boto3 with its default configuration, pointed at moto (the reference S3)."""
    return boto3.client(
        "s3",
        endpoint_url=moto_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture(scope="module")
def moto_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log: Path = tmp_path_factory.mktemp("moto") / "moto.log"
    binary = Path(sys.executable).parent / "moto_server"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(binary), "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=out)
    try:
        wait_for_port(port, proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
